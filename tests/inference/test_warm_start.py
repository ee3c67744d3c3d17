"""Chains started from an approximation (``inference/warm_start.py``, a benchmark lever, not kept yet): each
chain's start is its own reproducible draw around the given mean, and a start of the wrong size is refused.

The ADVI fit itself and the posterior comparison with the plain sampler are not tested here yet (see
benchmarks/HISTORY.md, 2026-12-06 02:25): the lever is not offered as an option until it is measured.

The panel's structure is shared with other tests (``tests/inference/test_run_length.py``), so its compiled model
usually comes from the on-disk cache.
"""

from __future__ import annotations

import numpy as np
import pytest

from nexusbayes.inference import compile_cache, warm_start


@pytest.fixture(scope="module")
def model(small_model):
    return small_model


@pytest.fixture(scope="module")
def compiled(model):
    return compile_cache.compile_nutpie(model.pymc, model.panel, model.spec)[0]


@pytest.fixture(scope="module")
def start(compiled):
    """A stand-in for ADVI's mean and SD (ADVI's own C compile is minutes on a loaded 2-core machine)."""
    return compiled.initial_point_func(0), np.full(compiled.n_dim, 0.5)


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
