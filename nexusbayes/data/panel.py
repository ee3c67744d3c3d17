"""The indicator panel: load, validate and index a long-format indicator table.

One row per observation with columns ``country, region, period, indicator, value`` and, where an
indicator needs them, ``exposure`` (count offset), ``trials`` (binomial) and ``rater`` (ordinal
expert ratings), and ``status`` (``not_reported`` marks a non-report, see :mod:`nexusbayes.data.reporting`).
A region-period without a row is structurally absent. Every problem is reported with the file
and the offending rows (line numbers for files, index labels for DataFrames) and what is allowed.

Examples
--------
>>> import pandas as pd
>>> from nexusbayes.spec.document import Spec
>>> from nexusbayes.spec.indicators import Indicator
>>> from nexusbayes.data.read import load_panel
>>> spec = Spec(name="demo", traits=["capability"],
...             indicators={"staff": Indicator(family="normal", loads={"capability": "positive"})})
>>> df = pd.DataFrame({"country": "KG", "region": ["Osh", "Chui"], "period": 2000,
...                    "indicator": "staff", "value": [1.5, 2.0]})
>>> panel = load_panel(df, spec)
>>> panel.regions, panel.periods
(['Chui', 'Osh'], [2000])
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nexusbayes.data.covariate_table import CovariateTable
from nexusbayes.data.quota import check_quota_columns, check_quotas, quota_columns
from nexusbayes.data.reporting import (
    NOT_REPORTED,
    STATUS,
    check_non_reports,
    index_non_reports,
    no_non_reports,
    non_report_mask,
    require_non_reports,
    split_non_reports,
)
from nexusbayes.errors import DataError
from nexusbayes.spec.document import Spec
from nexusbayes.spec.limits import name_advice, name_problem

REQUIRED = ("country", "region", "period", "indicator", "value")
OPTIONAL = ("exposure", "trials", "rater", STATUS)
NA_TEXT = ("nan", "na", "n/a", "null", "none", "<na>")  # read as missing in numeric columns
MAX_SHOWN = 8
MAX_ABS = 1e100       # largest magnitude of any number in the table (beyond it sums and squares overflow)
MAX_COUNT = 2.0**53   # counts and trials: whole numbers that floats store exactly (and int64 holds)
MIN_EXPOSURE = 1e-100  # exposure enters as log exposure
MAX_YEAR = 9999       # periods are years -9999..9999


@dataclass(frozen=True)
class Panel:
    """A validated indicator table with integer codes for every dimension.

    Attributes
    ----------
    frame : pandas.DataFrame
        The observations, with the data columns plus integer codes ``country_idx``,
        ``region_idx``, ``period_idx``, ``indicator_idx``, ``rater_idx`` (-1 without a rater) and
        ``row`` (the line number in the file, or the DataFrame's index label).
    countries, regions, indicators, raters : list of str
        Coordinates, sorted (indicators in spec order).
    periods : list
        Period coordinates: integer years, or era names in time order.
    period_time : numpy.ndarray
        Position of each period in years (era midpoints for eras), for the dynamics.
    region_country : numpy.ndarray
        Country code of each region.
    source : str
        Where the table came from (file path or ``"<DataFrame>"``).
    empty_cells : list of (region, period)
        Region-periods without any observation (their traits come from the dynamics).
    spec_indicators : list of str
        The indicators listed in the spec (the rest are item-bank items).
    trait_loads : dict of str to set of str
        Per trait, the indicators that load on it.
    not_reported : pandas.DataFrame
        The non-reports of indicators with ``missing = "informative"`` (rows with ``status = "not_reported"``):
        ``country, region, period, indicator, row`` and their integer codes (see :mod:`nexusbayes.data.reporting`).
    warnings : list of str
        Coverage problems the fit allows but the reader must know (see the property).
    covariates : CovariateTable, optional
        The spec's ``[covariates]`` on the grid (:func:`nexusbayes.data.covariates.attach_covariates`).
    """

    frame: pd.DataFrame
    countries: list[str]
    regions: list[str]
    periods: list
    period_time: np.ndarray
    indicators: list[str]
    raters: list[str]
    region_country: np.ndarray
    source: str
    empty_cells: list[tuple[str, object]] = field(default_factory=list)
    #: The indicators listed in the spec, and per trait the indicators (listed or item-bank) that load on
    #: it: what :attr:`warnings` checks coverage against.
    spec_indicators: list[str] = field(default_factory=list)
    trait_loads: dict[str, set[str]] = field(default_factory=dict)
    not_reported: pd.DataFrame = field(default_factory=no_non_reports)
    covariates: CovariateTable | None = None
    #: The data columns giving indicators' quotas per row (``quota = "<column>"``), kept with the data.
    quota_columns: list[str] = field(default_factory=list)

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return len(self.frame)

    @property
    def country_of(self) -> dict[str, str]:
        """The country of each region, by name."""
        return {r: self.countries[c] for r, c in zip(self.regions, self.region_country, strict=True)}

    @functools.cached_property
    def warnings(self) -> list[str]:
        """Problems of coverage that the fit allows but the reader must know, one sentence each.

        A trait that no indicator measures in a country is there inferred from the prior and the
        other countries alone, so its types say nothing about the country's data; an indicator
        absent from a whole country does not inform that country. :func:`nexusbayes.fit.fit` emits
        each as a :class:`~nexusbayes.errors.DataWarning`, ``nexusbayes check`` prints them.
        """
        if len(self.countries) < 2:
            return []   # an indicator absent from the only country is an error (load_panel)
        present = self.frame.groupby("country_idx")["indicator_idx"].unique()
        silent = self.not_reported.groupby("country")["indicator"].unique()   # informative non-reports
        out = []
        for c, country in enumerate(self.countries):
            seen = {self.indicators[i] for i in present.get(c, [])}
            gaps = set(silent.get(country, []))
            absent = [n for n in self.spec_indicators if n not in seen and n not in gaps]
            if absent:
                out.append(f"indicator(s) {', '.join(map(repr, absent))} have no observation in country "
                           f"{country!r}: they do not inform its traits")
            for trait in (t for t in self.trait_loads if not seen & self.trait_loads[t]):
                only = ", ".join(map(repr, sorted(gaps & self.trait_loads[trait])))
                out.append(f"no indicator of trait {trait!r} is observed in country {country!r}: " + (
                    f"only its non-reports of {only} (missing = \"informative\") inform its {trait}, through the "
                    "reporting model; the rest comes from the prior and the other countries" if only else
                    f"its {trait} comes from the prior and the other countries alone, and its types do not reflect "
                    "its data; add an indicator of the trait for the country or fit it apart"))
        return out

    def data_table(self) -> pd.DataFrame:
        """The observations as a plain long table (data columns only), e.g. for saving.

        Non-reports follow the observations, with ``status = "not_reported"`` (the column only when there are any).
        """
        cols = [c for c in (*REQUIRED, *OPTIONAL, *self.quota_columns) if c in self.frame.columns]
        table = self.frame[cols].reset_index(drop=True)
        if len(self.not_reported) == 0:
            return table
        silent = self.not_reported[["country", "region", "period", "indicator"]].assign(value=np.nan)
        return pd.concat([table.assign(**{STATUS: None}), silent.assign(**{STATUS: NOT_REPORTED})],
                         ignore_index=True)[[*cols, STATUS]]

    def row_labels(self) -> np.ndarray:
        """The row labels of :meth:`data_table`'s rows (the file's lines, or the DataFrame's index labels)."""
        return np.concatenate([self.frame["row"].to_numpy(), self.not_reported["row"].to_numpy()])


class _Problems:
    def __init__(self, label: str, rows: pd.Series):
        self.label, self.rows, self.items = label, rows, []

    def add(self, mask, message: str, got=None) -> None:
        """Report the rows in ``mask``; ``got`` (a column) adds the offending values to the message."""
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            where = self.rows[mask].tolist()
            shown = ", ".join(str(r) for r in where[:MAX_SHOWN]) + (f" (and {len(where) - MAX_SHOWN} more)"
                                                                     if len(where) > MAX_SHOWN else "")
            if got is not None:
                values = list(dict.fromkeys(_show(v) for v in np.asarray(got, dtype=object)[mask]))
                more = ", ..." if len(values) > MAX_SHOWN else ""
                message += f" (got {', '.join(values[:MAX_SHOWN])}{more})"
            self.items.append(f"  - {'row' if len(where) == 1 else 'rows'} {shown}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            head = f"{self.label}: invalid {self.what} (rows are {self.kind})"
            raise DataError("\n".join([head, *self.items]))

    kind = "line numbers in the file"
    what = "indicator data"


def validate(frame: pd.DataFrame, spec: Spec, label: str = "<DataFrame>", file_lines: bool = False,
             row_kind: str | None = None, whole: bool = True) -> Panel:
    """Validate a long table against ``spec`` and index it (see :func:`load_panel`).

    ``row_kind`` names what the index labels are in error messages (default: line numbers in the
    file when ``file_lines``, else DataFrame index labels). ``whole=False``: the table is part of one (an
    update's new periods), every row checked but not what the whole needs (each indicator's rows, non-reports
    of informative ones, a varying indicator, the spec's named regions, two region-periods).
    """
    if frame.shape[0] == 0:
        raise DataError(f"{label}: the table is empty; it needs one row per observation with columns "
                        f"{', '.join(REQUIRED)}")
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    repeated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise DataError(f"{label}: column(s) {repeated} appear more than once (after trimming spaces); "
                        "keep one column of each name")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{label}: missing column(s) {missing}; found {list(frame.columns)}. "
                        f"Required: {', '.join(REQUIRED)}; optional: {', '.join(OPTIONAL)}")
    quotas = quota_columns(spec)
    check_quota_columns(frame, spec, label, REQUIRED + OPTIONAL)
    unknown = [c for c in frame.columns if c not in REQUIRED + OPTIONAL + tuple(quotas)]
    if unknown:
        hints = []
        for c in unknown:
            guess = difflib.get_close_matches(c, REQUIRED + OPTIONAL, n=1)
            hints.append(f"{c!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
        raise DataError(f"{label}: unknown column(s) {', '.join(hints)}; allowed: "
                        f"{', '.join(REQUIRED + OPTIONAL)}. Drop or rename them.")
    # file lines: the index counts data lines from 0 (see read_table), the header being line 1
    rows = pd.Series(frame.index.to_numpy() + 2 if file_lines else frame.index.to_numpy(), index=frame.index)
    frame = frame.reset_index(drop=True)
    rows = rows.reset_index(drop=True)
    problems = _Problems(label, rows)
    if not file_lines:
        problems.kind = "DataFrame index labels"
    if row_kind is not None:
        problems.kind = row_kind

    for col in ("country", "region", "indicator", *(("rater",) if "rater" in frame else ())):
        text = frame[col].astype("string").str.strip()
        blank = text.isna() | (text == "")
        if col == "rater":
            frame[col] = text.where(~blank, None)
        else:
            problems.add(blank, f"`{col}` is empty; every row needs a {col}")
            frame[col] = text.fillna("")
        _check_names(frame[col], col, problems)
    problems.raise_if_any()

    known = set(spec.indicators)
    listed = frame["indicator"].isin(known).to_numpy()
    bad_ind = ~listed if spec.item_bank is None else np.zeros(len(frame), dtype=bool)
    for name in sorted(_distinct(frame.loc[bad_ind, "indicator"])):
        guess = difflib.get_close_matches(name, sorted(known), n=1)
        problems.add(frame["indicator"] == name,
                     f"indicator {name!r} is not in the spec" + (f" (did you mean {guess[0]!r}?)" if guess else "")
                     + f"; the spec has: {', '.join(spec.indicators)}")
    silent = non_report_mask(frame, problems)
    problems.raise_if_any()
    if spec.item_bank is not None and listed.all():
        raise DataError(f"{label}: the spec has an [item_bank] but every indicator in the data is listed under "
                        "[indicators]; remove [item_bank]")

    given_value = np.zeros(len(frame), dtype=bool)
    for col in ("value", "exposure", "trials", *quotas):
        if col not in frame:
            continue
        raw = frame[col]
        if raw.dtype.kind in "mM":  # dates and durations would silently become nanoseconds
            num = pd.Series(np.nan, index=raw.index)
        else:
            num = pd.to_numeric(raw, errors="coerce")
            if num.dtype.kind == "c":  # complex numbers: imaginary parts would be dropped silently
                num = pd.Series(np.nan, index=raw.index)
            num = num.astype(float)
        text = raw.astype("string").str.strip()
        given = (raw.notna() & (text != "") & ~text.str.lower().isin(NA_TEXT)).fillna(False).astype(bool)
        problems.add(given & num.isna(), f"`{col}` is not a number (got e.g. {raw[given & num.isna()].iloc[0]!r})"
                     if (given & num.isna()).any() else "")
        if col == "value":
            given_value = given.to_numpy()
            problems.add(~given & ~silent, "`value` is empty or NaN; a missing observation is an absent row: delete "
                         f"the row (or set `status` to {NOT_REPORTED!r} if the series existed and was not reported)")
        problems.add(np.isinf(num), f"`{col}` is infinite; only finite numbers are allowed")
        huge = np.isfinite(num) & (num.abs() > MAX_ABS)
        problems.add(huge, f"`{col}` is too large in magnitude (at most {MAX_ABS:g}); rescale the indicator, "
                     "e.g. to thousands", got=num)
        frame[col] = num
    problems.raise_if_any()

    # periods
    periods, period_time, frame["period_idx"] = _index_periods(frame, spec, problems)
    problems.raise_if_any()
    check_non_reports(frame, silent, given_value, problems)
    problems.raise_if_any()

    # support of each family
    fam = frame["indicator"].map({n: i.family for n, i in spec.indicators.items()}).astype(object)
    if spec.item_bank is not None:
        fam = fam.where(listed, spec.item_bank.family)
    value = frame["value"].to_numpy()
    is_int = np.isfinite(value) & (np.floor(value) == value)
    has = {c: (c in frame) for c in OPTIONAL}
    exposure = frame["exposure"].to_numpy() if has["exposure"] else np.full(len(frame), np.nan)
    trials = frame["trials"].to_numpy() if has["trials"] else np.full(len(frame), np.nan)
    whole_trials = np.isfinite(trials) & (np.floor(trials) == trials) & (trials >= 1)
    ok_trials = whole_trials & (trials <= MAX_COUNT)
    small = is_int & (np.abs(value) <= MAX_COUNT)  # a whole number stored exactly
    checks = [(f"{name!r}", (frame["indicator"] == name).to_numpy() & ~silent, ind)
              for name, ind in spec.indicators.items()]
    if spec.item_bank is not None:   # all bank items at once (there may be thousands)
        checks.append(("item-bank indicators", ~listed & ~silent, spec.item_bank.indicator()))
    for name, m, ind in checks:
        if ind.family == "negbin":
            problems.add(m & ~(is_int & (value >= 0)),
                         f"`value` of {name} (negbin) must be a count: a whole number >= 0", got=value)
            problems.add(m & is_int & (value >= 0) & ~small,
                         f"`value` of {name} (negbin) is too large a count (at most 2^53 = {MAX_COUNT:.0f})",
                         got=value)
            problems.add(m & np.isfinite(exposure) & ~(exposure > 0),
                         f"`exposure` of {name} must be > 0 (it enters as log exposure)", got=exposure)
            problems.add(m & (exposure > 0) & (exposure < MIN_EXPOSURE),
                         f"`exposure` of {name} is too small (at least {MIN_EXPOSURE:g}); rescale it, e.g. "
                         "per 1,000 people", got=exposure)
        elif ind.family == "binomial":
            problems.add(m & np.isnan(trials),
                         f"{name} is binomial: it needs `trials` (e.g. 12 months) on every row")
            problems.add(m & np.isfinite(trials) & ~whole_trials,
                         f"`trials` of {name} must be a whole number >= 1", got=trials)
            problems.add(m & whole_trials & ~ok_trials,
                         f"`trials` of {name} is too large (at most 2^53 = {MAX_COUNT:.0f})", got=trials)
            problems.add(m & ok_trials & ~(is_int & (value >= 0) & (value <= trials)),
                         f"`value` of {name} (binomial: successes out of `trials`) must be a whole number "
                         "from 0 to the row's `trials`", got=value)
        elif ind.family == "bernoulli":
            problems.add(m & ~np.isin(value, [0.0, 1.0]),
                         f"`value` of {name} (bernoulli) must be 0 or 1", got=value)
        elif ind.family == "ordinal":
            problems.add(m & ~(is_int & (value >= 1) & (value <= ind.categories)),
                         f"`value` of {name} (ordinal rating) must be a whole number from 1 to "
                         f"{ind.categories}", got=value)
    problems.add((fam != "negbin").to_numpy() & np.isfinite(exposure),
                 "`exposure` is only for negbin indicators; leave it empty here")
    problems.add((fam != "binomial").to_numpy() & np.isfinite(trials),
                 "`trials` is only for binomial indicators; leave it empty here")
    check_quotas(frame, spec, problems, trials, MAX_COUNT)
    if has["rater"]:
        problems.add((fam != "ordinal").to_numpy() & frame["rater"].notna().to_numpy(),
                     "`rater` is only for ordinal indicators; leave it empty here")
    problems.raise_if_any()

    # duplicates and nesting
    rater_key = frame["rater"].fillna("") if has["rater"] else pd.Series("", index=frame.index)
    key = pd.DataFrame({"r": frame["region"], "p": frame["period_idx"], "i": frame["indicator"], "k": rater_key})
    dup = key.duplicated(keep=False)
    problems.add(dup, "duplicated (region, period, indicator, rater): keep one row per observation")
    countries_per_region = frame.groupby("region")["country"].nunique()
    multi = countries_per_region[countries_per_region > 1].index
    for region in multi:
        names = sorted(_distinct(frame.loc[frame["region"] == region, "country"]))
        problems.add(frame["region"] == region,
                     f"region {region!r} appears under {len(names)} countries {names}; a region belongs to one "
                     "country (rename one, e.g. 'Osh (KG)')")
    problems.raise_if_any()
    frame, rows, non_reports = split_non_reports(frame, rows, silent, spec)
    listed, fam = frame["indicator"].isin(known).to_numpy(), fam[~silent].reset_index(drop=True)
    if whole and (lacking := require_non_reports(spec, non_reports, label)):
        raise DataError(lacking)
    observed = _distinct(frame["indicator"])
    absent = [n for n in spec.indicators if n not in observed] if whole else []
    if absent:
        raise DataError(f"{label}: indicator(s) {absent} are in the spec but have no rows in the data; "
                        "add observations or remove them from the spec")
    if whole:
        _check_constant(frame, spec, label, fam)
    in_data = _distinct(frame["region"])
    named = {"[orientation]": [r for o in spec.orientation.values() for r in (*o.higher, *o.lower)],
             **{f"[summary.region_groups] {g!r}": members for g, members in spec.summary.region_groups.items()}}
    for where, regions in named.items() if whole else ():
        _check_regions(regions, in_data, f"{label}: the spec's {where}")
    if whole and len(periods) == 1 and frame["region"].nunique() == 1:
        raise DataError(f"{label}: all rows are in one region-period ({frame['region'].iloc[0]!r}, {periods[0]}); "
                        "traits are standardised over region-periods, so at least two are needed: add regions "
                        "or periods")

    countries = sorted(_distinct(frame["country"]) | _distinct(non_reports["country"]))
    # one country per region (checked); a region with non-reports only is a region too
    country_of = pd.concat([frame, non_reports]).groupby("region", sort=False)["country"].first()
    country_code = {c: i for i, c in enumerate(countries)}
    regions = sorted(country_of.index, key=lambda r: (country_code[country_of[r]], r))
    # listed indicators in spec order, then item-bank items in order of first appearance
    indicators = list(spec.indicators) + pd.unique(frame.loc[~listed, "indicator"]).tolist()
    raters = sorted(_distinct(frame["rater"].dropna())) if has["rater"] else []
    frame["country_idx"] = frame["country"].map({c: i for i, c in enumerate(countries)}).astype(int)
    frame["region_idx"] = frame["region"].map({r: i for i, r in enumerate(regions)}).astype(int)
    frame["indicator_idx"] = frame["indicator"].map({n: i for i, n in enumerate(indicators)}).astype(int)
    frame["rater_idx"] = (frame["rater"].map({r: i for i, r in enumerate(raters)}).fillna(-1).astype(int)
                          if has["rater"] else -1)
    frame["row"] = rows
    region_country = np.array([country_code[country_of[r]] for r in regions], dtype=int)
    seen = set(zip(frame["region_idx"], frame["period_idx"], strict=True))
    empty = [(regions[r], periods[t]) for r in range(len(regions)) for t in range(len(periods)) if (r, t) not in seen]
    trait_loads = {t: {n for n in indicators if t in spec.indicator(n).loads} for t in spec.traits}
    codes = {"country": {c: i for i, c in enumerate(countries)}, "region": {r: i for i, r in enumerate(regions)},
             "indicator": {n: i for i, n in enumerate(indicators)}}
    return Panel(frame=frame, countries=countries, regions=regions, periods=periods, period_time=period_time,
                 indicators=indicators, raters=raters, region_country=region_country, source=label,
                 empty_cells=empty, spec_indicators=list(spec.indicators), trait_loads=trait_loads,
                 not_reported=index_non_reports(non_reports, codes),
                 quota_columns=quotas)


def _show(v) -> str:
    """A value as the user wrote it: 3.0 -> '3', strings quoted."""
    if isinstance(v, float | np.floating) and np.isfinite(v) and float(v).is_integer() and abs(v) < 1e16:
        return str(int(v))
    if isinstance(v, float | np.floating):
        return f"{float(v):g}"
    return repr(v) if isinstance(v, str) else str(v)


def _distinct(column: pd.Series) -> set:
    """The distinct values of a column (``set(column)`` iterates a string column element by element: slow)."""
    return set(column.unique().tolist())


def _check_names(names: pd.Series, col: str, problems: _Problems) -> None:
    """Report the rows whose ``col`` cannot be a name (control characters, too long; ``/`` in an indicator)."""
    for name in names.dropna().unique():
        variable = col == "indicator"
        problem = name_problem(str(name), variable=variable)
        if problem is not None:
            shown = repr(name) if len(name) <= 40 else repr(name[:40]) + "..."
            rows = (names == name).fillna(False).to_numpy(dtype=bool)
            problems.add(rows, f"`{col}` {shown} {problem}; {name_advice(variable)}")


def _check_regions(named: list[str], in_data: set[str], where: str) -> None:
    """Refuse region names in the spec that have no rows in the data, suggesting the nearest region."""
    unknown = sorted(set(named) - in_data)
    if unknown:
        guesses = [g for r in unknown for g in difflib.get_close_matches(r, sorted(in_data), n=1)]
        raise DataError(f"{where} names region(s) {unknown} that have no rows in the data"
                        + (f" (did you mean {', '.join(map(repr, guesses))}?)" if guesses else "")
                        + "; fix the name or remove it")


def _check_constant(frame: pd.DataFrame, spec: Spec, label: str, family: pd.Series) -> None:
    """Refuse a listed indicator whose response is the same on every one of its (two or more) rows.

    The response is the value, per unit of exposure for counts and per trial for binomials: a constant
    one carries no information about the traits, and its scale or cut-points then have no data to
    settle on, which breaks the sampler's geometry (R-hat near 3 and divergences in a test).
    """
    response = frame["value"].astype(float)
    if "exposure" in frame:
        response = response.where(family != "negbin", response / frame["exposure"].fillna(1.0))
    if "trials" in frame:
        response = response.where(family != "binomial", response / frame["trials"])
    spread = response.groupby(frame["indicator"]).agg(["min", "max", "size"])
    # a single observation is not called constant: it is the indicator's only datum, not a column of copies
    constant = [n for n in spec.indicators
                if spread.loc[n, "size"] > 1 and spread.loc[n, "min"] == spread.loc[n, "max"]]
    if constant:
        shown = ", ".join(f"{n!r} (every one of its {spread.loc[n, 'size']} rows is "
                          f"{_show(frame.loc[frame['indicator'] == n, 'value'].iloc[0])})" for n in constant)
        raise DataError(f"{label}: indicator(s) {shown} are constant: a constant indicator carries no information "
                        "about the traits and breaks the sampler's geometry; drop it from the spec and the data, or "
                        "check the data")


def _index_periods(frame: pd.DataFrame, spec: Spec, problems: _Problems):
    text = frame["period"].astype("string").str.strip()
    if spec.periods.eras is not None:
        names = [e.name for e in spec.periods.eras]
        problems.add(~text.isin(names), f"`period` must be one of the spec's eras {names}", got=text)
        frame["period"] = text
        codes = text.map({n: i for i, n in enumerate(names)})
        return names, np.array([e.midpoint for e in spec.periods.eras]), codes.fillna(-1).astype(int)
    years = pd.to_numeric(text, errors="coerce")
    bad = years.isna() | (np.floor(years) != years)
    problems.add(bad, "`period` must be a whole year (e.g. 2005), or define named eras in the spec's "
                      "[[periods.eras]] with name, start and end", got=text)
    far = ~bad & (years.abs() > MAX_YEAR)
    problems.add(far, f"`period` must be a year from -{MAX_YEAR} to {MAX_YEAR}", got=text)
    bad = bad | far
    if bad.any():
        return [], np.array([]), pd.Series(-1, index=frame.index)
    years = years.astype(int)
    frame["period"] = years
    first = spec.periods.first if spec.periods.first is not None else int(years.min())
    last = spec.periods.last if spec.periods.last is not None else int(years.max())
    problems.add((years < first) | (years > last), f"`period` is outside the spec's years {first}..{last}",
                 got=years)
    if spec.periods.first is None and spec.periods.last is None:
        periods = sorted(set(years.tolist()))
    else:
        periods = list(range(first, last + 1))
    codes = years.map({y: i for i, y in enumerate(periods)}).fillna(-1).astype(int)
    return periods, np.array(periods, dtype=float), codes
