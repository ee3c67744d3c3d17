"""Comparisons between countries and regions: synthetic draws (exact), simulated two-country fits (recovery
against known truth), the LOO sharing check, the bundled Central Asia example and the real TIP-tier case."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from nexusbayes.analysis.compare import (
    CompareError,
    compare,
    comparison_tables,
    rank_probabilities,
    rank_table,
    type_distribution,
)
from nexusbayes.cli import main
from nexusbayes.constants import CI_PROB, TYPES
from nexusbayes.data.datasets import load_tip_tiers
from nexusbayes.data.read import load_panel
from nexusbayes.errors import DataError
from nexusbayes.fit import fit, load
from nexusbayes.model.simulate import default_spec, simulate, simulate_paths
from nexusbayes.report.tables import round_significant
from nexusbayes.spec.document import Spec, load_spec
from nexusbayes.workflows.sharing import _elpd_difference, _flip_keeps_identified, _loo, elpd_loo, sharing_check

ROOT = Path(__file__).resolve().parents[2]
SHARED_CANDIDATES = (ROOT.parent / "shared" / "data", Path("/work/shared/data"))
TIP_FILE = next((d / "tip_tiers" / "tip_tier_cho3p_policy_index.csv" for d in SHARED_CANDIDATES
                 if (d / "tip_tiers" / "tip_tier_cho3p_policy_index.csv").is_file()), None)
CENTRAL_ASIA = ["KAZ", "KGZ", "TJK", "TKM", "UZB"]


# ---- exact results on synthetic draws ------------------------------------------------------------
def fake_fit(country_theta: np.ndarray, theta: np.ndarray, regions: dict[str, str]) -> SimpleNamespace:
    """country_theta (chain, draw, country, period, trait); theta (chain, draw, region, period, trait)."""
    countries = list(dict.fromkeys(regions.values()))
    coords = {"country": countries, "region": list(regions), "period": [2000, 2001, 2002],
              "trait": ["capability", "willingness"]}
    post = xr.Dataset({"country_theta": (("chain", "draw", "country", "period", "trait"), country_theta),
                       "theta": (("chain", "draw", "region", "period", "trait"), theta)}, coords=coords)
    tree = xr.DataTree.from_dict({"posterior": post})
    return SimpleNamespace(tree=tree, spec=default_spec(), region_country=regions,
                           panel=SimpleNamespace(countries=countries))


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    country = rng.normal(0, 1, (2, 400, 3, 3, 2))
    country[:, :, 0] += 2.0                 # KG is far above the others in every period and trait
    theta = rng.normal(0, 1, (2, 400, 4, 3, 2))
    regions = {"Osh": "KG", "Chui": "KG", "Sughd": "TJ", "Balkh": "AF"}
    country_names = ["KG", "TJ", "AF"]
    return fake_fit(country, theta, regions), dict(zip(country_names, range(3), strict=True))


def test_compare_is_the_posterior_of_the_difference(synthetic):
    fake, index = synthetic
    table = compare(fake, "KG", "TJ")
    assert list(table.columns) == ["a", "b", "period", "trait", "mean", "sd", "q05", "q95", "p_a_greater"]
    assert len(table) == 3 * 2
    post = fake.tree["posterior"]["country_theta"].values
    diff = post[:, :, index["KG"]] - post[:, :, index["TJ"]]                 # (chain, draw, period, trait)
    row = table[(table.period == 2001) & (table.trait == "willingness")].iloc[0]
    d = diff[:, :, 1, 1].ravel()
    assert row["mean"] == pytest.approx(d.mean())
    assert row["sd"] == pytest.approx(d.std())
    assert row["p_a_greater"] == pytest.approx((d > 0).mean())
    lo, hi = np.quantile(d, [(1 - CI_PROB) / 2, 1 - (1 - CI_PROB) / 2])
    assert (row["q05"], row["q95"]) == pytest.approx((lo, hi))
    # a region against a country, and a chosen period
    mixed = compare(fake, "Osh", "TJ", periods=["2002"])
    assert set(mixed["period"]) == {2002}


def test_interval_is_xarray_s_equal_tailed_quantiles(synthetic):
    # arviz_stats.eti, to the bit: the CSV tables' q05/q95 columns did not move when it replaced xarray
    from nexusbayes.analysis.compare import interval

    theta = synthetic[0].tree["posterior"]["theta"]
    for prob in (0.9, 0.5, 0.95):
        q = theta.quantile([(1 - prob) / 2, 1 - (1 - prob) / 2], dim=("chain", "draw"))
        lower, upper = interval(theta, prob)
        assert lower.dims == upper.dims == ("region", "period", "trait")
        np.testing.assert_array_equal(lower.values, q.isel(quantile=0).values)
        np.testing.assert_array_equal(upper.values, q.isel(quantile=1).values)


def loo_fit(loglik: np.ndarray) -> SimpleNamespace:
    """A fit whose log-likelihood has two terms splitting ``loglik`` (chain, draw, obs), as a fit gives them."""
    n = loglik.shape[-1] // 2
    return SimpleNamespace(log_likelihood=lambda: xr.Dataset({"a": (("chain", "draw", "a_obs"), loglik[..., :n]),
                                                              "b": (("chain", "draw", "b_obs"), loglik[..., n:])}))


def test_elpd_difference_is_the_pointwise_difference_and_its_se():
    # arviz_stats.compare's elpd_diff and dse against the sum and sqrt(n var) of the pointwise differences
    # sharing_check computed before it used compare
    rng = np.random.default_rng(4)
    y = rng.normal(0.3, 1.0, 120)
    mu = rng.normal(0.3, 0.1, (2, 300, 1))
    shared = -0.5 * (y - mu) ** 2
    specific = -0.5 * ((y - mu - 0.2 * (np.arange(120) % 2)) / 1.1) ** 2 - np.log(1.1)
    loo_shared, loo_specific = _loo(loo_fit(shared)), _loo(loo_fit(specific))
    a, k = elpd_loo(loo_fit(specific))
    np.testing.assert_array_equal(a, np.asarray(loo_specific.elpd_i))
    np.testing.assert_array_equal(k, np.asarray(loo_specific.pareto_k))
    diff = np.asarray(loo_specific.elpd_i) - np.asarray(loo_shared.elpd_i)
    total, se = _elpd_difference(loo_shared, loo_specific)
    assert total == pytest.approx(float(diff.sum()), rel=1e-12, abs=1e-12)
    assert se == pytest.approx(float(np.sqrt(len(diff) * diff.var())), rel=1e-12)
    assert loo_specific.elpd == pytest.approx(float(np.asarray(loo_specific.elpd_i).sum()), rel=1e-12)
    # the other way round: the sign follows which side is the reference
    assert _elpd_difference(loo_specific, loo_shared)[0] == pytest.approx(-total, rel=1e-12)


def test_unknown_units_and_periods_are_named(synthetic):
    fake, _ = synthetic
    with pytest.raises(CompareError, match=r"'Bishkek' is neither a country \(KG, TJ, AF\) nor a region"):
        compare(fake, "Bishkek", "KG")
    with pytest.raises(CompareError, match="period 1999 is not in this fit; it has 2000..2002"):
        compare(fake, "KG", "TJ", periods=[1999])


def test_rank_probabilities(synthetic):
    fake, _ = synthetic
    probs = rank_probabilities(fake)
    assert probs.dims == ("country", "period", "trait", "rank")
    np.testing.assert_allclose(probs.sum("rank"), 1.0)
    np.testing.assert_allclose(probs.sum("country"), 1.0)          # each rank is held by someone
    assert float(probs.sel(country="KG", rank=1).min()) > 0.8
    table = rank_table(fake, periods=[2000])
    kg = table[(table.country == "KG") & (table.trait == "capability")].iloc[0]
    assert kg["expected_rank"] == pytest.approx(sum(k * kg[f"p_rank_{k}"] for k in (1, 2, 3)))
    with pytest.raises(CompareError, match="level must be"):
        rank_probabilities(fake, "province")


def test_type_distribution_counts_regions_and_country_paths(synthetic):
    fake, index = synthetic
    ds = type_distribution(fake)
    assert ds["probability"].dims == ("country", "period", "type")
    np.testing.assert_allclose(ds["probability"].sum("type"), 1.0)
    np.testing.assert_allclose(ds["region_share"].sum("type"), 1.0)
    theta = fake.tree["posterior"]["theta"].values                      # KG's regions are Osh and Chui
    hegemonic = ((theta[:, :, :2, 0, 0] > 0) & (theta[:, :, :2, 0, 1] > 0)).mean(axis=2)
    assert float(ds["region_share"].sel(country="KG", period=2000, type="hegemonic")) == pytest.approx(
        hegemonic.mean())
    ct = fake.tree["posterior"]["country_theta"].values[:, :, index["AF"], 2]
    failed = ((ct[..., 0] <= 0) & (ct[..., 1] <= 0)).mean()
    assert float(ds["probability"].sel(country="AF", period=2002, type="failed")) == pytest.approx(failed)


def test_comparison_tables_default_to_first_and_last_period(synthetic):
    fake, _ = synthetic
    tables = comparison_tables(fake)
    assert set(tables) == {"differences", "country_ranks", "country_types"}
    assert set(tables["differences"]["period"]) == {2000, 2002}
    assert {tuple(p) for p in tables["differences"][["a", "b"]].drop_duplicates().to_numpy()} == {
        ("KG", "TJ"), ("KG", "AF"), ("TJ", "AF")}
    assert set(tables["country_types"]["type"]) == set(TYPES)
    assert len(comparison_tables(fake, periods=None)["differences"]) == 3 * 3 * 2


# ---- recovery on simulated two-country data ------------------------------------------------------
TWO_COUNTRY_SEEDS = (1, 2, 3)


def two_country_spec() -> Spec:
    data = default_spec().to_dict()
    data["indicators"]["staff"]["comparable"] = False
    return Spec.from_dict(data)


def fit_two_country(seed: int):
    """Two countries x 6 regions x 8 years whose truth differs by known amounts, fitted with nutpie.

    C2 is more capable throughout (raw shift 1.5) and its willingness runs from far below C1 to far
    above it, so the true differences cover zero, small and large values. C2's staff series is
    reported on a different basis (every value +0.8 SD): staff is marked not comparable.

    The same 10% of cells is missing at every seed (a mask of its own seed), so the seeds share one structure
    and the model is compiled once for all three; 2 chains of 500 draws, as the suite's other recovery fits.
    """
    rng = np.random.default_rng(seed)
    theta = simulate_paths(rng, 2, 6, 8, 2, country_sd=0.3)
    theta[6:, :, 0] += 1.5
    theta[6:, :, 1] += np.linspace(-2.0, 2.0, 8)
    theta = (theta - theta.mean(axis=(0, 1))) / theta.std(axis=(0, 1))
    spec = two_country_spec()
    sim = simulate(spec, n_countries=2, n_regions=6, n_periods=8, n_raters=2, theta=theta, seed=seed)
    frame = sim.frame[np.random.default_rng(0).random(len(sim.frame)) >= 0.1].copy()   # one missing pattern
    staff = frame["indicator"] == "staff"
    frame.loc[staff & (frame["country"] == "C2"), "value"] += 0.8 * frame.loc[staff, "value"].std()
    result = fit(spec, frame, draws=500, tune=500, chains=2, seed=seed, progress=False, check=False)
    table = compare(result, "C1", "C2")
    truth = sim.truth["country_theta"].sel(country="C1") - sim.truth["country_theta"].sel(country="C2")
    table["truth"] = [float(truth.sel(period=p, trait=t))
                      for p, t in zip(table["period"], table["trait"], strict=True)]
    table["seed"] = seed
    return result, table


@pytest.fixture(scope="session")
def two_country():
    """{seed: (fit, comparison table with the true difference)} for every seed."""
    return {seed: fit_two_country(seed) for seed in TWO_COUNTRY_SEEDS}


def test_large_true_differences_are_detected(two_country):
    table = pd.concat([t for _, t in two_country.values()], ignore_index=True)
    large = table[table["truth"].abs() >= 1.0]
    assert len(large) >= 10
    p_right = np.where(large["truth"] > 0, large["p_a_greater"], 1 - large["p_a_greater"])
    assert (p_right >= 0.95).all(), large.assign(p_right=p_right).to_string()


def test_difference_intervals_cover_the_truth_over_seeds(two_country):
    table = pd.concat([t for _, t in two_country.values()], ignore_index=True)
    covered = (table["q05"] <= table["truth"]) & (table["truth"] <= table["q95"])
    # nominal 90%; 48 (seed, period, trait) cases, dependent within a seed
    assert covered.mean() >= 0.80, table.assign(covered=covered).to_string()


def test_sharing_check_compares_loo_of_shared_and_country_specific_measurement(two_country):
    result, _ = two_country[TWO_COUNTRY_SEEDS[0]]
    check = sharing_check(result, ["staff", "seizures"], draws=300, tune=300, chains=2).set_index("indicator")
    base = elpd_loo(result)[0].sum()
    # staff is country-specific in the fit, so the fit is its country-specific side; seizures the reverse
    assert not check.loc["staff", "comparable"] and check.loc["seizures", "comparable"]
    assert check.loc["staff", "elpd_country_specific"] == pytest.approx(base)
    assert check.loc["seizures", "elpd_shared"] == pytest.approx(base)
    # the other side is a real refit with the flag flipped
    assert check.loc["staff", "elpd_shared"] != pytest.approx(base)
    assert check.loc["seizures", "elpd_country_specific"] != pytest.approx(base)
    for name, row in check.iterrows():
        assert row["elpd_diff"] == pytest.approx(row["elpd_country_specific"] - row["elpd_shared"]), name
        assert row["se_diff"] > 0
        expected = "country-specific preferred" if row["elpd_diff"] > 2 * row["se_diff"] else "sharing supported"
        assert row["verdict"] == expected, name
        assert isinstance(row["offset_excludes_zero"], bool | np.bool_)


def test_sharing_check_only_flips_what_keeps_countries_comparable():
    spec = two_country_spec()
    indicators = list(spec.indicators)
    # expert_capability is then the last comparable capability-only indicator besides seizures
    assert _flip_keeps_identified(spec, "seizures", indicators)
    spec_two = Spec.from_dict({**spec.to_dict(), "indicators": {
        **spec.to_dict()["indicators"], "expert_capability": {**spec.to_dict()["indicators"]["expert_capability"],
                                                              "comparable": False}}})
    assert not _flip_keeps_identified(spec_two, "seizures", indicators)     # capability would lose its last one
    assert _flip_keeps_identified(spec_two, "staff", indicators)            # making staff comparable is fine


def test_sharing_check_needs_several_countries(synthetic):
    fake, _ = synthetic
    fake_one = SimpleNamespace(**{**vars(fake), "panel": SimpleNamespace(countries=["KG"])})
    with pytest.raises(CompareError, match="more than one country"):
        sharing_check(fake_one)


# ---- the bundled Central Asia example, through the command line ----------------------------------
# central_asia_run (tests/conftest.py): the example at its defaults, which tests/test_examples.py checks too
def test_central_asia_comparison_follows_the_memo(central_asia_run, capsys):
    status, out, _ = central_asia_run
    assert status == 0
    result = load(out / "fit.nc")
    assert result.panel.countries == ["Kyrgyzstan", "Tajikistan"]
    table = compare(result, "Tajikistan", "Kyrgyzstan", periods=range(2005, 2016))
    cap = table[table.trait == "capability"]
    will = table[table.trait == "willingness"]
    # the memo: Tajikistan stronger in strategic and operational capacity, more permeated by corruption
    assert (cap["p_a_greater"] >= 0.95).all(), cap.to_string()
    assert (will["p_a_greater"] <= 0.05).all(), will.to_string()
    # the run folder holds the comparison tables, and `nexusbayes compare` prints them
    written = pd.read_csv(out / "compare_differences.csv")
    assert len(written) == len(result.panel.periods) * 2
    capsys.readouterr()
    assert main(["compare", str(out / "fit.nc"), "--period", "2012"]) == 0
    printed = capsys.readouterr().out
    assert "== differences ==" in printed and "== country ranks ==" in printed and "Tajikistan" in printed
    assert main(["compare", str(out / "fit.nc"), "Osh", "Sughd", "--out", str(out / "cmp")]) == 0
    assert (out / "cmp" / "differences.csv").is_file()
    assert main(["compare", str(out / "fit.nc"), "Osh", "Sughd", "--out", str(out / "cmp")]) == 2   # no overwrite
    assert main(["compare", str(out / "fit.nc"), "Osh"]) == 2


def test_compare_command_shows_the_first_and_last_period_by_default(central_asia_run, tmp_path):
    _, out, _ = central_asia_run
    periods = load(out / "fit.nc").panel.periods
    shown = {}
    for name, extra in (("default", []), ("all", ["--all-periods"]), ("two", ["--period", "2012", "--period", "2005"])):
        assert main(["compare", str(out / "fit.nc"), "--out", str(tmp_path / name), *extra]) == 0
        shown[name] = {table: sorted(set(pd.read_csv(tmp_path / name / f"{table}.csv")["period"]))
                       for table in ("differences", "country_ranks", "country_types")}
    assert len(periods) == 26
    assert all(found == [periods[0], periods[-1]] for found in shown["default"].values()), shown["default"]
    assert all(found == list(periods) for found in shown["all"].values()), shown["all"]
    assert all(found == [2005, 2012] for found in shown["two"].values()), shown["two"]
    assert main(["compare", str(out / "fit.nc"), "--all-periods", "--period", "2012"]) == 2


def test_central_asia_report_compares_the_countries(central_asia_run):
    _, out, _ = central_asia_run
    report = out / "report"
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "Country differences in the last period" in html
    for stem in ("country_trajectories", "country_forest", "typology_by_country", "rank_probabilities"):
        assert (report / f"{stem}.png").read_bytes()[:4] == b"\x89PNG", stem
        assert f'id="fig-{stem}"' in html or stem in html
    result = load(out / "fit.nc")
    written = pd.read_csv(report / "compare_differences.csv")
    expected = compare(result, "Kyrgyzstan", "Tajikistan")
    for column in ("p_a_greater", "mean", "q05", "q95"):           # CSVs keep 4 significant digits
        np.testing.assert_allclose(written[column], round_significant(expected[column]), rtol=1e-12)


# ---- real data: TIP tiers and the 3P index, Central Asia -------------------------------------------
needs_tip = pytest.mark.skipif(TIP_FILE is None, reason="shared/data/tip_tiers not found beside the project")


@needs_tip
def test_tip_loader_reads_the_published_layout():
    long = load_tip_tiers(TIP_FILE, countries=CENTRAL_ASIA, years=(2000, 2013))
    assert set(long["country"]) == {"Kazakhstan", "KyrgyzRep", "Tajikistan", "Turkmenistan", "Uzbekistan"}
    raw = pd.read_csv(TIP_FILE)
    kg = raw[(raw["countryname"] == "KyrgyzRep") & (raw["year"] == 2002)].iloc[0]
    got = long[(long["country"] == "KyrgyzRep") & (long["period"] == 2002)].set_index("indicator")["value"]
    assert got["tier"] == {1.0: 4, 2.0: 3, 2.5: 2, 3.0: 1}[kg["tier"]]
    assert got["prevention"] == kg["prevention"]
    with pytest.raises(DataError, match="no country 'Kyrgyzstan'.*did you mean 'KyrgyzRep'"):
        load_tip_tiers(TIP_FILE, countries=["Kyrgyzstan"])


@needs_tip
def test_tip_loader_marks_gaps_of_published_years_as_non_reports():
    """An empty cell is a non-report in a year the item was published, structural absence otherwise."""
    raw = pd.read_csv(TIP_FILE)
    long = load_tip_tiers(TIP_FILE)
    silent = long[long["status"] == "not_reported"]
    assert silent["value"].isna().all() and long.loc[long["status"] == "reported", "value"].notna().all()
    # every empty cell of a published year is one non-report, and no other row is
    published = {"tier": range(2001, 2015), "prosecution": range(2000, 2014)}
    for item, years in published.items():
        in_years = raw[raw["year"].isin(years)]
        assert (silent["indicator"] == item).sum() == in_years[item].isna().sum()
        assert set(silent.loc[silent["indicator"] == item, "period"]) <= set(years)
    # the tiers of 2000 (no report yet) and the 3P index of 2014 (one stray value) are structural absence
    assert not ((long["indicator"] == "tier") & (long["period"] == 2000)).any()
    p2014 = long[(long["indicator"] == "prosecution") & (long["period"] == 2014)]
    assert len(p2014) == raw.loc[raw["year"] == 2014, "prosecution"].notna().sum() == 1
    # Afghanistan: not yet in the TIP report in 2001, Tier 3 in 2002, in the report but not rated in 2003
    afg = long[(long["country"] == "Afghanistan") & (long["indicator"] == "tier")].set_index("period")
    assert afg.loc[[2001, 2002, 2003], "status"].tolist() == ["not_reported", "reported", "not_reported"]
    assert afg.loc[2002, "value"] == 1


@needs_tip
def test_tip_tiers_spec_validates_with_drift_and_informative_gaps():
    """models/tip_tiers.toml (the whole panel, tier drifting with informative gaps) reads its data in place."""
    spec, data = load_spec(ROOT / "models" / "tip_tiers.toml")
    assert spec.indicators["tier"].drift == "cutpoints" and spec.indicators["tier"].missing == "informative"
    panel = load_panel(TIP_FILE, spec)
    assert len(panel.countries) == 189 and panel.periods == list(range(2000, 2014))
    silent = panel.not_reported
    assert set(silent["indicator"]) == {"tier"} and len(silent) > 500
    # a country with only non-reports is said to be informed by them, not "from the prior alone"
    dominica = [w for w in panel.warnings if "'Dominica'" in w and w.startswith("no indicator of trait")]
    assert dominica and "only its non-reports of 'tier'" in dominica[0]
    if Path(data).is_file():    # the spec's own path (relative to the spec file) finds the shared copy
        assert Path(data).resolve() == TIP_FILE.resolve()


def test_tip_loader_names_bad_lines(tmp_path):
    bad = tmp_path / "tip.csv"
    bad.write_text("countryname,iso,year,tier,prosecution,protection,prevention\n"
                   "A,AAA,2001,2,3,3,3\nA,AAA,2002,4,3,3,3\n")
    with pytest.raises(DataError, match=r"tip.csv: line\(s\) 3: `tier` must be 1, 2, 2.5 .* \(got 4\)"):
        load_tip_tiers(bad)
    bad.write_text("country,year,tier\nA,2001,2\n")
    with pytest.raises(DataError, match="missing column"):
        load_tip_tiers(bad)
    with pytest.raises(DataError, match="not found"):
        load_tip_tiers(tmp_path / "absent.csv")


@needs_tip
def test_tip_central_asia_fit_is_sane():
    spec, _ = load_spec(ROOT / "models" / "tip_central_asia.toml")
    assert spec.data.countries == CENTRAL_ASIA and spec.data.years == (2000, 2013)
    # the spec reads the file itself ([data] format = "tip_tiers"), wherever the shared copy is
    result = fit(spec, TIP_FILE, progress=False, check=False)       # the spec's 4 chains x 1000 draws
    long = load_tip_tiers(TIP_FILE, countries=CENTRAL_ASIA, years=(2000, 2013))
    long = long[long["status"] == "reported"]     # the spec's gaps are ignorable: its non-reports are dropped
    assert result.panel.n_obs == len(long)
    assert result.diagnostics.passed, result.diagnostics.text()
    theta = result.tree["posterior"]["theta"].sel(trait="willingness")
    tiers = long[long["indicator"] == "tier"].set_index(["country", "period"])["value"]
    p_sum = long[long["indicator"] != "tier"].groupby(["country", "period"])["value"].sum()
    # Where the tier (higher = better) and the 3P sum order two countries of a year the same way, the two
    # sources agree and the fitted trait must too. (They often disagree in Central Asia: within these five
    # countries tier and 3P sum correlate at only ~0.14, so the tier order alone is no fixed target.)
    concordant, agree = 0, 0
    for year in sorted(set(tiers.index.get_level_values("period"))):
        rated = tiers.xs(year, level="period")
        for a in rated.index:
            for b in rated.index:
                if rated[a] > rated[b] and (a, year) in p_sum and (b, year) in p_sum \
                        and p_sum[(a, year)] > p_sum[(b, year)]:
                    concordant += 1
                    p_a = float((theta.sel(region=a, period=year) > theta.sel(region=b, period=year)).mean())
                    agree += p_a > 0.5
    assert concordant >= 15
    assert agree == concordant, f"{agree}/{concordant}"
    # the trait tracks the policy index and leans the tier's way
    mean = theta.mean(("chain", "draw")).to_series()
    joined = pd.concat([mean.rename("theta"), p_sum.rename("p"), tiers.rename("tier")], axis=1, join="inner")
    corr = joined.corr(method="spearman")
    assert corr.loc["theta", "p"] >= 0.7 and corr.loc["theta", "tier"] > 0
    # Turkmenistan, lowest on both sources, ranks last on average over the years
    assert mean.groupby(level=0).mean().idxmin() == "Turkmenistan"
