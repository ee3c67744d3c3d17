"""Loaders for public data sets in their published layout, one function per source.

Each loader reads the user's copy of a data set (the data are never bundled with the package)
and returns the package's long table (``country, region, period, indicator, value``, see
:mod:`nexusbayes.data`), and, where the source provides them, published results to benchmark
fits against. A spec reads such a source directly with ``[data]`` ``path`` and ``format`` (the
keys of :data:`READERS`). Format problems raise :class:`~nexusbayes.errors.DataError` naming the
file, the line and the column.

Sources
-------
``martin_quinn``
    U.S. Supreme Court votes 1937-2013 and Martin and Quinn's dynamic ideal points
    (:func:`load_martin_quinn`).
``tip_tiers``
    Trafficking-in-Persons tiers and the 3P anti-trafficking policy index, country-year
    (:func:`load_tip_tiers`).

Examples
--------
>>> import pandas as pd, tempfile, os
>>> raw = pd.DataFrame({"countryname": ["KyrgyzRep", "KyrgyzRep", "Tajikistan"], "iso": ["KGZ", "KGZ", "TJK"],
...                     "year": [2003, 2004, 2004], "tier": [2.0, 2.5, 3.0], "prosecution": [4.0, None, 2.0],
...                     "protection": [2.0, 2.0, 1.0], "prevention": [4.0, 3.0, 2.0]})
>>> path = os.path.join(tempfile.mkdtemp(), "tip.csv"); raw.to_csv(path, index=False)
>>> long = load_tip_tiers(path)
>>> print(long[long["indicator"].isin(["tier", "prosecution"])].head(4).to_string(index=False))
  country    region  period   indicator  value       status
KyrgyzRep KyrgyzRep    2003 prosecution    4.0     reported
KyrgyzRep KyrgyzRep    2003        tier    3.0     reported
KyrgyzRep KyrgyzRep    2004 prosecution    NaN not_reported
KyrgyzRep KyrgyzRep    2004        tier    2.0     reported
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nexusbayes.data.reporting import NOT_REPORTED, REPORTED
from nexusbayes.errors import DataError

MQ_VOTES = "mq_votes_1937_2013_wide.csv"
MQ_SCORES = "mq_mcmc_estimates.csv"
MQ_COUNTRY = "Supreme Court"


def load_martin_quinn(directory: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the Martin-Quinn Supreme Court votes and published ideal points.

    Parameters
    ----------
    directory : path
        A directory holding ``mq_votes_1937_2013_wide.csv`` (one row per case: ``case_idx``,
        ``term`` and one column per justice with 1 and -1 for the two vote directions and 0 for
        did not sit or did not vote) and ``mq_mcmc_estimates.csv`` (``justice_rc``, ``term``,
        ``mq_mcmc``: Martin and Quinn's posterior means, one per justice and term).

    Returns
    -------
    votes : pandas.DataFrame
        Long table, one row per vote cast: ``country`` ("Supreme Court"), ``region`` (the
        justice), ``period`` (the term), ``indicator`` (``case<case_idx>``) and ``value`` (1 for
        a vote coded 1, 0 for -1). Non-votes (0) are absent rows: missing, not a vote.
    scores : pandas.DataFrame
        ``region`` (justice), ``period`` (term) and ``mq_mcmc``, the published ideal point
        (higher is more conservative).

    Raises
    ------
    DataError
        When a file is missing or a column is absent or holds values outside the format.

    Notes
    -----
    The votes are coded in one direction for most cases but not all (about 1 case in 6 runs the
    other way with respect to the published ideal points), so a model of them needs free
    loadings, oriented by justices (see :class:`nexusbayes.spec.sections.Orientation`).

    Examples
    --------
    >>> load_martin_quinn("/nonexistent")
    Traceback (most recent call last):
    ...
    nexusbayes.errors.DataError: /nonexistent/mq_votes_1937_2013_wide.csv: Martin-Quinn votes file not found ...
    """
    return read_martin_quinn_votes(directory), read_martin_quinn_scores(directory)


def read_martin_quinn_votes(directory: str | Path) -> pd.DataFrame:
    """The votes of :func:`load_martin_quinn` alone, as a long table (the ``martin_quinn`` data format)."""
    path = Path(directory) / MQ_VOTES
    wide = _read_csv(path, "Martin-Quinn votes", ("case_idx", "term"))
    _whole_numbers(wide, path, ("case_idx", "term"))
    dup = wide["case_idx"].duplicated()
    if dup.any():
        raise DataError(f"{path}: column `case_idx` repeats {sorted(set(wide.loc[dup, 'case_idx']))[:8]} "
                        "(one row per case)")
    justices = [c for c in wide.columns if c not in ("case_idx", "term")]
    if not justices:
        raise DataError(f"{path}: no justice columns besides `case_idx` and `term`")
    votes = wide[justices].apply(pd.to_numeric, errors="coerce")
    bad = ~votes.isin([-1, 0, 1])
    if bad.to_numpy().any():
        col = bad.any().idxmax()
        row = int(np.flatnonzero(bad[col].to_numpy())[0])
        raise DataError(f"{path}: column {col!r} (a justice) must hold 1 or -1 (the two vote directions) or 0 "
                        f"(did not sit), got {str(wide[col].iloc[row])!r} on line {row + 2}")
    long = votes.set_axis(wide["case_idx"].astype(int), axis=0).rename_axis(index="case", columns="region").stack()
    long = long[long != 0].reset_index(name="vote")
    term = dict(zip(wide["case_idx"].astype(int), wide["term"].astype(int), strict=True))
    return pd.DataFrame({
        "country": MQ_COUNTRY, "region": long["region"].astype(str), "period": long["case"].map(term),
        "indicator": "case" + long["case"].astype(str), "value": (long["vote"] == 1).astype(float),
    })


def read_martin_quinn_scores(directory: str | Path) -> pd.DataFrame:
    """The published ideal points of :func:`load_martin_quinn` alone: ``region``, ``period``, ``mq_mcmc``."""
    path = Path(directory) / MQ_SCORES
    scores = _read_csv(path, "Martin-Quinn estimates", ("justice_rc", "term", "mq_mcmc"))
    _whole_numbers(scores, path, ("term",))
    value = pd.to_numeric(scores["mq_mcmc"], errors="coerce")
    if value.isna().any() or not np.isfinite(value).all():
        row = int(np.flatnonzero(~np.isfinite(value.to_numpy(float)))[0])
        raise DataError(f"{path}: column `mq_mcmc` must be a finite number, got {scores['mq_mcmc'].iloc[row]!r} "
                        f"on line {row + 2}")
    return pd.DataFrame({"region": scores["justice_rc"].astype(str), "period": scores["term"].astype(int),
                         "mq_mcmc": value.astype(float)})


def _read_csv(path: Path, what: str, required: tuple[str, ...],
              hint: str = "is the directory the Martin-Quinn data set?", **read_options) -> pd.DataFrame:
    """Read one CSV file of a public data set, refusing a missing file, missing columns or no rows."""
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found ({hint})")
    try:
        frame = pd.read_csv(path, **read_options)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read as CSV: {exc}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(frame.columns)[:10]}"
                        f"{' ...' if frame.shape[1] > 10 else ''}")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


def _whole_numbers(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    for col in columns:
        num = pd.to_numeric(frame[col], errors="coerce")
        bad = num.isna() | (np.floor(num) != num)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column `{col}` must hold whole numbers, got {frame[col].iloc[row]!r} "
                            f"on line {row + 2}")
        frame[col] = num.astype(int)




# TIP tiers, best to worst, as ordinal categories where higher means more effort (4 = Tier 1).
TIP_TIER_CATEGORY = {1.0: 4, 2.0: 3, 2.5: 2, 3.0: 1}
TIP_POLICY_ITEMS = ("prosecution", "protection", "prevention")   # the 3P index, each 1..5
TIP_COLUMNS = ("countryname", "iso", "year", "tier", *TIP_POLICY_ITEMS)
TIP_PUBLISHED_SHARE = 0.1   # an item was published in a year if at least this share of the file's countries has it


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
        Long table (country, region, period, indicator, value, status) with indicators ``tier``
        (ordinal 1..4, **4 = Tier 1**, the best, so that higher means more effort, like the 3P items)
        and ``prosecution``, ``protection``, ``prevention`` (ordinal 1..5). An empty cell in a year in
        which the item was published (rated for at least 10% of the file's countries, see
        :func:`tip_published_years`) is a non-report: a row with ``status = "not_reported"`` and an
        empty ``value`` (e.g. a country not yet in the TIP report), which an indicator with
        ``missing = "informative"`` models and the others drop. Empty cells in other years (the
        tiers in 2000, before the first report) are structural absence: no row.

    Raises
    ------
    DataError
        When the file is missing or unreadable, a column is missing, a tier or an item has a value
        outside its scale (naming the line), or a requested country is unknown (with the nearest names).
    """
    path = Path(path)
    raw = _read_csv(path, "TIP tiers", TIP_COLUMNS,
                    hint="it is not bundled: point the spec's [data] path (relative to the spec file) or "
                         "nb.fit's data argument at your copy of tip_tier_cho3p_policy_index.csv",
                    dtype={"countryname": str, "iso": str})
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

    published = tip_published_years(raw)       # over the whole file, before any selection
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
        covered = raw["year"].isin(published[col])
        sub = raw[raw[col].notna() | covered]
        value = sub[col].map(TIP_TIER_CATEGORY) if col == "tier" else sub[col]
        parts.append(pd.DataFrame({"country": sub["countryname"], "region": sub["countryname"],
                                   "period": sub["year"].astype(int), "indicator": col,
                                   "value": value.astype(float),
                                   "status": np.where(sub[col].notna(), REPORTED, NOT_REPORTED)}))
    long = pd.concat(parts, ignore_index=True)
    return long.sort_values(["country", "period", "indicator"], kind="stable").reset_index(drop=True)


def tip_published_years(raw: pd.DataFrame, share: float = TIP_PUBLISHED_SHARE) -> dict[str, set[int]]:
    """The years in which each TIP item was published: rated for at least ``share`` of that year's countries.

    Below that share (the tiers before the first report of 2001, the 3P index after 2013, where the file holds
    one stray value) the series did not exist that year, so its empty cells are structural absence, not non-reports.
    """
    years = {}
    for col in ("tier", *TIP_POLICY_ITEMS):
        rated = raw.groupby("year")[col].apply(lambda v: v.notna().mean())
        years[col] = {int(y) for y in rated.index[rated >= share]}
    return years


def _refuse(path: Path, bad: pd.Series, raw: pd.DataFrame, column: str, what: str) -> None:
    if bool(np.asarray(bad).any()):
        lines = raw.index[np.asarray(bad)].tolist()
        got = list(dict.fromkeys(str(v) for v in raw.loc[bad, column]))[:5]
        raise DataError(f"{path}: line(s) {', '.join(map(str, lines[:8]))}{' ...' if len(lines) > 8 else ''}: "
                        f"`{column}` {what} (got {', '.join(got)})")


#: Data formats a spec can name in ``[data] format``: each a reader from a path (and the ``[data]``
#: table's selection keys, ``countries`` and ``years``, where the source has them) to the long table.
READERS: dict[str, Callable[..., pd.DataFrame]] = {"martin_quinn": read_martin_quinn_votes,
                                                   "tip_tiers": load_tip_tiers}


def correlate_scores(estimates: pd.DataFrame, published: pd.DataFrame, column: str,
                     exclude: tuple[str, ...] = ()) -> tuple[float, int]:
    """Pearson correlation of estimated and published scores over the region-periods in both.

    Parameters
    ----------
    estimates : pandas.DataFrame
        ``region``, ``period`` and ``mean`` (e.g. one trait of :meth:`nexusbayes.Fit.trait_summary`).
    published : pandas.DataFrame
        ``region``, ``period`` and the published score in ``column``.
    column : str
        The published score's column.
    exclude : tuple of str
        Regions to leave out (e.g. ``("Douglas",)``).

    Returns
    -------
    r : float
        The correlation, signed: the sign of a latent scale is a convention, so compare ``abs(r)``
        unless the orientations were aligned.
    n : int
        Number of region-periods compared.

    Examples
    --------
    >>> est = pd.DataFrame({"region": ["a", "a", "b"], "period": [1, 2, 1], "mean": [0.1, 0.2, -1.0]})
    >>> pub = pd.DataFrame({"region": ["a", "a", "b", "c"], "period": [1, 2, 1, 1], "score": [1.0, 1.5, -2, 3]})
    >>> r, n = correlate_scores(est, pub, "score")
    >>> round(r, 3), n
    (0.998, 3)
    """
    both = estimates.merge(published, on=["region", "period"], how="inner")
    both = both[~both["region"].isin(exclude)]
    if len(both) < 3:
        raise ValueError(f"only {len(both)} region-periods in common; check the region and period labels")
    return float(np.corrcoef(both["mean"], both[column])[0, 1]), len(both)
