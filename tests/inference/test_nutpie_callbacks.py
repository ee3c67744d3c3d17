"""nutpie's callbacks cached on disk: the numbers of the PyTensor functions they wrap, loaded by a new process."""

import json

import numpy as np
import pytensor
import pytest

from nexusbayes.inference import nutpie_callbacks
from nexusbayes.inference.nutpie_callbacks import call_expand, call_logp
from nexusbayes.model.build import build_model
from nexusbayes.model.simulate import simulate
from tests.conftest import SMALL

# the structure test_compile_cache and the module's doctest compile too: one compile serves all three
SIMULATION = SMALL


@pytest.fixture(scope="module")
def compiled(small_compiled):
    """The model of one simulated panel, compiled with cached callbacks (the session's, tests/conftest.py)."""
    return small_compiled


def points(n_dim: int, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.normal(scale=0.5, size=n_dim) for _ in range(n)]


def test_log_density_and_gradient_are_those_of_the_pytensor_function_bit_for_bit(compiled):
    """The callback calls PyTensor's compiled function, as nutpie's own callback does, and changes no bit of it."""
    for x in points(compiled.n_dim):
        code, value, grad = call_logp(compiled, x)
        their_value, their_grad = compiled.logp_func(x)
        assert code == 0
        assert value == float(their_value) and grad.tobytes() == their_grad.tobytes()


def test_expanded_draws_are_those_of_the_pytensor_function_bit_for_bit(compiled):
    for x in points(compiled.n_dim):
        code, out = call_expand(compiled, x)
        assert code == 0 and out.size == compiled.n_expanded
        assert out.tobytes() == compiled.expand_func(x)[0].tobytes()


def test_new_data_swapped_in_reach_the_callback(compiled):
    """``with_data`` rewrites the pointers of the user_data record, which the generated code reads."""
    shared = {var.name: var for var in compiled.logp_func.get_shared()}
    new = {"data_normal": shared["data_normal"].get_value() + 0.5,
           "data_negbin": shared["data_negbin"].get_value() + 1}
    x = points(compiled.n_dim, 1)[0]
    before = call_logp(compiled, x)[1]
    code, value, grad = call_logp(compiled.with_data(**new), x)
    old = {name: shared[name].get_value() for name in new}
    try:
        for name, values in new.items():
            shared[name].set_value(values)
        their_value, their_grad = compiled.logp_func(x)
    finally:
        for name, values in old.items():
            shared[name].set_value(values)
    assert code == 0 and value != before
    assert value == float(their_value) and grad.tobytes() == their_grad.tobytes()


def test_a_new_process_loads_the_callbacks_from_disk(compiled, fresh_process):
    """What makes a second ``nexusbayes fit`` of a structure skip the compile: no numba compile of either.

    The new process is the session's :func:`tests.conftest.fresh_process`, which builds and compiles the model
    of the same panel as a fit does and prints its callbacks' cache hits and values at ``x``.
    """
    ours = compiled
    x, done = fresh_process
    assert np.array_equal(x, points(ours.n_dim, 1)[0])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[0])
    assert result["hits"] == [1, 1]
    assert result["logp"] == call_logp(ours, x)[1]
    np.testing.assert_array_equal(result["expand"], call_expand(ours, x)[1])


def test_a_graph_pytensor_cannot_cache_falls_back_to_nutpie_s_compile(monkeypatch):
    import nutpie.compile_pymc

    calls = []

    def compile_pymc_model(model, **kwargs):
        calls.append((kwargs, pytensor.config.numba__fastmath))
        return "nutpie's own"

    monkeypatch.setattr(nutpie_callbacks, "_graph_key", lambda function: None)
    monkeypatch.setattr(nutpie.compile_pymc, "compile_pymc_model", compile_pymc_model)
    sim = simulate(**SIMULATION)
    assert nutpie_callbacks.compile_model(build_model(sim.panel, sim.spec)) == "nutpie's own"
    assert calls == [({"default_initialization_strategy": "prior"}, False)]


def test_a_lean_compile_expands_with_the_full_compile_s_callback(compiled):
    """A lean compile's ``full_expand`` is the full compile's expand callback: its code, its numbers, its data."""
    sim = simulate(**SIMULATION)
    lean = nutpie_callbacks.compile_model(build_model(sim.panel, sim.spec), lean=True)
    expand = nutpie_callbacks.full_expand(lean)
    assert nutpie_callbacks.full_expand(compiled) is not None
    new = {"data_normal": compiled.shared_data[next(k for v, k in compiled.shared_var_keys.items()
                                                    if v.name == "data_normal")] + 0.5}
    swapped = nutpie_callbacks.full_expand(lean.with_data(**new))
    for x in points(compiled.n_dim):
        out, swapped_out = np.empty(compiled.n_expanded), np.empty(compiled.n_expanded)
        expand(x, out)
        assert out.tobytes() == call_expand(compiled, x)[1].tobytes()
        swapped(x, swapped_out)
        assert swapped_out.tobytes() == call_expand(compiled.with_data(**new), x)[1].tobytes()
    # one callback for both compiles of the structure: the lean one found it in this process's memo
    assert len({key for key in nutpie_callbacks._EXPANDS if key.startswith(
        nutpie_callbacks._graph_key(lean.expand_func))}) == 1
