"""A spec and a panel from what a caller passes: objects as they are, paths read."""

from __future__ import annotations

from pathlib import Path

from nexusbayes.data.covariates import attach_covariates
from nexusbayes.data.panel import Panel
from nexusbayes.data.read import load_panel
from nexusbayes.errors import SpecError
from nexusbayes.spec.document import Spec, load_spec


# ---- fitting -------------------------------------------------------------------------------------
def resolve_spec(spec: Spec | str | Path) -> tuple[Spec, Path | list[Path] | None]:
    """A spec and its data path(s): read from a TOML file, or as given (with no data path)."""
    return (spec, None) if isinstance(spec, Spec) else load_spec(spec)


def resolve_covariates(given: Spec | str | Path, spec: Spec, covariates=None):
    """The covariate table to read: ``covariates`` when given, else the spec's ``covariates.path``.

    The path is relative to the spec file (``given`` is that file's path); for a spec passed as an object it
    is taken as written (relative to the working directory). None when the spec has no ``[covariates]``.
    """
    if covariates is not None or spec.covariates is None or spec.covariates.path is None:
        return covariates
    return Path(spec.covariates.path) if isinstance(given, Spec) else (Path(given).parent / spec.covariates.path)


def resolve_panel(spec: Spec, data, data_path, need: str = "pass data=... or set `data` in the spec",
                  covariates=None) -> Panel:
    """The panel to fit: ``data`` (a Panel, a table or path(s)), else the spec's own data file(s).

    With ``[covariates]`` in the spec, the covariate table ``covariates`` (see :func:`resolve_covariates`)
    is read and attached, unless ``data`` is a Panel that already carries one.
    """
    if isinstance(data, Panel):
        return data if data.covariates is not None else attach_covariates(data, spec, covariates)
    source = data if data is not None else data_path
    if source is None:
        raise SpecError(f"spec {spec.name!r} names no data file: {need}")
    return attach_covariates(load_panel(source, spec), spec, covariates)
