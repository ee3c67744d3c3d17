"""Reading and validating the covariate table of a spec's ``[covariates]`` against a panel.

The table has one row per region-period with columns ``region``, ``period`` (written as in the indicator
data: a year, or an era name), optionally ``country`` (checked against the data), and one column per
covariate (other columns are ignored). Every region-period the model uses must have a row with a number in
every covariate column: all of the panel's region-periods for a covariate on the traits' level, all but the
first period for one on their steps. A missing value is an error, never a silent drop. See ``data/README.md``.

Examples
--------
>>> import pandas as pd
>>> from nexusbayes.model.simulate import simulate
>>> from nexusbayes.spec.sections import CovariateEffect, CovariatesSpec
>>> sim = simulate(n_regions=2, n_periods=2, seed=1)
>>> spec = sim.spec.model_copy(update={"covariates": CovariatesSpec(
...     columns={"aid": CovariateEffect(on="level", traits=["capability"])})})
>>> table = pd.DataFrame({"region": ["C1-R01", "C1-R01", "C1-R02", "C1-R02"], "period": [2000, 2001] * 2,
...                       "aid": [1.0, 2.0, 3.0, 4.0]})
>>> attach_covariates(sim.panel, spec, table).covariates.scale.round(3).tolist()
[1.118]
>>> attach_covariates(sim.panel, spec, table.iloc[:3])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
nexusbayes.errors.DataError: <DataFrame>: the covariate table has no row for region-period(s) the model needs: ...
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

import numpy as np
import pandas as pd

from nexusbayes.data.covariate_table import CovariateTable
from nexusbayes.data.panel import MAX_SHOWN, NA_TEXT, Panel, _Problems
from nexusbayes.data.read import read_table
from nexusbayes.errors import DataError
from nexusbayes.spec.document import Spec

KEYS = ("region", "period")


def attach_covariates(panel: Panel, spec: Spec, source: str | Path | pd.DataFrame | None) -> Panel:
    """The panel with the spec's covariates read from ``source`` and validated (the panel as is without them).

    Raises
    ------
    DataError
        Naming the file, the rows (line numbers for a CSV) and the column at fault: a missing column, a
        region or period not in the data, a country that is not the region's, a repeated region-period, a
        value that is not a finite number, a missing value where the model needs one, a region-period the
        model needs without a row, or a covariate constant over the cells used.
    """
    if spec.covariates is None:
        return panel
    if source is None:
        raise DataError(f"spec {spec.name!r} has [covariates] but no covariate table was given: set "
                        "covariates.path in the spec (relative to the spec file) or pass covariates=PATH or a "
                        "DataFrame")
    frame, label, lines = read_table(source)
    return dataclasses.replace(panel, covariates=validate_covariates(frame, spec, panel, label, lines))


def validate_covariates(frame: pd.DataFrame, spec: Spec, panel: Panel, label: str = "<DataFrame>",
                        file_lines: bool = False, future: bool = False,
                        known: str = "forecast period") -> CovariateTable:
    """Check a covariate table against the spec and the panel and put it on the panel's grid.

    With ``future``, ``panel``'s periods are those of a forecast: every covariate is needed in every one of
    them (a step covariate too: each is a step), and a covariate may be constant over them (its centre and
    scale are then the fit's, not these); ``known`` names those periods in errors.
    """
    names = list(spec.covariates.columns)
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    wanted = [*KEYS, *names]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        hints = [f"{c!r}" + (f" (did you mean {g[0]!r}?)" if (g := difflib.get_close_matches(
            c, [str(x) for x in frame.columns], n=1)) else "") for c in missing]
        raise DataError(f"{label}: the covariate table lacks column(s) {', '.join(hints)}; found "
                        f"{list(frame.columns)}. It needs `region`, `period` and the covariates of the spec's "
                        f"[covariates.columns]: {', '.join(names)}")
    if frame.empty:
        raise DataError(f"{label}: the covariate table is empty; it needs one row per region-period")
    rows = pd.Series(frame.index.to_numpy() + 2 if file_lines else frame.index.to_numpy())
    frame = frame.reset_index(drop=True)
    problems = _Problems(label, rows)
    problems.kind = "line numbers in the file" if file_lines else "DataFrame index labels"
    problems.what = "covariate table"

    region = frame["region"].astype("string").str.strip().fillna("")
    region_idx = region.map({r: i for i, r in enumerate(panel.regions)})
    for name in sorted(set(region[region_idx.isna()].tolist())):
        guess = difflib.get_close_matches(name, panel.regions, n=1)
        problems.add(region == name, f"`region` {name!r} is not a region of the indicator data"
                     + (f" (did you mean {guess[0]!r}?)" if guess else "") + "; fix the name or drop the row")
    if "country" in frame:
        country = frame["country"].astype("string").str.strip()
        own = region.map(panel.country_of)
        problems.add(own.notna() & (country != own).fillna(True),
                     "`country` is not the region's country in the indicator data", got=country)
    period_idx = _period_index(frame["period"], panel)
    known = known if future else "period of the indicator data"
    problems.add(period_idx.isna(), f"`period` is not a {known} (periods: {_listed(panel.periods)})",
                 got=frame["period"])
    problems.raise_if_any()
    r, t = region_idx.astype(int).to_numpy(), period_idx.astype(int).to_numpy()
    problems.add(pd.Series(list(zip(r, t, strict=True))).duplicated(keep=False),
                 "region-period appears more than once; keep one row per region-period")
    problems.raise_if_any()

    n_region, n_period = len(panel.regions), len(panel.periods)
    values = np.full((n_region, n_period, len(names)), np.nan)
    needed = np.zeros_like(values, dtype=bool)
    for k, name in enumerate(names):
        first = 1 if spec.covariates.columns[name].on in ("step", "transition") and not future else 0
        if first == 1 and n_period < 2:
            raise DataError(f"{label}: covariate {name!r} acts on steps, but the data have a single period")
        needed[:, first:, k] = True
        raw = frame[name]
        num = pd.to_numeric(raw, errors="coerce") if raw.dtype.kind not in "mMc" else pd.Series(np.nan, raw.index)
        num = num.astype(float)
        text = raw.astype("string").str.strip()
        blank = (raw.isna() | (text == "") | text.str.lower().isin(NA_TEXT)).fillna(True).astype(bool)
        use = needed[r, t, k]
        problems.add(~blank & num.isna(), f"`{name}` is not a number", got=raw)
        problems.add(np.isinf(num), f"`{name}` is infinite; only finite numbers are allowed")
        problems.add(blank & use, f"`{name}` is missing, but the model needs it here (a covariate on the "
                     f"{'steps' if first else 'level'} needs a value in every region-period"
                     f"{' after the first' if first else ''}); fill it in (there is no imputation)")
        values[r, t, k] = np.where(use & np.isfinite(num), num, np.nan)
    problems.raise_if_any()
    has_row = np.zeros((n_region, n_period), dtype=bool)
    has_row[r, t] = True
    lacking = [(panel.regions[i], panel.periods[j]) for i, j in zip(*np.nonzero(needed.any(axis=2) & ~has_row),
                                                                    strict=True)]
    if lacking:
        shown = ", ".join(f"({a}, {b})" for a, b in lacking[:MAX_SHOWN])
        more = f" (and {len(lacking) - MAX_SHOWN} more)" if len(lacking) > MAX_SHOWN else ""
        raise DataError(f"{label}: the covariate table has no row for region-period(s) the model needs: "
                        f"{shown}{more}; add a row for each with the covariates' values")
    centre = np.array([values[..., k][needed[..., k]].mean() for k in range(len(names))])
    scale = np.array([values[..., k][needed[..., k]].std() for k in range(len(names))])
    constant = [n for n, s in zip(names, scale, strict=True) if not s > 0]
    if constant and not future:
        raise DataError(f"{label}: covariate(s) {constant} take one value in every region-period the model uses, "
                        "so they cannot have an effect (the traits are centred); drop them from [covariates]")
    kept = frame[[*KEYS, *(["country"] if "country" in frame else []), *names]].copy()
    kept["region"], kept["period"] = region, [panel.periods[j] for j in t]
    return CovariateTable(names=names, values=values, needed=needed, centre=centre, scale=scale, frame=kept,
                          source=label)


def _period_index(period: pd.Series, panel: Panel) -> pd.Series:
    """The position of each row's period among the panel's (NaN when it is not one of them)."""
    text = period.astype("string").str.strip()
    if panel.periods and isinstance(panel.periods[0], str):
        return text.map({p: i for i, p in enumerate(panel.periods)})
    years = pd.to_numeric(text, errors="coerce")
    whole = years.where(np.floor(years) == years)
    return whole.map({p: i for i, p in enumerate(panel.periods)})


def _listed(items: list) -> str:
    shown = ", ".join(map(str, items[:MAX_SHOWN]))
    return shown + (f", ... {items[-1]}" if len(items) > MAX_SHOWN else "")
