"""The centred walk's states, sampled as a shape, a location and a log scale: the same distribution as the walk.

One trait and two (whose steps are correlated across traits, as the non-centred model's innovations are).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from nexusbayes.model.build import Model
from nexusbayes.model.centred import _centred_spans
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec

#: The fixed step SDs and the fixed trait correlation of the prior-only models.
STEP_SD = {1: [0.5], 2: [0.5, 0.8]}
CORRELATION = 0.6


def spec_of(n_trait: int) -> Spec:
    """Bernoulli anchors, three per trait, and centred walks."""
    traits = ["ideology", "party"][:n_trait]
    return Spec.from_dict({"name": "votes", "traits": traits, "dynamics": {"centred": True}, "indicators": {
        f"{trait}{k}": {"family": "bernoulli", "loads": {trait: "positive"}} for trait in traits for k in range(3)}})


def prior_only(n_trait=1, n_regions=3, n_periods=3):
    """The centred spans' prior alone (no likelihood), as the model builds it, given its step SDs (and correlation).

    The step SDs are fixed because the walk's prior alone is a funnel in them (steps against their SD), which
    NUTS cannot sample without data; the reparametrisation under test does not touch them.
    """
    spec = spec_of(n_trait)
    panel = simulate(spec, n_regions=n_regions, n_periods=n_periods, seed=2).panel
    design = Model(spec, panel).design
    with pm.Model(coords=design.coords) as model:
        _centred_spans(design, spec, panel)
    fixed = {"region_innovation_sd": np.array(STEP_SD[n_trait])}
    if n_trait == 2:
        fixed["trait_chol"] = np.linalg.cholesky([[1.0, CORRELATION], [CORRELATION, 1.0]])
    return pm.do(model, fixed)


@pytest.mark.parametrize("n_trait", [1, 2])
def test_free_vector_maps_back_to_the_walk_it_was_drawn_from(n_trait):
    """A forward draw of ``[z, m, log_s]`` gives states whose location and log scale per trait are ``m``, ``log_s``."""
    model = prior_only(n_trait)
    free, states = pm.draw([model["region_state_free"], model["region_state"]], draws=200, random_seed=1,
                           mode="FAST_COMPILE")
    n = states.shape[1]
    assert states.shape == (200, n, n_trait) and free.shape == (200, n_trait * (n + 2))
    m, log_s = free[:, -2 * n_trait:-n_trait], free[:, -n_trait:]
    assert np.allclose(states.mean(axis=1), m) and np.allclose(np.log(states.std(axis=1)), log_s)
    z = free[:, :n * n_trait].reshape(200, n, n_trait)
    u = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, keepdims=True)
    assert np.allclose(states, m[:, None] + np.exp(log_s)[:, None] * u)


def test_two_trait_density_is_the_correlated_walks_plus_the_jacobians():
    """The free vector's log density at a point, against the walk's Gaussian density written out in full.

    Every state is a sum of its span's steps, step ``p`` of covariance ``c_p^2 D R D`` (``c_p`` 1 and ``D`` the
    identity at a span's start, ``sqrt(gap)`` and the step SDs after), so the states are jointly normal with
    covariance ``sum_{p <= min(i, j)} S_p`` within a span; SciPy's multivariate normal of that, plus the
    Jacobians and the auxiliaries of ``_SplitStates``, must give PyMC's log density.
    """
    model = prior_only(2, n_regions=3, n_periods=4)
    free = pm.draw(model["region_state_free"], random_seed=5, mode="FAST_COMPILE")
    n = len(model.coords["region_cell"])
    z, m, log_s = free[:2 * n].reshape(n, 2), free[-4:-2], free[-2:]
    states = m + np.exp(log_s) * (z - z.mean(axis=0)) / z.std(axis=0)      # every state of this panel has data
    labels = model.coords["region_cell"]
    region = np.array([label.rsplit(":", 1)[0] for label in labels])
    sd, corr = np.array(STEP_SD[2]), np.array([[1.0, CORRELATION], [CORRELATION, 1.0]])
    cov = np.zeros((n, 2, n, 2))
    for i in range(n):
        for j in range(n):
            if region[i] != region[j]:
                continue
            first = np.flatnonzero(region == region[i])[0]
            # the span's start (unit variances) and min(i, j) - first later yearly steps
            cov[i, :, j, :] = corr + (min(i, j) - first) * np.outer(sd, sd) * corr
    walk = stats.multivariate_normal(np.zeros(2 * n), cov.reshape(2 * n, 2 * n)).logpdf(states.ravel())
    log_b = np.log(z.std(axis=0))
    aux = stats.norm(0.0, 0.1 / np.sqrt(n))
    expected = walk + (n - 1) * (log_s - log_b).sum() + aux.logpdf(z.mean(axis=0)).sum() + aux.logpdf(log_b).sum()
    logp = model.compile_logp(vars=[model["region_state_free"]], mode="FAST_COMPILE")   # no numba compile
    assert logp({"region_state_free": free}) == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("n_trait", [1, 2])
def test_sampling_the_free_vector_gives_the_walks_distribution(n_trait):
    """NUTS on the free vector's log density against forward draws of the walk: same states' distribution.

    A wrong Jacobian (the ``(n - 1) log s`` and ``(n - 1) log b`` terms) would move the log scale's
    distribution by about its own SD, which two-sample Kolmogorov-Smirnov tests on 4,000 draws see; with two
    traits a wrong correlation of the steps moves the distribution of their products.
    """
    model = prior_only(n_trait)
    forward = pm.draw(model["region_state"], draws=4000, random_seed=3)
    with model:
        idata = pm.sample(draws=1000, tune=1000, chains=4, random_seed=4, progressbar=False,
                          compute_convergence_checks=False)
    sampled = idata.posterior["region_state"].values.reshape(-1, *forward.shape[1:])
    assert int(idata.sample_stats["diverging"].sum()) == 0
    # thinned to roughly independent draws before the KS tests
    sampled = sampled[::2]
    checks = {}
    for k in range(n_trait):
        f, s = forward[..., k], sampled[..., k]
        checks |= {f"location {k}": (f.mean(axis=1), s.mean(axis=1)),
                   f"log scale {k}": (np.log(f.std(axis=1)), np.log(s.std(axis=1))),
                   f"first state {k}": (f[:, 0], s[:, 0]),
                   f"last step {k}": (f[:, -1] - f[:, -2], s[:, -1] - s[:, -2])}
    if n_trait == 2:
        f_step, s_step = forward[:, -1] - forward[:, -2], sampled[:, -1] - sampled[:, -2]
        checks |= {"first states' product": (forward[:, 0, 0] * forward[:, 0, 1], sampled[:, 0, 0] * sampled[:, 0, 1]),
                   "last steps' product": (f_step[:, 0] * f_step[:, 1], s_step[:, 0] * s_step[:, 1])}
    for name, (a, b) in checks.items():
        p = stats.ks_2samp(a, b).pvalue
        assert p > 0.001, (name, p, a.mean(), b.mean(), a.std(), b.std())
