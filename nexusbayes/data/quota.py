"""The quota column(s) of count indicators with quota heaping: which columns the spec names, and their checks.

An indicator with ``quota = "<column>"`` (see :class:`nexusbayes.spec.indicators.Indicator`) takes its quota from a
column of the data, one value per row; every row of the indicator needs a whole number >= 0 there (at most the
row's ``trials`` for a binomial), and rows of other indicators leave it empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nexusbayes.errors import DataError
from nexusbayes.spec.document import Spec


def quota_columns(spec: Spec) -> list[str]:
    """The data columns that the spec's indicators take their quotas from (each once, in spec order).

    Examples
    --------
    >>> from nexusbayes.spec.indicators import Indicator
    >>> spec = Spec(name="q", traits=["capability"], indicators={
    ...     "a": Indicator(family="negbin", loads={"capability": "positive"}, quota="target"),
    ...     "b": Indicator(family="binomial", loads={"capability": "positive"}, quota=10)})
    >>> quota_columns(spec)
    ['target']
    """
    return list(dict.fromkeys(ind.quota for ind in spec.indicators.values() if isinstance(ind.quota, str)))


def check_quota_columns(frame: pd.DataFrame, spec: Spec, label: str, own: tuple[str, ...]) -> None:
    """Refuse a quota column that the data lack or that is one of the table's own columns (``own``)."""
    for name, ind in spec.indicators.items():
        if not isinstance(ind.quota, str):
            continue
        if ind.quota in own:
            raise DataError(f"{label}: indicator {name!r} takes its quota from column {ind.quota!r}, one of the "
                            f"table's own columns ({', '.join(own)}); put the quotas in a column of their own, e.g. "
                            "`quota_target`, and name it in the spec")
        if ind.quota not in frame.columns:
            raise DataError(f"{label}: indicator {name!r} takes its quota from column {ind.quota!r}, which the data "
                            f"lack (found {list(frame.columns)}); add the column or give a fixed quota, e.g. "
                            "quota = 10")


def check_quotas(frame: pd.DataFrame, spec: Spec, problems, trials: np.ndarray, max_count: float) -> None:
    """Add a problem (rows and column named) for every quota value that is missing, not a count or out of range.

    ``problems`` is the panel's problem list (its ``add(mask, message, got=None)``); the quota columns are
    numbers already (unparseable text was refused with the table's other numeric columns).
    """
    indicator = frame["indicator"]
    users: dict[str, list[str]] = {}
    for name, ind in spec.indicators.items():
        if ind.quota is None:
            continue
        rows = (indicator == name).to_numpy()
        column = isinstance(ind.quota, str)
        quota = frame[ind.quota].to_numpy(float) if column else np.full(len(frame), float(ind.quota))
        where = f"column `{ind.quota}` (the quota of {name!r})" if column else f"the quota of {name!r} ({ind.quota})"
        if column:
            users.setdefault(ind.quota, []).append(name)
            problems.add(rows & np.isnan(quota), f"{where} is empty: every row of {name!r} needs its quota, a whole "
                         "number >= 0")
        whole = np.isfinite(quota) & (np.floor(quota) == quota) & (quota >= 0)
        problems.add(rows & np.isfinite(quota) & ~whole, f"{where} must be a whole number >= 0", got=quota)
        problems.add(rows & whole & (quota > max_count), f"{where} is too large (at most 2^53)", got=quota)
        if ind.family == "binomial":
            problems.add(rows & whole & np.isfinite(trials) & (quota > trials),
                         f"{where} is more than the row's `trials`: a binomial count cannot reach it", got=quota)
        if ind.zero_inflated:
            problems.add(rows & (quota == 0), f"{where} is 0 on a zero-inflated indicator, where the heap and the "
                         "structural zeros cannot be told apart: give a quota > 0 or drop `zero_inflated`")
    for column, names in users.items():
        others = ~indicator.isin(names).to_numpy() & frame[column].notna().to_numpy()
        problems.add(others, f"column `{column}` holds the quotas of {', '.join(map(repr, names))} only; leave it "
                     "empty on the rows of other indicators")
