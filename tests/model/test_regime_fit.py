"""A regime fit of data simulated from the regime model: states and transitions recovered, the result API, LOO.

One country of 8 regions over 12 yearly periods, six indicators of four families (normal, negative binomial,
binomial, ordinal), 2 chains x 500 draws after 300 tuning steps (seed 1). Model choice both ways: each kind also
fitted to the other's data (trait data of the same shape, so the compiled models are reused), 2 chains x 300
draws each.
"""

import numpy as np
import pytest

import nexusbayes as nb
from nexusbayes.analysis.forecast import forecast_table, forecast_types_table
from nexusbayes.analysis.model_choice import compare_models
from nexusbayes.cli import main
from nexusbayes.data.panel import validate
from nexusbayes.fit import fit, load
from nexusbayes.model.simulate import default_spec, simulate, simulate_regime
from nexusbayes.report import build_report
from nexusbayes.spec.sections import ModelSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def regime_run():
    sim = simulate_regime(n_regions=8, n_periods=12, seed=1)
    return sim, fit(sim.spec, sim.panel, chains=2, draws=500, tune=300, seed=1, progress=False, check=False)


def true_types(sim) -> np.ndarray:
    return np.asarray(nb.TYPES, dtype=object)[sim.truth["type_state"].values]


def test_states_recovered(regime_run):
    """The modal type is the true one in >= 90% of region-periods (measured: 95 of 96), and the most probable path."""
    sim, result = regime_run
    table = result.types_table()
    modal = table["modal_type"].to_numpy(dtype=object).reshape(true_types(sim).shape)
    assert (modal == true_types(sim)).mean() >= 0.9
    path = result.path_table()["path_type"].to_numpy(dtype=object).reshape(true_types(sim).shape)
    assert (path == true_types(sim)).mean() >= 0.9
    np.testing.assert_allclose(result.type_probabilities().sum("type"), 1.0, rtol=1e-6)


def test_transition_intervals_cover_the_truth(regime_run):
    """The 90% intervals of the 16 transition probabilities cover the true ones (measured: 14 of 16).

    At least 12 of 16: a calibrated 90% interval misses more than 4 of 16 with probability 1.7%.
    """
    sim, result = regime_run
    table = result.transition_matrices()
    truth = sim.truth["transition"].sel(country="C1").values.ravel()     # rows from, columns to: the table's order
    covered = (table["q05"].to_numpy() <= truth) & (truth <= table["q95"].to_numpy())
    assert covered.sum() >= 12
    np.testing.assert_allclose(table.groupby("from")["mean"].sum(), 1.0, rtol=1e-6)
    assert result.tree["sample_stats"]["diverging"].sum() == 0


def test_result_api_and_refusals(regime_run):
    sim, result = regime_run
    steps = result.transitions()
    assert steps.dims == ("region", "step", "from", "to")
    np.testing.assert_allclose(steps.sum(("from", "to")), 1.0, rtol=1e-9)
    summary = result.trait_summary()
    # theta is E[level | y]: its sign is the true level's wherever the type is recovered
    truth = sim.truth["theta"].to_dataframe().reset_index()
    both = summary.merge(truth, on=["region", "period", "trait"], validate="one_to_one")
    assert len(both) == 8 * 12 * 2 and (np.sign(both["mean"]) == both["theta"]).mean() >= 0.9
    with pytest.raises(ValueError, match="no thresholds to move"):
        result.threshold_sensitivity()


def test_save_and_load_keep_the_states(regime_run, tmp_path):
    _, result = regime_run
    again = load(result.save(tmp_path / "regime.nc"))
    assert again.spec.is_regime
    np.testing.assert_allclose(again.type_probabilities(), result.type_probabilities())
    assert again.transition_matrices().equals(result.transition_matrices())
    out = tmp_path / "forecast"        # the forecast command on a saved regime fit writes its three tables
    assert main(["forecast", str(tmp_path / "regime.nc"), "--periods", "2", "--out", str(out)]) == 0
    assert {p.name for p in out.glob("*.csv")} == {"forecast_traits.csv", "forecast_types.csv",
                                                    "forecast_type_intervals.csv"}


def test_report_of_a_regime_fit(regime_report):
    """The HTML report's tables and figures, without threshold sensitivity (a regime's types have no thresholds)."""
    report = regime_report
    assert "threshold_sensitivity" not in report.tables and "transition_matrices" in report.tables
    assert {"typology_map", "modal_type", "transition_matrices"} <= set(report.figures)
    assert {"forecast_types", "forecast_type_intervals"} <= set(report.tables) and "forecast_fan" in report.figures


def test_forecast_against_the_true_chain(regime_run):
    """Forecast P(type) one and two years ahead against the truth: the true matrix's rows from the true last type.

    The simulation's next types are drawn from ``transition[s_T]`` (``transition @ transition`` two years ahead),
    so that row is the exact predictive distribution given the truth. The forecast's expected Brier score under it
    (``1 - 2 p.q + |p|^2``) must beat the no-change baseline (the last period's P(type) carried unchanged) and come
    near the oracle's (the truth itself); the 90% intervals of the per-draw P(type) cover the true probabilities.
    """
    sim, result = regime_run
    fc = result.forecast(periods=2)
    truth = sim.truth["transition"].sel(country="C1").values
    last = sim.truth["type_state"].values[:, -1]
    q = np.stack([truth[last], (truth @ truth)[last]], axis=1)              # (region, horizon, type)
    p = fc["types"]["type_probability"].values
    stay = result.type_probabilities().isel(period=-1).values[:, None, :]

    def brier(forecast):
        return (1 - 2 * (forecast * q).sum(-1) + (forecast**2).sum(-1)).mean(0)   # per horizon

    excess, baseline = brier(p) - brier(q), brier(stay) - brier(q)
    # measured: Brier 0.409 and 0.587 (oracle 0.400 and 0.572, no change 0.496 and 0.836)
    assert np.all(brier(p) < brier(stay)) and np.all(excess < 0.05) and np.all(excess < baseline / 3)
    intervals = fc["forecast"]["type_probability"].quantile([0.05, 0.95], dim=("chain", "draw")).values
    covered = (intervals[0] <= q) & (q <= intervals[1])
    assert covered.mean() >= 0.8                                            # measured: 58 of 64
    # the levels implied: E[level] per draw, as the fit's theta; the trait forecast's tables read it
    np.testing.assert_allclose(fc["forecast"]["theta"].sel(trait="capability").mean(("chain", "draw")),
                               (p[..., :2].sum(-1) - p[..., 2:].sum(-1)), rtol=1e-6)
    assert len(forecast_table(fc)) == 8 * 2 * 2 and len(forecast_types_table(fc)) == 8 * 2


def short_fit(spec, panel, seed):
    return fit(spec, panel, chains=2, draws=300, tune=300, seed=seed, progress=False, check=False)


@pytest.fixture(scope="module")
def trait_data_runs():
    """Trait and regime fits of data simulated from the trait model (same shape and indicators as regime_run's)."""
    sim = simulate(n_regions=8, n_periods=12, seed=2)
    regime_spec = default_spec(model=ModelSpec(kind="regime"))
    return short_fit(sim.spec, sim.panel, 2), short_fit(regime_spec, validate(sim.frame, regime_spec), 2)


def preference(comparison, better: str, worse: str) -> tuple[float, float]:
    table = comparison.loo
    assert table.index[0] == better
    return float(-table.loc[worse, "elpd_diff"]), float(table.loc[worse, "dse"])


def test_loo_prefers_the_regime_model_on_regime_data(regime_run):
    """Measured: regime ahead by 80.6 elpd (SE 12.3); modal types agree in 94 of 96 region-periods.

    Pareto k above 0.7 for 5 (regime) and 33 (trait) of the 576 observations: the counts are in the table.
    """
    sim, regime = regime_run
    trait = short_fit(default_spec(), validate(sim.frame, default_spec()), 1)
    result = compare_models(trait, regime)
    diff, se = preference(result, "regime", "trait")
    assert diff > 2 * se, result.loo
    assert 0.0 < result.agreement < 1.0 and len(result.disagreements) == round((1 - result.agreement) * 96)


def test_loo_prefers_the_trait_model_on_trait_data(trait_data_runs):
    """Measured: trait ahead by 95.9 elpd (SE 14.1); modal types agree in 84 of 96 region-periods."""
    result = compare_models(*trait_data_runs)
    diff, se = preference(result, "trait", "regime")
    assert diff > 2 * se, result.loo


def test_saved_regime_fit_recomputes_its_log_likelihood(trait_data_runs, tmp_path):
    """A saved regime fit leaves its log-likelihood out and recomputes the same values on load."""
    _, regime = trait_data_runs
    again = load(regime.save(tmp_path / "regime.nc"))
    assert "log_likelihood" not in again.tree.children
    recomputed = again.log_likelihood()
    for name, values in regime.log_likelihood().data_vars.items():
        np.testing.assert_array_equal(recomputed[name].values, values.values)


@pytest.fixture(scope="module")
def regime_report(trait_data_runs):
    """The report of a regime fit with the trait fit beside it: rendered once for the two report tests."""
    trait, regime = trait_data_runs
    return build_report(regime, dpi=50, compare_with=trait)


def test_report_with_the_model_choice(regime_report):
    """The regime fit's report (no threshold sensitivity to compute: the cheaper one) with the trait fit beside it."""
    report = regime_report
    assert report.tables["model_comparison"]["model"].tolist() == ["trait", "regime"]
    assert "model_agreement" in report.figures and 'id="model-choice"' in report.html
