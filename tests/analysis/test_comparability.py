"""Detecting indicators that are not comparable across countries (issue 23, part 4)."""


import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

from nexusbayes.analysis.comparability import flagged, noncomparability_table, offset_table
from nexusbayes.errors import SpecError
from nexusbayes.model.build import Model
from nexusbayes.model.predict import forward_mode
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.report import noncomparability as report_section
from nexusbayes.spec.document import Spec
from nexusbayes.spec.sections import Comparability

#: Planted offsets (one per country, centred by the simulation) of the two indicators that are not comparable.
PLANTED = {"seizures": [1.2, -1.0, -0.2], "expert_willingness": [-1.2, 0.2, 1.0]}


def detecting(delta: float = 0.5) -> Spec:
    return default_spec(comparability=Comparability(detect=True, delta=delta))


# ---- the spec ----------------------------------------------------------------------------------
def test_detect_round_trips_through_toml():
    spec = detecting(0.4)
    back = Spec.from_toml(spec.to_toml())
    assert back == spec and back.comparability.detect and back.comparability.delta == 0.4


@pytest.mark.parametrize(("table", "wanted"), [
    ({"detect": True, "delta": 0}, "delta"),
    ({"detect": "yes"}, "detect"),
    ({"detct": True}, "detect"),          # a mistyped key names the nearest valid one
])
def test_bad_comparability_settings_are_refused(table, wanted):
    raw = {**default_spec().to_dict(), "comparability": table}
    with pytest.raises(SpecError, match=wanted):
        Spec.from_dict(raw)


def test_detection_with_one_country_is_refused():
    sim = simulate(detecting(), n_countries=1, n_regions=3, n_periods=3, seed=1)
    with pytest.raises(SpecError, match=r"detect = true .* one country"):
        Model(sim.spec, sim.panel)


# ---- the model ---------------------------------------------------------------------------------
def test_horseshoe_offsets_have_roles_and_sum_to_zero_over_countries():
    """Every indicator gets offsets; one marked ``comparable = false`` keeps its plain normal ones."""
    data = detecting().to_dict()
    data["indicators"]["staff"]["comparable"] = False
    sim = simulate(Spec.from_dict(data), n_countries=3, n_regions=2, n_periods=3, seed=2)
    model = Model(sim.spec, sim.panel)
    roles = model.roles
    assert {n: roles[n].role for n in ("offset_tau", "offset_lambda", "offset_slab_sq")} == dict.fromkeys(
        ("offset_tau", "offset_lambda", "offset_slab_sq"), "scale")
    assert roles["offset_z"].role == "latent" and roles["country_offset"].role == "offset"
    assert roles.prior_fields(["offset_tau", "offset_slab_sq"]) == ["offset_global_scale", "offset_slab_scale"]
    assert list(model.pymc.coords["indicator_shrunk"]) == [n for n in sim.spec.indicators if n != "staff"]
    assert list(model.pymc.coords["indicator_country_specific"]) == ["staff"]
    draws = pm.draw(model.pymc["country_offset"], draws=200, random_seed=3,
                    mode=forward_mode())                                 # (draw, indicator, country)
    np.testing.assert_allclose(draws.sum(axis=-1), 0.0, atol=1e-9)
    assert (np.abs(draws).max(axis=(0, 2)) > 1e-3).all()       # no indicator's offsets are fixed at zero
    point = model.pymc.initial_point()
    assert np.isfinite(model.pymc.compile_logp(mode=forward_mode())(point))
    assert all(np.isfinite(g).all() for g in model.pymc.compile_dlogp(mode=forward_mode())(point))


# ---- the table ---------------------------------------------------------------------------------
def synthetic_offsets(seed: int = 0) -> xr.DataArray:
    """Draws (chain, draw, indicator, country): ``x`` offset by +-1 between two countries, ``y`` near zero."""
    rng = np.random.default_rng(seed)
    centre = np.array([[1.0, -1.0], [0.0, 0.0]])
    return xr.DataArray(centre + rng.normal(0.0, 0.3, (2, 500, 2, 2)), dims=("chain", "draw", "indicator", "country"),
                        coords={"indicator": ["x", "y"], "country": ["A", "B"]})


def test_offset_table_matches_the_draws():
    offset = synthetic_offsets()
    table = offset_table(offset, delta=0.5, ci_prob=0.8)
    assert list(table.columns) == ["indicator", "country", "mean", "q10", "q90", "p_exceeds"]
    assert list(zip(table["indicator"], table["country"], strict=True)) == [("x", "A"), ("x", "B"), ("y", "A"),
                                                                            ("y", "B")]
    flat = offset.stack(sample=("chain", "draw")).transpose("indicator", "country", "sample").values.reshape(4, -1)
    np.testing.assert_allclose(table["mean"], flat.mean(axis=1))
    np.testing.assert_allclose(table["q10"], np.quantile(flat, 0.1, axis=1))
    np.testing.assert_allclose(table["p_exceeds"], (np.abs(flat) > 0.5).mean(axis=1))
    assert flagged(table) == ["x"]


@pytest.mark.parametrize(("n_countries", "expected"), [
    (2, {"staff": True, "seizures": True}),        # one contrast: any offset is a change of any loading
    (3, {"staff": False, "seizures": True}),       # two contrasts: only the indicator on two traits is aliased
    (4, {"staff": False, "seizures": False}),
])
def test_the_table_says_which_offsets_a_loading_could_absorb(n_countries, expected):
    """``aliased``: offsets of an indicator with no more country contrasts than loadings (issue 23, part 4)."""
    spec = detecting()
    countries = [f"C{c + 1}" for c in range(n_countries)]
    draws = np.random.default_rng(0).normal(0.0, 0.3, (1, 50, 2, n_countries))
    offset = xr.DataArray(draws, dims=("chain", "draw", "indicator", "country"),
                          coords={"indicator": ["staff", "seizures"], "country": countries})
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"country_offset": offset})})
    table = noncomparability_table(tree, spec)
    assert table.groupby("indicator")["aliased"].agg(["min", "max"]).eq(
        pd.Series(expected), axis=0).all().all(), table
    assert list(table.columns[-2:]) == ["shrunk", "aliased"]


def test_a_fit_without_offsets_has_no_table():
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"theta": ("draw", np.zeros(3))})})
    with pytest.raises(SpecError, match="detect = true"):
        noncomparability_table(tree, default_spec())


def test_the_report_section_shows_the_table_and_a_figure():
    table = offset_table(synthetic_offsets(), delta=0.5).assign(shrunk=True)
    tables: dict[str, pd.DataFrame] = {}
    figures = report_section.section({report_section.STEM: table}, tables, 0.5)
    assert tables[report_section.STEM] is table
    caption, fig = figures[report_section.STEM]
    assert "delta = 0.5" in caption and report_section.png(fig)[:4] == b"\x89PNG"
    assert report_section.section({}, {}, 0.5) == {}


# ---- no harm and bias: detection on against off, on one shape ------------------------------------------------
#: Shape and seed of the no-harm and bias fits: the slow recovery test's panel (seed 11), with and without
#: the planted offsets; the four fits share two compiled models (detection on, off), the data swapped in.
SHAPE = {"n_countries": 3, "n_regions": 8, "n_periods": 6, "seed": 11}


def theta_summary(result) -> xr.Dataset:
    """Posterior mean, SD and 90% interval of theta (region, period, trait)."""
    theta = result.tree["posterior"]["theta"]
    return xr.Dataset({"mean": theta.mean(("chain", "draw")), "sd": theta.std(("chain", "draw")),
                       "q05": theta.quantile(0.05, ("chain", "draw")).drop_vars("quantile"),
                       "q95": theta.quantile(0.95, ("chain", "draw")).drop_vars("quantile")})


@pytest.fixture(scope="module")
def on_off_fits():
    """Detection on and off, each fitted to the panel without offsets and to the one with :data:`PLANTED`."""
    from nexusbayes.fit import fit

    out = {}
    for data_name, offsets in (("clean", None), ("planted", PLANTED)):
        sim = simulate(detecting(), offsets=offsets, **SHAPE)
        for mode, spec in (("on", detecting()), ("off", default_spec())):
            result = fit(spec, sim.panel, draws=300, tune=300, chains=2, seed=1, progress=False, check=False)
            out[data_name, mode] = result
        out[data_name, "truth"] = sim.truth["theta"]
    return out


def country_bias(summary: xr.Dataset, truth: xr.DataArray) -> xr.DataArray:
    """Mean error of theta per country and trait (the error that offsets not modelled put into the countries)."""
    countries = [r.split("-")[0] for r in truth["region"].values]
    error = (summary["mean"] - truth).assign_coords(country=("region", countries))
    return error.groupby("country").mean(("region", "period"))


def coverage90(summary: xr.Dataset, truth: xr.DataArray) -> float:
    return float(((summary["q05"] <= truth) & (truth <= summary["q95"])).mean())


@pytest.mark.slow
def test_detection_does_no_harm_where_every_indicator_is_comparable(on_off_fits):
    """On data without offsets, theta with detection on matches theta with it off.

    Measured (seed 11, 2 x 300 draws): mean |difference| of the posterior means 0.058 posterior SDs (largest
    0.255), r(on, off) 0.9998, 90% coverage 0.868 on and 0.854 off.
    """
    on, off = theta_summary(on_off_fits["clean", "on"]), theta_summary(on_off_fits["clean", "off"])
    gap = abs(on["mean"] - off["mean"]) / off["sd"]
    r = float(np.corrcoef(on["mean"].values.ravel(), off["mean"].values.ravel())[0, 1])
    report = (f"no harm: mean |diff| {float(gap.mean()):.3f} posterior SDs (max {float(gap.max()):.3f}), "
              f"r(on, off) {r:.4f}, 90% coverage on {coverage90(on, on_off_fits['clean', 'truth']):.3f} "
              f"off {coverage90(off, on_off_fits['clean', 'truth']):.3f}")
    print(report)
    assert float(gap.mean()) <= 0.15 and float(gap.max()) <= 0.5, report
    assert r >= 0.995, report


@pytest.mark.slow
def test_detection_removes_the_bias_of_planted_offsets(on_off_fits):
    """On data with :data:`PLANTED` offsets, detection off puts them into the countries' traits; on, it does not.

    Detection on must recover theta with r >= 0.9 per trait and 90% coverage in [0.80, 0.97]; its largest
    country bias must be below that of detection off (the bias is printed). Measured (seed 11, 2 x 300 draws):
    detection off puts the planted offsets into the countries' traits (largest country bias 0.251, C1
    willingness; -0.203 C2 willingness; 90% coverage 0.774); on: largest country bias 0.208, r 0.962 and 0.963,
    90% coverage 0.920. The four fits (two compiles) took 33 min on the shared machine at load 25-30.
    """
    truth = on_off_fits["planted", "truth"]
    on, off = theta_summary(on_off_fits["planted", "on"]), theta_summary(on_off_fits["planted", "off"])
    bias_on, bias_off = country_bias(on, truth), country_bias(off, truth)
    r = {k: float(np.corrcoef(on["mean"].sel(trait=k).values.ravel(), truth.sel(trait=k).values.ravel())[0, 1])
         for k in truth["trait"].values}
    cover_on, cover_off = coverage90(on, truth), coverage90(off, truth)
    report = (f"bias: max |country bias| off {float(abs(bias_off).max()):.3f}, on {float(abs(bias_on).max()):.3f}; "
              f"off by country x trait {bias_off.round(3).values.tolist()}; r(theta) on "
              f"{ {k: round(v, 3) for k, v in r.items()} }; 90% coverage on {cover_on:.3f}, off {cover_off:.3f}")
    print(report)
    assert min(r.values()) >= 0.9, report
    assert 0.80 <= cover_on <= 0.97, report
    assert float(abs(bias_on).max()) < float(abs(bias_off).max()), report


# ---- recovery ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_planted_noncomparable_indicators_are_found_and_traits_recovered(on_off_fits):
    """Three countries x 8 regions x 6 years, the default mixed-family spec with detection on.

    Offsets planted on seizures (a count) and expert_willingness (ratings) (:data:`PLANTED`); the other four
    indicators are comparable. Each planted indicator must have P(|offset| > delta) > 0.6 in some country, every
    comparable indicator below 0.25 in every country, and theta must correlate with the truth at 0.9 or more per
    trait. Detection rests on the shrinkage alone (see :class:`~nexusbayes.spec.sections.Comparability`) and is not
    sure on a panel this small: over seeds 11-16 the criteria held at 4 of 6, re-measured (seed 14: seizures at
    0.12, its planted offsets lined up with the countries' capability, so the fit took a steeper loading, 2.17
    for 1.35, a change that keeps both loadings positive; seed 15: staff at 0.47, part of seizures' offsets moved
    into the countries' capability), and at 2 of 6 with 4 regions per country; detection rate (P > 0.5) 11 / 12
    and 7 / 12, false alarms 0 / 24 and 1 / 24 (benchmarks/results/comparability_detection.md). The fit is the
    shared one of :func:`on_off_fits` (detection on, planted offsets).
    """
    sim = simulate(detecting(), offsets=PLANTED, **SHAPE)
    result = on_off_fits["planted", "on"]
    table = result.noncomparability()
    worst = table.groupby("indicator", sort=False)["p_exceeds"].max()
    theta = result.tree["posterior"]["theta"].mean(("chain", "draw"))
    r = {k: float(np.corrcoef(theta.sel(trait=k).values.ravel(),
                              sim.truth["theta"].sel(trait=k).values.ravel())[0, 1]) for k in sim.spec.traits}
    report = (f"max P(|offset| > 0.5) by indicator: {worst.round(2).to_dict()}; r(theta) "
              f"{ {k: round(v, 3) for k, v in r.items()} }")
    print(report)
    for name in sim.spec.indicators:
        if name in PLANTED:
            assert worst[name] > 0.6, report
        else:
            assert worst[name] < 0.25, report
    assert min(r.values()) >= 0.9, report


# ---- the offsets themselves: coverage where they are identified ------------------------------------------------
#: Six countries x 6 regions x 6 years: five country contrasts per indicator, more than the traits any indicator
#: loads on, so no offset pattern is a change of loadings (the three-country aliasing of the tests above).
SIX = {"n_countries": 6, "n_regions": 6, "n_periods": 6, "seed": 11}


@pytest.fixture(scope="module")
def six_country_fit():
    """Detection on, fitted to six countries with offsets planted on seizures and expert_willingness."""
    from benchmarks.offset_coverage import PLANTED as BY_COUNTRIES
    from nexusbayes.fit import fit

    sim = simulate(detecting(), offsets=BY_COUNTRIES[6], **SIX)
    return sim, fit(detecting(), sim.panel, draws=300, tune=300, chains=2, seed=1, progress=False, check=False)


@pytest.mark.slow
def test_planted_offsets_are_recovered_with_nominal_coverage(six_country_fit):
    """The country offsets (indicator x country) in their 90% intervals at a rate inside [0.80, 0.97] (issue 23).

    Counted over all 36 offsets, and over the 12 planted ones alone (the 24 zero ones are shrunk to 0 and
    their intervals almost always hold it): the horseshoe must not shrink the planted offsets out of their
    intervals, and their mean error towards their sign (negative = shrunk) must stay within half their mean
    posterior SD. Measured (seed 11, 2 x 300 draws): 34 / 36 (0.944), planted 11 / 12, zero 23 / 24, error of
    the planted -0.088; pooled over seeds in benchmarks/results/comparability_detection.md.
    """
    from benchmarks.offset_coverage import offset_coverage

    sim, result = six_country_fit
    offset = result.tree["posterior"]["country_offset"]
    cells = offset_coverage(offset, sim.truth["country_offset"])
    hit, planted = cells["covered"], cells["planted"]
    sd = offset.std(("chain", "draw")).values.ravel()
    error, spread = float(cells["error"][planted].mean()), float(sd[planted].mean())
    report = (f"offset coverage {hit.mean():.3f} ({hit.sum()}/{hit.size}); planted {hit[planted].sum()}/"
              f"{planted.sum()}, zero {hit[~planted].sum()}/{(~planted).sum()}; error of the planted {error:+.3f} "
              f"(posterior SD {spread:.3f})")
    print(report)
    assert planted.sum() == 12 and hit.size == 36, report
    assert 0.80 <= hit.mean() <= 0.97, report
    assert 0.80 <= hit[planted].mean() <= 0.97, report
    assert abs(error) <= spread / 2, report
