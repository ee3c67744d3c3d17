"""Compile once, fit many: an in-process cache of nutpie-compiled models, keyed by the model's structure.

Every value the model takes from the data (observations, centring constants, exposures, trials) is a
data container (see :func:`nexusbayes.model.build.build_model`), so the compiled log-density depends only on
the *structure*: the spec (less its ``[sampler]`` and ``data``), the coordinates (names of countries,
regions, periods, indicators, raters), the index of every observation and the times of the periods.
Two panels with the same structure share one compiled model; the second fit swaps its data in with
nutpie's ``with_data`` instead of compiling (about 20-40 s on 2 cores for the bundled examples).

Across processes, :mod:`nexusbayes.inference.nutpie_callbacks` keeps nutpie's compiled callbacks in PyTensor's
on-disk numba cache (``~/.pytensor``), and this module a JSON layout per structure beside them (``LAYOUT_DIR``):
a new process fitting a structure compiled before loads the callbacks by their layout, without building or
rewriting PyTensor graphs. A layout is keyed by the structure and by everything else that can change the
compiled code: the versions of nexusbayes, PyMC, PyTensor, numba and nutpie, the package's own source and
PyTensor's graph flags; a layout whose callbacks are not on disk is compiled again.

Examples
--------
>>> from nexusbayes.model.simulate import simulate
>>> a, b = simulate(n_regions=3, n_periods=4, seed=1), simulate(n_regions=3, n_periods=4, seed=2)
>>> structure_key(a.panel, a.spec) == structure_key(b.panel, b.spec)     # same shape, other values
True
>>> c = simulate(n_regions=3, n_periods=4, missing=0.2, seed=1)
>>> structure_key(a.panel, a.spec) == structure_key(c.panel, c.spec)     # other missing cells
False
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import threading
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.link.numba.cache import NUMBA_CACHE_PATH

from nexusbayes.data.panel import Panel
from nexusbayes.inference import nutpie_callbacks
from nexusbayes.spec.document import Spec

#: Where :func:`compile_nutpie` found a compiled model (the fit's ``compile_source`` attribute), in words.
SOURCES = {"compiled": "compiled anew", "process": "reused from an earlier fit of the same structure in this process",
           "disk": "loaded from the on-disk cache: the same structure was compiled before"}

#: Compiled models kept per process (least recently used dropped first).
MAX_MODELS = 8

#: One empty file per structure compiled on this machine (see :func:`compiled_before`), beside the compiled code
#: in PyTensor's numba cache, so that emptying that cache forgets them too.
MARKER_DIR: Path = NUMBA_CACHE_PATH / "nexusbayes-structures"

#: One JSON layout per structure compiled on this machine (see :func:`compile_nutpie`).
LAYOUT_DIR: Path = NUMBA_CACHE_PATH / "nexusbayes-layouts"

_CACHE: collections.OrderedDict[str, object] = collections.OrderedDict()
_LOCK = threading.Lock()
_STRUCTURE_COLUMNS = ("region_idx", "period_idx", "indicator_idx", "country_idx", "rater_idx")

#: Folder, in PyTensor's compile directory, of the Python source PyTensor generates while compiling.
GENERATED_SRC_DIR = "nexusbayes_generated_src"


def own_generated_src() -> None:
    """Keep PyTensor's generated source in a folder of the compile directory, not the temp folder.

    By default PyTensor writes each generated function (numba's, for nutpie) to a new file in the
    system temporary folder and never removes it: about 60 files per fit. With
    ``config.generated_src_dir`` set, each source is one content-addressed file that later compiles
    reuse, and PyTensor removes those unused for long at exit. A folder the user chose is kept.
    """
    if not pytensor.config.generated_src_dir:
        pytensor.config.generated_src_dir = str(Path(pytensor.config.compiledir) / GENERATED_SRC_DIR)


own_generated_src()


def structure_key(panel: Panel, spec: Spec, salt: str = "") -> str:
    """SHA-256 of what the compiled model depends on besides its data containers.

    The spec without ``[sampler]`` and ``data``; the panel's countries, regions, periods and their
    times, indicators, raters and the region-country map; each observation's and non-report's integer indices;
    and ``salt``, what else a model that is not the spec's own graph depends on (an update's held values).
    """
    raw = spec.to_dict()
    raw.pop("sampler", None)
    raw.pop("data", None)
    frame = panel.frame
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode() + salt.encode())
    digest.update(json.dumps({"countries": list(map(str, panel.countries)), "regions": list(map(str, panel.regions)),
                              "periods": list(map(str, panel.periods)), "indicators": list(panel.indicators),
                              "raters": list(map(str, panel.raters))}, sort_keys=True).encode())
    for array in (np.asarray(panel.period_time, dtype=float), np.asarray(panel.region_country, dtype=np.int64),
                  *(frame[c].to_numpy(np.int64) for c in _STRUCTURE_COLUMNS if c in frame),
                  # the non-reports set the reporting model's cells (none: no bytes, the key of a panel without)
                  *(panel.not_reported[c].to_numpy(np.int64) for c in _STRUCTURE_COLUMNS if c in panel.not_reported)):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def data_values(model: pm.Model) -> dict[str, np.ndarray]:
    """The current values of the model's data containers, by name."""
    return {name: var.get_value() for name, var in model.named_vars.items() if isinstance(var, SharedVariable)}


def lookup(panel: Panel, spec: Spec, values: dict[str, np.ndarray], lean: bool = False):
    """The cached compiled model of this structure given ``values`` (``with_data``), or None.

    Parameters
    ----------
    panel : Panel
    spec : Spec
    values : dict of str to numpy.ndarray
        Every data container's value (:func:`data_values` of the model built from ``panel`` and
        ``spec``); a model is returned only if every value survives its container's dtype unchanged
        (e.g. no count beyond int32 on a model compiled with int32 counts).
    lean : bool
        The model whose trace holds the unconstrained draws alone (see :func:`compile_nutpie`).
    """
    return _lookup(structure_key(panel, spec, _lean_salt(lean)), values)


def _lookup(key: str, values: dict[str, np.ndarray]):
    with _LOCK:
        compiled = _CACHE.get(key)
        if compiled is not None:
            _CACHE.move_to_end(key)
    if compiled is None:
        return None
    # only what the compiled functions read: a container only forward sampling uses (a heap's inflated values)
    # is not in them, and its value cannot change the draws
    values = {name: value for name, value in values.items() if name in _container_names(compiled)}
    if not _fits(compiled, values):
        return None
    return compiled.with_data(**values)


def _container_names(compiled) -> set[str]:
    return {var.name for var in compiled.shared_var_keys}


def compile_nutpie(model: pm.Model, panel: Panel, spec: Spec, salt: str = "", lean: bool = False):
    """The nutpie-compiled ``model``: from the cache when its structure was compiled before in this process.

    Otherwise, when a process compiled the structure before, its callbacks are loaded by the structure's layout
    (:func:`nexusbayes.inference.nutpie_callbacks.load_model`: no PyTensor function is built, the model's
    ``logp_func`` and ``expand_func`` are None); else :func:`nexusbayes.inference.nutpie_callbacks.compile_model`
    compiles it (loading its callbacks from disk when they are there) and its layout is stored.

    Parameters
    ----------
    model : pymc.Model
        Built by :func:`nexusbayes.model.build.build_model` from ``panel`` and ``spec``.
    panel : Panel
    spec : Spec
    salt : str
        What else the model depends on (see :func:`structure_key`).
    lean : bool
        Compile the model whose nutpie trace holds the unconstrained draws alone
        (:func:`nexusbayes.inference.nutpie_callbacks.compile_model`); cached apart from the other.

    Returns
    -------
    compiled : nutpie CompiledModel
        With the data of ``model`` (see :func:`lookup`).
    source : {"process", "disk", "compiled"}
        Where it came from: this process's cache, the callbacks loaded from disk, or a compile.
    """
    key = structure_key(panel, spec, salt + _lean_salt(lean))   # hashes every observation's indices: once per call
    compiled = _lookup(key, data_values(model))
    if compiled is not None:
        return compiled, "process"
    layout = _read_layout(key)
    compiled = None if layout is None else nutpie_callbacks.load_model(model, layout)
    if compiled is None:
        compiled = nutpie_callbacks.compile_model(model, lean=lean)
        _write_layout(key, getattr(compiled, "layout", None))
    with _LOCK:
        _CACHE[key] = compiled
        while len(_CACHE) > MAX_MODELS:
            _CACHE.popitem(last=False)
    _mark_compiled(key)
    return compiled, "disk" if nutpie_callbacks.loaded_from_disk(compiled) else "compiled"


def compiled_before(panel: Panel, spec: Spec, salt: str = "", lean: bool = False) -> bool:
    """Whether a model of this structure was compiled before, in this process or on this machine.

    A hint for telling the user whether a fit will spend minutes compiling (nothing is loaded): a new
    process finds a marker that :func:`compile_nutpie` leaves in PyTensor's numba cache (``MARKER_DIR``)
    for each structure it compiled, under the versions of nexusbayes and of the libraries that compile.
    """
    key = structure_key(panel, spec, salt + _lean_salt(lean))
    with _LOCK:
        if key in _CACHE:
            return True
    return _marker(key).exists()


def _lean_salt(lean: bool) -> str:
    """What sets the lean model's key apart (none for the other: the keys of earlier versions)."""
    return "\nlean trace" if lean else ""


def _marker(key: str) -> Path:
    name = hashlib.sha256(f"{key} {_versions()} {nutpie_callbacks.CALLBACK_VERSION}".encode()).hexdigest()
    return MARKER_DIR / name


def layout_path(key: str) -> Path:
    """Where the layout of the structure ``key`` is stored under this code (see :func:`compile_nutpie`)."""
    flags = {name: str(getattr(pytensor.config, name)) for name in _GRAPH_FLAGS}
    name = hashlib.sha256(json.dumps([key, _versions(), nutpie_callbacks.CALLBACK_VERSION, source_digest(), flags],
                                     sort_keys=True).encode()).hexdigest()
    return LAYOUT_DIR / f"{name}.json"


#: PyTensor's settings that change the graphs it compiles (and so the callbacks' code).
_GRAPH_FLAGS = ("floatX", "optimizer", "optimizer_excluding", "optimizer_including", "optimizer_requiring",
                "numba__cache")


@functools.cache
def source_digest() -> str:
    """SHA-256 of the package's Python source: a layout is not reused after any of it changed (a new install)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _read_layout(key: str) -> dict | None:
    try:
        return json.loads(layout_path(key).read_text())
    except (OSError, ValueError):     # none stored (or unreadable: compiled again, and stored anew)
        return None


def _write_layout(key: str, layout: dict | None) -> None:
    """Store ``layout`` (JSON, written whole or not at all); none when the callbacks have none."""
    if layout is None or layout["shared"] is None:
        return
    path = layout_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(layout))
        os.replace(temporary, path)
    except OSError:         # a read-only cache directory: the next process compiles again
        pass


def _versions() -> str:
    return " ".join(version(lib) for lib in ("nexusbayes", "pymc", "pytensor", "numba", "nutpie"))


def _mark_compiled(key: str) -> None:
    """Leave the marker of :func:`compiled_before` (a read-only cache directory only loses the hint)."""
    try:
        MARKER_DIR.mkdir(parents=True, exist_ok=True)
        _marker(key).touch()
    except OSError:
        pass


def _fits(compiled, values: dict[str, np.ndarray]) -> bool:
    """Whether every value fits a data container of the compiled model (see :func:`misfits`)."""
    # the compiled model also holds the lengths of the model's dims (structural, so in the key)
    current = {var.name: compiled.shared_data[key] for var, key in compiled.shared_var_keys.items()}
    return set(values) <= set(current) and not misfits(values, current)


def misfits(values: dict[str, np.ndarray], containers: dict[str, np.ndarray]) -> list[str]:
    """Names of ``values`` whose rank differs from their container's or that its dtype would change.

    E.g. a count above 2**31 for an int32 container: wrapped silently by ``with_data``, so it must be
    compiled anew (the cache) or refused (SBC) instead.

    Examples
    --------
    >>> misfits({"y": np.array([1, 2**40])}, {"y": np.zeros(2, dtype=np.int32)})
    ['y']
    """
    bad = []
    for name, value in values.items():
        old, value = containers[name], np.asarray(value)
        if value.ndim != old.ndim or not np.array_equal(value.astype(old.dtype), value):
            bad.append(name)
    return bad


def clear() -> None:
    """Forget every compiled model (the next fit of each structure compiles again)."""
    with _LOCK:
        _CACHE.clear()
