"""The regime model without sampling: its spec, its graph, and the exactness of its forward algorithm."""

import itertools

import numpy as np
import pytest
from pytensor.compile.mode import Mode

from nexusbayes.constants import TYPES
from nexusbayes.data.panel import validate
from nexusbayes.errors import SpecError
from nexusbayes.model import hmm
from nexusbayes.model.build import Model
from nexusbayes.model.regime import levels, step_multiples
from nexusbayes.model.regime_predict import emissions, log_probabilities
from nexusbayes.model.simulate import default_spec, simulate_regime
from nexusbayes.spec.document import Spec
from nexusbayes.spec.sections import ModelSpec


def regime_dict(**changes) -> dict:
    data = default_spec(model=ModelSpec(kind="regime")).to_dict()
    data.update(changes)
    return data


def test_spec_default_is_trait_and_regime_round_trips():
    assert default_spec().model.kind == "trait" and not default_spec().is_regime
    spec = Spec.from_dict(regime_dict())
    assert spec.is_regime and Spec.from_toml(spec.to_toml()) == spec


@pytest.mark.parametrize(("change", "says"), [
    ({"dynamics": {"kind": "ar1"}}, "remove the [dynamics] table"),
    ({"dynamics": {"centred": True}}, "centred = true"),
    ({"traits": ["capability"]}, "traits must be"),
    ({"typology": {"thresholds": {"capability": 0.5}}}, "typology.thresholds.capability"),
    ({"model": {"kind": "regime", "persistance": [3.0, 1.0]}}, "did you mean 'persistence'"),
    ({"model": {"kind": "regimes"}}, "model.kind"),
])
def test_spec_refuses_what_the_regime_kind_does_not_support(change, says):
    data = regime_dict(**change)
    if data["traits"] == ["capability"]:
        data["indicators"] = {n: i for n, i in data["indicators"].items() if list(i["loads"]) == ["capability"]}
    with pytest.raises(SpecError) as err:
        Spec.from_dict(data, source="regime.toml")
    assert says in str(err.value) and "regime.toml" in str(err.value)


def test_spec_refuses_drift_in_a_regime_model():
    data = regime_dict()
    data["indicators"]["staff"]["drift"] = "intercept"
    with pytest.raises(SpecError, match=r"does not support `drift` yet: remove it from indicators staff"):
        Spec.from_dict(data)


def test_levels_follow_the_types_and_gaps_must_be_whole_multiples():
    assert [tuple(row) for row in levels(["capability", "willingness"])] == [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    assert list(TYPES) == ["hegemonic", "captured", "degraded", "failed"]
    unit, multiples = step_multiples(np.array([1991.0, 1993.0, 1997.0]))
    assert unit == 2.0 and multiples.tolist() == [1, 2]
    with pytest.raises(SpecError, match="not whole multiples"):
        step_multiples(np.array([2000.0, 2004.0, 2010.0]))


@pytest.fixture(scope="module")
def tiny():
    """Two countries of two regions, periods 2000, 2001, 2003 (a gap of two years), raters, missing cells."""
    data = regime_dict()
    data["indicators"]["quota"]["comparable"] = False
    spec = Spec.from_dict(data)
    sim = simulate_regime(spec, n_countries=2, n_regions=2, n_periods=4, missing=0.2, n_raters=2, seed=3)
    frame = sim.frame[sim.frame["period"] != 2002]
    panel = validate(frame.reset_index(drop=True), spec, "<tiny>")
    return Model(spec, panel)


def test_roles_declared_and_dims(tiny):
    roles = tiny.roles
    assert roles["transition"].role == "dynamics" and roles["transition"].ranked
    assert roles["transition_shared"].ranked and roles["initial_type"].ranked
    assert roles["transition_sd"].role == "scale" and roles["transition_z"].role == "latent"
    assert tiny.pymc.named_vars_to_dims["transition"] == ("country", "type", "type_")
    assert tiny.panel.period_time.tolist() == [2000, 2001, 2003]


def test_forward_algorithm_is_exact(tiny):
    """The model's potential equals the sum over every state path of the full likelihood, up to data-only terms.

    Checked at two parameter points: the difference (the terms of the data alone, which the kernels leave out)
    must be the same at both, so every term that depends on a parameter agrees with brute-force enumeration of
    all 4^3 paths, the two-year gap through the squared transition matrix.
    """
    model = tiny.pymc
    names = ["loading", "intercept", "transition", "initial_type", "country_offset", "sigma_normal",
             "inv_dispersion_negbin", "cutpoints_ordinal", "rater_shift_ordinal"]
    outputs = [model[n] for n in names] + [model["regime_loglik"]]
    fn = model.compile_fn(outputs, inputs=model.value_vars, mode=Mode(linker="py", optimizer="fast_compile"),
                          on_unused_input="ignore")
    gaps = []
    for seed in (1, 2):
        point = model.initial_point(random_seed=seed)
        rng = np.random.default_rng(seed)
        point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in point.items()}
        *values, potential = fn(point)
        post = {n: np.asarray(v)[None] for n, v in zip(names, values, strict=True)}
        rows = slice(0, 1)
        emission = emissions(post, tiny.design, tiny.panel, tiny.spec, rows)
        log_init, log_trans = log_probabilities(post, tiny.design, rows)
        brute = hmm.brute_force(log_init, log_trans, emission)
        loglik, smoothed = hmm.forward_backward(log_init, log_trans, emission)
        np.testing.assert_allclose(loglik, brute, rtol=1e-10)
        np.testing.assert_allclose(smoothed.sum(-1), 1.0, rtol=1e-10)
        gaps.append(float(potential) - brute.sum())
    assert abs(gaps[0] - gaps[1]) < 1e-6 * abs(gaps[0])


def test_viterbi_and_sampled_paths_agree_with_enumeration():
    rng = np.random.default_rng(4)
    log_init = np.log(rng.dirichlet(np.ones(4), size=(1, 3)))
    log_trans = np.log(rng.dirichlet(np.ones(4), size=(1, 3, 3, 4)))
    emission = rng.normal(0, 2, size=(1, 3, 4, 4))
    best = hmm.viterbi(log_init, log_trans, emission)[0]
    for r in range(3):
        score = {p: log_init[0, r, p[0]] + emission[0, r, 0, p[0]] + sum(
            log_trans[0, r, t - 1, p[t - 1], p[t]] + emission[0, r, t, p[t]] for t in range(1, 4))
            for p in itertools.product(range(4), repeat=4)}
        assert tuple(best[r]) == max(score, key=score.get)
    # sampled paths: their frequencies match the smoothed probabilities
    many = 4000
    tile = (np.repeat(log_init, many, 0), np.repeat(log_trans, many, 0), np.repeat(emission, many, 0))
    alpha = hmm.forward(*tile)
    states = hmm.sample_states(np.random.default_rng(5), tile[1], alpha)
    _, smoothed = hmm.forward_backward(log_init, log_trans, emission)
    freq = np.stack([(states == s).mean(0) for s in range(4)], -1)
    assert np.abs(freq - smoothed[0]).max() < 4 * np.sqrt(0.25 / many)


def test_simulate_regime_truth():
    sim = simulate_regime(n_regions=3, n_periods=5, seed=2)
    states = sim.truth["type_state"].values
    assert states.shape == (3, 5) and set(np.unique(states)) <= set(range(4))
    np.testing.assert_array_equal(sim.truth["theta"].values, levels(sim.spec.traits)[states])
    np.testing.assert_allclose(sim.truth["transition"].sum("type_"), 1.0)


def test_log_likelihood_recomputed_from_the_sampled_states(tiny):
    """A saved regime fit leaves its log-likelihood out; the model recomputes it, exactly, from the stored states.
    Its posterior, expected levels included, is in single precision.

    The draws are the prior's (2 chains x 5), which is all the post-processing needs.
    """
    import warnings

    import xarray as xr

    from nexusbayes.model.predict import prior_draws

    names = [v.name for v in [*tiny.pymc.free_RVs, *tiny.pymc.deterministics]]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
        prior = prior_draws(tiny.pymc, 10, 7, var_names=names)["prior"].to_dataset()
    post = xr.concat([prior.isel(draw=slice(0, 5)), prior.isel(draw=slice(5, 10)).assign_coords(draw=range(5))],
                     dim="chain").assign_coords(chain=[0, 1])
    tree = tiny.add_predictions(xr.DataTree.from_dict({"posterior": post}), seed=3)
    # the expected levels held in single precision, as every sampled draw is
    assert tree["posterior"]["theta"].dtype == tree["posterior"]["country_theta"].dtype == np.float32
    assert "log_likelihood" not in tree.children      # computed when needed, from the stored states
    stored = tiny.log_likelihood(tree)
    assert list(stored.data_vars) == tiny.likelihood_terms
    for name in stored.data_vars:     # term by term: the same values
        np.testing.assert_array_equal(tiny.log_likelihood(tree, [name])[name].values, stored[name].values)
    # conditional on the sampled states: other states give other values
    tree["regime"]["type_state"] = (tree["regime"]["type_state"] + 1) % 4
    moved = tiny.log_likelihood(tree)
    assert not np.allclose(moved["y_normal"].values, stored["y_normal"].values)
