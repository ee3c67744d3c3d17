"""Compile once, fit many: a second fit of the same structure reuses the compiled model, exactly."""

import numpy as np
import pytensor
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
    key = compile_cache.structure_key(first.panel, first.spec, compile_cache._lean_salt(True))   # fits compile lean
    compiled = compile_cache._CACHE[key]
    values = compile_cache.data_values(build_model(first.panel, first.spec))
    assert compile_cache._fits(compiled, values)
    values["data_negbin"] = values["data_negbin"].astype(np.int64) + 2**40
    assert not compile_cache._fits(compiled, values)


def test_a_container_the_compiled_functions_do_not_read_does_not_stop_the_reuse():
    """A heap's inflated values serve forward sampling only: nutpie's compiled model holds no copy of them."""

    class Compiled:     # a stand-in for nutpie's compiled model: its containers and with_data
        shared_var_keys = {type("Var", (), {"name": "y"})(): "y"}
        shared_data = {"y": np.zeros(3)}

        def with_data(self, **values):
            return sorted(values)

    key = "stand-in"
    compile_cache._CACHE[key] = Compiled()
    try:
        assert compile_cache._lookup(key, {"y": np.ones(3), "heap_value_negbin": np.ones(2, int)}) == ["y"]
        assert compile_cache._lookup(key, {"y": np.ones((3, 1))}) is None      # another rank: compiled anew
    finally:
        compile_cache._CACHE.pop(key)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """One structure compiled (its layout stored), then loaded by the layout; nutpie's draws of each, same seed.

    Layouts go to a folder of their own, so the first compile builds PyTensor's graphs whatever earlier runs
    stored. The models are lean, as fits compile them.
    """
    import nutpie

    sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compile_cache, "LAYOUT_DIR", tmp_path_factory.mktemp("layouts"))
        models, draws = [], []
        for _ in range(2):
            compile_cache.clear()
            compiled, source = compile_cache.compile_nutpie(build_model(sim.panel, sim.spec), sim.panel, sim.spec,
                                                            lean=True)
            models.append(compiled)
            trace = nutpie.sample(compiled, draws=30, tune=30, chains=1, seed=3, progress_bar=False)
            draws.append({name: trace["posterior"][name].values for name in trace["posterior"].data_vars})
        yield sim, models, draws, source
    compile_cache.clear()


def test_a_model_loaded_by_its_layout_gives_the_compile_s_draws_bit_for_bit(layouts):
    """A new process's fit of a structure compiled before: no PyTensor graph built, the same draws for a seed."""
    _, (built, by_layout), (compiled_draws, loaded_draws), source = layouts
    assert built.logp_func is not None and by_layout.logp_func is None         # graphs built, then not
    assert source == "disk"
    assert set(compiled_draws) == set(loaded_draws) and compiled_draws
    for name, values in compiled_draws.items():
        assert values.tobytes() == loaded_draws[name].tobytes(), name
    assert by_layout.layout == built.layout and by_layout.n_expanded == built.n_expanded
    assert by_layout.shapes == built.shapes and by_layout.dims == built.dims


def test_a_changed_structure_or_code_does_not_load_a_stored_layout(layouts):
    """The layout's key holds the structure, the libraries' versions and the package's source."""
    sim, *_ = layouts
    key = compile_cache.structure_key(sim.panel, sim.spec, compile_cache._lean_salt(True))
    holes = simulate(n_regions=3, n_periods=4, missing=0.2, seed=1)
    other = compile_cache.structure_key(holes.panel, holes.spec, compile_cache._lean_salt(True))
    path = compile_cache.layout_path(key)
    assert compile_cache.layout_path(other) != path
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compile_cache, "source_digest", lambda: "an edited package")
        assert compile_cache.layout_path(key) != path
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compile_cache, "_versions", lambda: "nexusbayes 0 pymc 0 pytensor 0 numba 0 nutpie 0")
        assert compile_cache.layout_path(key) != path
    with pytensor.config.change_flags(floatX="float32"):
        assert compile_cache.layout_path(key) != path


def test_a_layout_whose_callbacks_are_not_on_disk_is_compiled_again(layouts):
    """Loading never compiles: a callback missing from numba's cache makes ``load_model`` give None."""
    from nexusbayes.inference import nutpie_callbacks

    sim, (built, _), *_ = layouts
    model = build_model(sim.panel, sim.spec)
    assert nutpie_callbacks.load_model(model, built.layout) is not None
    gone = {**built.layout, "logp": {**built.layout["logp"], "graph_key": "not a compiled graph"}}
    assert nutpie_callbacks.load_model(model, gone) is None
    other_dtype = {**built.layout, "shared": [[kind, name, "float32" if dtype == "float64" else dtype, ndim]
                                             for kind, name, dtype, ndim in built.layout["shared"]]}
    assert nutpie_callbacks.load_model(model, other_dtype) is None


@pytest.mark.slow       # builds the structure's PyTensor graphs once more
def test_a_loaded_model_whose_expand_callback_is_not_on_disk_compiles_it_from_its_model(layouts, monkeypatch):
    """After sampling, a lean fit expands its draws with the full expand callback: made from the model if need be."""
    from nexusbayes.inference import nutpie_callbacks

    _, (built, by_layout), *_ = layouts
    x = np.random.default_rng(5).normal(scale=0.5, size=built.n_dim)
    expected = np.empty(built.layout["n_expanded"])
    nutpie_callbacks.full_expand(built)(x, expected)
    monkeypatch.setattr(nutpie_callbacks, "_EXPANDS", {})
    monkeypatch.setattr(nutpie_callbacks, "_loaded_cfunc", lambda *args: None)
    out = np.empty_like(expected)
    nutpie_callbacks.full_expand(by_layout)(x, out)
    assert out.tobytes() == expected.tobytes()
