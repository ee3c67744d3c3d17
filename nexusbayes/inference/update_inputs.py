"""What an update takes in: the new rows and the new periods' covariates, checked against the fit.

:func:`refuse` says what an update by a given method cannot cover; :func:`new_rows` reads the new rows as part
of a panel (every row checked as the fit's data were; what only a whole panel needs, such as each indicator's
rows or the non-reports of informative indicators, is checked on the fit's data with the new rows) and joins
them to the fit's; :func:`new_covariates` reads the new periods' values of a fit's ``[covariates]`` and puts
them on the fit's standardisation (its centre and scale: the held effects are per SD of the fit's covariates).
Errors name the file, the rows and the column, and say what to pass instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.data.covariate_table import CovariateTable
from nexusbayes.data.covariates import _period_index, validate_covariates
from nexusbayes.data.panel import Panel, validate
from nexusbayes.data.read import load_panel, read_table
from nexusbayes.errors import DataError, SpecError


class UpdateError(SpecError):
    """An update the fit or the data do not allow (the message says what to do instead: usually a full refit)."""


def refuse(spec, tree: xr.DataTree, panel: Panel, method: str = "filter") -> None:
    """Raise :class:`UpdateError` for what an update by ``method`` does not cover."""
    refit = "; refit on all the data instead (nexusbayes fit)"
    if spec.is_regime:
        raise UpdateError("updating a regime fit (its hidden chain) is not implemented" + refit)
    if spec.dynamics.centred:
        raise UpdateError("updating a fit with `centred = true` dynamics (per-region spans) is not implemented" + refit)
    if spec.covariates is not None and method != "filter":
        raise UpdateError("the particle update does not carry [covariates] yet: update by the default method, "
                          "'filter' (the new periods' covariates given with covariates=TABLE, --covariates FILE)")
    for name in panel.indicators if method == "filter" else ():   # the particles weigh every feature's rows
        ind = spec.indicator(name)
        for what, bad in (("drift", ind.drift is not None), ("missing = \"informative\"", ind.missing != "ignorable"),
                          ("quota", ind.quota is not None), ("zero_inflated", ind.zero_inflated)):
            if bad:
                raise UpdateError(f"indicator {name!r} has {what}, which the filter does not model; update by "
                                  "particles instead (`--method particles`, `method=\"particles\"`), or refit on all "
                                  "the data (nexusbayes fit)")
    if len(panel.periods) < 2:
        raise UpdateError("the fit has one period: its dynamics, which carry the traits to a new period, were not "
                          "learnt" + refit)


def new_rows(panel: Panel, spec, source, regions: bool = True) -> tuple[Panel, pd.DataFrame]:
    """The fit's data with the new rows added (one panel), and the new rows at periods after the fitted ones.

    ``source`` is a path or DataFrame read as the main data are (file, row and column errors). Rows at
    fitted periods must repeat the fitted rows of those periods exactly (then they are dropped: a file with
    the old data and a new year can be given whole); countries, indicators and raters must be the fit's,
    and regions too unless ``regions`` (then a new region of a fitted country is accepted).
    """
    new = load_panel(source, spec, whole=False)   # what only a whole panel needs: checked on the combined one
    label = new.source
    table = new.data_table().assign(_row=new.row_labels())
    old_times = dict(zip(panel.periods, np.asarray(panel.period_time, float), strict=True))
    new_times = dict(zip(new.periods, np.asarray(new.period_time, float), strict=True))
    fitted = table["period"].isin(panel.periods).to_numpy()
    if fitted.any():
        cols = [c for c in panel.data_table().columns]
        old = panel.data_table()
        old = old[old["period"].isin(set(table["period"][fitted]))]
        given = table[fitted]
        same = (set(given.columns) - {"_row"} == set(cols) and len(given) == len(old) and
                _sorted(given[cols]).equals(_sorted(old[cols])))
        if not same:
            periods = sorted(set(given["period"]), key=str)
            raise DataError(f"{label}: rows {_rows(given['_row'])} are at period(s) {periods} that the fit already "
                            "holds, and they differ from the fitted rows of those periods. An update adds periods "
                            f"after the last fitted one ({panel.periods[-1]!r}): give only the new periods' rows, or "
                            "the fitted rows unchanged; to change past data, refit (nexusbayes fit)")
    added = table[~fitted]
    if added.empty:
        raise DataError(f"{label}: no rows at a new period (after {panel.periods[-1]!r}): nothing to update")
    early = [p for p in added["period"].unique() if new_times[p] <= max(old_times.values())]
    if early:
        rows = added[added["period"].isin(early)]["_row"]
        raise DataError(f"{label}: rows {_rows(rows)} are at period(s) {early}, not after the last fitted period "
                        f"({panel.periods[-1]!r}); an update adds later periods only: refit to fill earlier ones")
    for col, known, what in (("country", panel.countries, "countries"), ("region", panel.regions, "regions"),
                             ("indicator", panel.indicators, "indicators")):
        unknown = ~added[col].isin(known)
        if col == "region" and regions:
            continue   # new regions of fitted countries are placed by the update (the countries are checked above)
        if unknown.any():
            names = sorted(map(str, added[col][unknown].unique()))
            also = " (new regions of the fit's countries can be added; new countries cannot)" if col == "country" \
                else (" (new regions are placed by the default method, 'filter')" if col == "region" else "")
            raise DataError(f"{label}: column {col!r}, rows {_rows(added['_row'][unknown])}: {names} not among the "
                            f"fit's {what}; an update adds periods for the fitted {what} only{also}: refit with "
                            f"the new {what} (nexusbayes fit)")
    fitted_region = added["region"].isin(panel.regions).to_numpy()
    moved = fitted_region & (added["country"].to_numpy() != added["region"].map(panel.country_of).to_numpy())
    if moved.any():
        raise DataError(f"{label}: column 'country', rows {_rows(added['_row'][moved])}: the region belongs to "
                        "another country in the fit; give each region its fitted country")
    if "rater" in added:
        raters = added["rater"].dropna()
        unknown = ~raters.isin(panel.raters)
        if unknown.any():
            raise DataError(f"{label}: column 'rater', rows {_rows(added['_row'][raters.index[unknown]])}: "
                            f"{sorted(map(str, raters[unknown].unique()))} not among the fit's raters; an update "
                            "holds each rater's shift, so it cannot place a new rater: refit (nexusbayes fit)")
    old = panel.data_table()
    both = pd.concat([old, added.drop(columns="_row")], ignore_index=True)
    labels = np.concatenate([panel.row_labels().astype(str), [f"{Path(str(label)).name}:{r}" for r in added["_row"]]])
    combined = validate(both.set_axis(labels), spec, label=f"{panel.source} + {label}", row_kind="file:line")
    return combined, added


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype(str)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _rows(rows, most: int = 5) -> str:
    rows = list(rows)
    return ", ".join(map(str, rows[:most])) + (f" (and {len(rows) - most} more)" if len(rows) > most else "")


def new_covariates(spec, panel: Panel, combined: Panel, source) -> tuple[Panel, np.ndarray | None]:
    """The combined data with the new periods' covariates, and those standardised (region, new period, covariate).

    ``source`` (path or DataFrame) has the covariate table's columns and a row per fitted region and new period;
    rows at fitted periods may be given too if they repeat the fit's table (then they are dropped). The rest is
    validated as the fit's table was (errors name the file, rows and column; a missing row names the region and
    period) and standardised with the fit's centre and scale, which the combined table keeps. Without
    ``[covariates]``: ``(combined, None)``, and ``source`` must be None.
    """
    if spec.covariates is None:
        if source is not None:
            raise UpdateError("covariates were given but the fit's spec has no [covariates]: drop them (--covariates)")
        return combined, None
    new_periods = combined.periods[len(panel.periods):]
    names = list(spec.covariates.columns)
    if source is None:
        raise UpdateError(f"the fit has [covariates] ({', '.join(names)}): pass their values at the new period(s) "
                          f"{', '.join(map(str, new_periods))}, a table with columns region, period and "
                          f"{', '.join(names)}, one row per region and new period (covariates=TABLE; in the CLI "
                          "--covariates FILE); the fitted periods' rows may be included unchanged")
    if len(combined.regions) != len(panel.regions):
        raise UpdateError("new regions cannot be added to a fit with [covariates] (their covariates at the fitted "
                          "periods, where the fit's standardisation holds them, are unknown): update the fitted "
                          "regions only, or refit on all the data (nexusbayes fit)")
    fitted_table = panel.covariates
    frame, label, lines = read_table(source)
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    period = _period_index(frame["period"], panel) if "period" in frame else pd.Series(np.nan, frame.index)
    at_fitted = period.notna().to_numpy()
    if at_fitted.any() and set(names) <= set(frame.columns):
        sub = frame[at_fitted]
        r = sub["region"].astype("string").str.strip().map({x: i for i, x in enumerate(panel.regions)})
        t = period[at_fitted].astype(int).to_numpy()
        given = sub[names].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        same = np.array(r.notna(), dtype=bool)
        ri = r[same].astype(int).to_numpy()
        held, needed = fitted_table.values[ri, t[same]], fitted_table.needed[ri, t[same]]
        same[same] = (np.isclose(given[same], held, rtol=1e-12, atol=0) | ~needed).all(axis=1)
        if not same.all():
            rows = sub.index[~same].to_numpy() + (2 if lines else 0)
            raise DataError(f"{label}: rows {_rows(rows)} are at fitted periods and differ from the fit's covariate "
                            "table (or name regions it does not have); give the new periods' rows only, or the "
                            "fitted rows unchanged; to change past covariates, refit (nexusbayes fit)")
    new_frame = frame[~at_fitted]
    future = dataclasses.replace(panel, periods=list(new_periods), covariates=None)
    table = validate_covariates(new_frame, spec, future, label, lines, future=True,
                                known="new period of the update")
    values = np.concatenate([fitted_table.values, table.values], axis=1)
    needed = np.concatenate([fitted_table.needed, table.needed], axis=1)
    both = CovariateTable(names=names, values=values, needed=needed, centre=fitted_table.centre,
                          scale=fitted_table.scale, frame=pd.concat([fitted_table.frame, table.frame],
                                                                    ignore_index=True),
                          source=f"{fitted_table.source} + {label}")
    return dataclasses.replace(combined, covariates=both), (table.values - fitted_table.centre) / fitted_table.scale
