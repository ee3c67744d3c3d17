"""Forecasts of the next periods: hand-made posteriors (exact checks) and a held-out period (calibration)."""

import time

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
import xarray as xr

from nexusbayes.analysis.forecast import (
    Dynamics,
    ForecastError,
    forecast,
    forecast_table,
    forecast_types_table,
    future_times,
)
from nexusbayes.analysis.forecast_check import LEVELS, coverage_tolerance
from nexusbayes.cli import main
from nexusbayes.constants import TYPES
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.simulate import simulate
from nexusbayes.workflows.forecast_check import forecast_check
from tests.modes import PY_RUN

CORR = 0.4


def hand_made(kind: str = "gaussian_rw", n_draw: int = 4000, identical: bool = True, seed: int = 0):
    """A posterior built as model/latent.py and model/build.py build theta, with known scales.

    Two countries of three regions, four yearly periods, two traits. With ``identical`` every draw is
    the same draw, so the forecast's spread is the future innovations' alone. Returns (tree, spec, panel,
    truth) with truth the scales and the standardisation's mean and sd per draw.
    """
    rng = np.random.default_rng(seed)
    sim = simulate(n_countries=2, n_regions=3, n_periods=4, seed=1)
    spec, panel = sim.spec, sim.panel
    if kind != "gaussian_rw":
        spec = spec.model_copy(update={"dynamics": spec.dynamics.model_copy(update={"kind": kind})})
    rc = np.asarray(panel.region_country)
    q = ZeroSum.of(rc).matrix()
    n_c, n_r, n_t, n_k = len(panel.countries), len(rc), len(panel.periods), 2
    n = 1 if identical else n_draw
    corr = rng.uniform(-0.6, 0.6, n) if not identical else np.full(n, CORR)
    chols = np.stack([np.linalg.cholesky(np.array([[1.0, c], [c, 1.0]])) for c in corr])
    cs, rs = rng.uniform(0.2, 1.0, (n, n_k)), rng.uniform(0.2, 1.0, (n, n_k))
    phi = rng.uniform(0.3, 0.9, (n, n_k))
    cz, rz = rng.standard_normal((n, n_c, n_t - 1, n_k)), rng.standard_normal((n, q.shape[1], n_t - 1, n_k))
    lcz, lrz = np.einsum("sctj,skj->sctk", cz, chols), np.einsum("sctj,skj->sctk", rz, chols)
    country = np.zeros((n, n_c, n_t, n_k))
    region = np.zeros((n, n_r, n_t, n_k))
    country[:, :, 0] = rng.normal(0, 0.7, (n, n_c, n_k)) + (3.0 if kind == "ar1" else 0.0)
    region[:, :, 0] = np.einsum("uc,sck->suk", q, rng.standard_normal((n, q.shape[1], n_k)))
    for t in range(1, n_t):
        if kind == "ar1":       # yearly periods: a = phi; the region SD is the reference 1
            a, f_c, f_r = phi[:, None], cs[:, None] * np.sqrt(1 - phi[:, None] ** 2), np.sqrt(1 - phi[:, None] ** 2)
        else:
            a, f_c, f_r = 1.0, cs[:, None], rs[:, None]
        country[:, :, t] = a * country[:, :, t - 1] + f_c * lcz[:, :, t - 1]
        region[:, :, t] = a * region[:, :, t - 1] + f_r * np.einsum("uc,sck->suk", q, lrz[:, :, t - 1])
    raw = country[:, rc] + region
    mean, sd = raw.mean(axis=(1, 2)), raw.std(axis=(1, 2))
    theta = (raw - mean[:, None, None]) / sd[:, None, None]
    country_theta = (country - mean[:, None, None]) / sd[:, None, None]

    def tile(x):
        return np.broadcast_to(x, (n_draw, *x.shape[1:]))[None]

    dims = ("chain", "draw")
    post = {"theta": (dims + ("region", "period", "trait"), tile(theta)),
            "country_theta": (dims + ("country", "period", "trait"), tile(country_theta)),
            "trait_corr": (dims + ("trait", "trait_"), tile(chols @ chols.transpose(0, 2, 1))),
            "country_z": (dims + ("country", "step", "trait"), tile(cz)),
            "region_z": (dims + ("region_contrast", "step", "trait"), tile(rz))}
    if kind == "ar1":
        post |= {"ar_phi": (dims + ("trait",), tile(phi)), "country_initial_sd": (dims + ("trait",), tile(cs))}
    else:
        post |= {"country_innovation_sd": (dims + ("trait",), tile(cs)),
                 "region_innovation_sd": (dims + ("trait",), tile(rs))}
    coords = {"chain": [0], "draw": np.arange(n_draw), "region": panel.regions, "period": panel.periods,
              "trait": spec.traits, "trait_": spec.traits, "country": panel.countries, "step": panel.periods[1:],
              "region_contrast": np.arange(q.shape[1])}
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(post, coords=coords)})
    truth = {"mean": tile(mean)[0], "sd": tile(sd)[0], "cs": tile(cs)[0], "rs": tile(rs)[0], "phi": tile(phi)[0],
             "q": q}
    return tree, spec, panel, truth


def test_zero_sum_matrix_is_the_models_map():
    groups = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    zs = ZeroSum.of(groups)
    np.testing.assert_allclose(zs.matrix(), zs(pt.as_tensor(np.eye(zs.n_contrast))).eval(mode=PY_RUN), atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian_rw", "student_t_rw", "ar1"])
def test_standardisation_is_recovered_draw_by_draw(kind):
    tree, spec, panel, truth = hand_made(kind, n_draw=50, identical=False)
    dyn = Dynamics(tree, spec, panel)
    np.testing.assert_allclose(dyn.inv_sd, 1 / truth["sd"], rtol=1e-9)
    if kind == "ar1":
        np.testing.assert_allclose(dyn.mean_over_sd, truth["mean"] / truth["sd"], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(dyn.phi, truth["phi"])


def test_spec_other_than_the_fits_is_refused():
    tree, spec, panel, _ = hand_made("gaussian_rw", n_draw=20, identical=False)
    ar1 = spec.model_copy(update={"dynamics": spec.dynamics.model_copy(update={"kind": "ar1"})})
    tree["posterior"]["ar_phi"] = xr.full_like(tree["posterior"]["region_innovation_sd"], 0.5)
    tree["posterior"]["country_initial_sd"] = tree["posterior"]["region_innovation_sd"]
    with pytest.raises(ForecastError, match="do not follow"):   # random-walk draws read as AR(1)
        Dynamics(tree, ar1, panel)


def test_random_walk_variance_grows_with_the_horizon_and_the_gaps():
    """Every draw the same: Var(theta[h] - theta[T]) = (sum of gaps) * step variance / sd**2."""
    tree, spec, panel, truth = hand_made("gaussian_rw", n_draw=6000)
    fc = forecast(tree, spec, panel, times=[2004, 2006, 2009], seed=3)     # gaps 1, 2 and 3 years
    theta = fc["forecast"]["theta"]
    assert theta.dims == ("chain", "draw", "region", "horizon", "trait")
    assert list(fc["forecast"]["period"].values) == [2004, 2006, 2009]
    cum_gap = np.array([1.0, 3.0, 6.0])
    q = truth["q"]
    step_var = truth["cs"][0] ** 2 + truth["rs"][0] ** 2 * np.diag(q @ q.T)[:, None]   # (region, trait), raw
    expected = cum_gap[None, :, None] * step_var[:, None, :] / truth["sd"][0] ** 2          # (region, horizon, trait)
    var = theta.var(("chain", "draw")).transpose("region", "horizon", "trait").values
    # the sample variance of n normal draws has relative SE sqrt(2 / n): 4 SE
    np.testing.assert_allclose(var / expected, 1.0, atol=4 * np.sqrt(2 / 6000))
    last = tree["posterior"]["theta"].isel(chain=0, draw=0, period=-1)
    np.testing.assert_allclose(theta.mean(("chain", "draw")).isel(horizon=0), last, atol=4 * np.sqrt(expected.max()
                                                                                             / 6000))
    steps = (theta.isel(horizon=0) - last).values.reshape(-1, len(panel.regions), 2)
    r = np.mean([np.corrcoef(steps[:, u, 0], steps[:, u, 1])[0, 1] for u in range(len(panel.regions))])
    assert abs(r - CORR) < 4 / np.sqrt(6000 * len(panel.regions))      # the trait correlation of the steps
    # countries are the averages of their regions, as in the model
    country = fc["forecast"]["country_theta"]
    by_country = theta.groupby(theta["region_country"]).mean("region").rename(region_country="country")
    np.testing.assert_allclose(by_country.transpose(*country.dims), country, atol=1e-12)


def test_student_t_steps_have_the_t_quantiles():
    """A country's step one year ahead is cs / sd * t(df) on the theta scale (first trait: L's first row is (1, 0))."""
    from scipy import stats

    tree, spec, panel, truth = hand_made("student_t_rw", n_draw=6000)
    fc = forecast(tree, spec, panel, periods=1, seed=5)
    last = tree["posterior"]["country_theta"].isel(chain=0, draw=0, period=-1)
    step = (fc["forecast"]["country_theta"].isel(horizon=0) - last) * truth["sd"][0] / truth["cs"][0]
    quartiles = np.quantile(step.sel(trait="capability").values.ravel(), [0.25, 0.75])
    np.testing.assert_allclose(quartiles, stats.t(spec.dynamics.df).ppf([0.25, 0.75]), atol=0.06)


def test_centred_walks_continue_from_each_span_end():
    """Prior draws of a centred one-trait model (a consistent 'posterior' without sampling): the forecast step,
    divided by its scale innovation_sd * sqrt(years since the span's end) / sd, is standard normal."""
    from nexusbayes.data.read import load_panel
    from nexusbayes.model.build import Model
    from nexusbayes.model.predict import prior_draws
    from nexusbayes.spec.document import Spec

    spec = Spec.from_dict({"name": "votes", "traits": ["ideology"], "dynamics": {"centred": True}, "indicators": {
        f"case{k}": {"family": "bernoulli", "loads": {"ideology": "positive"}} for k in range(2)}})
    sim = simulate(spec, n_regions=4, n_periods=5, seed=3)
    frame = sim.frame[~((sim.frame["region"] == sim.panel.regions[0]) & (sim.frame["period"] >= 2003))]
    panel = load_panel(frame.reset_index(drop=True), spec)            # the first region's span ends in 2002
    tree = prior_draws(Model(spec, panel).pymc, 1000, seed=4,
                       var_names=["region_state", "region_innovation_sd", "theta", "country_theta"])
    tree = xr.DataTree.from_dict({"posterior": tree["prior"].to_dataset()})
    fc = forecast(tree, spec, panel, periods=2)
    post = tree["posterior"]
    theta = post["theta"].isel(trait=0)
    future = fc["forecast"]["theta"].isel(trait=0)
    last = theta.sel(period=2004).copy()
    last.loc[{"region": panel.regions[0]}] = theta.sel(period=2002, region=panel.regions[0])
    since = np.array([2.0 if r == panel.regions[0] else 0.0 for r in panel.regions]) + 1.0
    state_sd = _state_sd(post, panel)
    scale = post["region_innovation_sd"].isel(trait=0) / state_sd
    z1 = (future.sel(horizon=1, drop=True) - last) / (scale * xr.DataArray(np.sqrt(since), dims="region"))
    z2 = (future.sel(horizon=2, drop=True) - future.sel(horizon=1, drop=True)) / scale
    for z in (z1, z2):
        values = z.values.ravel()
        assert abs(values.mean()) < 4 / np.sqrt(len(values)) and abs(values.std() - 1) < 0.05
    np.testing.assert_allclose(fc["forecast"]["country_theta"].isel(country=0),
                               future.mean("region").expand_dims(trait=1, axis=-1), atol=1e-12)


def _state_sd(post, panel):
    """The standardisation's SD per draw: the states' SD over the cells with data."""
    from nexusbayes.analysis.forecast_centred import _spans
    from nexusbayes.model.design import observed_cells

    first, last, starts = _spans(panel)
    grid = np.clip(np.arange(len(panel.periods))[None, :], first[:, None], last[:, None])
    state = post["region_state"].isel(trait=0).values
    grid_state = state[..., starts[:, None] + grid - first[:, None]]
    flat = grid_state.reshape(*state.shape[:2], -1)[..., observed_cells(panel)]
    return xr.DataArray(flat.std(axis=-1), dims=("chain", "draw"))


def test_ar1_forecast_returns_to_the_stationary_distribution():
    """Far ahead an AR(1) forgets the last period: mean -mean/sd, variance (country + region SD**2) / sd**2."""
    tree, spec, panel, truth = hand_made("ar1", n_draw=6000)
    fc = forecast(tree, spec, panel, times=[2003 + 60], seed=4)
    theta = fc["forecast"]["theta"].isel(horizon=0)
    q = truth["q"]
    stationary = (truth["cs"][0] ** 2 + np.diag(q @ q.T)[:, None]) / truth["sd"][0] ** 2
    var = theta.var(("chain", "draw")).transpose("region", "trait").values
    np.testing.assert_allclose(var / stationary, 1.0, atol=4 * np.sqrt(2 / 6000))
    centre = -truth["mean"][0] / truth["sd"][0]
    np.testing.assert_allclose(theta.mean(("chain", "draw")).values - centre, 0.0, atol=4 * np.sqrt(var.max() / 6000))


def test_tables_and_types_of_a_forecast():
    tree, spec, panel, _ = hand_made("gaussian_rw", n_draw=400)
    fc = forecast(tree, spec, panel, periods=2)
    table = forecast_table(fc)
    assert list(table.columns) == ["country", "region", "horizon", "period", "trait", "mean", "sd", "q05", "q95"]
    assert len(table) == len(panel.regions) * 2 * 2 and set(table["period"]) == {2004, 2005}
    assert (table["q05"] < table["mean"]).all() and (table["mean"] < table["q95"]).all()
    types = forecast_types_table(fc)
    assert len(types) == len(panel.regions) * 2
    np.testing.assert_allclose(types[list(TYPES)].sum(axis=1), 1.0)
    moves = fc["types"]["transition_probability"]
    np.testing.assert_allclose(moves.sum(("from", "to")), 1.0)
    np.testing.assert_allclose(moves.sum("from").transpose("region", "horizon", "to").values,
                               fc["types"]["type_probability"].transpose("region", "horizon", "type").values)
    assert ((types["p_change"] >= 0) & (types["p_change"] <= 1)).all()
    # the same seed gives the same forecast; another seed another one
    again = forecast(tree, spec, panel, periods=2)
    np.testing.assert_array_equal(again["forecast"]["theta"], fc["forecast"]["theta"])
    assert not np.allclose(forecast(tree, spec, panel, periods=2, seed=1)["forecast"]["theta"],
                           fc["forecast"]["theta"])


def test_future_times_need_eras_times_and_agree_with_periods():
    with pytest.raises(ForecastError, match="named eras"):
        future_times(np.array([1995.0, 2005.0]), periods=1, eras=True)
    assert future_times(np.array([1995.0, 2005.0]), None, times=[2015], labels=["2010s"], eras=True)[1] == ["2010s"]
    with pytest.raises(ForecastError, match="after the last period"):
        future_times(np.array([2000.0, 2001.0]), times=[2001.0])
    with pytest.raises(ForecastError, match="one time per period"):
        future_times(np.array([2000.0, 2001.0]), periods=2, times=[2003.0])


# ---- calibration: a held-out period --------------------------------------------------------------
#: Simulations whose last period is held out. They share one structure, so the model compiles once (and is
#: then swapped new data: about 20 s per fit on a busy 2-core machine).
HELD_OUT_SEEDS = (7, 8, 9, 10)


@pytest.fixture(scope="module")
def held_out():
    """Simulated 2-country x 6-region panels fitted without their last (7th) year, and the forecast check of it.

    [(simulation, fit, check)], seconds.
    """
    start = time.perf_counter()
    fits = []
    for seed in HELD_OUT_SEEDS:
        sim = simulate(n_countries=2, n_regions=6, n_periods=7, seed=seed)
        result, check = forecast_check(sim.spec, sim.frame, 1, draws=300, tune=300, chains=2, seed=1)
        assert result.panel.periods == sim.panel.periods[:-1]
        fits.append((sim, result, check))
    return fits, time.perf_counter() - start


def test_held_out_period_lies_in_the_forecast_interval_at_the_nominal_rate(held_out):
    fits, seconds = held_out
    inside, wider = [], []
    for sim, result, _ in fits:
        fc = result.forecast(periods=1)
        assert list(fc["forecast"]["period"].values) == [max(sim.panel.periods)]
        # the truth is standardised over all seven years, the fit over the first six: the truth on the fit's scale
        fitted = sim.truth["theta"].isel(period=slice(None, -1))
        truth = ((sim.truth["theta"].isel(period=-1) - fitted.mean(("region", "period")))
                 / fitted.std(("region", "period")))
        table = forecast_table(fc).set_index(["region", "trait"])
        true = truth.to_series().reorder_levels(["region", "trait"]).reindex(table.index)
        inside.append(((table["q05"] <= true) & (true <= table["q95"])).to_numpy())
        # the forecast is wider than the last fitted period's posterior
        post = result.trait_summary().query(f"period == {max(result.panel.periods)}").set_index(["region", "trait"])
        wider.append(((table["q95"] - table["q05"]) / (post["q95"] - post["q05"]).reindex(table.index)).to_numpy())
    inside, wider = np.concatenate(inside), np.concatenate(wider)
    n, coverage = len(inside), float(inside.mean())
    print(f"held-out coverage of the 90% forecast interval: {coverage:.3f} of n = {n} "
          f"({len(fits)} fits in {seconds:.0f} s); width / last fitted width: min {wider.min():.2f}, "
          f"median {np.median(wider):.2f}")
    # 3 binomial SEs of a 90% rate over n values (generous: values of a country share its steps)
    assert abs(coverage - 0.9) <= 3 * np.sqrt(0.9 * 0.1 / n)
    assert (wider > 1).all()


def test_forecast_command_writes_tables_and_refuses_to_overwrite(held_out, tmp_path, capsys):
    (_, result, _), *_ = held_out[0]
    path = result.save(tmp_path / "fit.nc")
    out = tmp_path / "forecast"
    assert main(["forecast", str(path), "--periods", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "modal_type" in printed and "2 period(s) ahead" in printed
    assert (out / "forecast_traits.csv").exists() and (out / "forecast_types.csv").exists()
    assert main(["forecast", str(path), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["forecast", str(path), "--times", "2007.5", "--labels", "mid", "--out", str(out),
                 "--overwrite"]) == 0
    assert "mid" in (out / "forecast_traits.csv").read_text()


def test_forecast_beats_no_change_on_held_out_indicators_with_nominal_coverage(held_out):
    fits, _ = held_out
    checks = [check for _, _, check in fits]
    obs = pd.concat([c.observations for c in checks], ignore_index=True)
    n = len(obs)
    assert n == sum(len(sim.frame[sim.frame["period"] == max(sim.panel.periods)]) for sim, _, _ in fits)
    assert all(c.dropped == {} and c.periods == [2006] for c in checks)
    assert obs["lpd_forecast"].notna().all() and obs["pit"].between(0, 1).all()
    gain = obs["lpd_forecast"] - obs["lpd_no_change"]
    scores = checks[0].scores()
    assert scores["indicator"].iloc[0] == "all" and scores["n"].iloc[0] == len(checks[0].observations)
    inside = {level: float((np.abs(obs["pit"] - 0.5) <= level / 2).mean()) for level in LEVELS}
    print(f"held-out indicators: n = {n}; lpd gain over no change {gain.mean():.3f} "
          f"(SE {gain.std() / np.sqrt(n):.3f}); coverage " + ", ".join(f"{k:.0%}: {v:.3f}" for k, v in inside.items()))
    # the dynamics widen the prediction where the traits move: the forecast beats holding them still
    assert gain.mean() > 2 * gain.std() / np.sqrt(n)
    for level, rate in inside.items():
        assert abs(rate - level) <= coverage_tolerance(level, n)


def test_run_folder_and_report_section_show_the_forecast_check(held_out, tmp_path):
    from nexusbayes.report.forecasts import CHECK_STEM, check_section
    from nexusbayes.report.run import write_run

    (_, result, check), *_ = held_out[0]
    out = write_run(result, tmp_path / "run", forecast=1, forecast_check=check)   # the report itself: ~50 s
    table = pd.read_csv(out / "forecast_check.csv")
    assert list(table["indicator"]) == ["all", *result.panel.indicators]
    assert table["n"].iloc[0] == len(check.observations)
    tables, text = check_section(check)
    assert list(tables) == [CHECK_STEM] and "last 1 period(s)" in text["text"] and "no change" in text["text"]
    assert check_section(None) == ({}, {})


def test_forecast_check_refuses_too_few_periods():
    sim = simulate(n_countries=1, n_regions=3, n_periods=3, seed=0)
    with pytest.raises(ForecastError, match="fewer than the two"):
        forecast_check(sim.spec, sim.frame, 2)
    with pytest.raises(ForecastError, match="whole number"):
        forecast_check(sim.spec, sim.frame, 0)
