"""A spec and a panel from what a caller passes: objects as they are, paths read."""

from __future__ import annotations

from pathlib import Path

from nexusbayes.data.panel import Panel
from nexusbayes.data.read import load_panel
from nexusbayes.errors import SpecError
from nexusbayes.spec.document import Spec, load_spec


# ---- fitting -------------------------------------------------------------------------------------
def resolve_spec(spec: Spec | str | Path) -> tuple[Spec, Path | list[Path] | None]:
    """A spec and its data path(s): read from a TOML file, or as given (with no data path)."""
    return (spec, None) if isinstance(spec, Spec) else load_spec(spec)


def resolve_panel(spec: Spec, data, data_path, need: str = "pass data=... or set `data` in the spec") -> Panel:
    """The panel to fit: ``data`` (a Panel, a table or path(s)), else the spec's own data file(s)."""
    if isinstance(data, Panel):
        return data
    source = data if data is not None else data_path
    if source is None:
        raise SpecError(f"spec {spec.name!r} names no data file: {need}")
    return load_panel(source, spec)
