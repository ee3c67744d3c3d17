"""Compile once, fit many: a second fit of the same structure reuses the compiled model, exactly."""

import numpy as np
import pytest

from nexusbayes.fit import fit
from nexusbayes.inference import compile_cache
from nexusbayes.model.build import build_model
from nexusbayes.model.simulate import simulate

SETTINGS = {"draws": 100, "tune": 100, "chains": 2, "seed": 3, "progress": False, "check": False}


@pytest.fixture(scope="module")
def two_datasets():
    """Two simulated panels of the same structure (shape, missing cells, names) with other values and exposures."""
    return (simulate(n_regions=3, n_periods=4, missing=0.1, seed=1),
            simulate(n_regions=3, n_periods=4, missing=0.1, seed=1).frame.assign(
                value=lambda f: simulate(n_regions=3, n_periods=4, missing=0.1, seed=2).frame["value"],
                exposure=lambda f: f["exposure"] * 1.7))


@pytest.fixture(scope="module")
def fits(two_datasets):
    """First dataset (compiles), second (reuses), second again after clearing this process's cache (loads)."""
    first, second = two_datasets
    compile_cache.clear()
    a = fit(first.spec, first.panel, **SETTINGS)
    b = fit(first.spec, second, **SETTINGS)
    compile_cache.clear()
    fresh = fit(first.spec, second, **SETTINGS)
    return a, b, fresh


def test_a_second_structure_match_skips_compilation(fits):
    """In this process the second fit reuses the model; after clearing, the callbacks come from disk."""
    a, b, fresh = fits
    assert a.tree.attrs["compile_source"] in ("compiled", "disk")     # "disk" when an earlier run compiled it
    assert (b.tree.attrs["compile_source"], fresh.tree.attrs["compile_source"]) == ("process", "disk")


def test_the_reused_model_gives_exactly_the_fresh_compile_s_draws(fits):
    """Every data-derived value (observations, centring constants, exposures, trials) was swapped in."""
    _, b, fresh = fits
    for name in ("theta", "loading", "intercept", "inv_dispersion_negbin", "sigma_normal"):
        np.testing.assert_array_equal(b.tree["posterior"][name].values, fresh.tree["posterior"][name].values)
    # and the second dataset really is another one: its draws differ from the first fit's
    assert not np.allclose(fits[0].tree["posterior"]["theta"].values, b.tree["posterior"]["theta"].values)


def test_every_data_derived_value_is_a_container(two_datasets):
    first, second = two_datasets
    from nexusbayes.data.panel import validate

    a = compile_cache.data_values(build_model(first.panel, first.spec))
    b = compile_cache.data_values(build_model(validate(second, first.spec), first.spec))
    assert {"indicator_location", "indicator_scale", "log_exposure_negbin", "trials_binomial",
            "data_normal", "data_negbin", "data_binomial", "data_ordinal"} <= set(a)
    changed = {name for name in a if not np.array_equal(a[name], b[name])}
    assert {"indicator_location", "log_exposure_negbin", "data_negbin", "data_normal"} <= changed


def test_kernel_containers_of_new_observations_are_those_a_fresh_build_holds(two_datasets):
    """What SBC swaps in with simulated observations: the tables the kernels derive from them, as built afresh."""
    from nexusbayes.data.panel import validate
    from nexusbayes.model.design import kernel_containers, make_design

    first, second = two_datasets
    panel = validate(second, first.spec)
    fresh = compile_cache.data_values(build_model(panel, first.spec))
    y = fresh["data_negbin"]
    derived = kernel_containers(make_design(first.panel, first.spec), first.spec, "negbin", y)
    assert set(derived) == {"pair_indicator_negbin", "pair_count_negbin", "pair_negbin"}
    for name, values in derived.items():
        np.testing.assert_array_equal(values, fresh[name], err_msg=name)
    old = compile_cache.data_values(build_model(first.panel, first.spec))
    assert not np.array_equal(old["pair_count_negbin"], fresh["pair_count_negbin"])   # the tables did change


def test_structure_key_separates_what_the_compiled_code_depends_on():
    base = simulate(n_regions=3, n_periods=4, seed=1)
    key = compile_cache.structure_key(base.panel, base.spec)
    resampled = simulate(n_regions=3, n_periods=4, seed=9)
    assert compile_cache.structure_key(resampled.panel, resampled.spec) == key        # values only
    other_sampler = base.spec.model_copy(update={"sampler": base.spec.sampler.model_copy(update={"draws": 7})})
    assert compile_cache.structure_key(base.panel, other_sampler) == key               # not in the graph
    wider = base.spec.model_copy(update={"priors": base.spec.priors.model_copy(update={"loading": 2.0})})
    assert compile_cache.structure_key(base.panel, wider) != key                       # a prior
    holes = simulate(n_regions=3, n_periods=4, missing=0.2, seed=1)
    assert compile_cache.structure_key(holes.panel, holes.spec) != key                 # missing cells
    longer = simulate(n_regions=3, n_periods=5, seed=1)
    assert compile_cache.structure_key(longer.panel, longer.spec) != key               # shape


def test_values_that_do_not_fit_the_compiled_dtype_are_compiled_anew(fits, two_datasets):
    """A count beyond the compiled int32 container must not wrap round silently."""
    first, _ = two_datasets
    key = compile_cache.structure_key(first.panel, first.spec)
    compiled = compile_cache._CACHE[key]
    values = compile_cache.data_values(build_model(first.panel, first.spec))
    assert compile_cache._fits(compiled, values)
    values["data_negbin"] = values["data_negbin"].astype(np.int64) + 2**40
    assert not compile_cache._fits(compiled, values)


def test_containers_the_compiled_model_does_not_read_do_not_block_reuse(fits, two_datasets):
    """A data container that the log density does not read (pruned from the compiled model, as the heaping model's
    ``heap_value_<family>``, whose kernel reads the positions ``at_heap_<family>``) is not an input: reused."""
    first, _ = two_datasets
    key = compile_cache.structure_key(first.panel, first.spec)
    values = compile_cache.data_values(build_model(first.panel, first.spec))
    assert compile_cache._lookup(key, values | {"heap_value_negbin": np.arange(5)}) is not None
    values["data_negbin"] = values["data_negbin"].astype(np.int64) + 2**40
    assert compile_cache._lookup(key, values | {"heap_value_negbin": np.arange(5)}) is None
