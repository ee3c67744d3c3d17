"""Non-reports: the optional ``status`` column that tells non-reporting from structural absence.

The data contract (``data/README.md``): a region-period without a row for an indicator is **structurally
absent** (the unit did not exist, or the series was not collected that year anywhere) and says nothing. A row
with ``status = "not_reported"`` and an empty ``value`` is a **non-report**: the series existed and this
region-period did not report it. Rows with a value have ``status`` empty or ``"reported"``. For an indicator
with ``missing = "informative"`` the non-reports are outcomes of the reporting model
(:mod:`nexusbayes.model.reporting`); for the others (``"ignorable"``) they are dropped, so one table serves
specs with and without the reporting model.

Examples
--------
>>> import pandas as pd
>>> from nexusbayes.spec.document import Spec
>>> from nexusbayes.spec.indicators import Indicator
>>> from nexusbayes.data.read import load_panel
>>> spec = Spec(name="demo", traits=["capability"], indicators={
...     "staff": Indicator(family="normal", loads={"capability": "positive"}, missing="informative")})
>>> df = pd.DataFrame({"country": "KG", "region": ["Osh", "Chui", "Naryn"], "period": 2000,
...                    "indicator": "staff", "value": [1.5, 2.0, None],
...                    "status": ["reported", "", "not_reported"]})
>>> panel = load_panel(df, spec)
>>> panel.n_obs, panel.not_reported[["region", "indicator"]].values.tolist()
(2, [['Naryn', 'staff']])
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from nexusbayes.spec.document import Spec

#: The optional column, its two values, and the columns kept for each non-report.
STATUS, REPORTED, NOT_REPORTED = "status", "reported", "not_reported"
NON_REPORT_COLUMNS = ("country", "region", "period", "indicator", "row", "country_idx", "region_idx", "period_idx",
                      "indicator_idx")


def no_non_reports() -> pd.DataFrame:
    """An empty table of non-reports (a panel without a ``status`` column)."""
    return pd.DataFrame({c: pd.Series(dtype=int if c.endswith("_idx") else object) for c in NON_REPORT_COLUMNS})


def non_report_mask(frame: pd.DataFrame, problems) -> np.ndarray:
    """The rows whose ``status`` is ``not_reported`` (all False without the column); refuses other values.

    Empty and ``reported`` mean the row holds a value; spaces around a value are ignored, case is not.
    """
    if STATUS not in frame:
        return np.zeros(len(frame), dtype=bool)
    text = frame[STATUS].astype("string").str.strip().fillna("")
    allowed = ("", REPORTED, NOT_REPORTED)
    for value in sorted(set(text.unique().tolist()) - set(allowed)):
        guess = difflib.get_close_matches(value.lower().replace(" ", "_").replace("-", "_"), allowed[1:], n=1)
        problems.add((text == value).to_numpy(), f"`status` {value!r} is not a status" + (
            f" (did you mean {guess[0]!r}?)" if guess else "") + f"; use {REPORTED!r} (or leave it empty) on a row "
            f"with a value and {NOT_REPORTED!r} on a row for a series that existed but this region-period did not "
            "report (its `value` empty); a series that did not exist has no row at all")
    frame[STATUS] = text
    return (text == NOT_REPORTED).to_numpy()


def check_non_reports(frame: pd.DataFrame, silent: np.ndarray, given: np.ndarray, problems) -> None:
    """Refuse a non-report with a value or a rater, or of a region-period that also reports the indicator."""
    problems.add(silent & given, f"`value` is given on a row with status {NOT_REPORTED!r}; leave `value` empty on a "
                 "non-report, or set `status` to 'reported' (or empty) if the value was reported")
    if "rater" in frame:
        problems.add(silent & frame["rater"].notna().to_numpy(),
                     f"`rater` is set on a row with status {NOT_REPORTED!r}; a non-report is of the region-period, "
                     "not of a rater: leave `rater` empty on it")
    key = frame["region"] + "\x00" + frame["period"].astype(str) + "\x00" + frame["indicator"]
    both = key.isin(set(key[~silent])).to_numpy() & silent
    problems.add(both, f"status {NOT_REPORTED!r} for a (region, period, indicator) that also has a row with a value; "
                 "a region-period either reported the series or did not: delete one of the rows")


def split_non_reports(frame: pd.DataFrame, rows: pd.Series, silent: np.ndarray,
                      spec: Spec) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """The rows with values (and their labels), and the non-reports of indicators with ``missing = "informative"``.

    Non-reports of the other indicators are dropped (ignorable by the spec's choice). The ``status`` column
    is removed from the observations.
    """
    bank = spec.item_bank is not None and spec.item_bank.missing == "informative"
    informative = frame["indicator"].map(lambda n: spec.indicators[n].missing == "informative"
                                         if n in spec.indicators else bank).to_numpy(dtype=bool)
    keep = silent & informative
    out = frame.loc[keep].assign(row=rows[keep].to_numpy())
    observed = frame.loc[~silent].drop(columns=[STATUS], errors="ignore").reset_index(drop=True)
    return observed, rows[~silent].reset_index(drop=True), out.reset_index(drop=True)


def require_non_reports(spec: Spec, non_reports: pd.DataFrame, label: str) -> str | None:
    """The message refusing indicators with ``missing = "informative"`` but no non-report, or None."""
    lacking = [n for n, ind in spec.indicators.items()
               if ind.missing == "informative" and not (non_reports["indicator"] == n).any()]
    if (spec.item_bank is not None and spec.item_bank.missing == "informative"
            and non_reports["indicator"].isin(spec.indicators).all()):
        lacking.append("(every item of the [item_bank])")
    if not lacking:
        return None
    return (f"{label}: indicator(s) {lacking} have missing = \"informative\" but no row with status "
            f"{NOT_REPORTED!r}, so there is no non-report for the reporting model to learn from. Add a `status` "
            f"column and a row with status {NOT_REPORTED!r} (and an empty `value`) for each region-period at which "
            "the series existed but was not reported, or set missing = \"ignorable\" in the spec")


def index_non_reports(non_reports: pd.DataFrame, codes: dict[str, dict]) -> pd.DataFrame:
    """The non-reports with integer codes (``codes``: column -> name -> code, as the observations')."""
    out = non_reports.copy()
    for col in ("country", "region", "indicator"):
        out[f"{col}_idx"] = out[col].map(codes[col]).astype(int)
    return out[list(NON_REPORT_COLUMNS)]


def empty_with_non_reports(panel) -> int:
    """How many of a panel's ``empty_cells`` have a non-report of an informative indicator (which informs them)."""
    silent = set(zip(panel.not_reported["region"], panel.not_reported["period"], strict=True))
    return sum((r, p) in silent for r, p in panel.empty_cells)
