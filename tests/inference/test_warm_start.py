"""Chains started from ADVI (``inference/warm_start.py``): the start is in nutpie's coordinates, each chain's start
is its own reproducible draw, and the posterior is the plain sampler's within Monte Carlo error.

The panel's structure is shared with other tests (``tests/inference/test_run_length.py``), so its compiled model
usually comes from the on-disk cache.
"""

from __future__ import annotations

from unittest import mock

import arviz_stats as azs
import numpy as np
import pytest

from nexusbayes.inference import compile_cache, warm_start
from nexusbayes.inference import sample as sample_module
from nexusbayes.inference.nutpie_callbacks import call_logp
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.sections import SamplerSpec

RUN = SamplerSpec(draws=500, tune=300, chains=2, seed=5)


@pytest.fixture(scope="module")
def model():
    sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
    return Model(sim.spec, sim.panel)


@pytest.fixture(scope="module")
def compiled(model):
    return compile_cache.compile_nutpie(model.pymc, model.panel, model.spec)[0]


@pytest.fixture(scope="module")
def start(model):
    return warm_start.advi_start(model.pymc, n=3000, seed=2)


def test_the_advi_mean_is_in_nutpies_order_and_far_likelier_than_prior_starts(compiled, start):
    mean, std = start
    assert mean.shape == std.shape == (compiled.n_dim,) and (std > 0).all()
    code, at_mean, _ = call_logp(compiled, mean)
    prior = [call_logp(compiled, compiled.initial_point_func(seed))[1] for seed in range(4)]
    assert code == 0
    # a shuffled order would put scales in location slots: the log density would fall, not rise
    assert at_mean > max(prior) + 100, (at_mean, prior)
    assert call_logp(compiled, mean[::-1])[1] < at_mean - 100


def test_each_chain_starts_at_its_own_reproducible_draw_from_the_approximation(compiled, start):
    mean, std = start
    started = warm_start.started_from(compiled, mean, std)
    a, b, again = started.initial_point_func(1), started.initial_point_func(2), started.initial_point_func(1)
    np.testing.assert_array_equal(a, again)
    assert not np.array_equal(a, b)
    z = (a - mean) / std
    assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2      # ~100 values: standard normal around the mean
    with pytest.raises(ValueError, match="unconstrained values"):
        warm_start.started_from(compiled, mean[:-1], std[:-1])


def _theta_z(a, b) -> np.ndarray:
    """|difference of theta's posterior means| in units of the two runs' combined Monte Carlo standard error."""
    ta, tb = a["posterior"]["theta"], b["posterior"]["theta"]
    mcse = np.hypot(azs.mcse(ta.to_dataset(name="theta"))["theta"], azs.mcse(tb.to_dataset(name="theta"))["theta"])
    return np.abs(ta.mean(("chain", "draw")) - tb.mean(("chain", "draw"))).values.ravel() / mcse.values.ravel()


def test_chains_started_from_advi_sample_the_plain_samplers_posterior(model, start):
    plain = sample(model, RUN, progress=False, predictions=False)
    mean, std = start
    original = sample_module._compiled

    def started(m, values, say):
        compiled, source = original(m, values, say)
        return warm_start.started_from(compiled, mean, std), source

    with mock.patch.object(sample_module, "_compiled", started):
        warm = sample(model, RUN, progress=False, predictions=False)
    z = _theta_z(plain, warm)
    # 24 region-period-traits: |z| of N(0, 1) draws, mean ~0.8; a shifted posterior gives far larger ones
    assert z.mean() < 1.5 and z.max() < 4.5, (z.mean(), z.max())
