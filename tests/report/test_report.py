"""The diagnostics report: sections in order, verdict = diagnose(tree), CSV tables = the DataTree's quantities,
hostile names escaped, --strict, and the page as a browser loads it (self-contained, every image shown).

One tiny fit (tests/conftest.py: 3 regions x 4 periods, 2 chains x 60 draws, so its diagnostics fail on purpose)
serves every test; one of its regions is called ``<script>alert(1)</script>``.
"""

import base64
import html
import re
import shutil
import subprocess
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from nexusbayes import report as report_module
from nexusbayes.analysis import typology
from nexusbayes.analysis.diagnostics import diagnose
from nexusbayes.analysis.forecast import forecast_table, forecast_types_table
from nexusbayes.cli import main
from nexusbayes.constants import TYPES
from nexusbayes.errors import OutputExistsError
from nexusbayes.model.design import term_key
from nexusbayes.report import REPORT_FILE, SECTIONS, write_report
from nexusbayes.report.tables import round_significant, rounded
from tests.conftest import HOSTILE, HOSTILE_LABEL


@pytest.fixture(scope="session")
def page(hostile):
    return (hostile[1] / REPORT_FILE).read_text(encoding="utf-8")


def test_fit_writes_the_report_into_the_run_folder_with_sections_in_order(hostile, page):
    _, folder = hostile
    positions = [page.find(f'<section id="{name}">') for name in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), positions
    header = page[positions[0]:positions[1]]
    for text in ("SHA-256 of spec and data", "sampler", "seed", "compile time (s)", "sampling time (s)",
                 "name = &#34;hostile&#34;", "nutpie", "arviz-plots"):
        assert text in header, text
    fit_to_data = page[positions[3]:positions[4]]
    for text in ("Pareto k", "Prior predictive rootograms", "Posterior predictive rootograms",
                 "Prior predictive densities (staff)", "Posterior predictive densities (staff)"):
        assert text in fit_to_data, text
    assert "Typology map" in page[positions[4]:] and "Rank plots" in page[positions[2]:positions[3]]


def test_verdict_values_equal_diagnose(hostile, page):
    fit, folder = hostile
    checks = diagnose(fit.tree).checks
    rows = re.findall(r'data-check="(\w+)" data-value="([^"]*)" data-passed="(true|false)"', page)
    assert [r[0] for r in rows] == list(checks.index)
    for key, value, passed in rows:
        assert float(html.unescape(value)) == pytest.approx(float(checks.loc[key, "value"]), rel=1e-12), key
        assert (passed == "true") == bool(checks.loc[key, "passed"]), key
    assert 'id="overall" data-passed="false"' in page and "FAIL" in page     # 120 draws cannot reach ESS 400
    assert "increase draws" in page                                              # and says what to try


def test_every_csv_table_equals_the_quantity_it_came_from(hostile):
    """Each CSV holds its quantity rounded to 4 significant digits (at least 2 decimals), exactly."""
    fit, folder = hostile
    tree, spec, panel = fit.tree, fit.spec, fit.panel
    csv = {p.stem: pd.read_csv(p) for p in folder.glob("*.csv")}
    checked = set()

    def same(stem, expected, columns=None):
        got = csv[stem]
        columns = columns or list(expected.columns)
        pd.testing.assert_frame_equal(got[columns].reset_index(drop=True),
                                      rounded(expected[columns]).reset_index(drop=True),
                                      check_dtype=False, check_exact=False, atol=0, rtol=1e-12)
        checked.add(stem)

    diag = diagnose(tree)
    same("verdict", diag.checks.reset_index(), ["check", "value", "passed"])        # "value": kept exact
    same("diagnostics_by_variable", diag.table.reset_index(), ["variable", "max_rhat", "min_ess_bulk", "min_ess_tail"])

    theta = tree["posterior"]["theta"]
    q = theta.quantile([0.05, 0.95], dim=("chain", "draw"))
    traits = csv["traits"]
    assert list(traits.columns) == ["country", "region", "period", "trait", "mean", "sd", "q05", "q95"]
    assert set(traits["country"]) == set(panel.countries)
    for row in traits.sample(20, random_state=1).itertuples():
        sel = {"region": row.region, "period": row.period, "trait": row.trait}
        draws = theta.sel(sel)
        expected = [float(draws.mean()), float(draws.std(ddof=1)), float(q.sel(sel).isel(quantile=0)),
                    float(q.sel(sel).isel(quantile=1))]
        assert [row.mean, row.sd, row.q05, row.q95] == pytest.approx(round_significant(expected), rel=1e-12)
        assert row.sd == pytest.approx(float(draws.std(ddof=1)), rel=5e-3)     # 4 significant digits; ArviZ's sd
    assert len(traits) == theta["region"].size * theta["period"].size * theta["trait"].size
    checked.add("traits")

    probs = typology.type_probabilities(tree, spec)
    types = csv["type_probabilities"]
    for t in probs["type"].values:
        expected = probs.sel(type=t).sel(region=types["region"].to_xarray(), period=types["period"].to_xarray())
        np.testing.assert_allclose(types[t].to_numpy(), round_significant(expected.values), rtol=1e-12)
    assert HOSTILE in set(types["region"])
    checked.add("type_probabilities")
    matrices = typology.transition_matrices(tree, spec, fit.region_country)
    assert list(csv["transition_matrices"].columns) == ["country", "from", "to", "mean", "sd", "q05", "q95",
                                                        "p_row_defined", "from_count"]
    same("transition_matrices", matrices)
    same("threshold_sensitivity", typology.threshold_sensitivity(tree, spec))
    thresholds = csv["typology_thresholds"].set_index("trait")
    for trait in ("capability", "willingness"):
        draws = typology.threshold_draws(tree, spec, trait).values
        assert thresholds.loc[trait, "mean"] == pytest.approx(draws.mean(), rel=5e-4, abs=5e-3)
    checked.add("typology_thresholds")
    ranks = csv["rank_tests"]
    assert (ranks["flagged"] == (ranks["p_value"] < ranks["alpha"])).all() and len(ranks) > 5
    checked.add("rank_tests")

    pareto = csv["pareto_k"]
    terms = csv["loo_by_term"].set_index("term")
    # given in float32, smoothed in double precision (as the report does: PSIS in float32 adds ~4e-5 per row)
    double = tree.copy()
    double["log_likelihood"] = xr.DataTree(fit.log_likelihood().astype(np.float64))
    for var in double["log_likelihood"].to_dataset().data_vars:
        with warnings.catch_warnings():   # expected with 120 draws; the report lists it among its notes
            warnings.filterwarnings("ignore", "Estimated shape parameter of Pareto", UserWarning)
            result = az.loo(double, var_name=var, pointwise=True)
        part = pareto[pareto["term"] == var]
        (dim,) = result.pareto_k.dims
        np.testing.assert_array_equal(part["row"].to_numpy(), result.pareto_k[dim].values)
        expected = rounded(pd.DataFrame({"k": result.pareto_k.values, "elpd": result.elpd_i.values}))
        np.testing.assert_allclose(part["pareto_k"].to_numpy(), expected["k"], rtol=1e-12)
        np.testing.assert_allclose(part["elpd_loo"].to_numpy(), expected["elpd"], rtol=1e-12)
        observed = tree["observed_data"][var]
        np.testing.assert_allclose(part["value"].to_numpy(), observed.values)
        key = var.removeprefix("y_")
        sub = panel.frame[panel.frame["indicator"].map(lambda n: term_key(spec, n)) == key]  # the term's rows
        for col in ("region", "period", "indicator"):
            assert (part[col].astype(str).to_numpy() == sub[col].astype(str).to_numpy()).all(), col
        assert terms.loc[var, "elpd_loo"] == pytest.approx(result.elpd, abs=0.005)     # 2 decimals at least
        assert terms.loc[var, "se"] == pytest.approx(result.se, rel=5e-4)
        assert terms.loc[var, "n_k_above"] == int((result.pareto_k.values > 0.7).sum())
    checked.update({"pareto_k", "loo_by_term"})
    flagged = csv["pareto_k_flagged"]
    assert (flagged["pareto_k"] > 0.7).all() and len(flagged) == int((pareto["pareto_k"] > 0.7).sum())
    by_indicator = csv["loo_by_indicator"].set_index("indicator")
    sums = pareto.groupby("indicator")["elpd_loo"].sum()
    np.testing.assert_allclose(by_indicator.loc[sums.index, "elpd_loo"], sums, atol=0.005 * len(pareto) + 0.005)
    checked.update({"pareto_k_flagged", "loo_by_indicator"})

    counts = csv["rows_per_indicator"].set_index("indicator")
    assert counts["observations"].to_dict() == panel.frame["indicator"].value_counts().to_dict()
    checked.add("rows_per_indicator")
    info = csv["run_info"].set_index("item")["value"]
    assert info["SHA-256 of spec and data (as fitted)"] == tree.attrs["nexusbayes_sha256"]
    assert info["seed"] == str(tree.attrs["seed"]) and info["sampler"] == tree.attrs["sampler"]
    versions = csv["versions"].set_index("library")
    assert versions.loc["pymc", "at fit"] == tree.attrs["version_pymc"]
    checked.update({"run_info", "versions"})
    forecast = fit.forecast(1, seed=spec.sampler.seed)    # the report's default: one period ahead
    same("forecast_traits", forecast_table(forecast), ["mean", "sd", "q05", "q95"])
    same("forecast_types", forecast_types_table(forecast), [*TYPES, "modal_probability", "p_change"])
    # the run's --forecast-check 1 table (its refit scored in tests/report/test_forecasts.py), copied unchanged
    pd.testing.assert_frame_equal(csv["forecast_check"], pd.read_csv(folder.parent / "forecast_check.csv"))
    checked.add("forecast_check")
    assert checked == set(csv), f"tables without a test: {set(csv) - checked}"


def test_predictive_checks_show_the_data_and_chart_wide_predictions_as_ecdfs(hostile, monkeypatch):
    """Prior checks draw the observed data too (arviz-plots leaves it out unless asked), and a count indicator
    whose predictions range widely is charted as an ECDF in that check only (a rootogram has a bar per value)."""
    import xarray as xr
    from matplotlib.figure import Figure

    from nexusbayes.report import checks

    fit = hostile[0]
    index = checks.observation_index(fit.tree, fit.spec, fit.panel)
    first = index[index["term"] == "y_ordinal"].iloc[0]          # an ordinal rating: values 1..5 when observed
    prior = fit.tree["prior_predictive"].to_dataset().copy(deep=True)
    prior["y_ordinal"][..., 0] = 1000                            # one prior draw far outside the observed range
    tree = fit.tree.copy()
    tree["prior_predictive"] = xr.DataTree(prior)

    calls = []
    monkeypatch.setattr(checks, "render", lambda plot, dt, **kwargs: calls.append((dt, kwargs)) or Figure())
    figures = checks.predictive_figures(tree, fit.spec, fit.panel)
    assert len(calls) == len(figures)
    charted = {}
    for (dt, kwargs), stem in zip(calls, figures, strict=True):
        assert stem.startswith(f"ppc_{kwargs['group'].removesuffix('_predictive')}_")
        assert set(kwargs["visuals"]) & {"observed_markers", "observed_dist"}, stem   # the data, prior included
        names = kwargs.get("var_names") or [v.removeprefix("log1p(").removesuffix(")")
                                            for v in dt[kwargs["group"]].data_vars]
        charted.update({(stem, name): True for name in names})
    assert ("ppc_prior_ecdf", first["indicator"]) in charted
    assert ("ppc_posterior_rootogram", first["indicator"]) in charted
    assert ("ppc_prior_rootogram", first["indicator"]) not in charted


def test_hostile_names_are_escaped(page):
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert HOSTILE_LABEL not in page and "&lt;b&gt;staff&lt;/b&gt; &amp; co" in page
    assert "<script" not in page.lower()


def test_page_is_self_contained_and_files_match_it(hostile, page):
    _, folder = hostile
    assert not re.search(r"<link|<script|@import|url\(", page, re.IGNORECASE)
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert all(r.startswith(("data:", "#")) for r in refs), [r[:60] for r in refs if not r.startswith("data:")]
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == len(sources)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert {p.read_bytes() for p in pngs} == embedded
    assert "ppc_prior_rootogram.png" in {p.name for p in pngs} and "typology_map.png" in {p.name for p in pngs}


def test_report_command_strict_and_refusal(hostile_run, hostile_report, tmp_path, capsys, monkeypatch):
    _, run = hostile_run
    # the command writes the report of the same fit that the session rendered once already (conftest)
    monkeypatch.setattr(report_module, "build_report", lambda fit, **options: hostile_report[0])
    out = tmp_path / "again"
    assert main(["report", str(run / "fit.nc"), "--out", str(out), "--strict"]) == 3
    assert (out / REPORT_FILE).is_file()
    assert "sampling diagnostics failed" in capsys.readouterr().err
    before = (out / REPORT_FILE).stat().st_mtime_ns
    assert main(["report", str(run / "fit.nc"), "--out", str(out)]) == 2
    assert "already holds a report; pass --overwrite" in capsys.readouterr().err
    assert (out / REPORT_FILE).stat().st_mtime_ns == before
    assert main(["report", str(run / "fit.nc")]) == 2          # the run's own report exists already


def test_python_api_refuses_to_overwrite(hostile):
    fit, folder = hostile
    with pytest.raises(OutputExistsError, match="already holds a report"):
        write_report(fit, folder)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Runs in the page (in a test copy only): counts images that failed to load, resources fetched and CSP violations.
PROBE = """<script>
var violations = 0;
document.addEventListener('securitypolicyviolation', function () { violations += 1; });
addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var fetched = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  document.body.setAttribute('data-images', imgs.length);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute('data-broken', broken.length);
  document.body.setAttribute('data-fetched', JSON.stringify(fetched));
  document.body.setAttribute('data-violations', violations);
});
</script>"""


def _chromium(tmp_path, *args):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-pings",
             f"--user-data-dir={tmp_path / 'profile'}",
             "--host-resolver-rules=MAP * ~NOTFOUND",      # nothing can leave the machine, whatever asks
             "--virtual-time-budget=10000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_report_in_headless_chromium(hostile, page, tmp_path):
    _, folder = hostile
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>\n", "<head>\n" + PROBE + "\n", 1), encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = {k: html.unescape(v) for k, v in re.findall(r'data-(\w+)="([^"]*)"', body)}
    assert int(attrs["images"]) == page.count("<img ") > 10
    assert attrs["broken"] == "0", "an image failed to load"
    assert attrs["fetched"] == "[]", f"the page requested {attrs['fetched']}"
    assert attrs["violations"] == "0"
    assert "alert(1)" in dom and HOSTILE not in dom            # shown as text, not run
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", (folder / REPORT_FILE).as_uri())
    assert shot.stat().st_size > 20_000


def test_data_coverage_warnings_head_the_verdict(hostile, monkeypatch):
    from nexusbayes.data.panel import Panel
    from nexusbayes.report import build_report
    from nexusbayes.report.run import summary_text

    fit, _ = hostile
    warning = "no indicator of trait 'capability' is observed in country 'C9' <b>"
    monkeypatch.setattr(Panel, "warnings", property(lambda self: [warning]))
    page = build_report(fit).html
    verdict = page[page.find('<section id="verdict">'):page.find('<section id="sampling">')]
    assert 'id="data-warnings"' in verdict and "is observed in country" in verdict and "&lt;b&gt;" in verdict
    assert f"WARNING (data): {warning}" in summary_text(fit)


def test_a_one_chain_fit_gets_a_report_without_rank_plots():
    from nexusbayes.fit import fit
    from nexusbayes.model.simulate import simulate
    from nexusbayes.report import build_report

    sim = simulate(n_regions=3, n_periods=4, n_raters=2, seed=5)   # the hostile fixture's structure (compiled)
    one = fit(sim.spec, sim.frame, draws=60, tune=100, chains=1, seed=3, progress=False, check=False)
    report = build_report(one)
    assert "rank_hyperparameters" not in report.figures and "trace_hyperparameters" in report.figures
    assert report.tables["rank_tests"].empty and 'id="rank-tests"' not in report.html
