"""Reporting gaps that depend on the traits: non-reports in the data and the reporting model (issue 23, part 2)."""

import time

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from pymc.model.transform.conditioning import remove_value_transforms
from scipy import stats

from nexusbayes.analysis.recovery import interval_covers
from nexusbayes.data.read import load_panel
from nexusbayes.errors import DataError, SpecError
from nexusbayes.model.build import Model
from nexusbayes.model.predict import forward_mode
from nexusbayes.model.reporting import reporting_cells
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.report.reporting import reporting_table
from nexusbayes.spec.document import Spec


def informative(spec: Spec, *names: str, local: tuple[str, ...] = ()) -> Spec:
    """``spec`` with ``names`` reporting informatively (and ``local`` not comparable across countries)."""
    data = spec.to_dict()
    for name in names:
        data["indicators"][name]["missing"] = "informative"
    for name in local:
        data["indicators"][name]["comparable"] = False
    return Spec.from_dict(data)


# ---- the spec and the data contract -------------------------------------------------------------
def test_missing_is_a_spec_option_that_round_trips_and_is_checked():
    spec = informative(default_spec(), "seizures")
    assert spec.indicators["seizures"].missing == "informative"
    assert spec.indicators["staff"].missing == "ignorable"
    assert Spec.from_toml(spec.to_toml()) == spec
    data = default_spec().to_dict()
    data["indicators"]["staff"]["missing"] = "mnar"
    with pytest.raises(SpecError, match="ignorable.*informative"):
        Spec.from_dict(data)


def one_trait(missing: str = "informative") -> Spec:
    return Spec.from_dict({"name": "demo", "traits": ["capability"], "indicators": {
        "staff": {"family": "normal", "loads": {"capability": "positive"}, "missing": missing},
        "expert": {"family": "ordinal", "categories": 3, "loads": {"capability": "positive"}}}})


def table(**changes) -> pd.DataFrame:
    """Two regions x two years of staff and expert ratings; Naryn 2001 did not report staff."""
    frame = pd.DataFrame({
        "country": "KG", "region": ["Osh", "Osh", "Naryn", "Naryn", "Osh", "Osh", "Naryn", "Naryn"],
        "period": [2000, 2001, 2000, 2001] * 2, "indicator": ["staff"] * 4 + ["expert"] * 4,
        "value": [1.5, 2.0, 0.5, None, 2, 3, 1, 1], "status": ["", "reported", "", "not_reported", *[""] * 4]})
    for column, (row, value) in changes.items():
        frame.loc[row, column] = value
    return frame


def test_non_reports_are_kept_apart_from_observations_and_round_trip(tmp_path):
    panel = load_panel(table(), one_trait())
    assert panel.n_obs == 7 and "status" not in panel.frame
    assert panel.not_reported[["region", "period", "indicator", "row"]].values.tolist() == [["Naryn", 2001, "staff",
                                                                                              3]]
    cells = reporting_cells(panel.spec_indicators and one_trait(), panel)
    assert cells.names == ["staff"] and cells.reported.tolist() == [1, 0, 1, 1]     # Naryn 2000, 2001; Osh
    path = tmp_path / "data.csv"
    table().to_csv(path, index=False)
    from_file = load_panel(path, one_trait())
    assert from_file.not_reported["row"].tolist() == [5]         # line 5 of the file
    again = load_panel(from_file.data_table().set_axis(from_file.row_labels()), one_trait())
    pd.testing.assert_frame_equal(again.not_reported, panel.not_reported.assign(row=[5]))


def test_non_reports_of_an_ignorable_indicator_are_dropped():
    panel = load_panel(table(), one_trait("ignorable"))
    assert panel.n_obs == 7 and len(panel.not_reported) == 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"status": (1, "Reported ")}, r"row 1: `status` 'Reported' is not a status \(did you mean 'reported'\?\)"),
    ({"status": (1, "missing")}, r"`status` 'missing' is not a status; use 'reported'.*'not_reported'"),
    ({"value": (3, 1.0)}, r"row 3: `value` is given on a row with status 'not_reported'; leave `value` empty"),
    ({"value": (0, None)}, r"row 0: `value` is empty or NaN; .* \(or set `status` to 'not_reported' if the series"),
    ({"status": (0, "not_reported"), "value": (0, None), "region": (3, "Osh"), "period": (3, 2000)},
     r"rows 0, 3: duplicated \(region, period, indicator, rater\)"),
])
def test_bad_statuses_are_refused_naming_the_row_and_the_fix(changes, message):
    with pytest.raises(DataError, match=message):
        load_panel(table(**changes), one_trait())


def test_a_non_report_of_a_rated_region_period_is_refused():
    """Ratings by raters and a non-report (no rater) of the same region-period contradict each other."""
    frame = table().assign(rater=[None] * 4 + ["a"] * 4)
    frame.loc[8] = ["KG", "Osh", 2000, "expert", None, "not_reported", None]
    with pytest.raises(DataError, match=r"row 8: status 'not_reported' for a \(region, period, indicator\) that "
                                        "also has a row with a value; .* delete one of the rows"):
        load_panel(frame, one_trait())


def test_an_informative_indicator_without_non_reports_is_refused():
    with pytest.raises(DataError, match=r"\['staff'\] have missing = \"informative\" but no row with status "
                                        r"'not_reported'.*or set missing = \"ignorable\""):
        load_panel(table().drop(index=3), one_trait())


def test_a_rater_on_a_non_report_is_refused():
    data = one_trait().to_dict()
    data["indicators"]["expert"]["missing"] = "informative"
    frame = table(status=(7, "not_reported"), value=(7, None)).assign(rater=[None] * 4 + ["a"] * 4)
    with pytest.raises(DataError, match=r"row 7: `rater` is set on a row with status 'not_reported'"):
        load_panel(frame, Spec.from_dict(data))


# ---- the model ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    """Two countries, raters; seizures and abuse report informatively, abuse's reporting differs by country."""
    spec = informative(default_spec(), "seizures", "abuse", "expert_capability", local=("abuse",))
    sim = simulate(spec, n_countries=2, n_regions=3, n_periods=4, missing=0.1, n_raters=2, seed=5)
    return sim, Model(sim.spec, sim.panel).pymc


def test_reporting_variables_have_roles_and_one_likelihood_over_the_cells(small):
    sim, model = small
    roles = Model(sim.spec, sim.panel).roles
    assert (roles["reporting_intercept"].role, roles["reporting_loading"].role, roles["reporting_offset"].role,
            roles["reporting_offset_z"].role) == ("intercept", "loading", "offset", "latent")
    assert roles["reporting_loading"].reflect == "trait" and roles["reporting_loading"].prior == "reporting_loading"
    assert roles["reporting_offset"].ranked and roles["reporting_intercept"].ranked
    assert model.named_vars_to_dims["reporting_loading"] == ("indicator_informative", "trait")
    cells = reporting_cells(sim.spec, sim.panel)
    # every region-period at which a series existed is one cell (ratings by several raters: one cell)
    frame = sim.panel.frame
    for i, name in enumerate(cells.names):
        j = sim.panel.indicators.index(name)
        existed = {*zip(frame.loc[frame["indicator_idx"] == j, "region_idx"],
                        frame.loc[frame["indicator_idx"] == j, "period_idx"], strict=True),
                   *zip(*sim.panel.not_reported.query("indicator_idx == @j")[["region_idx", "period_idx"]].values.T,
                        strict=True)}
        assert (cells.item == i).sum() == len(existed) and 0 < cells.reported[cells.item == i].mean() < 1
    assert model.named_vars_to_dims["reported"] == ("obs_reported",) and len(model.coords["obs_reported"]) == len(
        cells.item)


def test_numpy_reporting_log_likelihood_matches_pymc(small):
    """The fit's ``reported`` log-likelihood (NumPy) equals PyMC's pointwise logp at a prior draw.

    Compiled without C (Python thunks): one evaluation needs no optimised code.
    """
    sim, model = small
    umodel, mode = remove_value_transforms(model), forward_mode()
    draw = pm.draw([umodel[v.name] for v in umodel.free_RVs], random_seed=3, mode=mode)
    point = {umodel.rvs_to_values[rv].name: val for rv, val in zip(umodel.free_RVs, draw, strict=True)}
    names = [v.name for v in [*umodel.free_RVs, *umodel.deterministics]]
    outs = [*umodel.replace_rvs_by_values([umodel[n] for n in names]),
            umodel.logp(vars=[umodel["reported"]], sum=False)[0]]
    *values, expected = umodel.compile_fn(inputs=umodel.value_vars, outs=outs, on_unused_input="ignore",
                                          mode=mode)(point)
    assert np.abs(values[names.index("reporting_offset")]).max() > 0.01
    post = xr.Dataset({n: xr.DataArray(v[None, None], dims=("chain", "draw", *model.named_vars_to_dims.get(n, ())))
                       for n, v in zip(names, values, strict=True)},
                      coords={k: np.asarray(v) for k, v in model.coords.items()})
    numpy_model = Model(sim.spec, sim.panel)
    tree = numpy_model.add_predictions(xr.DataTree.from_dict({"posterior": post}), seed=1)
    # given in single precision (predict.LOG_LIKELIHOOD_DTYPE): rounding <= 6e-8 of the value, plus 1e-8 before it
    np.testing.assert_allclose(numpy_model.log_likelihood(tree, ["reported"])["reported"].values[0, 0], expected,
                               rtol=1e-7)
    assert set(np.unique(tree["posterior_predictive"]["reported"].values)) <= {0, 1}


# ---- recovery ----------------------------------------------------------------------------------
def mnar_spec(missing: str) -> Spec:
    """One trait: expert ratings always reported; staff, seizures and audits with ``missing``."""
    return Spec.from_dict({"name": "mnar", "traits": ["capability"], "indicators": {
        "expert": {"family": "ordinal", "categories": 5, "loads": {"capability": "positive"}},
        "staff": {"family": "normal", "loads": {"capability": "positive"}, "missing": missing},
        "seizures": {"family": "negbin", "loads": {"capability": "positive"}, "missing": missing},
        "audits": {"family": "binomial", "loads": {"capability": "positive"}, "missing": missing}}})


#: The planted reporting: logit P(reported) = 0.5 + 2 capability (about 8% reported at -1.5, 92% at +1).
PLANTED = (0.5, 2.0)
SEED = 1


@pytest.fixture(scope="module")
def fits():
    """Four fits of 8 regions x 8 years: with and without the reporting model, on data with and without the pathology.

    ``pathology``: reporting falls as capability falls (:data:`PLANTED`); ``clean``: the same seed with reporting at
    random (loading 0), so the values are those of the pathological panel plus the ones it left unreported.
    """
    from nexusbayes.fit import fit

    out, seconds = {}, {}
    for data, loading in (("pathology", PLANTED[1]), ("clean", 0.0)):
        sim = simulate(mnar_spec("informative"), n_regions=8, n_periods=8, reporting=(PLANTED[0], loading), seed=SEED)
        for missing in ("ignorable", "informative"):
            start = time.perf_counter()
            out[data, missing] = sim, fit(mnar_spec(missing), sim.frame, chains=2, draws=300, tune=300, seed=SEED,
                                          progress=False, check=False)
            seconds[data, missing] = time.perf_counter() - start
    print("fit seconds:", {f"{d}/{m}": round(s) for (d, m), s in seconds.items()})
    return out


def theta_summary(sim, result) -> dict:
    """Theta's posterior mean and SD, and against the truth: r, 90% coverage, mean error in the lowest quarter."""
    draws = result.tree["posterior"]["theta"].sel(trait="capability")
    truth = sim.truth["theta"].sel(trait="capability").values
    mean, sd = draws.mean(("chain", "draw")).values, draws.std(("chain", "draw")).values
    low = truth <= np.quantile(truth, 0.25)
    return {"mean": mean, "sd": sd, "r": float(np.corrcoef(mean.ravel(), truth.ravel())[0, 1]),
            "coverage": float(interval_covers(draws, truth, 0.9).mean()),
            "bias_low": float((mean - truth)[low].mean()), "rhat": float(result.diagnostics.table["max_rhat"].max())}


@pytest.mark.slow
def test_ignored_gaps_bias_theta_where_capability_is_low_and_the_reporting_model_recovers_it(fits):
    """Reporting falls as capability falls: 42% of the cells of three indicators unreported, most at low capability.

    Ignoring it leaves the lowest-capability quarter of region-periods to the always-reported expert ratings and
    the dynamics, so their traits are pulled up towards the average; the reporting model reads the gaps as
    evidence. Both fits shrink that quarter somewhat (posterior means regress to the mean): the bias that ignoring
    the gaps adds is the difference.
    """
    naive = theta_summary(*fits["pathology", "ignorable"])
    full = theta_summary(*fits["pathology", "informative"])
    report = {k: {n: round(v, 3) for n, v in s.items() if isinstance(v, float)} for k, s in (("naive", naive),
                                                                                             ("reporting", full))}
    print(report)
    assert full["r"] >= 0.9 and 0.80 <= full["coverage"] <= 0.97, report
    assert naive["bias_low"] - full["bias_low"] >= 0.1, report
    assert naive["r"] < full["r"], report
    assert full["rhat"] <= 1.05, report


@pytest.mark.slow
def test_reporting_parameters_are_recovered_and_reported(fits):
    """The planted intercepts and loadings in their 90% intervals (as a Binomial(6, 0.9) count would be, at 99%),
    every loading's interval above 0; the report's table and figure and PSIS-LOO cover the reporting term."""
    from nexusbayes.report import build_report
    from nexusbayes.report.checks import loo
    from nexusbayes.report.reporting import reporting_figure
    from nexusbayes.report.tables import rounded

    sim, result = fits["pathology", "informative"]
    table = reporting_table(result)
    truth = {"intercept": PLANTED[0], "loading:capability": PLANTED[1]}
    table["truth"] = table["parameter"].map(truth)
    table["inside"] = (table["q05"] <= table["truth"]) & (table["truth"] <= table["q95"])
    print(table.round(3).to_string())
    assert len(table) == 6 and table["inside"].sum() >= stats.binom.ppf(0.01, 6, 0.9), table
    assert (table.loc[table["parameter"] == "loading:capability", "q05"] > 0).all(), table
    cells = reporting_cells(sim.spec, result.panel)
    assert table["cells"].sum() == len(cells.item) * 2     # two rows (intercept, loading) per indicator
    assert reporting_figure(result).axes
    terms = loo(result).terms.set_index("term")
    assert terms.loc["reported", "n_obs"] == len(cells.item)
    page = build_report(result, dpi=50)
    assert "reporting" in page.figures and "Reporting model: who reports" in page.html
    pd.testing.assert_frame_equal(page.tables["reporting_model"], rounded(table.drop(columns=["truth", "inside"])))


def reporting_probability(intercept: xr.DataArray, loading: xr.DataArray, theta: xr.DataArray) -> xr.DataArray:
    """P(reported) per informative indicator, region and period (the model has no country offsets here)."""
    return 1.0 / (1.0 + np.exp(-(intercept + xr.dot(loading, theta, dim="trait"))))


@pytest.mark.slow
def test_reporting_probabilities_have_nominal_coverage(fits):
    """P(reported) of each informative indicator and region-period (where the reporting loadings act, issue 23)
    inside its 90% interval at a rate in [0.80, 0.97]. Measured (seed 1, 2 x 300 draws): 0.896 of 192."""
    sim, result = fits["pathology", "informative"]
    post = result.tree["posterior"]
    names = {"indicator_informative": list(post["indicator_informative"].values)}
    draws = reporting_probability(post["reporting_intercept"], post["reporting_loading"], post["theta"])
    truth = reporting_probability(sim.truth["reporting_intercept"].sel(names),
                                  sim.truth["reporting_loading"].sel(names), sim.truth["theta"])
    inside = interval_covers(draws, truth, 0.9)
    coverage = float(inside.mean())
    print(f"P(reported) inside its 90% interval: {coverage:.3f} of {inside.size}")
    assert 0.80 <= coverage <= 0.97, coverage


@pytest.mark.slow
def test_without_the_pathology_the_reporting_model_gives_the_same_theta(fits):
    """Reporting at random: the traits of both fits agree to well within their posterior SD, and the reporting
    loadings' intervals hold 0 (at least two of the three)."""
    naive = theta_summary(*fits["clean", "ignorable"])
    full = theta_summary(*fits["clean", "informative"])
    gap = np.abs(full["mean"] - naive["mean"]) / naive["sd"]
    table = reporting_table(fits["clean", "informative"][1])
    loadings = table[table["parameter"] == "loading:capability"]
    report = (f"|difference| / posterior SD: mean {gap.mean():.3f}, max {gap.max():.3f}; r {naive['r']:.3f} vs "
              f"{full['r']:.3f}; loadings {loadings[['mean', 'q05', 'q95']].round(2).values.tolist()}")
    print(report)
    assert gap.mean() <= 0.15 and gap.max() <= 0.5, report
    assert ((loadings["q05"] <= 0) & (0 <= loadings["q95"])).sum() >= 2, report


def test_a_saved_fit_keeps_its_non_reports(tmp_path):
    """Fit.save stores the non-reports with the data (status column), and load rebuilds the same panel."""
    from nexusbayes.fit import Fit, load

    sim = simulate(informative(default_spec(), "seizures"), n_regions=3, n_periods=4, seed=1)
    assert len(sim.panel.not_reported)
    post = xr.Dataset({"theta": (("chain", "draw", "region", "period", "trait"),
                                 np.random.default_rng(1).normal(size=(1, 2, 3, 4, 2)))},
                      coords={"chain": [0], "draw": [0, 1], "region": sim.panel.regions, "period": sim.panel.periods,
                              "trait": sim.spec.traits})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((1, 2), bool))},
                       coords={"chain": [0], "draw": [0, 1]})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    path = Fit(tree=tree, spec=sim.spec, panel=sim.panel).save(tmp_path / "f.nc")
    again = load(path).panel
    pd.testing.assert_frame_equal(again.not_reported, sim.panel.not_reported)
    assert again.n_obs == sim.panel.n_obs


def test_the_compiled_structure_depends_on_the_non_reports():
    """The same observations with other non-reports make other reporting cells: not one compiled model."""
    from nexusbayes.inference.compile_cache import structure_key

    sim = simulate(informative(default_spec(), "seizures"), n_regions=3, n_periods=4, seed=1)
    fewer = sim.frame.drop(index=sim.frame.index[sim.frame["status"] == "not_reported"][0])
    other = load_panel(fewer, sim.spec)
    assert other.n_obs == sim.panel.n_obs and len(other.not_reported) == len(sim.panel.not_reported) - 1
    assert structure_key(other, sim.spec) != structure_key(sim.panel, sim.spec)
