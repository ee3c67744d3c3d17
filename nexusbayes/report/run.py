"""What `nexusbayes fit` writes: the fit, its CSV tables and report, and the printed summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nexusbayes import interrupts
from nexusbayes.analysis.forecast_check import ForecastCheck
from nexusbayes.constants import FORECAST_PERIODS, TYPES
from nexusbayes.data.reporting import empty_with_non_reports
from nexusbayes.errors import OutputExistsError
from nexusbayes.files import atomic_write, write_csv
from nexusbayes.fit import Fit
from nexusbayes.inference.run_length import describe
from nexusbayes.outputs import FIT_FILE, REPORT, RUN, OutputFolder, write_manifest
from nexusbayes.report import REPORT_DIR, build_report
from nexusbayes.report.forecasts import CHECK_STEM, make_forecast
from nexusbayes.report.tables import result_tables, rounded


# ---- a fit's run folder -----------------------------------------------------------------------------
def write_run(fit: Fit, out_dir: str | Path | OutputFolder, overwrite: bool = False, report: bool = False,
              forecast: int = FORECAST_PERIODS, forecast_check: ForecastCheck | None = None) -> Path:
    """Write ``fit.nc``, the CSV tables, ``summary.txt`` (and with ``report``, ``report/``) into ``out_dir``.

    All or nothing, in one final swap (see :class:`OutputFolder`). ``out_dir`` may be a folder
    already claimed by the caller (the command line claims it before fitting). The tables include the
    forecast ``forecast`` periods ahead (``forecast_traits.csv``, ``forecast_types.csv``; 0 for none; see
    :mod:`nexusbayes.report.forecasts` for the default of one), and with ``forecast_check`` (the scores of
    :func:`nexusbayes.workflows.forecast_check.forecast_check`) ``forecast_check.csv`` and its report section.
    """
    def fill(tmp: Path) -> None:
        fit.save(tmp / FIT_FILE)
        made = make_forecast(fit, forecast)
        results = result_tables(fit, made)            # computed once, for the CSVs and the report
        if forecast_check is not None:
            results[CHECK_STEM] = forecast_check.scores()
        for name, table in results.items():
            write_csv(rounded(table), tmp / f"{name}.csv")
        (tmp / "summary.txt").write_text(summary_text(fit) + "\n", encoding="utf-8")
        if report:
            folder = tmp / REPORT_DIR
            folder.mkdir()
            build_report(fit, results=results, forecast=made, forecast_check=forecast_check).write(folder)
            write_manifest(folder, REPORT)

    if isinstance(out_dir, OutputFolder):
        return out_dir.replace_with(fill)
    with OutputFolder(out_dir, RUN, overwrite) as folder:
        return folder.replace_with(fill)


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write each table as ``<name>.csv`` into ``out_dir``, each file atomically (signals held back between them).

    Refuses (before writing anything) when a file exists and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.csv" for name in tables]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{', '.join(map(str, existing))} exist(s); pass --overwrite to replace")
    out_dir.mkdir(parents=True, exist_ok=True)
    interrupts.check()
    with interrupts.deferred():
        for path, table in zip(paths, tables.values(), strict=True):
            atomic_write(path, lambda tmp, t=table: write_csv(t, tmp))
            interrupts.written(path)
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
    if "data_given" in fit.tree.attrs:
        lines.append(f"  data: {fit.tree.attrs['data_given']}")
    if "update_held" in fit.tree.attrs:
        lines.append(f"  UPDATE (no full refit): added {fit.tree.attrs.get('update_added_periods')}; "
                     f"{fit.tree.attrs['update_held']}")
    if "update_diagnostics" in fit.tree.attrs:
        lines.append(f"  diagnostics that apply: {fit.tree.attrs['update_diagnostics']}")
    run_length = describe(fit.tree.attrs)
    if run_length:
        lines.append(f"  run length {run_length}")
    if panel.empty_cells:
        gaps = empty_with_non_reports(panel)
        lines.append(f"  {len(panel.empty_cells)} region-period(s) have no observation; their traits come from "
                     + (f"the dynamics and, for {gaps} of them, informative non-reports" if gaps else
                        "the dynamics alone"))
    lines.extend(f"  WARNING (data): {warning}" for warning in panel.warnings)
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
