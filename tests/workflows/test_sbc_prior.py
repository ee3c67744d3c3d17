"""The joint prior draws SBC refits to, for the measurement options of issue 23 and the regime model (issue 26).

Forward draws only (no sampling, no compile to C): each simulation's data must fill every data container the
likelihood reads, on the container's scale, drawn from the parameters recorded as its truth.
"""

import numpy as np
import pytest

from nexusbayes.model.build import Model
from nexusbayes.model.simulate import default_spec, simulate, simulate_regime
from nexusbayes.spec.document import Spec
from nexusbayes.spec.sections import ModelSpec
from nexusbayes.workflows.sbc_prior import joint_prior

N = 40


def measurement_spec() -> Spec:
    """The default spec with the four options of issue 23 (as ``models/sbc_measurement.toml``)."""
    raw = default_spec().to_dict()
    raw["indicators"]["seizures"].update(missing="informative", quota=10)
    raw["indicators"]["abuse"].update(zero_inflated=True)
    raw["indicators"]["quota"].update(drift="intercept")
    raw["indicators"]["expert_capability"].update(drift="cutpoints")
    raw["comparability"] = {"detect": True}
    return Spec.from_dict(raw)


@pytest.fixture(scope="module")
def measurement():
    sim = simulate(measurement_spec(), n_countries=2, n_regions=3, n_periods=4, seed=5)
    model = Model(sim.spec, sim.panel)
    return model, *joint_prior(model, N, seed=1)


@pytest.fixture(scope="module")
def regime():
    sim = simulate_regime(default_spec(model=ModelSpec(kind="regime")), n_countries=2, n_regions=3, n_periods=5,
                          seed=5)
    model = Model(sim.spec, sim.panel)
    return model, *joint_prior(model, N, seed=1)


def test_measurement_options_draw_their_parameters_and_the_reports(measurement):
    model, params, data = measurement
    for name in ("reporting_intercept", "reporting_loading", "heap_intercept", "zero_intercept", "drift_sd",
                 "offset_tau", "offset_lambda", "theta"):
        assert name in params and params[name].sizes["draw"] == N, name
        assert float(params[name].std("draw").max()) > 0, name          # drawn, not fixed
    assert set(model.roles.ranked()) <= set(params.data_vars)
    reported = data["reported"].values
    assert set(np.unique(reported)) == {0, 1}
    # the reporting outcome follows its logit: more reports where the drawn intercept is higher
    share = reported.mean(axis=1)
    low, high = np.argsort(params["reporting_intercept"].values.ravel())[[0, -1]]
    assert share[high] > share[low]


def test_regime_data_fill_every_container_on_its_scale(regime):
    model, params, data = regime
    containers = {v.name for v in model.pymc.data_vars}
    assert {f"data_{name.removeprefix('y_')}" for name in data.data_vars} <= containers
    for block in model.design.blocks:
        y = data[f"y_{block.key}"].values
        assert y.shape == (N, len(block.labels))
        if model.spec.indicator(block.names[0]).family == "ordinal":
            assert y.min() >= 0 and y.max() <= block.categories - 1          # codes 0..K-1, as the container
    for name in ("transition", "transition_shared", "initial_type", "transition_sd"):
        assert params[name].sizes["draw"] == N
    assert set(model.roles.ranked()) <= set(params.data_vars)
    assert "theta" not in params


def test_regime_data_follow_the_drawn_states(regime):
    """Draws whose loading on capability is larger spread the staff values more (the levels are -1 and +1)."""
    model, params, data = regime
    block = next(b for b in model.design.blocks if "staff" in b.names)
    spread = data[f"y_{block.key}"].std(block.dim).values
    loading = params["loading_pos"].sel({params["loading_pos"].dims[-1]: "staff:capability"}).values
    assert np.corrcoef(loading, spread)[0, 1] > 0.3
