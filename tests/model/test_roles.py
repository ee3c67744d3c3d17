"""Every model variable is declared with its role, and consumers read roles instead of names."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr

from nexusbayes.model.build import Model
from nexusbayes.model.roles import HYPER_ROLES, Roles, declare
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator


def one_trait(**dynamics) -> Spec:
    return Spec(name="one", traits=["willingness"], dynamics=dynamics,
                indicators={"staff": Indicator(family="normal", loads={"willingness": "positive"}),
                            "arrests": Indicator(family="negbin", loads={"willingness": "positive"})})


def with_drift(**drift) -> Spec:
    data = default_spec().to_dict()
    for name, kind in drift.items():
        data["indicators"][name]["drift"] = kind
    return Spec.from_dict(data)


def informative_gaps() -> Spec:
    """Seizures and abuse report informatively; abuse's reporting differs by country."""
    data = default_spec().to_dict()
    for name in ("seizures", "abuse"):
        data["indicators"][name]["missing"] = "informative"
    data["indicators"]["abuse"]["comparable"] = False
    return Spec.from_dict(data)


VARIANTS = {
    "default, two countries, raters": lambda: simulate(n_countries=2, n_regions=3, n_periods=4, n_raters=2, seed=1),
    "ar1": lambda: simulate(default_spec(dynamics={"kind": "ar1"}), n_regions=3, n_periods=4, seed=1),
    "student_t": lambda: simulate(default_spec(dynamics={"kind": "student_t_rw"}), n_regions=3, n_periods=4, seed=1),
    "centred, one trait": lambda: simulate(one_trait(centred=True), n_regions=3, n_periods=4, seed=1),
    "centred, two traits": lambda: simulate(default_spec(dynamics={"centred": True}), n_regions=3, n_periods=4,
                                            seed=1),
    "one country, one region": lambda: simulate(n_regions=1, n_periods=5, seed=1),
    "offsets": lambda: simulate(default_spec().model_copy(update={"indicators": {
        **default_spec().indicators, "staff": default_spec().indicators["staff"].model_copy(
            update={"comparable": False})}}), n_countries=3, n_regions=6, n_periods=3, seed=2),
    "drift": lambda: simulate(with_drift(staff="intercept", expert_willingness="cutpoints"), n_regions=3,
                              n_periods=4, seed=3),
    "informative gaps": lambda: simulate(informative_gaps(), n_countries=2, n_regions=3, n_periods=4, seed=1),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request):
    sim = VARIANTS[request.param]()
    return Model(sim.spec, sim.panel)


def test_every_variable_has_a_role(model):
    roles = model.roles
    variables = [v.name for v in [*model.pymc.free_RVs, *model.pymc.deterministics]]
    assert sorted(variables) == sorted(roles.names())
    assert all((roles[n].free == (n in {v.name for v in model.pymc.free_RVs})) for n in variables)


def test_ranked_variables_are_hyperparameters_and_never_latent(model):
    roles = model.roles
    ranked = roles.ranked()
    assert ranked, "every model has hyperparameters"
    assert all(roles[n].role in HYPER_ROLES for n in ranked)
    assert not set(ranked) & set(roles.names("latent", "trait"))
    assert "trait_chol" not in ranked                       # ranked through trait_corr
    if "trait_corr" in roles:
        assert "trait_corr" in ranked


def test_prior_fields_name_real_spec_fields(model):
    fields = model.roles.used_prior_fields()
    assert fields and all(hasattr(model.spec.priors, f) for f in fields)
    for name in model.roles.names():
        prior = model.roles[name].prior
        if prior is not None:
            assert hasattr(model.spec.priors, prior), name


def test_the_registry_survives_the_trees_attrs(model):
    back = Roles.from_attrs({"nexusbayes_roles": model.roles.to_attr()})
    assert list(back) == list(model.roles)
    assert Roles.from_attrs({}) is None


def test_an_undeclared_variable_is_refused():
    with pm.Model() as undeclared:
        declare(pm.Normal("declared", 0.0, 1.0), "scale")
        pm.Normal("forgotten", 0.0, 1.0)
    with pytest.raises(RuntimeError, match=r"without a declared role: \['forgotten'\]"):
        Roles.of(undeclared)


def free_one_trait(**extra) -> Spec:
    """One trait, three free bernoulli items, oriented by C1-R01 (higher) and C1-R02 (lower)."""
    return Spec(name="free", traits=["ideology"], indicators={
        f"item{i}": Indicator(family="bernoulli", loads={"ideology": "free"}) for i in range(3)},
        orientation={"ideology": {"higher": ["C1-R01"], "lower": ["C1-R02"]}}, **extra)


def mirrored_draws(spec: Spec) -> tuple[Model, list, list, np.ndarray]:
    """``(model, regions, periods, theta)``: theta (chain 1, draw 2) as the orientation states, then mirrored."""
    sim = simulate(spec, n_regions=3, n_periods=3, seed=4)
    regions, periods = sim.panel.regions, sim.panel.periods
    theta = np.zeros((1, 2, len(regions), len(periods), 1))
    theta[0, 0, regions.index("C1-R01")], theta[0, 0, regions.index("C1-R02")] = 1.0, -1.0    # draw 0: as stated
    theta[0, 1, regions.index("C1-R01")], theta[0, 1, regions.index("C1-R02")] = -1.0, 1.0    # draw 1: mirrored
    return Model(spec, sim.panel), regions, periods, theta


def test_orientation_reflects_what_the_registry_says():
    """A one-trait model with free loadings and an orientation: draws whose orienting score is negative flip."""
    model, regions, periods, theta = mirrored_draws(free_one_trait())
    labels = [f"item{i}:ideology" for i in range(3)]
    post = xr.Dataset({
        "theta": (("chain", "draw", "region", "period", "trait"), theta),
        "loading_free": (("chain", "draw", "loading_free_label"), np.ones((1, 2, 3))),
        "region_innovation_sd": (("chain", "draw", "trait"), np.ones((1, 2, 1))),
    }, coords={"region": regions, "period": periods, "trait": ["ideology"], "loading_free_label": labels})
    out = model.orient(xr.DataTree.from_dict({"posterior": post}))["posterior"]
    assert out["theta"].sel(region="C1-R01").values[0, :, 0, 0].tolist() == [1.0, 1.0]
    assert out["loading_free"].values[0, :, 0].tolist() == [1.0, -1.0]              # labels on the trait flip
    assert out["region_innovation_sd"].values.ravel().tolist() == [1.0, 1.0]        # scales never do
