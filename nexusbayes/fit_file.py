"""A saved fit's integrity: a SHA-256 digest of every stored variable and attribute, checked before loading.

:func:`seal` runs on a freshly written fit file: it reads every HDF5 dataset (netCDF variable, coordinate
or dimension) back and stores, in the root attributes, a digest list (:data:`DIGESTS_ATTR`, JSON) with each
dataset's shape, dtype, dimension names and the SHA-256 of its attributes and bytes, each group's
attributes' SHA-256 and each root attribute's SHA-256, plus the SHA-256 of that list (:data:`DIGEST_ATTR`).

:func:`verify` runs before xarray reads anything: it opens the file with h5py, checks the format from the
root attributes alone, then the digest list, the layout (groups, links, shapes: no array is read), the
declared size against :data:`MAX_FIT_BYTES`, and last the bytes of every dataset, in bounded blocks (counting
the posterior's non-finite draws on the way, so that a lazy load need not read them again). Any difference is
refused with a :class:`~nexusbayes.errors.FitFileError` naming the group and variable or attribute that changed.

The digests are not keyed: they detect a changed, damaged or incomplete file, not a forger who edits the
file and recomputes them; a loaded fit is therefore also checked for what the code downstream relies on
(:func:`check_contents`).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from nexusbayes.errors import FitFileError

#: The format written by :meth:`nexusbayes.fit.Fit.save` (``/1`` files had no per-variable digests).
FORMAT = "nexusbayes-fit/2"
OLD_FORMATS = ("nexusbayes-fit/1",)
#: Root attribute holding the digest list (JSON), and the one holding that list's SHA-256.
DIGESTS_ATTR = "nexusbayes_digests"
DIGEST_ATTR = "nexusbayes_digest"
#: HDF5 dimension bookkeeping that holds object references (addresses in the file, not values);
#: a dataset's dimensions are covered by their names instead.
REFERENCE_ATTRS = frozenset({"DIMENSION_LIST", "REFERENCE_LIST"})
#: The groups every fit has; load refuses a file without one of them.
REQUIRED_GROUPS = ("posterior", "sample_stats", "fit_data")
#: The most bytes of arrays a load will read (the largest benchmark fits hold a few GB).
MAX_FIT_BYTES = 16 * 2**30
#: The group whose draws :func:`verify` checks are finite (as :func:`nexusbayes.fit.fit` does after sampling).
FINITE_GROUP = "posterior"
#: Datasets are read and hashed in blocks of about this many bytes.
READ_BLOCK_BYTES = 64 * 2**20


# ---- writing ---------------------------------------------------------------------------------------
def seal(path: str | Path) -> None:
    """Add the digest list and its SHA-256 to the root attributes of the netCDF file ``path`` (in place)."""
    with h5py.File(path, "r+") as f:
        text = json.dumps(describe(f), sort_keys=True, separators=(",", ":"))
        f.attrs[DIGESTS_ATTR] = text
        f.attrs[DIGEST_ATTR] = _sha256(text.encode())


def describe(f: h5py.File) -> dict:
    """The digest list of an open file: root attributes, groups' attributes, and every dataset."""
    groups, variables = {}, {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            variables[name] = {**_layout(obj, name), "sha256": _dataset_digest(obj, name)}
        else:
            groups[name] = _attrs_digest(obj.attrs, name)

    f.visititems(visit)
    return {"attrs": {key: _attrs_digest(f.attrs, "", [key]) for key in _root_keys(f)},
            "groups": groups, "variables": variables}


# ---- reading ---------------------------------------------------------------------------------------
def verify(path: Path) -> None:
    """Refuse ``path`` unless it is a complete nexusbayes fit whose every byte is as it was saved.

    Raises
    ------
    FitFileError
        Naming what is wrong: not HDF5/netCDF, not a nexusbayes fit, an older format, a changed
        attribute, group or variable, a missing group, arrays larger than :data:`MAX_FIT_BYTES`, or
        NaN or infinite posterior draws.
    """
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FitFileError(f"{path}: not a readable netCDF file (truncated or corrupt?): {exc}") from None
    try:
        with f:
            _check_format(f, path)
            stored = _stored_digests(f, path)
            _check_root_attrs(f, stored, path)
            _check_layout(f, stored, path)
            _check_values(f, stored, path)
    except FitFileError:
        raise
    except _Unsupported as exc:
        raise FitFileError(f"{path}: {exc}, which Fit.save never writes; refusing the file") from None
    except Exception as exc:  # h5py raises many types for damaged files
        raise FitFileError(f"{path}: not a readable netCDF file (truncated or corrupt?): "
                           f"{type(exc).__name__}: {exc}") from None


def _check_format(f: h5py.File, path: Path) -> None:
    """The format attribute, read before anything else."""
    found = f.attrs.get("nexusbayes_format")
    found = found.decode(errors="replace") if isinstance(found, bytes) else found
    if found in OLD_FORMATS:
        raise FitFileError(f"{path}: saved by an earlier nexusbayes (format {found!r}), whose files have no "
                           "digest of each variable, so its draws cannot be checked; refit "
                           f"(`nexusbayes fit SPEC`) to save it in the current format {FORMAT!r}")
    if found != FORMAT:
        what = "no nexusbayes_format attribute" if found is None else f"format {str(found)[:40]!r}"
        raise FitFileError(f"{path}: not a nexusbayes fit ({what}; expected format {FORMAT!r}); "
                           "save fits with Fit.save")


def _stored_digests(f: h5py.File, path: Path) -> dict:
    """The digest list, checked against its own SHA-256."""
    text, digest = f.attrs.get(DIGESTS_ATTR), f.attrs.get(DIGEST_ATTR)
    if not isinstance(text, str) or not isinstance(digest, str):
        raise FitFileError(f"{path}: the digest list ({DIGESTS_ATTR}, {DIGEST_ATTR}) is missing: the file was "
                           "not written by Fit.save or was modified after; refit from the original spec and data")
    if _sha256(text.encode()) != digest:
        raise _changed(path, f"the digest list ({DIGESTS_ATTR})")
    stored = json.loads(text)
    if not (isinstance(stored, dict) and {"attrs", "groups", "variables"} <= stored.keys()):
        raise _changed(path, f"the digest list ({DIGESTS_ATTR})")
    return stored


def _check_root_attrs(f: h5py.File, stored: dict, path: Path) -> None:
    keys = _root_keys(f)
    for key in sorted(set(keys) | set(stored["attrs"])):
        if key not in stored["attrs"] or key not in keys or _attrs_digest(f.attrs, "", [key]) != stored["attrs"][key]:
            raise _changed(path, f"the root attribute {key!r}")


def _check_layout(f: h5py.File, stored: dict, path: Path) -> None:
    """Groups, links, and each dataset's shape, dtype and dims against the digest list; no array is read."""
    for group in REQUIRED_GROUPS:
        if not isinstance(f.get(group, getlink=True), h5py.HardLink) or not isinstance(f[group], h5py.Group):
            raise FitFileError(f"{path}: the {group!r} group is missing: the file is incomplete (not written by "
                               "Fit.save, or the group was deleted); refit from the original spec and data")
    groups, variables = {}, {}
    pending = [("", f)]
    while pending:
        prefix, group = pending.pop()
        for key in group:
            name = f"{prefix}{key}"
            if not isinstance(group.get(key, getlink=True), h5py.HardLink):
                raise FitFileError(f"{path}: {name} is a link to elsewhere (a soft or external link), which "
                                   "Fit.save never writes; refit from the original spec and data")
            obj = group[key]
            if isinstance(obj, h5py.Group):
                groups[name] = obj
                pending.append((f"{name}/", obj))
            else:
                variables[name] = obj
    for kind, found in (("group", groups), ("variable", variables)):
        want = stored[f"{kind}s"]
        for name in sorted(set(found) ^ set(want)):
            change = "was added" if name in found else "is missing"
            raise FitFileError(f"{path}: the {kind} {name} {change} since the file was saved; the file was "
                               "modified or damaged: refit from the original spec and data")
    total = 0
    for name, ds in variables.items():
        entry = stored["variables"][name]
        if _layout(ds, name) != {k: entry.get(k) for k in ("shape", "dtype", "dims")}:
            raise _changed(path, f"the shape, type or dimensions of {name}")
        total += math.prod(ds.shape) * ds.dtype.itemsize
    if total > MAX_FIT_BYTES:
        raise FitFileError(f"{path}: its arrays hold {total / 2**30:.1f} GiB, more than the "
                           f"{MAX_FIT_BYTES / 2**30:.0f} GiB a fit file may hold; refusing to read it")


def _check_values(f: h5py.File, stored: dict, path: Path) -> None:
    """Every digest; then, from the same single read of the bytes, that the posterior's draws are finite."""
    for name, digest in stored["groups"].items():
        if _attrs_digest(f[name].attrs, name) != digest:
            raise _changed(path, f"the attributes of group {name}")
    bad = []
    for name, entry in stored["variables"].items():
        counts = [0, 0] if name.startswith(FINITE_GROUP + "/") and f[name].dtype.kind == "f" else None
        if _dataset_digest(f[name], name, counts) != entry["sha256"]:
            raise _changed(path, f"the variable {name}")
        if counts and any(counts):
            bad.append(f"{name.removeprefix(FINITE_GROUP + '/')}: {counts[0]} NaN, {counts[1]} infinite of "
                       f"{math.prod(f[name].shape)}")
    if bad:
        raise FitFileError(f"{path}: the posterior holds non-finite draws ({'; '.join(bad)}), which Fit.save never "
                           "writes: the file was modified or damaged; refit from the original spec and data")


def _changed(path: Path, what: str) -> FitFileError:
    return FitFileError(f"{path}: {what} changed after the file was saved (its SHA-256 does not match): the file "
                        "was modified or damaged; refit from the original spec and data, or use an intact copy")


# ---- digests ---------------------------------------------------------------------------------------
class _Unsupported(Exception):
    """A stored value of a type that Fit.save never writes (opaque bytes, compound, references)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _root_keys(f: h5py.File) -> list[str]:
    return sorted(k for k in f.attrs if k not in (DIGESTS_ATTR, DIGEST_ATTR))


def _layout(ds: h5py.Dataset, name: str) -> dict:
    """Shape, dtype and dimension names of a dataset (refusing dtypes that Fit.save never writes)."""
    string = h5py.check_string_dtype(ds.dtype)
    if string is None and (ds.dtype.kind not in "biuf" or h5py.check_enum_dtype(ds.dtype) is not None):
        raise _Unsupported(f"the variable {name} holds values of type {ds.dtype} (not numbers or text)")
    dtype = "str" if string is not None else ds.dtype.str
    dims = [[scale.name for scale in dim.values()] for dim in ds.dims]
    return {"shape": list(ds.shape), "dtype": dtype, "dims": dims}


def _dataset_digest(ds: h5py.Dataset, name: str, non_finite: list[int] | None = None) -> str:
    """SHA-256 of a dataset's attributes and values, read in blocks of about :data:`READ_BLOCK_BYTES`.

    With ``non_finite`` (``[0, 0]``), its NaN and infinite values are counted into it as they are read.
    """
    h = hashlib.sha256(_attrs_digest(ds.attrs, name).encode())
    blocks = []
    if ds.shape == ():
        blocks = [ds[()]]
    elif math.prod(ds.shape):
        row = max(1, math.prod(ds.shape[1:]) * ds.dtype.itemsize)
        step = max(1, READ_BLOCK_BYTES // row)
        blocks = (ds[start:start + step] for start in range(0, ds.shape[0], step))
    for block in blocks:
        _hash_value(h, block)
        if non_finite is not None:
            non_finite[0] += int(np.isnan(block).sum())
            non_finite[1] += int(np.isinf(block).sum())
    return h.hexdigest()


def _attrs_digest(attrs: h5py.AttributeManager, where: str, keys: list[str] | None = None) -> str:
    """SHA-256 of attributes (all but the dimension references, or ``keys``), by name and value."""
    h = hashlib.sha256()
    for key in sorted(attrs) if keys is None else keys:
        if key in REFERENCE_ATTRS:
            continue
        h.update(_framed(key.encode()))
        try:
            _hash_value(h, attrs[key])
        except _Unsupported:
            raise _Unsupported(f"the attribute {key!r} of {where or 'the root'} holds a value that is neither "
                               "numbers nor text (e.g. opaque bytes)") from None
    return h.hexdigest()


def _hash_value(h, value) -> None:
    """Feed ``h`` an unambiguous encoding of a number, text or array of them: dtype, shape, then the values.

    Numbers go in as their bytes (no copy when the array is contiguous); text items each with their length.
    """
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind not in "biufSUO":
        raise _Unsupported("a value that is neither numbers nor text")
    h.update(_framed(f"{kind if kind == 'O' else arr.dtype.str}{list(arr.shape)}".encode()))
    if kind != "O":
        h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
        return
    for item in arr.ravel():
        item = item.encode() if isinstance(item, str) else item
        if not isinstance(item, bytes):
            raise _Unsupported("a value that is neither numbers nor text")
        h.update(_framed(item))


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


# ---- what a loaded fit must hold -------------------------------------------------------------------
def check_contents(tree: xr.DataTree, path: Path) -> None:
    """Refuse root attributes of the wrong type and a posterior without the traits' draws.

    What the summary and the report read: run facts as numbers or text, and ``theta`` with its dims.
    """
    for key in ("nexusbayes_spec", "nexusbayes_sha256", "nexusbayes_data_source"):
        if key not in tree.attrs:
            raise FitFileError(f"{path}: the root attribute {key!r} is missing; the file was not written by "
                               "Fit.save or was modified after; refit from the original spec and data")
    if "row_label" not in tree["fit_data"].dataset:
        raise FitFileError(f"{path}: the stored data (group fit_data) has no row_label variable; the file was not "
                           "written by Fit.save or was modified after; refit from the original spec and data")
    for key, value in tree.attrs.items():
        problem = _attr_problem(key, np.asarray(value))
        if problem:
            raise FitFileError(f"{path}: the root attribute {key!r} = {str(value)[:60]!r} is not {problem}; "
                               "the file was not written by Fit.save or was modified after; refit")
    post = tree["posterior"]
    theta = post.get("theta")
    want = ("chain", "draw", "region", "period", "trait")
    if theta is None or theta.dims != want or theta.dtype.kind != "f":
        raise FitFileError(f"{path}: the posterior has no draws of the traits (`theta` over {', '.join(want)}); "
                           "the file was not written by Fit.save or was modified after; refit")


def _attr_problem(key: str, value: np.ndarray) -> str:
    """What a root attribute should be, when it is not that ("" when it is fine)."""
    kind = value.dtype.kind
    real = value.shape == () and kind in "iuf" and bool(np.isfinite(value))
    if key.startswith("seconds_"):
        return "" if real and value >= 0 else "a number of seconds (finite, not negative)"
    if key == "target_accept":
        return "" if real and 0 < value < 1 else "a number between 0 and 1"
    if key in ("draws", "tune", "chains", "seed", "draws_cap", "check_every"):
        return "" if value.shape == () and kind in "iu" and value >= 0 else "a whole number (not negative)"
    if key.startswith("orientation_reflected_"):
        fine = kind in "iuf" and value.ndim <= 1 and bool(np.all((value >= 0) & (value <= 1)))
        return "" if fine else "a list of shares between 0 and 1"
    if key in ("sampler", "adaptation", "compile_source", "stopped_by") or key.startswith(("nexusbayes_", "version_")):
        return "" if value.shape == () and kind in "UO" and isinstance(value.item(), str) else "text"
    return ""
