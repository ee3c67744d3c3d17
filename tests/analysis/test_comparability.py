"""Detecting indicators that are not comparable across countries (issue 23, part 4)."""


import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy.stats import binom, chi2

from benchmarks.offset_coverage import PLANTED as BY_COUNTRIES
from benchmarks.offset_coverage import country_bias, offset_coverage
from nexusbayes.analysis.comparability import flagged, noncomparability_table, offset_table
from nexusbayes.analysis.recovery import correlation, correlation_by_trait, interval_covers
from nexusbayes.errors import SpecError
from nexusbayes.model.build import Model
from nexusbayes.model.predict import forward_mode
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.report import noncomparability as report_section
from nexusbayes.spec.document import Spec
from nexusbayes.spec.sections import Comparability

#: Planted offsets (one per country, centred by the simulation) of the two indicators that are not comparable.
PLANTED = BY_COUNTRIES[6]


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


# ---- sampling checks: six countries, where detection is identified ----------------------------------------------
#: Six countries x 6 regions x 6 years: five country contrasts per indicator, more than the traits any indicator
#: loads on, so no offset pattern is a change of loadings (with three countries it can be, and detection is not
#: identified: benchmarks/results/comparability_detection.md). Every fit of the module is of this shape.
SIX = {"n_countries": 6, "n_regions": 6, "n_periods": 6}

#: Seeds of the planted panels fitted with detection on; the first also with detection off, and on and off to
#: the same panel without offsets.
SEEDS = (11, 12, 13, 14, 15, 16)


def _fit(spec: Spec, panel):
    from nexusbayes.fit import fit

    return fit(spec, panel, draws=300, tune=300, chains=2, seed=1, progress=False, check=False)


@pytest.fixture(scope="module")
def six_country_fits() -> dict:
    """Nine fits of two compiled models (detection on, off; the data swapped in), nutpie 2 chains x (300 + 300).

    ``planted``: [(simulation, fit)] with detection on, one per seed of :data:`SEEDS`, offsets :data:`PLANTED`;
    ``off``: detection off on the first of them; ``clean``: (simulation, fit on, fit off) without offsets.
    """
    planted = [(sim, _fit(detecting(), sim.panel))
               for sim in (simulate(detecting(), offsets=PLANTED, seed=seed, **SIX) for seed in SEEDS)]
    clean = simulate(detecting(), seed=SEEDS[0], **SIX)
    return {"planted": planted, "off": _fit(default_spec(), planted[0][0].panel),
            "clean": (clean, _fit(detecting(), clean.panel), _fit(default_spec(), clean.panel))}


def theta_summary(result) -> xr.Dataset:
    """Posterior mean and SD of theta (region, period, trait)."""
    theta = result.tree["posterior"]["theta"]
    return xr.Dataset({"mean": theta.mean(("chain", "draw")), "sd": theta.std(("chain", "draw"))})


def coverage90(result, truth: xr.DataArray) -> float:
    """The share of the true theta inside its 90% interval."""
    return float(interval_covers(result.tree["posterior"]["theta"], truth, 0.9).mean())


@pytest.mark.slow
def test_detection_does_no_harm_where_every_indicator_is_comparable(six_country_fits):
    """On data without offsets, theta with detection on matches theta with it off.

    Measured at seeds 11-16 (2 x 300 draws; the test fits seed 11): mean |difference| of the posterior means
    0.04-0.06 posterior SDs (largest 0.16-0.27), r(on, off) >= 0.9998; the clean fits' largest P(|offset| > 0.5)
    0.04 (benchmarks/results/comparability_detection.md).
    """
    sim, on_fit, off_fit = six_country_fits["clean"]
    on, off = theta_summary(on_fit), theta_summary(off_fit)
    gap = abs(on["mean"] - off["mean"]) / off["sd"]
    r = correlation(on["mean"], off["mean"])
    truth = sim.truth["theta"]
    report = (f"no harm: mean |diff| {float(gap.mean()):.3f} posterior SDs (max {float(gap.max()):.3f}), "
              f"r(on, off) {r:.4f}, 90% coverage on {coverage90(on_fit, truth):.3f} "
              f"off {coverage90(off_fit, truth):.3f}")
    print(report)
    assert float(gap.mean()) <= 0.15 and float(gap.max()) <= 0.5, report
    assert r >= 0.995, report


@pytest.mark.slow
def test_detection_removes_the_bias_of_planted_offsets(six_country_fits):
    """On data with :data:`PLANTED` offsets, detection off puts them into the countries' traits; on, it does not.

    The yardstick is each country's mean trait (over its regions and years; 6 countries x 2 traits) in posterior
    SDs, not in the traits' units: detection widens the countries' intervals as it should, and the raw largest
    country bias is no test (with detection 0.14-0.33, without 0.18-0.38 at seeds 11-16; seed 14 has it larger with
    detection). Measured at seeds 11-16 (2 x 300 draws; the test fits seed 11): RMS z on 0.43-0.75, the countries'
    means in their 90% intervals 71 / 72; off 1.46-3.23 and 39 / 72; the ratio off / on 3.0-4.5 (log ratio 1.22,
    SD 0.14 over the seeds: the bound 1.5 is 5.8 SDs below); theta's 90% coverage on 0.88-0.94, off 0.77-0.89,
    r on >= 0.947.
    """
    sim, on_fit = six_country_fits["planted"][0]
    truth = sim.truth["theta"]
    off_fit = six_country_fits["off"]
    bias_on = country_bias(on_fit.tree["posterior"]["theta"], truth)
    bias_off = country_bias(off_fit.tree["posterior"]["theta"], truth)
    z_on, z_off = (float(np.sqrt((b["z"] ** 2).mean())) for b in (bias_on, bias_off))
    r = correlation_by_trait(theta_summary(on_fit)["mean"], truth)
    report = (f"bias: RMS country bias in posterior SDs on {z_on:.3f}, off {z_off:.3f}; countries' mean traits "
              f"in their 90% intervals on {bias_on['covered'].sum()}/12, off {bias_off['covered'].sum()}/12; "
              f"largest |country bias| on {np.abs(bias_on['error']).max():.3f}, off "
              f"{np.abs(bias_off['error']).max():.3f}; r(theta) on { {k: round(v, 3) for k, v in r.items()} }; "
              f"90% coverage on {coverage90(on_fit, truth):.3f}, off {coverage90(off_fit, truth):.3f}")
    print(report)
    assert min(r.values()) >= 0.9, report
    assert 0.80 <= coverage90(on_fit, truth) <= 0.97, report
    # calibrated country means give a z RMS over 12 cells above sqrt(chi2_12(0.99) / 12) = 1.48 1% of the time
    assert z_on <= np.sqrt(chi2.ppf(0.99, 12) / 12), report
    assert z_off > 1.5 * z_on, report


@pytest.mark.slow
def test_planted_noncomparable_indicators_are_found_and_traits_recovered(six_country_fits):
    """Each planted indicator is found and no comparable one is, on average over :data:`SEEDS`; theta recovered.

    Detection rests on the shrinkage alone (see :class:`~nexusbayes.spec.sections.Comparability`); with six
    countries no offset pattern is a loading change and it is identified. Measured (seeds 11-16, 2 x 300 draws),
    largest P(|offset| > 0.5) over countries: seizures 0.93-1.00 (mean 0.980), expert_willingness 0.90-0.97
    (0.948); staff 0.01-0.23 (0.068), quota 0.00-0.06, abuse 0.00-0.16, expert_capability 0.02-0.09. The means
    over the seeds are asserted (each at least 5.5 between-seed SDs of a six-seed mean from its bound); a single
    seed's comparable indicator below 0.25 is not (staff reached 0.23 at seed 14), nor with three countries
    (held at 4 of 6 seeds: benchmarks/results/comparability_detection.md). The planted ones are flagged (above
    0.5, the report's reading) at every seed (lowest 0.90; 0.5 is 15 SDs below their means).
    """
    worst = pd.DataFrame([result.noncomparability().groupby("indicator", sort=False)["p_exceeds"].max()
                          for _, result in six_country_fits["planted"]], index=list(SEEDS))
    r = pd.DataFrame([correlation_by_trait(theta_summary(result)["mean"], sim.truth["theta"])
                      for sim, result in six_country_fits["planted"]], index=list(SEEDS))
    report = (f"max P(|offset| > 0.5) by seed and indicator:\n{worst.round(2)}\nmean {worst.mean().round(3).to_dict()}"
              f"; r(theta) by seed:\n{r.round(3)}")
    print(report)
    comparable = [name for name in worst.columns if name not in PLANTED]
    assert (worst[list(PLANTED)].mean() > 0.6).all(), report
    assert (worst[list(PLANTED)] > 0.5).all().all(), report
    assert (worst[comparable].mean() < 0.25).all(), report
    assert r.min().min() >= 0.9, report


@pytest.mark.slow
def test_planted_offsets_are_recovered_with_nominal_coverage(six_country_fits):
    """The country offsets (indicator x country) in their 90% intervals at the nominal rate (issue 23).

    Counted over the 12 planted (non-zero) offsets of each seed of :data:`SEEDS` (72 in all): a coverage count
    of 12 or 36 cells has no sound band (Bin(36, 0.9) is above 0.97 11% of the time), 72 has: the acceptance
    region from Bin(72, 0.9) is [58, 70] (false failure 0.9%). The zero offsets (24 a seed) are shrunk to 0 and
    their intervals almost always hold it, so only a lower bound is theirs. The planted offsets' mean error
    towards their sign (negative = shrunk) must stay within half their mean posterior SD. Measured (seeds 11-16,
    2 x 300 draws): planted 67 / 72 (12, 9, 12, 11, 12, 11), zero 143 / 144, mean error -0.100 against a mean
    SD of 0.290 (per-seed error SD 0.041: the bound is 2.7 SEs of the six-seed mean away).
    """
    fits = six_country_fits["planted"]
    cells = [offset_coverage(result.tree["posterior"]["country_offset"], sim.truth["country_offset"])
             for sim, result in fits]
    hit, planted = np.concatenate([c["covered"] for c in cells]), np.concatenate([c["planted"] for c in cells])
    error = np.concatenate([c["error"] for c in cells])[planted]
    sd = np.concatenate([result.tree["posterior"]["country_offset"].std(("chain", "draw")).values.ravel()
                         for _, result in fits])[planted]
    n, k = int(planted.sum()), int(hit[planted].sum())
    report = (f"planted offsets in their 90% intervals {k}/{n} ({k / n:.3f}; per seed "
              f"{[int(c['covered'][c['planted']].sum()) for c in cells]} of 12), zero ones "
              f"{hit[~planted].sum()}/{(~planted).sum()}; mean error of the planted {error.mean():+.3f} "
              f"(mean posterior SD {sd.mean():.3f})")
    print(report)
    assert n == 12 * len(SEEDS) and hit.size == 36 * len(SEEDS), report
    # the acceptance region of the count at the nominal 0.9: false failure < 1% (0.9% for 72 cells, [58, 70],
    # the band [0.80, 0.97] to a cell); the zero offsets are over-covered by the shrinkage (a truth at the
    # prior's centre), so only too few of them inside is wrong
    low, high = binom.ppf(0.005, n, 0.9), binom.isf(0.005, n, 0.9)
    assert low <= k <= high, f"{report}; acceptance region [{low:.0f}, {high:.0f}]"
    assert hit[~planted].sum() >= binom.ppf(0.005, (~planted).sum(), 0.9), report
    assert abs(error.mean()) <= sd.mean() / 2, report
