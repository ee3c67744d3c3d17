"""A regime fit's forecast, without sampling: exact against enumerating every future path, on a made-up tree."""

import itertools

import numpy as np
import pytest
import xarray as xr

from nexusbayes.analysis.forecast import ForecastError, forecast_table, forecast_types_table
from nexusbayes.analysis.regime_forecast import forecast_type_intervals, regime_forecast
from nexusbayes.constants import TYPES
from nexusbayes.model import hmm
from nexusbayes.model.regime import levels
from nexusbayes.model.simulate import simulate_regime


@pytest.fixture(scope="module")
def made_up():
    """Two countries of two regions, three yearly periods; 2 chains of 3 made-up draws of the states and matrices."""
    sim = simulate_regime(n_countries=2, n_regions=2, n_periods=3, seed=4)
    panel = sim.panel
    rng = np.random.default_rng(8)
    n_region, n_period, n = len(panel.regions), len(panel.periods), len(TYPES)
    transition = rng.dirichlet(np.ones(n), size=(2, 3, 2, n))                # (chain, draw, country, from, to)
    smoothed = rng.dirichlet(np.ones(n), size=(2, 3, n_region, n_period))
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"transition": (("chain", "draw", "country", "type", "type_"), transition)},
                                coords={"chain": [0, 1], "draw": [0, 1, 2], "country": panel.countries}),
        "regime": xr.Dataset({"type_probability": (("chain", "draw", "region", "period", "type"), smoothed)},
                             coords={"region": panel.regions, "period": panel.periods, "type": list(TYPES)},
                             attrs={"time_unit_years": 1.0}),
    })
    return sim, tree, transition, smoothed


def enumerate_future(p_last: np.ndarray, trans: np.ndarray, steps: int) -> np.ndarray:
    """P(type at T + k) for k = 1..steps, each by summing over every path of k unit steps."""
    out = np.zeros((steps, len(p_last)))
    for k in range(1, steps + 1):
        for path in itertools.product(range(len(p_last)), repeat=k + 1):
            out[k - 1, path[-1]] += p_last[path[0]] * np.prod([trans[a, b] for a, b in itertools.pairwise(path)])
    return out


def test_forecast_equals_enumeration_of_paths(made_up):
    """One period then a gap of two time units: P(type) per draw is the sum over all 4^4 unit-step paths."""
    sim, tree, transition, smoothed = made_up
    last = float(sim.panel.period_time[-1])
    fc = regime_forecast(tree, sim.spec, sim.panel, times=[last + 1, last + 3])
    probs = fc["forecast"]["type_probability"].values                       # (chain, draw, region, horizon, type)
    for chain, draw, region in itertools.product(range(2), range(3), range(len(sim.panel.regions))):
        trans = transition[chain, draw, sim.panel.region_country[region]]
        exact = enumerate_future(smoothed[chain, draw, region, -1], trans, 3)
        np.testing.assert_allclose(probs[chain, draw, region], exact[[0, 2]], rtol=1e-10)
    # the implied levels, the mean over draws, the joint from/to table and its margins
    np.testing.assert_allclose(fc["forecast"]["theta"].values, probs @ levels(sim.spec.traits), rtol=1e-12)
    types = fc["types"]
    np.testing.assert_allclose(types["type_probability"].values, probs.mean((0, 1)), rtol=1e-12)
    moves = types["transition_probability"]
    np.testing.assert_allclose(moves.sum("from").values, types["type_probability"].values, rtol=1e-10)
    np.testing.assert_allclose(moves.sum("to").values,
                               np.repeat(smoothed[:, :, :, -1].mean((0, 1))[:, None], 2, axis=1), rtol=1e-10)
    assert fc["forecast"]["period"].values.tolist() == [int(last + 1), int(last + 3)]


def test_last_smoothed_probabilities_are_the_filtered_ones():
    """The forecast starts from the stored smoothed P(type) at the last period: the forward algorithm's filter."""
    rng = np.random.default_rng(2)
    log_init = np.log(rng.dirichlet(np.ones(4), size=(2, 3)))
    log_trans = np.log(rng.dirichlet(np.ones(4), size=(2, 3, 4, 4)))
    emission = rng.normal(0, 2, size=(2, 3, 5, 4))
    alpha = hmm.forward(log_init, log_trans, emission)[:, :, -1]
    _, smoothed = hmm.forward_backward(log_init, log_trans, emission)
    np.testing.assert_allclose(smoothed[:, :, -1], np.exp(alpha - hmm.logsumexp(alpha, -1, keepdims=True)))


def test_tables_and_refusals(made_up):
    sim, tree, _, _ = made_up
    fc = regime_forecast(tree, sim.spec, sim.panel, periods=2)
    n_region = len(sim.panel.regions)
    traits, types = forecast_table(fc), forecast_types_table(fc)
    assert len(traits) == n_region * 2 * 2 and len(types) == n_region * 2
    np.testing.assert_allclose(types[list(TYPES)].sum(axis=1), 1.0, rtol=1e-10)
    intervals = forecast_type_intervals(fc)
    assert len(intervals) == n_region * 2 * 4
    assert ((intervals["q05"] <= intervals["mean"]) & (intervals["mean"] <= intervals["q95"])).all()
    with pytest.raises(ForecastError, match="whole multiples"):
        regime_forecast(tree, sim.spec, sim.panel, times=[float(sim.panel.period_time[-1]) + 1.5])
