"""Loaders for public data sets in their published layout, returning the package's long table.

The data stay where the user keeps them; a loader reads the user's copy and never writes it.

Examples
--------
>>> import pandas as pd, tempfile, os
>>> raw = pd.DataFrame({"countryname": ["KyrgyzRep", "KyrgyzRep"], "iso": ["KGZ", "KGZ"],
...                     "year": [2003, 2004], "tier": [2.0, 2.5], "prosecution": [4.0, None],
...                     "protection": [2.0, 2.0], "prevention": [4.0, 3.0]})
>>> path = os.path.join(tempfile.mkdtemp(), "tip.csv"); raw.to_csv(path, index=False)
>>> long = load_tip_tiers(path)
>>> print(long[long["indicator"] == "tier"][["region", "period", "value"]].to_string(index=False))
   region  period  value
KyrgyzRep    2003      3
KyrgyzRep    2004      2
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nexusbayes.errors import DataError

# TIP tiers, best to worst, as ordinal categories where higher means more effort (4 = Tier 1).
TIP_TIER_CATEGORY = {1.0: 4, 2.0: 3, 2.5: 2, 3.0: 1}
TIP_POLICY_ITEMS = ("prosecution", "protection", "prevention")   # the 3P index, each 1..5
TIP_COLUMNS = ("countryname", "iso", "year", "tier", *TIP_POLICY_ITEMS)


def load_tip_tiers(path: str | Path, countries: Sequence[str] | None = None,
                   years: tuple[int, int] | None = None) -> pd.DataFrame:
    """Read the Trafficking-in-Persons tiers and 3P policy index (country-year CSV) as a long table.

    The published layout (e.g. ``tip_tier_cho3p_policy_index.csv`` exported from the
    scorecard-diplomacy repository) has one row per country-year with ``countryname``, ``iso``,
    ``year``, ``tier`` (1, 2, 2.5 = Watch List, 3; empty when not rated) and the 3P index items
    ``prosecution``, ``protection``, ``prevention`` (1..5). Countries are the units: each is its
    own country and its only region.

    Parameters
    ----------
    path : path
        The CSV file.
    countries : sequence of str, optional
        Countries to keep, by ``countryname`` (e.g. ``"KyrgyzRep"``) or ISO code (``"KGZ"``).
    years : (int, int), optional
        Keep ``first <= year <= last``.

    Returns
    -------
    pandas.DataFrame
        Long table (country, region, period, indicator, value) with indicators ``tier`` (ordinal
        1..4, **4 = Tier 1**, the best, so that higher means more effort, like the 3P items) and
        ``prosecution``, ``protection``, ``prevention`` (ordinal 1..5). Missing cells are absent rows.

    Raises
    ------
    DataError
        When the file is missing or unreadable, a column is missing, a tier or an item has a value
        outside its scale (naming the line), or a requested country is unknown (with the nearest names).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: TIP tiers file not found; point at your copy of tip_tier_cho3p_policy_index.csv")
    try:
        raw = pd.read_csv(path, dtype={"countryname": str, "iso": str}, keep_default_na=True)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read as CSV: {exc}") from None
    missing = [c for c in TIP_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: not the TIP tiers/3P layout: missing column(s) {missing}; expected "
                        f"{', '.join(TIP_COLUMNS)}")
    raw.index = raw.index + 2          # line numbers (the header is line 1)
    for col in ("year", "tier", *TIP_POLICY_ITEMS):
        num = pd.to_numeric(raw[col], errors="coerce")
        bad = raw[col].notna() & num.isna()
        _refuse(path, bad, raw, col, "is not a number")
        raw[col] = num
    _refuse(path, raw["year"].isna(), raw, "year", "is empty; every row needs a year")
    _refuse(path, raw["tier"].notna() & ~raw["tier"].isin(list(TIP_TIER_CATEGORY)), raw, "tier",
            "must be 1, 2, 2.5 (Watch List) or 3")
    for col in TIP_POLICY_ITEMS:
        _refuse(path, raw[col].notna() & ~raw[col].isin([1, 2, 3, 4, 5]), raw, col, "must be 1, 2, 3, 4 or 5")

    if countries is not None:
        names, iso = set(raw["countryname"]), {str(c).upper(): n for c, n in zip(raw["iso"], raw["countryname"],
                                                                                 strict=True) if isinstance(c, str)}
        keep = []
        for c in countries:
            if c in names:
                keep.append(c)
            elif str(c).upper() in iso:
                keep.append(iso[str(c).upper()])
            else:
                near = difflib.get_close_matches(str(c), sorted(names), n=3, cutoff=0.5)
                raise DataError(f"{path}: no country {c!r} (by countryname or iso)"
                                + (f"; did you mean {', '.join(map(repr, near))}?" if near else ""))
        raw = raw[raw["countryname"].isin(keep)]
    if years is not None:
        raw = raw[(raw["year"] >= years[0]) & (raw["year"] <= years[1])]
    if raw.empty:
        raise DataError(f"{path}: no rows left after selecting countries {countries} and years {years}")

    parts = []
    for col in ("tier", *TIP_POLICY_ITEMS):
        sub = raw[raw[col].notna()]
        value = sub[col].map(TIP_TIER_CATEGORY) if col == "tier" else sub[col]
        parts.append(pd.DataFrame({"country": sub["countryname"], "region": sub["countryname"],
                                   "period": sub["year"].astype(int), "indicator": col,
                                   "value": value.astype(int)}))
    long = pd.concat(parts, ignore_index=True)
    return long.sort_values(["country", "period", "indicator"], kind="stable").reset_index(drop=True)


def _refuse(path: Path, bad: pd.Series, raw: pd.DataFrame, column: str, what: str) -> None:
    if bool(np.asarray(bad).any()):
        lines = raw.index[np.asarray(bad)].tolist()
        got = list(dict.fromkeys(str(v) for v in raw.loc[bad, column]))[:5]
        raise DataError(f"{path}: line(s) {', '.join(map(str, lines[:8]))}{' ...' if len(lines) > 8 else ''}: "
                        f"`{column}` {what} (got {', '.join(got)})")
