"""The result tables of a fit (one registry for the CSV files and the page), rounded and formatted.

CSV files keep :data:`CSV_DIGITS` significant digits (and at least two decimals, so that sums
such as PSIS-LOO's elpd keep the precision model comparisons need). The page shows each numeric
column in one format, with as many decimals as its largest value needs for four significant
digits (at most four decimals).

Examples
--------
>>> import pandas as pd
>>> rounded(pd.DataFrame({"p": [4.16666e-05, 0.99654321], "elpd": [-1234.5678, -0.123456]})).to_dict("list")
{'p': [4.167e-05, 0.9965], 'elpd': [-1234.57, -0.1235]}
>>> column_formatter(pd.Series([4.16666e-05, 0.00041667, 0.99654]))(4.16666e-05)
'0.0000'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nexusbayes.analysis.compare import comparison_tables, report_pairs
from nexusbayes.analysis.typology import transitions_table
from nexusbayes.fit import Fit
from nexusbayes.report.covariates import covariate_tables
from nexusbayes.report.forecasts import RunForecast, forecast_tables
from nexusbayes.report.reporting import reporting_table

#: Significant digits kept by the CSV tables.
CSV_DIGITS = 4
#: Fewest decimals a CSV value keeps (large sums would otherwise lose their units).
CSV_MIN_DECIMALS = 2
#: Most decimals a page column shows.
PAGE_MAX_DECIMALS = 4


def _decimals(values: np.ndarray, digits: int) -> np.ndarray:
    """Decimals that keep ``digits`` significant digits of each value (0 for zeros)."""
    with np.errstate(divide="ignore"):
        magnitude = np.floor(np.log10(np.abs(values)))
    return np.where(np.isfinite(magnitude), digits - 1 - magnitude, 0).astype(int)


def round_significant(values, digits: int = CSV_DIGITS, min_decimals: int = CSV_MIN_DECIMALS) -> np.ndarray:
    """Round each value to ``digits`` significant digits, keeping at least ``min_decimals`` decimals."""
    values = np.asarray(values, dtype=float)
    decimals = np.maximum(_decimals(values, digits), min_decimals)
    return np.array([round(v, int(d)) if np.isfinite(v) else v for v, d in zip(values.ravel(), decimals.ravel(),
                                                                                 strict=True)]).reshape(values.shape)


#: Columns kept as they are: observed data values are data, not estimates.
EXACT = ("value",)


def rounded(frame: pd.DataFrame, digits: int = CSV_DIGITS, exact: tuple[str, ...] = EXACT) -> pd.DataFrame:
    """A copy of ``frame`` with its float columns (but ``exact``) rounded by :func:`round_significant` (for CSVs)."""
    out = frame.copy()
    for name in out.columns:
        if pd.api.types.is_float_dtype(out[name]) and name not in exact:
            out[name] = round_significant(out[name].to_numpy(), digits)
    return out


def column_formatter(column: pd.Series):
    """A function formatting every value of a numeric ``column`` alike (same decimals down the column).

    Integers (and floats that are all whole) get no decimals; otherwise the decimals that give the
    column's largest absolute value four significant digits, at most :data:`PAGE_MAX_DECIMALS`.
    Missing values are shown blank.
    """
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or np.all(finite == np.round(finite)):
        decimals = 0
    else:
        decimals = int(np.clip(_decimals(np.array([np.abs(finite).max()]), 4)[0], 0, PAGE_MAX_DECIMALS))

    def fmt(value) -> str:
        if value is None or value is pd.NA or (isinstance(value, float | np.floating) and not np.isfinite(value)):
            return "" if value is None or value is pd.NA or np.isnan(value) else str(value)
        return f"{float(value):,.{decimals}f}".replace(",", "")
    return fmt


def report_comparison_tables(fit: Fit) -> dict[str, pd.DataFrame]:
    """The country comparison tables of a multi-country fit, by file stem (``compare_*``), over every period.

    The differences hold the pairs of :func:`~nexusbayes.analysis.compare.report_pairs` (every pair up to
    :data:`~nexusbayes.analysis.compare.REPORT_ALL_PAIRS` countries, else each country against its rank
    neighbours); what is left out is said in ``compare_differences.attrs["note"]`` (shown by the report).
    """
    pairs, note = report_pairs(fit)
    out = {f"compare_{k}": v for k, v in comparison_tables(fit, periods=None, pairs=pairs).items()}
    out["compare_differences"].attrs["note"] = note
    return out


def result_tables(fit: Fit, forecast: RunForecast) -> dict[str, pd.DataFrame]:
    """The result tables of a fit, by file stem: the one registry.

    ``nexusbayes fit`` writes each as ``<stem>.csv`` (rounded, :func:`rounded`) and the report shows the same
    tables, so each is computed once. With a ``forecast`` made (:func:`nexusbayes.report.forecasts.make_forecast`),
    also ``forecast_traits`` and ``forecast_types``.
    """
    out = {"traits": fit.trait_summary(), "diagnostics": fit.diagnostics.checks.reset_index(),
           "diagnostics_by_variable": fit.diagnostics.table.reset_index()}
    if fit.spec.has_typology:
        out["type_probabilities"] = fit.types_table()
        out["transitions"] = transitions_table(fit.transitions(), fit.region_country)
        out["transition_matrices"] = fit.transition_matrices()
        if not fit.spec.is_regime:   # a regime fit's types are its states: no thresholds to move
            out["threshold_sensitivity"] = fit.threshold_sensitivity()
        groups = fit.group_era_summary()
        if len(groups):
            out["types_by_group_era"] = groups
    if "reporting_loading" in fit.tree["posterior"]:
        out["reporting_model"] = reporting_table(fit)
    out.update(covariate_tables(fit))
    if len(fit.panel.countries) > 1:
        out.update(report_comparison_tables(fit))
        if fit.spec.comparability.detect:
            out["noncomparability"] = fit.noncomparability()
    out.update(forecast_tables(forecast.tree))
    return out
