"""nutpie's compiled model with its two C callbacks cached on disk, so that a new process skips the compile.

nutpie samples through two C callbacks: the log density with its gradient, and the "expand" function that
maps a draw to the model's variables. Its own compile (``nutpie.compile_pymc_model``) builds both with
``numba.cfunc`` from closures that numba cannot cache (their globals change with every compile), so every
process compiled them anew: about 20 s on 2 cores for the Kyrgyzstan example even with PyTensor's on-disk
cache warm, because numba links the cached PyTensor function into the callback and LLVM compiles the whole
of it again.

Here the callbacks are generated as source whose only globals are the PyTensor-compiled function (cached
by PyTensor under a key derived from its graph) and constants, and registered in PyTensor's numba cache
under a key made of that graph key and the generated source. numba then stores the finished callback (its
machine code) in PyTensor's cache directory, and a later process with the same model structure loads it in
well under a second. The data stay outside the code, in nutpie's ``user_data`` record (pointers, sizes
and shapes), so a cached callback serves every dataset of the same structure, and ``with_data`` works as
with nutpie's own compile.

To find a callback that key needs PyTensor's graph, built and rewritten (most of a cached load's time), so
:func:`compile_model` also gives the compiled model its ``layout``: JSON of the graphs' keys, the data arrays'
names, dtypes and ranks, and the variables' names and shapes. :func:`load_model` makes the same compiled model
from a layout and the model's data without PyTensor (:mod:`nexusbayes.inference.compile_cache` stores layouts
by structure and versions), or gives None when a callback is not on disk.

The result is a :class:`CachedModel`, a ``nutpie`` ``CompiledPyMCModel`` as from ``nutpie.compile_pymc_model(model,
default_initialization_strategy="prior")``: the same PyTensor functions and initial points, and callbacks
that compute the same numbers (the tests check the log density, gradient and expanded draws bit for bit
against the PyTensor functions; a short run with one seed gave nutpie's draws exactly).
It uses nutpie's internal helpers, so nutpie is pinned to the 0.16 series in ``pyproject.toml``; where
PyTensor gives no cache key (a graph it cannot cache) nutpie's own compile is used.

Examples
--------
>>> from nexusbayes.model.simulate import simulate
>>> from nexusbayes.model.build import build_model
>>> sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
>>> compiled = compile_model(build_model(sim.panel, sim.spec))
>>> type(compiled).__name__, int(compiled.n_dim)
('CachedModel', 51)
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from functools import partial

import numba
import numpy as np
import pymc as pm
import pytensor
from numba.core import cgutils, types
from numba.core.ccallback import CFunc
from numba.core.sigutils import normalize_signature
from numba.extending import intrinsic
from nutpie.compile_pymc import CompiledPyMCModel
from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

#: Part of the cache key, with PyTensor's key of the wrapped graph and the generated source: raise it when
#: the callbacks change in a way their source does not show (e.g. ``_address_as_pointer``).
CALLBACK_VERSION = 2

# nutpie's callback protocol (its ``_make_c_logp_func`` and ``_make_c_expand_func``): 0 on success
_TEMPLATES = {
    "logp": """\
def logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        words = carray(user_data_, ({n_words},), np.uint64)
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_dim},))
        logp = carray(logp_, ())
        {reads}
        value, grad = inner(x{args})
        logp[()] = value
        out[:] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(value):
            return 4
    except Exception:
        return 1
    return 0
""",
    "expand": """\
def expand_callback(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim} or expanded != {n_expanded}:
        return -1
    try:
        words = carray(user_data_, ({n_words},), np.uint64)
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_expanded},))
        {reads}
        (values,) = inner(x{args})
        out[:] = values
    except Exception:
        return -2
    return 0
""",
}

_LOGP_SIGNATURE = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                              types.CPointer(types.double), types.voidptr)
_EXPAND_SIGNATURE = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                                types.CPointer(types.double), types.voidptr)


@intrinsic
def _address_as_pointer(typingctx, address):
    """The ``void *`` at an integer address (a pointer stored in the ``user_data`` record)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


def compile_model(model: pm.Model, lean: bool = False):
    """``nutpie.compile_pymc_model(model, default_initialization_strategy="prior")``, its callbacks cached on disk.

    Parameters
    ----------
    model : pymc.Model
    lean : bool
        Let nutpie's trace hold the unconstrained draw alone (its expand callback is the identity), not every
        variable: about half the values per draw on the trait model (its deterministics, theta first). The
        compiled model's ``expand_func`` is still the PyTensor function of every variable, and its ``shapes``
        every variable's, for :mod:`nexusbayes.inference.lean_trace` to compute them from the unconstrained
        draws after sampling (the same function the callback calls otherwise: the same values).

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Its ``compiled_logp_func`` and ``compiled_expand_func`` are numba ``CFunc`` objects (see
        :func:`loaded_from_disk`).
    """
    from nutpie import compile_pymc
    from pymc.initial_point import make_initial_point_fn

    # chains start from independent prior draws, so agreement between chains tests identification
    initial_point_fn = compile_pymc._wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="prior", jitter_rvs=None, return_transformed=True))
    # Without fast-math flags: with them (PyTensor's default) LLVM may contract, reassociate and approximate
    # differently when an operation's code comes from PyTensor's on-disk cache than when it is compiled anew,
    # so a fixed seed gave other chains depending on what the cache held; without the flags the bits are the
    # same, at no measurable cost per step (see benchmarks/HISTORY.md).
    with pytensor.config.change_flags(numba__fastmath=False):
        n_dim, n_expanded, logp_pt, expand_pt, initial_point_fn, shape_info, reparameterized = \
            compile_pymc._make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                                         pymc_initial_point_fn=initial_point_fn)
        trace_pt = _identity(n_dim) if lean else expand_pt
        keys = [_graph_key(logp_pt), _graph_key(trace_pt)]
        if None in keys:
            return compile_pymc.compile_pymc_model(model, default_initialization_strategy="prior")
    shared_var_keys = {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared(), *trace_pt.get_shared()]:
        if var not in shared_var_keys:
            shared_var_keys[var] = f"s{len(shared_var_keys)}"     # the record's field names; nutpie uses random ones
    layout = {"n_dim": int(n_dim), "n_expanded": int(n_expanded), "lean": lean, "n_free": len(model.free_RVs),
              "variables": [[name, int(part.start), int(part.stop), [int(d) for d in shape]]
                            for name, part, shape in zip(*shape_info, strict=True)],
              "reparameterized": list(reparameterized), "shared": _shared_layout(model, shared_var_keys),
              **{kind: {"graph_key": key, "keys": [shared_var_keys[v] for v in function.get_shared()]}
                 for kind, function, key in (("logp", logp_pt, keys[0]), ("trace", trace_pt, keys[1]),
                                             ("expand", expand_pt, _graph_key(expand_pt)))}}
    return _assemble(model, layout, shared_var_keys, initial_point_fn, {"trace": trace_pt.vm.jit_fn,
                     "logp": logp_pt.vm.jit_fn}, logp_pt, expand_pt)


@dataclasses.dataclass(frozen=True)
class CachedModel(CompiledPyMCModel):
    """nutpie's compiled model with its ``layout`` (JSON: what loads it again, see :func:`load_model`) and ``model``.

    ``model`` (the PyMC model) lets :func:`full_expand` compile the expand function of a loaded model when its
    callback is not on disk.
    """

    layout: dict | None = None
    model: pm.Model | None = None


def load_model(model: pm.Model, layout: dict):
    """The compiled model of :func:`compile_model` from its ``layout`` and the callbacks' machine code on disk.

    Nothing of PyTensor is built or rewritten: the callbacks are loaded from PyTensor's numba cache under the
    keys ``layout`` gives (their graphs' keys and the sources generated from the layout and ``model``'s data);
    the model's ``logp_func`` and ``expand_func`` are None. The same callbacks and initial points as the
    compile gave, so the same draws for a seed.

    Parameters
    ----------
    model : pymc.Model
        A model of the structure ``layout`` was made for (the caller keys layouts by structure and versions).
    layout : dict
        ``compiled.layout`` of a :func:`compile_model` (JSON).

    Returns
    -------
    CachedModel or None
        None when a callback is not in the cache or ``model``'s data do not fit the layout (compile instead).
    """
    from nutpie import compile_pymc
    from pymc.initial_point import make_initial_point_fn

    containers = {"dim": model.dim_lengths, "data": model.named_vars}
    shared_var_keys = {}
    for i, (kind, name, dtype, ndim) in enumerate(layout["shared"]):
        var = containers[kind].get(name)
        if var is None or var.type.dtype != dtype or var.type.ndim != ndim:
            return None
        shared_var_keys[var] = f"s{i}"
    free = layout["variables"][:layout["n_free"]]
    initial_point_fn = compile_pymc._rv_dict_to_flat_array_wrapper(
        compile_pymc._wrap_with_lock(make_initial_point_fn(
            model=model, default_strategy="prior", jitter_rvs=None, return_transformed=True)),
        names=[name for name, *_ in free], shapes=[tuple(shape) for *_, shape in free])
    return _assemble(model, layout, shared_var_keys, initial_point_fn, None, None, None)


def _assemble(model, layout, shared_var_keys, initial_point_fn, inner, logp_pt, expand_pt):
    """The :class:`CachedModel` of ``layout``; its callbacks compiled from ``inner`` or, without it, loaded only."""
    from nutpie import compile_pymc

    shared_data = {}
    for var, key in shared_var_keys.items():
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
    user_data = compile_pymc.make_user_data(shared_var_keys, shared_data)
    n_dim, lean = layout["n_dim"], layout["lean"]
    n_trace = n_dim if lean else layout["n_expanded"]
    callbacks = []
    for kind, template, signature in (("logp", "logp", _LOGP_SIGNATURE), ("trace", "expand", _EXPAND_SIGNATURE)):
        source = _callback_source(template, layout[kind]["keys"], user_data.dtype, shared_data, n_dim=n_dim,
                                  n_expanded=n_trace)
        graph_key = layout[kind]["graph_key"]
        cfunc = (_cached_cfunc(source, template, inner[kind], graph_key, signature) if inner
                 else _loaded_cfunc(source, template, graph_key, signature))
        if cfunc is None:
            return None
        callbacks.append(cfunc)
    shape_info = ([name for name, *_ in layout["variables"]], [slice(a, b) for _, a, b, _ in layout["variables"]],
                  [tuple(shape) for *_, shape in layout["variables"]])
    # the trace's variables: the free ones' unconstrained values (first in nutpie's layout), or all
    trace_info = tuple(part[:layout["n_free"]] for part in shape_info) if lean else shape_info
    dims, coords = compile_pymc._prepare_dims_and_coords(model, shape_info, layout["reparameterized"])
    return CachedModel(
        _n_dim=n_dim, dims=dims, _coords=coords, _shapes=dict(zip(shape_info[0], shape_info[2], strict=True)),
        compiled_logp_func=callbacks[0], compiled_expand_func=callbacks[1], initial_point_func=initial_point_fn,
        shared_data=shared_data, shared_var_keys=shared_var_keys, user_data=user_data, n_expanded=n_trace,
        shape_info=trace_info, logp_func=logp_pt, expand_func=expand_pt,
        reparameterized_names=list(layout["reparameterized"]), layout=layout, model=model)


def _shared_layout(model: pm.Model, shared_var_keys: dict) -> list | None:
    """Each data container's kind (a dim's length or a named container), name, dtype and rank; None if unnamed."""
    shared = []
    for var in shared_var_keys:
        if model.dim_lengths.get(var.name) is var:
            kind = "dim"
        elif model.named_vars.get(var.name) is var:
            kind = "data"
        else:
            return None
        shared.append([kind, var.name, var.type.dtype, var.type.ndim])
    return shared


def _identity(n_dim: int):
    """The PyTensor function (numba) returning its unconstrained point: the expand callback of a lean trace."""
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as compile_pymc

    point = pt.TensorType("float64", shape=(n_dim,))(name="_unconstrained_point")
    return compile_pymc((point,), [point.copy()], mode="NUMBA")


def loaded_from_disk(compiled) -> bool:
    """Whether both callbacks of ``compiled`` were loaded from the on-disk cache (nothing compiled by numba)."""
    return compiled.compiled_logp_func.cache_hits > 0 and compiled.compiled_expand_func.cache_hits > 0


def call_logp(compiled, x: np.ndarray) -> tuple[int, float, np.ndarray]:
    """The log-density callback at the unconstrained point ``x``, called as nutpie calls it.

    Returns
    -------
    code : int
        0, or what the callback reports (3: a gradient not finite, 4: a log density not finite, 1: an error).
    logp : float
    grad : numpy.ndarray
    """
    call, value, grad = logp_call(compiled, x)
    code = call()
    return code, float(value), grad


def logp_call(compiled, x: np.ndarray) -> tuple[Callable[[], int], np.ndarray, np.ndarray]:
    """The log-density callback at ``x`` with its arguments built once: ``(call, logp, grad)``.

    Each ``call()`` evaluates the callback and writes into the 0-d array ``logp`` and the array ``grad``
    (for timing the callback alone, as ``benchmarks.measure`` does); it returns the callback's code.
    """
    x, grad, value = np.ascontiguousarray(x, dtype=float), np.zeros(compiled.n_dim), np.zeros(())
    call = partial(compiled.compiled_logp_func.ctypes, compiled.n_dim, _pointer(x), _pointer(grad), _pointer(value),
                   ctypes.c_void_p(compiled.user_data.ctypes.data))
    return call, value, grad


def call_expand(compiled, x: np.ndarray) -> tuple[int, np.ndarray]:
    """The expand callback at ``x``: its return code (0 when it ran) and the model's variables, flattened."""
    x, out = np.ascontiguousarray(x, dtype=float), np.zeros(compiled.n_expanded)
    code = compiled.compiled_expand_func.ctypes(compiled.n_dim, compiled.n_expanded, _pointer(x), _pointer(out),
                                                ctypes.c_void_p(compiled.user_data.ctypes.data))
    return code, out


#: Full expand callbacks made by :func:`full_expand` in this process, by cache key (at most ``MAX_EXPANDS``).
_EXPANDS: dict[str, object] = {}
MAX_EXPANDS = 8


def full_expand(compiled) -> Callable[[np.ndarray, np.ndarray], None] | None:
    """The expand callback of every variable for ``compiled`` (lean or not): ``expand(x, out)`` fills ``out``.

    The callback a full compile gives nutpie (the same generated source and cache key, so a lean and a
    full compile of one structure share its machine code on disk), made on first use: a lean compile
    needs it only after sampling (:func:`nexusbayes.inference.lean_trace.to_tree`). It reads the data of
    ``compiled`` (``with_data`` included) and computes the numbers of ``compiled.expand_func`` bit for bit.
    None when PyTensor gives the expand function no cache key.

    Raises
    ------
    RuntimeError
        From ``expand`` when the callback reports an error.
    """
    layout = getattr(compiled, "layout", None)
    if layout is None or layout["expand"]["graph_key"] is None:
        return None
    n_dim, n_full = layout["n_dim"], layout["n_expanded"]
    source = _callback_source("expand", layout["expand"]["keys"], compiled.user_data.dtype, compiled.shared_data,
                              n_dim=n_dim, n_expanded=n_full)
    graph_key = layout["expand"]["graph_key"]
    memo = f"{graph_key}\n{source}"
    cfunc = _EXPANDS.get(memo) or _loaded_cfunc(source, "expand", graph_key, _EXPAND_SIGNATURE)
    if cfunc is None:
        cfunc = _cached_cfunc(source, "expand", _expand_function(compiled).vm.jit_fn, graph_key, _EXPAND_SIGNATURE)
    _EXPANDS[memo] = cfunc
    while len(_EXPANDS) > MAX_EXPANDS:
        del _EXPANDS[next(iter(_EXPANDS))]
    user_data = compiled.user_data

    def call(x: np.ndarray, out: np.ndarray) -> None:
        code = cfunc.ctypes(n_dim, n_full, _pointer(x), _pointer(out), ctypes.c_void_p(user_data.ctypes.data))
        if code != 0:
            raise RuntimeError(f"the model's expand callback failed (code {code})")

    return call


def _expand_function(compiled):
    """The PyTensor expand function of ``compiled``; of a loaded model (none kept), compiled again from its model."""
    if compiled.expand_func is not None:
        return compiled.expand_func
    fresh = compile_model(compiled.model, lean=compiled.layout["lean"])
    if fresh.layout != compiled.layout:
        raise RuntimeError("the model's compiled code differs from the layout its callbacks were loaded with; "
                           "delete the layouts in PyTensor's compile directory (pytensor.config.base_compiledir, "
                           "its numba/nexusbayes-layouts folder) and fit again")
    return fresh.expand_func


def _pointer(array: np.ndarray):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


def _graph_key(function) -> str | None:
    """PyTensor's numba cache key of a compiled function's graph, or None when PyTensor does not cache it."""
    if not pytensor.config.numba__cache:
        return None
    return CACHED_SRC_FUNCTIONS.get(function.vm.jit_fn.py_func)


def _callback_source(kind: str, shared_keys: list[str], record: np.dtype, shared_data: dict[str, np.ndarray],
                     **sizes: int) -> str:
    """Python source of one callback: read the data arrays out of the ``user_data`` record, call ``inner``.

    The record holds, per data array, its address, size and shape as 8-byte words (nutpie's layout, see
    ``nutpie.compile_pymc.make_user_data``); their word offsets are constants of the source, the values
    are read at every call.
    """
    def offset(part: str, key: str) -> int:
        shared = record["shared"]
        return (record.fields["shared"][1] + shared.fields[part][1] + shared[part].fields[key][1]) // 8

    reads, args = [], []
    for i, key in enumerate(shared_keys):
        array, data, size, shape = shared_data[key], offset("data", key), offset("size", key), offset("shape", key)
        dims = "".join(f"np.intp(words[{shape + d}]), " for d in range(array.ndim))
        reads.append(f"a{i} = carray(as_pointer(words[{data}]), (np.intp(words[{size}]),), "
                     f"np.{array.dtype.name}).reshape(({dims}))")
        args.append(f", a{i}")
    return _TEMPLATES[kind].format(n_words=record.itemsize // 8, reads="\n        ".join(reads), args="".join(args),
                                   **sizes)


def _inlined(inner):
    """A dispatcher of the Python function that ``inner`` runs, inlined where it is called (numba's IR).

    PyTensor's compiled function is a caching wrapper, ``def f(*args): return jitable_func(*args)``, around
    the graph's function, which calls each operation's function (each a wrapper of the same kind, cached
    on disk). numba cannot inline a function of ``*args``, so the graph's function is inlined instead.
    """
    function = inner.py_func
    if function.__code__.co_flags & inspect.CO_VARARGS:
        function = function.__globals__["jitable_func"].py_func
    return numba.njit(inline="always", fastmath=inner.targetoptions.get("fastmath", False),
                      no_cpython_wrapper=True, no_cfunc_wrapper=True)(function)


def _cached_cfunc(source: str, name: str, inner, graph_key: str, signature):
    """``numba.cfunc`` of the generated ``source``, stored in and loaded from PyTensor's numba cache.

    ``inner`` (PyTensor's compiled function, a numba dispatcher) is inlined into the callback in numba's IR,
    not compiled on its own and linked: its body is a sequence of calls to PyTensor's per-operation functions,
    which LLVM then links and optimises once, for the callback, instead of once for ``inner`` and again for
    the callback that links it.
    """
    cfunc = CFunc(_source_function(source, name, graph_key, _inlined(inner)), normalize_signature(signature), locals={},
                  options={})
    cfunc.enable_caching()
    cfunc.compile()
    return cfunc


def _loaded_cfunc(source: str, name: str, graph_key: str, signature):
    """The callback of :func:`_cached_cfunc` loaded from the cache, or None when it is not there (nothing compiled).

    Its key is that of :func:`_cached_cfunc` (numba indexes the machine code by the function's bytecode and
    signature): ``inner`` is not needed to load it.
    """
    cfunc = _LoadOnly(_source_function(source, name, graph_key, None), normalize_signature(signature), locals={},
                      options={})
    cfunc.enable_caching()
    try:
        cfunc.compile()
    except _NotCached:
        return None
    return cfunc


class _NotCached(LookupError):
    """A callback not in the on-disk cache (see :class:`_LoadOnly`)."""


class _LoadOnly(CFunc):
    """numba's C callback that is loaded from its cache or not made: a miss raises :class:`_NotCached`."""

    def _compile_uncached(self):
        raise _NotCached(self.__name__)


def _source_function(source: str, name: str, graph_key: str, inlined):
    """The Python function of ``source``, registered in PyTensor's numba cache under its key."""
    # the module's name is in the key: a loaded callback looks its environment up in that module
    key = hashlib.sha256(f"{CALLBACK_VERSION}\n{__name__}\n{graph_key}\n{source}".encode()).hexdigest()
    # a module name: numba rebuilds a loaded callback's environment from that module's namespace
    names = {"__name__": __name__, "carray": numba.carray, "np": np, "as_pointer": _address_as_pointer,
             "inner": inlined}
    return compile_numba_function_src(source, f"{name}_callback", names, cache_key=f"nexusbayes_{name}_{key}")
