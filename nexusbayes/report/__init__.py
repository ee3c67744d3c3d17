"""The diagnostics report: the one page a reviewer opens to decide whether to trust a fit.

:func:`build_report` computes everything in memory (a :class:`Report`: HTML, PNG figures at a chosen resolution, SVG
figures when asked for, tables rounded for CSV; :meth:`Report.files` lists them); :func:`write_report` writes
``report.html`` (self-contained: figures embedded as data URIs, no external CSS, scripts, fonts or requests) with
every figure as PNG and every table as CSV beside it, all or nothing. Sections, in order: header (spec, data and its
SHA-256, versions, sampler, timings), verdict (each convergence check against its threshold, and the rank plots' own
tests as warnings), sampling, fit to data (prior and posterior predictive checks, PSIS-LOO), results (typology map,
type probabilities, transitions, threshold sensitivity, trait trajectories, the forecast: its types table and a fan
chart per region; with ``compare_with``, the model choice against another fit).

Every string from the data or the spec reaches the HTML through jinja2 with autoescaping on.

Examples
--------
>>> import nexusbayes as nb
>>> result = nb.load("reports/kyrgyzstan/fit.nc")            # doctest: +SKIP
>>> path = write_report(result, "reports/kyrgyzstan/report")   # doctest: +SKIP
>>> path.name                                                 # doctest: +SKIP
'report.html'
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from nexusbayes.analysis import typology
from nexusbayes.analysis.diagnostics import ADVICE, Diagnostics
from nexusbayes.analysis.forecast_check import ForecastCheck
from nexusbayes.constants import CI_PROB, ESS_MIN, FORECAST_PERIODS, PARETO_K_MAX, RHAT_MAX, TYPES
from nexusbayes.errors import NexusBayesError
from nexusbayes.files import spreadsheet_safe_table
from nexusbayes.fit import Fit
from nexusbayes.model.build import Model
from nexusbayes.outputs import REPORT, OutputFolder
from nexusbayes.report import checks, comparison, drift, figures, heaping, model_choice, noncomparability, reporting
from nexusbayes.report.covariates import covariate_section
from nexusbayes.report.forecasts import CHECK_STEM, RunForecast, check_section, forecast_section, make_forecast
from nexusbayes.report.header import run_facts
from nexusbayes.report.tables import column_formatter, result_tables, rounded

REPORT_FILE = "report.html"
#: Folder of the report inside a run folder (``nexusbayes fit`` writes it there).
REPORT_DIR = "report"
SECTIONS = ("header", "verdict", "sampling", "fit-to-data", "results")


@dataclass
class Report:
    """A built report, not yet written.

    Attributes
    ----------
    html : str
        The self-contained page.
    figures : dict of str to (str, bytes)
        PNG figures by file stem, with their captions.
    tables : dict of str to pandas.DataFrame
        Every table shown (or summarised) in the page, by file stem.
    diagnostics : Diagnostics
        The verdict's source.
    seconds : float
        Time taken to build.
    notes : list of str
        Warnings raised while computing (shown in the page).
    svgs : dict of str to bytes
        SVG figures by file stem (only when asked for: :func:`build_report`'s ``svg``).
    """

    html: str
    figures: dict[str, tuple[str, bytes]]
    tables: dict[str, pd.DataFrame]
    diagnostics: Diagnostics
    seconds: float
    notes: list[str] = field(default_factory=list)
    svgs: dict[str, bytes] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        """Every file of the report by name: the page, PNG (and SVG) figures, and CSV tables (UTF-8).

        Text cells a spreadsheet would run as formulas are neutralised (:func:`~.files.spreadsheet_safe_table`).
        """
        out = {REPORT_FILE: self.html.encode("utf-8")}
        out.update({f"{stem}.png": data for stem, (_, data) in self.figures.items()})
        out.update({f"{stem}.svg": data for stem, data in self.svgs.items()})
        out.update({f"{stem}.csv": spreadsheet_safe_table(table).to_csv(index=False).encode("utf-8")
                    for stem, table in self.tables.items()})
        return out

    @property
    def passed(self) -> bool:
        """True when every convergence diagnostic passes."""
        return self.diagnostics.passed

    def write(self, folder: Path) -> None:
        """Write every file of :meth:`files` into the existing folder ``folder``."""
        for name, data in self.files().items():
            (folder / name).write_bytes(data)


# ---- computing -------------------------------------------------------------------------------------
def _named(label, posterior: xr.Dataset) -> str:
    """``region_z[3, 2001, willingness]`` as ``region_z[region_contrast=3, step=2001, trait=willingness]``.

    An element label from the diagnostics, with each position named by its dimension, so that an
    index that is not a region (a contrast between regions, a step) is not read as one. Labels
    that do not match their variable's dimensions are returned unchanged.
    """
    label = "" if label is None or label is pd.NA or (isinstance(label, float) and np.isnan(label)) else str(label)
    name, _, inside = label.partition("[")
    if not inside.endswith("]") or name not in posterior.data_vars:
        return label
    dims = [d for d in posterior[name].dims if d not in ("chain", "draw")]
    values = inside[:-1].split(", ")
    if len(values) != len(dims):
        return label
    return f"{name}[{', '.join(f'{d}={v}' for d, v in zip(dims, values, strict=True))}]"


def _verdict(diag: Diagnostics, posterior: xr.Dataset) -> pd.DataFrame:
    checks_ = diag.checks.reset_index()
    at = {"rhat": "rhat_at", "ess_bulk": "ess_bulk_at", "ess_tail": "ess_tail_at"}
    checks_["worst"] = [_named(diag.table.loc[worst, at[key]], posterior) if key in at
                        and worst in diag.table.index else ("" if pd.isna(worst) else worst)
                        for key, worst in zip(checks_["check"], checks_["worst"], strict=True)]
    checks_["advice"] = [("" if ok else ADVICE[key]) for key, ok in zip(checks_["check"], checks_["passed"],
                                                                        strict=True)]
    return checks_


def _by_variable(diag: Diagnostics, posterior: xr.Dataset) -> pd.DataFrame:
    table = diag.table.reset_index()
    for column in ("rhat_at", "ess_bulk_at", "ess_tail_at"):
        if column in table:
            table[column] = [_named(v, posterior) for v in table[column]]
    table["rhat_ok"] = table["max_rhat"].le(RHAT_MAX) | table["max_rhat"].isna()
    table["ess_ok"] = ((table["min_ess_bulk"].ge(ESS_MIN) | table["min_ess_bulk"].isna())
                       & (table["min_ess_tail"].ge(ESS_MIN) | table["min_ess_tail"].isna()))
    return table


def _thresholds(fit: Fit) -> dict[str, tuple[float, float, float]]:
    if fit.spec.is_regime:   # a regime fit's theta is E[level], its levels -1 and +1: P(high) > 1/2 where above 0
        return {"capability": (0.0, 0.0, 0.0), "willingness": (0.0, 0.0, 0.0)}
    out = {}
    for trait in ("capability", "willingness"):
        draws = typology.threshold_draws(fit.tree, fit.spec, trait).values.ravel()
        lower, upper = typology.eti(draws, CI_PROB)
        out[trait] = (float(draws.mean()), float(lower), float(upper))
    return out


def _with_prior_predictive(fit: Fit) -> xr.DataTree:
    """The fit's tree with its prior predictive draws (drawn if an older fit has none)."""
    tree = fit.tree
    if "prior_predictive" in tree.children:
        return tree
    tree = tree.copy()
    seed = fit.tree.attrs.get("seed")
    draws = Model(fit.spec, fit.panel).prior_predictive(seed=None if seed is None else int(seed))
    tree["prior_predictive"] = xr.DataTree(draws)
    return tree


def build_report(fit: Fit, dpi: int = figures.DPI, svg: bool = False,
                 results: dict[str, pd.DataFrame] | None = None, forecast: int | RunForecast = FORECAST_PERIODS,
                 forecast_check: ForecastCheck | None = None,
                 compare_with: Fit | None = None) -> Report:
    """Compute the report of a fit in memory (nothing is written).

    Parameters
    ----------
    fit : Fit
        A fitted model (fresh, or loaded with :func:`nexusbayes.load`).
    dpi : int
        Resolution of the PNG figures (300 for print), from 50 to 1200 (:data:`figures.DPI_RANGE`).
    svg : bool
        Also render every figure as SVG (:attr:`Report.svgs`), for papers.
    results : dict of str to DataFrame, optional
        The fit's result tables when already computed (:func:`nexusbayes.report.tables.result_tables`).
    forecast : int or RunForecast
        Periods ahead of the forecast's fan chart and tables (0: none; :mod:`nexusbayes.report.forecasts`), or
        the forecast made already (:func:`~nexusbayes.report.forecasts.make_forecast`), that of ``results``.
    forecast_check : ForecastCheck, optional
        Scores of held-out periods' forecast (:func:`nexusbayes.workflows.forecast_check.forecast_check`).
    compare_with : Fit, optional
        Another fit of the same observations: adds the model choice (:mod:`nexusbayes.report.model_choice`).

    Returns
    -------
    Report

    Raises
    ------
    NexusBayesError
        When ``dpi`` is not a whole number in :data:`figures.DPI_RANGE` (checked before any work).
    """
    low, high = figures.DPI_RANGE
    if isinstance(dpi, bool) or not isinstance(dpi, int | np.integer) or not low <= dpi <= high:
        raise NexusBayesError(f"dpi = {dpi!r}: give a whole number from {low} to {high} (e.g. 300 for print)")
    start = time.perf_counter()
    tree = _with_prior_predictive(fit)
    diag = fit.diagnostics
    posterior = fit.tree["posterior"].to_dataset()
    roles = fit.roles
    deterministics = [entry.name for entry in roles if not entry.free]
    rank = checks.rank_tests(checks.hyperparameters(tree, roles.scales()))
    sampling = checks.sampling_figures(tree, diag, roles.scales(), rank, exclude=deterministics)
    facts, versions, counts = run_facts(fit)
    tables: dict[str, pd.DataFrame] = {
        "run_info": pd.DataFrame({"item": list(facts), "value": list(facts.values())}),
        "versions": versions, "rows_per_indicator": counts,
        "verdict": _verdict(diag, posterior),
        "diagnostics_by_variable": _by_variable(diag, posterior),
    }
    tables["rank_tests"] = rank
    formats = ("png", "svg") if svg else ("png",)
    svgs: dict[str, bytes] = {}

    def rendered(group: dict[str, tuple[str, Figure]]) -> dict[str, tuple[str, bytes]]:
        """Each figure as PNG (and SVG) bytes, closed as soon as rendered."""
        out = {}
        for stem, (caption, fig) in group.items():
            data = figures.render(fig, *formats, dpi=dpi)
            out[stem] = (caption, data[0])
            if svg:
                svgs[stem] = data[1]
        return out

    figs: dict[str, dict[str, tuple[str, bytes]]] = {}
    figs["sampling"] = rendered(sampling)
    figs["predictive"] = rendered(checks.predictive_figures(tree, fit.spec, fit.panel))
    loo = checks.loo(fit)     # its log-likelihood computed term by term, once
    figs["loo"] = rendered(loo.figures)
    tables.update({"loo_by_term": loo.terms, "loo_by_indicator": loo.by_indicator,
                   "pareto_k": loo.pointwise, "pareto_k_flagged": loo.flagged})
    notes = list(loo.warnings)
    made = forecast if isinstance(forecast, RunForecast) else make_forecast(fit, forecast)   # made once
    results = result_tables(fit, made) if results is None else results
    tables["traits"] = results["traits"]
    figs["results"] = {}     # figures first, rendered below
    shown, shown_note = figures.spread_regions(tables["traits"])    # the per-region grids' panels, at most 24
    if fit.spec.has_typology:
        thresholds = _thresholds(fit)
        probs = fit.type_probabilities()
        low, high = typology.interval_names()
        tables["typology_thresholds"] = pd.DataFrame(
            [{"trait": t, "mean": m, low: lo, high: hi} for t, (m, lo, hi) in thresholds.items()])
        for stem in ("type_probabilities", "transition_matrices", "threshold_sensitivity", "types_by_group_era"):
            if stem in results:
                tables[stem] = results[stem]
        summary = tables["traits"][tables["traits"]["region"].isin(shown)]
        matrices = tables["transition_matrices"]
        shown_countries = list(dict.fromkeys(fit.region_country[r] for r in shown))
        countries_note = (f" {len(shown_countries)} of {matrices['country'].nunique()} countries shown (those of the "
                          "regions in the typology map); every country is in transition_matrices.csv."
                          if len(shown_countries) < matrices["country"].nunique() else "")
        figs["results"] = {
            "typology_map": ("Typology map: each region's path through the capability-willingness plane, "
                             f"posterior means with {CI_PROB:.0%} intervals; dashed lines are the thresholds "
                             "(grey band: their interval when anchored on an indicator)." + shown_note,
                             figures.typology_map(summary, thresholds)),
            **figures.type_maps(probs, shown, shown_note),     # at most 24 regions' rows, as the grids
            "transition_matrices": (f"Pooled transition matrices per country: P(type next period | type now), "
                                    f"posterior mean and {CI_PROB:.0%} interval. Each row names the region-steps "
                                    "it rests on (posterior mean) and the share of draws in which it is defined; "
                                    f"hatched rows rest on fewer than {figures.THIN_ROW_COUNT} and say little."
                                    + countries_note,
                                    figures.transition_heatmaps(matrices[matrices["country"].isin(shown_countries)])),
            **({"threshold_sensitivity": ("Threshold sensitivity: mean share of region-periods of each type as both "
                                          "thresholds move (latent SD units).",
                                          figures.sensitivity_heatmaps(tables["threshold_sensitivity"]))}
               if "threshold_sensitivity" in tables else {}),   # a regime fit's types have no thresholds
        }
    else:
        thresholds = {}
    figs["results"]["trait_trajectories"] = (
        f"Traits over periods by region: posterior mean and {CI_PROB:.0%} band." + shown_note,
        figures.trait_trajectories(tables["traits"][tables["traits"]["region"].isin(shown)], thresholds))
    if any(fit.spec.indicator(n).inflated for n in fit.panel.indicators):    # quota heaping, structural zeros
        figs["results"].update(heaping.section(fit, tables))
    if drift.has_drift(fit):    # changing standards
        figs["results"].update(drift.section(fit, tables))
    figs["results"].update(covariate_section(fit, results, tables))
    fc_tables, fc_figures, fc_notes = forecast_section(fit, made, shown, shown_note)
    check_tables, check_text = check_section(forecast_check)
    tables.update({**fc_tables, **check_tables})
    notes.extend(fc_notes)
    figs["results"] = rendered({**figs["results"], **fc_figures})
    figs["results"].update(rendered(reporting.reporting_figures(fit)))
    tables.update({stem: results[stem] for stem in ("reporting_model",) if stem in results})
    if len(fit.panel.countries) > 1:
        figs["results"].update(rendered(comparison.section(fit, tables, thresholds, results)))
    figs["results"].update(rendered(noncomparability.section(results, tables, fit.spec.comparability.delta)))
    choice_tables, choice_figures = model_choice.section(fit, compare_with) if compare_with is not None else ({}, {})
    tables.update(choice_tables)
    figs["results"].update(rendered(choice_figures))
    seconds = time.perf_counter() - start
    html = render_html(fit, facts, tables, figs, diag, notes, seconds, check_text.get("text"))
    flat = {stem: fig for group in figs.values() for stem, fig in group.items()}
    csv = {stem: rounded(table) for stem, table in tables.items()}
    return Report(html=html, figures=flat, tables=csv, diagnostics=diag, seconds=seconds, notes=notes, svgs=svgs)


# ---- rendering ------------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def _table(frame: pd.DataFrame, max_rows: int | None = None) -> dict:
    """Rows of ``frame`` as text: each numeric column in one format, missing values blank."""
    shown = frame if max_rows is None else frame.head(max_rows)
    formats = {c: (column_formatter(frame[c]) if pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c]) else _fmt) for c in frame.columns}
    return {"columns": [str(c) for c in frame.columns],
            "rows": [[formats[c](v) for c, v in zip(frame.columns, row, strict=True)]
                     for row in shown.itertuples(index=False)],
            "n": len(frame), "truncated": max_rows is not None and len(frame) > max_rows}


def _uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("nexusbayes.report", "."), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(fit: Fit, facts: dict[str, str], tables: dict[str, pd.DataFrame],
                figs: dict[str, dict[str, tuple[str, bytes]]], diag: Diagnostics, notes: list[str],
                seconds: float, check_text: str | None = None) -> str:
    """Fill the jinja2 template (autoescaped) with the report's facts, tables, figures (and forecast check's text)."""
    def images(group):
        return [{"stem": stem, "caption": caption, "uri": _uri(data)} for stem, (caption, data) in figs[group].items()]

    verdict = [{"check": r["check"], "label": r["label"], "value": _fmt(r["value"]), "raw": repr(float(r["value"])),
                "threshold": r["threshold"], "passed": bool(r["passed"]), "worst": r["worst"], "advice": r["advice"]}
               for r in tables["verdict"].to_dict("records")]
    flagged = tables["pareto_k_flagged"]
    rank = tables["rank_tests"]
    failed = rank[rank["flagged"]].sort_values("p_value")
    rank_row = {"n": len(rank), "flagged": len(failed), "alpha": f"{rank['alpha'].iloc[0]:g}" if len(rank) else "",
                "worst": ", ".join(f"{r.variable}[{r.element}] (p = {r.p_value:.3f})" if r.element else
                                   f"{r.variable} (p = {r.p_value:.3f})" for r in failed.head(3).itertuples())}
    differences = None
    if "compare_differences" in tables:
        diff = tables["compare_differences"]
        differences = _table(diff[diff["period"] == diff["period"].iloc[-1]])
        differences["note"] = diff.attrs.get("note")
    context = {
        "title": f"nexusbayes report: {fit.spec.name}", "spec_toml": fit.tree.attrs.get("nexusbayes_spec")
        or fit.spec.to_toml(), "facts": facts, "versions": _table(tables["versions"]),
        "counts": _table(tables["rows_per_indicator"]), "passed": diag.passed, "verdict": verdict,
        "n_draws": diag.n_draws, "rank": rank_row, "rhat_max": RHAT_MAX, "ess_min": ESS_MIN, "k_max": PARETO_K_MAX,
        "by_variable": _table(tables["diagnostics_by_variable"]),
        "sampling": images("sampling"), "predictive": images("predictive"), "loo_figures": images("loo"),
        "loo_terms": _table(tables["loo_by_term"]), "loo_indicators": _table(tables["loo_by_indicator"]),
        "loo_not_shown": tables["loo_by_term"].attrs.get("not_shown", ""),
        "flagged": _table(flagged.drop(columns=["term"]), max_rows=200), "n_flagged": len(flagged),
        "results": images("results"), "has_typology": fit.spec.has_typology,
        "group_era": _table(tables["types_by_group_era"]) if "types_by_group_era" in tables else None,
        "thresholds": _table(tables["typology_thresholds"]) if "typology_thresholds" in tables else None,
        "comparison": differences, "notes": notes, "forecast_types": _table(tables["forecast_types"])
        if "forecast_types" in tables else None, "data_warnings": fit.panel.warnings,
        "forecast_check": _table(tables[CHECK_STEM]) if CHECK_STEM in tables else None,
        "forecast_check_text": check_text,
        "reporting": _table(tables["reporting_model"]) if "reporting_model" in tables else None,
        "drift": _table(tables[drift.SIZE]) if drift.SIZE in tables else None,
        "covariates": {k: _table(v) for k, v in tables.items() if k.startswith("covar")},
        "noncomparability": _table(tables[noncomparability.STEM]) if noncomparability.STEM in tables else None,
        "model_choice": {k: _table(v) for k, v in tables.items() if k in model_choice.STEMS}, "types": TYPES,
        "seconds": f"{seconds:.1f}", "csv": sorted(f"{name}.csv" for name in tables),
    }
    return _environment().get_template("template.html.j2").render(**context)


# ---- writing --------------------------------------------------------------------------------------
def write_report(fit: Fit, out_dir: str | Path, overwrite: bool = False, inputs: Iterable = (), *,
                 dpi: int = figures.DPI, svg: bool = False, forecast: int = FORECAST_PERIODS,
                 compare_with: Fit | None = None) -> Path:
    """Build the report of ``fit`` and write it into ``out_dir``, all or nothing.

    ``out_dir`` receives ``report.html``, one PNG per figure and one CSV per table. The folder is
    checked and locked before the report is built, everything is written into a temporary folder
    beside it, and that is swapped in at the end (:class:`nexusbayes.outputs.OutputFolder`), so an
    interruption leaves an earlier report untouched.

    Parameters
    ----------
    fit : Fit
    out_dir : path
        The report's folder (created).
    overwrite : bool
        Replace an earlier report in ``out_dir`` (only the files that report wrote).
    inputs : paths
        Files being read (the saved fit): a folder holding one of them is refused.
    dpi : int
        Resolution of the PNG figures (50 to 1200).
    svg : bool
        Also write every figure as SVG.
    forecast : int
        Periods ahead of the forecast (0: none).
    compare_with : Fit, optional
        Another fit of the same observations: adds the model choice (see :func:`build_report`).

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.

    Raises
    ------
    OutputExistsError
        When ``out_dir`` holds an earlier report and ``overwrite`` is false, or holds files nexusbayes
        did not write, another kind of output or an input (checked before any work).
    OutputError
        When ``out_dir`` is a symlink, a file or the current folder, cannot be written, or another run
        is writing it.
    """
    with OutputFolder(out_dir, REPORT, overwrite, inputs=inputs) as folder:
        report = build_report(fit, dpi=dpi, svg=svg, forecast=forecast, compare_with=compare_with)
        folder.replace_with(report.write)
    return Path(out_dir) / REPORT_FILE


__all__ = ["REPORT_DIR", "REPORT_FILE", "SECTIONS", "Report", "build_report", "write_report"]
