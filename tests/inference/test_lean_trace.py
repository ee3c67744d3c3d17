"""The lean trace (nutpie stores the unconstrained draws; every variable computed afterwards) against the full one."""

import numpy as np
import pytest
import xarray as xr

from nexusbayes.inference import lean_trace
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.sections import SamplerSpec


@pytest.fixture(scope="module")
def trees():
    """One small panel sampled both ways with one seed: lean (the default) and nutpie's full trace."""
    sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
    settings = SamplerSpec(draws=60, tune=60, chains=2, seed=11)
    model = Model(sim.spec, sim.panel)
    lean = sample(model, settings, progress=False, predictions=False)
    # any sampler option keeps nutpie's full trace and its own conversion (the path before the lean trace)
    full = sample(Model(sim.spec, sim.panel), settings, progress=False, predictions=False,
                  sampler_options={"save_warmup": False})
    return lean, full, model


def test_lean_posterior_equals_the_full_trace(trees):
    lean, full, _ = trees
    a, b = lean["posterior"].to_dataset(), full["posterior"].to_dataset()
    assert sorted(a.data_vars) == sorted(b.data_vars)
    assert {"theta", "country_theta", "loading", "trait_corr"} <= set(a.data_vars)   # the deterministics
    for name in b.data_vars:
        assert a[name].dims == b[name].dims, name
        assert a[name].dtype == b[name].dtype == np.float64, name
        # the same draws, the deterministics from the same expand function: equal bit for bit
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        for dim in a[name].dims:
            np.testing.assert_array_equal(a[dim].values, b[dim].values)


def test_lean_sample_stats_equal_the_full_trace(trees):
    lean, full, _ = trees
    a, b = lean["sample_stats"].to_dataset(), full["sample_stats"].to_dataset()
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in b.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_only_the_lean_compile_trims_the_trace():
    from nexusbayes.inference import compile_cache

    sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
    model = Model(sim.spec, sim.panel).pymc
    lean, _ = compile_cache.compile_nutpie(model, sim.panel, sim.spec, lean=True)
    full, _ = compile_cache.compile_nutpie(model, sim.panel, sim.spec)
    assert lean_trace.is_lean(lean) and not lean_trace.is_lean(full)
    assert lean.n_expanded == lean.n_dim < full.n_expanded
    assert [name for name, _, _ in lean_trace.layout(lean)] == list(full.shape_info[0])


def test_predictive_draws_are_rounded_to_single_precision_as_drawn(trees):
    """The posterior predictive is rounded chunk by chunk (no rounded copy of it all): doubles that floats hold."""
    lean, _, model = trees
    tree = model.add_predictions(xr.DataTree.from_dict({"posterior": lean["posterior"].to_dataset()}), seed=3)
    predictive = tree["posterior_predictive"].to_dataset()
    doubles = [name for name, var in predictive.data_vars.items() if var.dtype == np.float64]
    assert "y_normal" in doubles       # a continuous family: its draws are not whole numbers
    for name in doubles:
        values = predictive[name].values
        np.testing.assert_array_equal(values.astype(np.float32).astype(np.float64), values, err_msg=name)
