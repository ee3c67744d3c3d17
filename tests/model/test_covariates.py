"""Covariates in the model: roles and reflection, identification, and recovery of planted effects."""

import dataclasses

import numpy as np
import pytest
import xarray as xr

from nexusbayes.analysis.recovery import interval_covers
from nexusbayes.fit import fit
from nexusbayes.model.build import Model, build_model
from nexusbayes.model.covariates import BETA, EFFECT, EFFECT_DIM
from nexusbayes.model.predict import forward_mode
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.sections import CovariateEffect, CovariatesSpec
from tests.model.test_roles import free_one_trait, mirrored_draws

BOTH = ["capability", "willingness"]

#: Three covariates on the level and three on the steps, each on both traits: 12 coefficients per fit.
SPEC = default_spec(covariates=CovariatesSpec(columns={
    **{f"level{i}": CovariateEffect(on="level", traits=BOTH) for i in range(3)},
    **{f"step{i}": CovariateEffect(on="step", traits=BOTH) for i in range(3)}}))

#: The panel of every recovery replicate (one structure: compiled once, then refitted with new data).
SHAPE = {"n_regions": 8, "n_periods": 8}


def evaluate(model: Model, names: list[str], point: dict) -> list[np.ndarray]:
    """The model's variables ``names`` at a point of its value variables (compiled fast, not optimised)."""
    outputs = model.pymc.replace_rvs_by_values([model.pymc[n] for n in names])
    return model.pymc.compile_fn(outputs, inputs=model.pymc.value_vars, on_unused_input="ignore",
                                 mode="FAST_COMPILE")(point)


def test_roles_and_graph():
    sim = simulate(SPEC, n_regions=3, n_periods=3, seed=1)
    model = Model(sim.spec, sim.panel)
    roles = model.roles
    assert (roles[BETA].role, roles[BETA].reflect, roles[BETA].ranked) == ("effect", "labels", True)
    assert (roles[EFFECT].role, roles[EFFECT].reflect) == ("effect", "labels")
    assert model.pymc.named_vars_to_dims[EFFECT] == (EFFECT_DIM,)
    assert list(model.pymc.coords[EFFECT_DIM]) == list(sim.truth[EFFECT_DIM].values)
    point = model.pymc.initial_point()
    assert np.isfinite(model.pymc.compile_logp(mode=forward_mode())(point))
    # country_theta stays the average of its regions' traits with the covariate terms in
    point = {**point, BETA: np.linspace(-1, 1, 12)}
    theta, country = evaluate(model, ["theta", "country_theta"], point)
    assert np.allclose(theta.mean(axis=0), country[0])


def test_level_effects_are_not_absorbed_by_the_standardisation():
    """With every latent innovation at 0, theta is exactly the standardised covariate term: beta/sd is identified."""
    sim = simulate(SPEC, n_regions=3, n_periods=4, seed=2)
    model = Model(sim.spec, sim.panel)
    point = {name: np.zeros_like(value) for name, value in model.pymc.initial_point().items()}
    beta = np.zeros(12)
    beta[0] = 0.7      # level0 on capability
    point[BETA] = beta
    theta, effect = evaluate(model, ["theta", EFFECT], point)
    x = sim.panel.covariates.standardised()[..., 0]
    assert np.allclose(theta[..., 0], x)         # the standardised trait is the covariate itself: SD 1 per SD
    assert np.isclose(effect[0], 1.0) and np.allclose(effect[1:], 0.0)


def coverage(pairs) -> tuple[float, float, np.ndarray]:
    """(90% interval coverage, correlation of posterior means with the truth, z-scores) over (draws, truth) pairs."""
    hits, means, truths, z = [], [], [], []
    for draws, true in pairs:
        hits += interval_covers(draws, true, 0.9).values.tolist()
        mean = draws.mean(("chain", "draw")).values
        means += mean.tolist()
        truths += true.values.tolist()
        z += ((mean - true.values) / draws.std(("chain", "draw")).values).tolist()
    return float(np.mean(hits)), float(np.corrcoef(means, truths)[0, 1]), np.array(z)


def test_planted_effects_are_recovered(covariate_fits):
    """48 planted effects (4 panels x 12): 90% intervals cover 0.80-0.97 of them, means track the truth."""
    rate, corr, z = coverage((result.tree["posterior"][EFFECT], sim.truth[EFFECT]) for sim, result, _ in covariate_fits)
    seconds = [round(s) for _, _, s in covariate_fits]
    print(f"covariate recovery: {len(z)} coefficients, 90% coverage {rate:.3f}, corr {corr:.3f}, "
          f"mean z {z.mean():.2f}, SD z {z.std():.2f}, seconds per fit {seconds}")
    assert corr > 0.9
    assert 0.80 <= rate <= 0.97


@pytest.mark.slow
def test_planted_effects_are_recovered_over_more_replicates(covariate_fits):
    """144 planted effects (12 panels: the fixture's 4 and 8 more, fitted alike): coverage in range and no
    systematic shrinkage of the effects."""
    pairs = [(result.tree["posterior"][EFFECT], sim.truth[EFFECT]) for sim, result, _ in covariate_fits]
    for seed in range(201, 213 - len(covariate_fits)):
        sim = simulate(SPEC, **SHAPE, seed=seed)
        result = fit(sim.spec, sim.panel, chains=2, draws=500, seed=seed, progress=False, check=False)
        pairs.append((result.tree["posterior"][EFFECT], sim.truth[EFFECT]))
    assert len(pairs) == 12
    rate, corr, z = coverage(pairs)
    print(f"covariate recovery: {len(z)} coefficients, 90% coverage {rate:.3f}, corr {corr:.3f}, "
          f"mean z {z.mean():.2f}, SD z {z.std():.2f}")
    assert corr > 0.9
    assert 0.80 <= rate <= 0.97
    assert abs(z.mean()) < 0.3       # no systematic shift of the effects


def test_an_effect_flips_with_its_trait():
    """Orientation reflects a draw's trait: the effects on it change sign with it, as the registry says."""
    model, regions, periods, theta = mirrored_draws(free_one_trait(
        covariates=CovariatesSpec(columns={"x": CovariateEffect(on="level", traits=["ideology"])})))
    post = xr.Dataset({
        "theta": (("chain", "draw", "region", "period", "trait"), theta),
        BETA: (("chain", "draw", EFFECT_DIM), np.full((1, 2, 1), 0.5)),
        EFFECT: (("chain", "draw", EFFECT_DIM), np.full((1, 2, 1), 0.3)),
    }, coords={"region": regions, "period": periods, "trait": ["ideology"], EFFECT_DIM: ["x:ideology"]})
    out = model.orient(xr.DataTree.from_dict({"posterior": post}))["posterior"]
    assert out[BETA].values.ravel().tolist() == [0.5, -0.5]
    assert out[EFFECT].values.ravel().tolist() == [0.3, -0.3]


def test_step_effects_accumulate_as_the_dynamics_do():
    """AR(1): with every innovation at 0, a step effect's path is sum_s phi^(t - s) beta x_s (here phi = 1/2)."""
    spec = default_spec(dynamics={"kind": "ar1"}, covariates=CovariatesSpec(columns={
        "shock": CovariateEffect(on="step", traits=["willingness"])}))
    sim = simulate(spec, n_regions=3, n_periods=4, seed=3)
    model = Model(sim.spec, sim.panel)
    point = {name: np.zeros_like(value) for name, value in model.pymc.initial_point().items()}   # logit phi = 0
    point[BETA] = np.array([0.8])
    (theta,) = evaluate(model, ["theta"], point)
    x = sim.panel.covariates.standardised()[..., 0]
    path = np.zeros_like(x)
    for t in range(1, x.shape[1]):
        path[:, t] = 0.5 * path[:, t - 1] + 0.8 * x[:, t]
    assert np.allclose(theta[..., 1], (path - path.mean()) / path.std())
    with pytest.raises(ValueError, match="carries no covariate table"):
        build_model(dataclasses.replace(sim.panel, covariates=None), sim.spec)
