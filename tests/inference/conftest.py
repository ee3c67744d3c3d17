"""Fixtures shared by the sampling-path tests."""

from __future__ import annotations

import pytest

from nexusbayes.model.build import Model
from nexusbayes.model.simulate import simulate


@pytest.fixture(scope="session")
def small_model() -> Model:
    """A 3-region x 4-period panel (10% missing), built once: run-length and warm-start tests share its compile."""
    sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
    return Model(sim.spec, sim.panel)
