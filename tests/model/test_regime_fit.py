"""A regime fit of data simulated from the regime model: states and transitions recovered, the result API, LOO.

One country of 8 regions over 12 yearly periods, six indicators of four families (normal, negative binomial,
binomial, ordinal), 2 chains x 500 draws after 300 tuning steps (seed 1).
"""

import numpy as np
import pytest

import nexusbayes as nb
from nexusbayes.analysis.forecast import forecast_table, forecast_types_table
from nexusbayes.cli import main
from nexusbayes.fit import fit, load
from nexusbayes.model.simulate import simulate_regime
from nexusbayes.report import build_report

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


def test_report_of_a_regime_fit(regime_run):
    """The HTML report's tables and figures, without threshold sensitivity (a regime's types have no thresholds)."""
    _, result = regime_run
    report = build_report(result, dpi=50)
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
