"""Write a fit's run folder (netCDF + CSV tables + text summary) atomically, and its printed summary."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from nexusbayes.constants import TYPES
from nexusbayes.errors import OutputExistsError, SpecError
from nexusbayes.fit import Fit, atomic_write, temp_dir_beside

FIT_FILE = "fit.nc"


def default_out_dir(spec_name: str, base: str | Path = "reports") -> Path:
    """``reports/<name>``; the spec's name pattern keeps it inside ``base``, and this checks it again.

    A name that would resolve outside ``base`` (``..``, an absolute path, a symlink pointing out)
    is refused with a :class:`SpecError` before anything is written.
    """
    out = Path(base) / spec_name
    if (not spec_name or "\0" in spec_name or Path(spec_name).is_absolute()
            or Path(base).resolve() not in out.resolve().parents):
        raise SpecError(f"spec name {spec_name!r} would put the output outside {base}/; use only letters, "
                        "digits, '_', '.' and '-' (or pass --out DIR)")
    return out


def check_writable(out_dir: Path, overwrite: bool) -> None:
    """Refuse early (before sampling) when ``out_dir`` holds an earlier run and overwriting was not asked."""
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir} already holds an earlier run; pass --overwrite to replace it, "
                                "or --out DIR to write elsewhere")


def write_run(fit: Fit, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``fit.nc``, the CSV tables and ``summary.txt`` into ``out_dir``, all or nothing.

    Everything is written into a temporary folder beside ``out_dir`` and renamed into place at the
    end, so an interruption leaves any earlier run untouched.
    """
    out_dir = Path(out_dir)
    check_writable(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out_dir)
    try:
        fit.save(tmp / FIT_FILE)
        for name, table in tables(fit).items():
            table.to_csv(tmp / f"{name}.csv", index=False)
        (tmp / "summary.txt").write_text(summary_text(fit) + "\n", encoding="utf-8")
        _swap_in(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _swap_in(new: Path, out_dir: Path) -> None:
    """Rename ``new`` to ``out_dir``, moving an earlier ``out_dir`` aside first and deleting it last.

    If anything (Ctrl-C, SIGTERM, a full disk) interrupts between the two renames, the earlier
    folder is moved back, so ``out_dir`` is always either the old run or the complete new one.
    """
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    try:
        os.replace(new, out_dir)
    except BaseException:
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old)


def tables(fit: Fit) -> dict[str, pd.DataFrame]:
    """The result tables written beside the fit, by file stem.

    Floats keep four significant digits (:func:`nexusbayes.report.tables.rounded`).
    """
    from nexusbayes.report.tables import rounded
    from nexusbayes.typology import transitions_table

    out = {"traits": fit.trait_summary(), "diagnostics": fit.diagnostics.checks.reset_index(),
           "diagnostics_by_variable": fit.diagnostics.table.reset_index()}
    if fit.spec.has_typology:
        out["type_probabilities"] = fit.types_table()
        out["transitions"] = transitions_table(fit.transitions(), fit.region_country)
        out["transition_matrices"] = fit.transition_matrices()
        out["threshold_sensitivity"] = fit.threshold_sensitivity()
        groups = fit.group_era_summary()
        if len(groups):
            out["types_by_group_era"] = groups
    if len(fit.panel.countries) > 1:
        from nexusbayes.compare import comparison_tables

        out.update({f"compare_{k}": v for k, v in comparison_tables(fit, periods=None).items()})
    return {name: rounded(table) for name, table in out.items()}


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write each table as ``<name>.csv`` into ``out_dir``, each file atomically.

    Refuses (before writing anything) when a file exists and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.csv" for name in tables]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{', '.join(map(str, existing))} exist(s); pass --overwrite to replace")
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, table in zip(paths, tables.values(), strict=True):
        atomic_write(path, lambda tmp, t=table: t.to_csv(tmp, index=False))
    return paths


def summary_text(fit: Fit) -> str:
    """What ``nexusbayes fit`` prints: data, timings, types by group and era, and the diagnostics verdict."""
    panel = fit.panel
    t = fit.timings
    lines = [
        f"nexusbayes fit of {fit.spec.name!r}: {panel.n_obs} observations, {len(panel.countries)} country(ies), "
        f"{len(panel.regions)} regions, {len(panel.periods)} periods, {len(panel.indicators)} indicators",
        f"  sampler {fit.tree.attrs.get('sampler')}: compile {t.get('compile', 0):.1f} s"
        f"{' (from the on-disk cache)' if fit.tree.attrs.get('compile_source') == 'disk' else ''}, "
        f"sampling {t.get('sampling', 0):.1f} s, post-processing {t.get('postprocess', 0):.1f} s",
    ]
    if panel.empty_cells:
        lines.append(f"  {len(panel.empty_cells)} region-period(s) have no observation; their traits come from "
                     "the dynamics alone")
    if fit.spec.has_typology:
        groups = fit.group_era_summary()
        if len(groups):
            lines.append("\nType probabilities by region group and era:")
            shown = groups[["group", "era", *TYPES, "modal_type"]].copy()   # one format: two decimals
            shown[list(TYPES)] = shown[list(TYPES)].map(lambda p: f"{p:.2f}")
            shown["modal_probability"] = groups["modal_probability"].map(lambda p: f"{p:.2f}")
            lines.append(shown.to_string(index=False))
        else:
            table = fit.types_table()
            counts = table["modal_type"].value_counts().reindex(list(TYPES), fill_value=0)
            lines.append("\nModal types over region-periods: "
                         + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines.append("")
    lines.append(fit.diagnostics.text())
    for failure in fit.diagnostics.failures():
        lines.append(f"  WARNING: {failure}")
    return "\n".join(lines)
