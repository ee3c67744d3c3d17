"""Chains started from an approximation (``[sampler] init = "advi"``, ``inference/warm_start.py``): ADVI fitted on
nutpie's compiled log density moves towards the posterior, each chain starts at its own reproducible draw from it,
and a fit started there gives the same posterior as one started from prior draws, within Monte Carlo error.

The panel's structure is shared with other tests (``tests/inference/test_run_length.py``), so its compiled model
usually comes from the on-disk cache.
"""

from __future__ import annotations

import numpy as np
import pytest
from arviz_stats import ess
from pydantic import ValidationError

from nexusbayes.inference import compile_cache, warm_start
from nexusbayes.inference.nutpie_callbacks import call_logp
from nexusbayes.inference.sample import sample
from nexusbayes.spec.sections import SamplerSpec


@pytest.fixture(scope="module")
def model(small_model):
    return small_model


@pytest.fixture(scope="module")
def compiled(model):
    return compile_cache.compile_nutpie(model.pymc, model.panel, model.spec)[0]


@pytest.fixture(scope="module")
def approx(compiled):
    return warm_start.compiled_advi(compiled, n=2000, seed=0)


def test_advi_on_the_compiled_model_climbs_from_the_prior_start_and_counts_its_evaluations(compiled, approx):
    start = compiled.initial_point_func(0)
    assert approx.evaluations == 2000 and approx.failed < 100
    assert approx.mean.shape == approx.std.shape == (compiled.n_dim,)
    assert np.all(approx.std > 0) and np.all(np.isfinite(approx.mean))
    # the mean sits where the density is far higher than at the prior draw it started from
    assert call_logp(compiled, approx.mean)[1] > call_logp(compiled, start)[1] + 50


def test_each_chain_starts_at_its_own_reproducible_draw_from_the_approximation(compiled, approx):
    mean, std = approx.mean, approx.std
    started = warm_start.started_from(compiled, mean, std)
    a, b, again = started.initial_point_func(1), started.initial_point_func(2), started.initial_point_func(1)
    np.testing.assert_array_equal(a, again)
    assert not np.array_equal(a, b)
    z = (a - mean) / std
    assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2      # ~100 values: standard normal around the mean
    with pytest.raises(ValueError, match="unconstrained values"):
        warm_start.started_from(compiled, mean[:-1], std[:-1])


def test_init_advi_needs_nutpie_and_is_spelled_as_listed():
    with pytest.raises(ValidationError, match="init = \"advi\" fits the approximation on nutpie's compiled model"):
        SamplerSpec(init="advi", backend="pymc")
    with pytest.raises(ValidationError, match="init"):
        SamplerSpec(init="laplace")
    with pytest.raises(ValidationError, match="init_iterations"):
        SamplerSpec(init="advi", init_iterations=10)


def _moments(tree):
    """Per posterior element: mean, SD and the Monte Carlo SE of the mean (SD / sqrt(bulk ESS))."""
    post = tree["posterior"].to_dataset()
    out = []
    for name in ("theta", "loading", "cut_centre_ordinal", "region_innovation_sd"):
        if name not in post:
            continue
        da = post[name].astype(float)
        mean, sd = da.mean(("chain", "draw")).values.ravel(), da.std(("chain", "draw")).values.ravel()
        n_eff = np.asarray(ess(da.values.reshape(da.sizes["chain"], da.sizes["draw"], -1),
                               chain_axis=0, draw_axis=1, method="bulk")).ravel()
        free = sd > 0       # loadings fixed at 0 where an indicator does not load
        out.append((mean[free], sd[free], sd[free] / np.sqrt(n_eff[free])))
    return [np.concatenate(parts) for parts in zip(*out, strict=True)]


def test_chains_started_from_advi_give_the_plain_sampler_s_posterior(model):
    settings = SamplerSpec(draws=1000, tune=300, chains=2, seed=5)
    plain = sample(model, settings, progress=False, predictions=False)
    started = sample(model, settings.model_copy(update={"init": "advi"}), progress=False, predictions=False)
    assert started.attrs["init"] == "advi" and started.attrs["init_evaluations"] == settings.init_iterations
    assert plain.attrs["init"] == "prior"
    (m0, s0, e0), (m1, s1, e1) = _moments(plain), _moments(started)
    z = (m1 - m0) / np.hypot(e0, e1)
    # ~40 elements, each z about standard normal when the two posteriors agree
    assert len(z) > 30 and np.max(np.abs(z)) < 4.0 and np.mean(z**2) < 2.0, z
    assert 0.8 < np.median(s1 / s0) < 1.25
