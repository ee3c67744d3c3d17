"""The centred walk's states, sampled as a shape, a location and a log scale: the same distribution as the walk."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from nexusbayes.model.build import Model
from nexusbayes.model.latent import _centred_spans
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec

SPEC = {"name": "votes", "traits": ["ideology"], "dynamics": {"centred": True},
        "indicators": {f"case{k}": {"family": "bernoulli", "loads": {"ideology": "positive"}} for k in range(3)}}


def prior_only(n_regions=3, n_periods=3):
    """The centred spans' prior alone (no likelihood), as the model builds it, given a step SD of 0.5.

    The step SD is fixed because the walk's prior alone is a funnel in it (steps against their SD), which
    NUTS cannot sample without data; the reparametrisation under test does not touch it.
    """
    spec = Spec.from_dict(SPEC)
    panel = simulate(spec, n_regions=n_regions, n_periods=n_periods, seed=2).panel
    design = Model(spec, panel).design
    with pm.Model(coords=design.coords) as model:
        _centred_spans(design, spec, panel)
    return pm.do(model, {"region_innovation_sd": np.array([0.5])})


def test_free_vector_maps_back_to_the_walk_it_was_drawn_from():
    """A forward draw of ``[z, m, log_s]`` gives states whose location and log scale are ``m`` and ``log_s``."""
    model = prior_only()
    free, states = pm.draw([model["region_state_free"], model["region_state"]], draws=200, random_seed=1)
    assert free.shape == (200, states.shape[1] + 2)
    assert np.allclose(states.mean(axis=1), free[:, -2]) and np.allclose(np.log(states.std(axis=1)), free[:, -1])
    z = free[:, :-2]
    u = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, keepdims=True)
    assert np.allclose(states, free[:, [-2]] + np.exp(free[:, [-1]]) * u)


@pytest.mark.slow
def test_sampling_the_free_vector_gives_the_walks_distribution():
    """NUTS on the free vector's log density against forward draws of the walk: same states' distribution.

    A wrong Jacobian (the ``(n - 1) log s`` and ``(n - 1) log b`` terms) would move the log scale's
    distribution by about its own SD, which two-sample Kolmogorov-Smirnov tests on 4,000 draws see.
    """
    model = prior_only()
    forward = pm.draw(model["region_state"], draws=4000, random_seed=3)
    with model:
        idata = pm.sample(draws=1000, tune=1000, chains=4, random_seed=4, progressbar=False,
                          compute_convergence_checks=False)
    sampled = idata.posterior["region_state"].values.reshape(-1, forward.shape[1])
    assert int(idata.sample_stats["diverging"].sum()) == 0
    # thinned to roughly independent draws before the KS tests
    sampled = sampled[::2]
    checks = {"location": (forward.mean(axis=1), sampled.mean(axis=1)),
              "log scale": (np.log(forward.std(axis=1)), np.log(sampled.std(axis=1))),
              "first state": (forward[:, 0], sampled[:, 0]),
              "last step": (forward[:, -1] - forward[:, -2], sampled[:, -1] - sampled[:, -2])}
    for name, (a, b) in checks.items():
        p = stats.ks_2samp(a, b).pvalue
        assert p > 0.001, (name, p, a.mean(), b.mean(), a.std(), b.std())
