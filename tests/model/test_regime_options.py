"""The regime model's options without sampling: within-state region deviations and covariates on the transitions.

The spec refuses what they do not support; the model's potential with both options equals enumerating every
state path (the covariate's per-step matrices and the deviations included); the simulation plants them.
"""

import numpy as np
import pytest
from pytensor.compile.mode import Mode

from nexusbayes.data.covariates import attach_covariates
from nexusbayes.data.panel import validate
from nexusbayes.errors import SpecError
from nexusbayes.model import hmm
from nexusbayes.model.build import Model
from nexusbayes.model.regime import levels
from nexusbayes.model.regime_covariates import log_transitions, transition_values
from nexusbayes.model.regime_predict import emissions, log_probabilities
from nexusbayes.model.simulate import default_spec, simulate_regime
from nexusbayes.spec.document import Spec
from nexusbayes.spec.sections import ModelSpec


def options_dict(kind: str = "regime", on: str = "transition", **effect) -> dict:
    data = default_spec(model=ModelSpec(kind=kind)).to_dict()
    data["covariates"] = {"columns": {"aid": {"on": on, **effect}}}
    return data


@pytest.mark.parametrize(("data", "says"), [
    (options_dict(kind="trait"), "on = \"transition\" is for [model] kind = \"regime\""),
    (options_dict(on="step", traits=["capability"]), "covariates act on its transitions only"),
    (options_dict(traits=["capability"]), "remove traits = ['capability']"),
    (options_dict(kind="trait", on="level"), "needs `traits`"),
    ({**default_spec().to_dict(), "model": {"region_deviation": True}}, "an option of kind = \"regime\""),
])
def test_spec_refuses_options_out_of_place(data, says):
    with pytest.raises(SpecError) as err:
        Spec.from_dict(data, source="opts.toml")
    assert says in str(err.value) and "opts.toml" in str(err.value)


@pytest.fixture(scope="module")
def tiny():
    """Two countries of two regions, periods 2000, 2001, 2003 (a gap of two years), both options on."""
    data = options_dict()
    data["model"]["region_deviation"] = True
    spec = Spec.from_dict(data)
    sim = simulate_regime(spec, n_countries=2, n_regions=2, n_periods=4, seed=3, transition_effects={"aid": 1.0})
    keep = sim.frame["period"] != 2002
    panel = validate(sim.frame[keep].reset_index(drop=True), spec, "<tiny>")
    panel = attach_covariates(panel, spec, sim.covariates[sim.covariates["period"] != 2002])
    return sim, Model(spec, panel)


def test_roles_and_identification(tiny):
    _, model = tiny
    roles = model.roles
    assert roles["covariate_effect"].role == "effect" and roles["covariate_effect"].ranked
    assert roles["region_deviation_sd"].role == "scale" and roles["region_deviation_z"].role == "latent"
    assert model.pymc.named_vars_to_dims["covariate_effect"] == ("covariate_label",)
    assert list(model.pymc.coords["covariate_label"]) == ["aid:leave"]
    point = model.pymc.initial_point(random_seed=1)
    point = {k: v + np.random.default_rng(1).normal(0, 1, np.shape(v)) for k, v in point.items()}
    deviation = model.pymc.compile_fn(model.pymc["region_deviation"], inputs=model.pymc.value_vars,
                                      mode=Mode(linker="py", optimizer="fast_compile"), on_unused_input="ignore")(point)
    np.testing.assert_allclose(deviation.sum(axis=0), 0.0, atol=1e-12)   # a common shift is the intercepts'


def test_forward_algorithm_is_exact_with_both_options(tiny):
    """The potential minus the enumeration over all 4^3 paths is the same at two parameter points (data-only terms)."""
    _, model = tiny
    pm_model = model.pymc
    names = [n for n in ("loading", "intercept", "transition", "initial_type", "country_offset", "sigma_normal",
                         "inv_dispersion_negbin", "cutpoints_ordinal", "covariate_effect", "region_deviation")
             if n in pm_model.named_vars]
    fn = pm_model.compile_fn([pm_model[n] for n in names] + [pm_model["regime_loglik"]],
                             inputs=pm_model.value_vars, mode=Mode(linker="py", optimizer="fast_compile"),
                             on_unused_input="ignore")
    x = transition_values(model.spec, model.panel)
    gaps = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in pm_model.initial_point(random_seed=seed).items()}
        *values, potential = fn(point)
        post = {n: np.asarray(v)[None] for n, v in zip(names, values, strict=True)}
        emission = emissions(post, model.design, model.panel, model.spec, slice(0, 1))
        brute = hmm.brute_force(*log_probabilities(post, model.design, slice(0, 1), x), emission)
        gaps.append(float(potential) - brute.sum())
    assert abs(gaps[0] - gaps[1]) < 1e-6 * abs(gaps[0])


def test_covariate_shifts_the_odds_of_leaving_only():
    rng = np.random.default_rng(0)
    trans = rng.dirichlet(np.ones(4), size=(1, 1, 4))
    x = np.array([[[0.0], [0.7]]])                                         # (region, period, covariate)
    moved = np.exp(log_transitions(trans, np.array([0]), np.array([1]), x, np.array([[0.9]])))[0, 0, 0]
    stay, base = np.diag(moved), np.diag(trans[0, 0])
    np.testing.assert_allclose(np.log((1 - stay) / stay) - np.log((1 - base) / base), 0.9 * 0.7)
    off = ~np.eye(4, dtype=bool)
    shares = moved[off].reshape(4, 3) / moved[off].reshape(4, 3).sum(1, keepdims=True)
    np.testing.assert_allclose(shares, trans[0, 0][off].reshape(4, 3) / (1 - base)[:, None])
    np.testing.assert_allclose(moved.sum(-1), 1.0)


def test_simulation_plants_deviations_and_the_effect():
    spec = Spec.from_dict(options_dict())
    sim = simulate_regime(spec, n_regions=6, n_periods=3, deviation_sd=0.5, seed=1)
    np.testing.assert_allclose(sim.truth["region_deviation"].sum("region"), 0.0, atol=1e-12)
    states = sim.truth["type_state"].values
    np.testing.assert_allclose(sim.truth["theta"].values,
                               levels(spec.traits)[states] + sim.truth["region_deviation"].values[:, None])
    assert sim.truth["covariate_effect"].values.tolist() == [0.5] and sim.panel.covariates.names == ["aid"]
