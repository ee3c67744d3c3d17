"""Comparisons between countries and regions, with their posterior uncertainty.

Every quantity is computed draw by draw from the posterior and then summarised, so differences,
P(A > B), ranks and type distributions carry the joint uncertainty of the fit. Countries are
compared on ``country_theta`` (the country path, which is the average of its regions because
region deviations sum to zero within a country); regions on ``theta``. Both live on the one
latent scale of the fit, which is comparable across countries through the indicators marked
``comparable`` (see :class:`nexusbayes.spec.indicators.Indicator`).

Examples
--------
Synthetic draws stand in for a fit here:

>>> import numpy as np, xarray as xr
>>> rng = np.random.default_rng(0)
>>> means = np.array([0.0, 1.5])[None, None, :, None]            # A around 0, B around 1.5
>>> draws = xr.DataArray(rng.normal(means, 0.3, (4, 500, 2, 1)), dims=("chain", "draw", "country", "period"),
...                      coords={"country": ["A", "B"], "period": [2000]})
>>> diff = draws.sel(country="B") - draws.sel(country="A")
>>> prob_greater(diff).values.round(2)
array([1.])
>>> int(rank_draws(draws, "country").sel(country="B").max())   # B always ranks first
1
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Protocol

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis.typology import SAMPLE_DIMS, eti, interval_names, type_codes
from nexusbayes.constants import CI_PROB, TYPES
from nexusbayes.errors import NexusBayesError
from nexusbayes.spec.document import Spec


class Drawn(Protocol):
    """What comparisons read from a fit: its draws, spec and regions' countries (:class:`nexusbayes.fit.Fit`)."""

    tree: xr.DataTree
    spec: Spec

    @property
    def region_country(self) -> dict[str, str]:
        """Country of each region."""

    def log_likelihood(self) -> xr.Dataset:
        """The pointwise log-likelihood of every draw, every term (computed: no fit holds it)."""


#: Countries up to which the report compares every pair; beyond, each country with its rank neighbours
#: (:func:`report_pairs`): 189 countries have 17,766 pairs, too many to read or to print.
REPORT_ALL_PAIRS = 12
#: Pairs per vectorised batch of :func:`differences`.
PAIR_BATCH = 64


class CompareError(NexusBayesError):
    """A comparison asked for a unit or period the fit does not have."""


# ---- NumPy/xarray core -------------------------------------------------------------------------
def prob_greater(diff: xr.DataArray) -> xr.DataArray:
    """P(diff > 0) over the sample dims."""
    return (diff > 0).mean(SAMPLE_DIMS)


def rank_draws(values: xr.DataArray, dim: str) -> xr.DataArray:
    """Rank of each entry along ``dim`` in every draw: 1 is the highest value."""
    order = (-values).argsort(axis=values.get_axis_num(dim))
    ranks = order.argsort(axis=values.get_axis_num(dim)) + 1
    return values.copy(data=ranks.values).rename("rank")


def interval(draws: xr.DataArray, ci_prob: float) -> tuple[xr.DataArray, xr.DataArray]:
    """Equal-tailed interval over the sample dims (:func:`nexusbayes.analysis.typology.eti`)."""
    return eti(draws, ci_prob, SAMPLE_DIMS)


# ---- public API --------------------------------------------------------------------------------
def unit_draws(fit: Drawn, name: str) -> xr.DataArray:
    """Posterior draws of the traits of a country or a region, dims (chain, draw, period, trait)."""
    post = fit.tree["posterior"]
    countries = [str(c) for c in post["country"].values]
    regions = [str(r) for r in post["region"].values]
    if name in countries:
        return post["country_theta"].sel(country=name, drop=True)
    if name in regions:
        return post["theta"].sel(region=name, drop=True)
    raise CompareError(f"{name!r} is neither a country ({', '.join(countries)}) nor a region "
                       f"({', '.join(regions[:12])}{', ...' if len(regions) > 12 else ''}) of this fit")


def difference(fit: Drawn, a: str, b: str) -> xr.DataArray:
    """Posterior draws of trait(a) - trait(b) for two countries or regions (or a country and a region).

    Returns
    -------
    xarray.DataArray
        Dims (chain, draw, period, trait).
    """
    return (unit_draws(fit, a) - unit_draws(fit, b)).rename(f"{a} - {b}")


def compare(fit: Drawn, a: str, b: str, periods: Sequence | None = None, ci_prob: float | None = None) -> pd.DataFrame:
    """Difference in each trait between ``a`` and ``b`` (countries or regions), period by period.

    Parameters
    ----------
    fit : Fit
    a, b : str
        Country or region names.
    periods : sequence, optional
        Periods to report (default all).
    ci_prob : float, optional
        Interval probability (default :data:`~nexusbayes.constants.CI_PROB`).

    Returns
    -------
    pandas.DataFrame
        One row per (period, trait): ``a``, ``b``, ``period``, ``trait``, posterior ``mean`` and
        ``sd`` of a - b, the equal-tailed interval named by its quantiles (``q05``/``q95`` for 90%:
        :func:`~nexusbayes.analysis.typology.interval_names`), and ``p_a_greater`` = P(a > b).
    """
    diff = difference(fit, a, b)
    if periods is not None:
        diff = diff.sel(period=_periods(diff, periods))
    diff = diff.transpose("period", "trait", *SAMPLE_DIMS)
    return _difference_rows([(a, b)], diff.values.reshape(1, *diff.shape[:2], -1), diff,
                            CI_PROB if ci_prob is None else ci_prob)


def rank_probabilities(fit: Drawn, level: str = "country") -> xr.DataArray:
    """P(rank) of every country (or region) per period and trait; rank 1 is the highest.

    Counted in one pass over the draws (a bincount of every unit's rank), so the cost grows with units x draws,
    not units squared x draws.

    Returns
    -------
    xarray.DataArray
        Dims (<level>, period, trait, rank), summing to 1 over ``rank``.
    """
    var = {"country": "country_theta", "region": "theta"}.get(level)
    if var is None:
        raise CompareError(f"level must be 'country' or 'region', not {level!r}")
    values = fit.tree["posterior"][var]
    others = [d for d in values.dims if d not in SAMPLE_DIMS]
    ranks = rank_draws(values, level).transpose(*SAMPLE_DIMS, *others)
    n = values.sizes[level]
    flat = ranks.values.reshape(-1, int(np.prod(ranks.shape[2:]))) - 1        # (draws, cells), ranks from 0
    cells = flat.shape[1]
    counts = np.bincount((flat + n * np.arange(cells)).ravel(), minlength=cells * n).reshape(cells, n)
    probs = xr.DataArray((counts / flat.shape[0]).reshape(*ranks.shape[2:], n), dims=(*others, "rank"),
                         coords={**{d: values[d].values for d in others}, "rank": np.arange(1, n + 1)})
    return probs.transpose(level, "period", "trait", "rank").rename("rank_probability")


def rank_table(fit: Drawn, level: str = "country", periods: Sequence | None = None) -> pd.DataFrame:
    """Tidy rank probabilities: one row per (unit, period, trait) with ``P(rank k)`` columns and the expected rank."""
    probs = rank_probabilities(fit, level)
    if periods is not None:
        probs = probs.sel(period=_periods(probs, periods))
    wide = probs.to_dataset(dim="rank").to_dataframe().reset_index()
    ranks = list(probs["rank"].values)
    wide = wide.rename(columns={k: f"p_rank_{k}" for k in ranks})
    wide["expected_rank"] = sum(k * wide[f"p_rank_{k}"] for k in ranks)
    return wide


def type_distribution(fit: Drawn, ci_prob: float | None = None) -> xr.Dataset:
    """Capacity types per country and period.

    Returns
    -------
    xarray.Dataset
        Dims (country, period, type): ``probability``, the posterior probability that the country
        as a whole (its ``country_theta``) is of each type; ``region_share``, the posterior mean
        share of its regions of each type, with its interval ``region_share_q05`` /
        ``region_share_q95`` (named by its quantiles: :func:`~nexusbayes.analysis.typology.interval_names`).
    """
    prob = CI_PROB if ci_prob is None else ci_prob
    country_codes = type_codes(fit.tree, fit.spec, var="country_theta")
    region_codes = type_codes(fit.tree, fit.spec)
    countries = [str(c) for c in fit.tree["posterior"]["country"].values]
    owner = np.array([fit.region_country[str(r)] for r in region_codes["region"].values])
    types = xr.DataArray(np.arange(len(TYPES)), dims="type", coords={"type": list(TYPES)})
    share = xr.concat([(region_codes.isel(region=np.flatnonzero(owner == c)) == types).mean("region")
                       for c in countries], dim=xr.DataArray(countries, dims="country", name="country"))
    lower, upper = interval(share, prob)
    low, high = interval_names(prob)
    ds = xr.Dataset({"probability": (country_codes == types).mean(SAMPLE_DIMS),
                     "region_share": share.mean(SAMPLE_DIMS), f"region_share_{low}": lower,
                     f"region_share_{high}": upper})
    return ds.transpose("country", "period", "type")


def type_distribution_table(fit: Drawn, periods: Sequence | None = None) -> pd.DataFrame:
    """Tidy :func:`type_distribution`: one row per (country, period, type)."""
    ds = type_distribution(fit)
    if periods is not None:
        ds = ds.sel(period=_periods(ds, periods))
    low, high = interval_names()
    return ds.to_dataframe().reset_index()[["country", "period", "type", "probability", "region_share",
                                            f"region_share_{low}", f"region_share_{high}"]]


def differences(fit: Drawn, pairs: Sequence[tuple[str, str]], periods: Sequence | None = None,
                ci_prob: float | None = None) -> pd.DataFrame:
    """:func:`compare` of many pairs of countries at once, vectorised over the pairs (the same columns and values).

    One row per (pair, period, trait). The countries' draws are read once and the pairs' differences computed
    in batches of :data:`PAIR_BATCH` (memory: batch x draws x periods x traits floats).
    """
    prob = CI_PROB if ci_prob is None else ci_prob
    values = fit.tree["posterior"]["country_theta"]
    if periods is not None:
        values = values.sel(period=_periods(values, periods))
    values = values.transpose("country", "period", "trait", *SAMPLE_DIMS)
    index = {str(c): i for i, c in enumerate(values["country"].values)}
    unknown = sorted({u for pair in pairs for u in pair} - set(index))
    if unknown:
        raise CompareError(f"{', '.join(map(repr, unknown))}: not countries of this fit ({', '.join(index)})")
    arr = values.values.reshape(*values.shape[:3], -1)
    frames = []
    for start in range(0, len(pairs), PAIR_BATCH):
        batch = list(pairs[start:start + PAIR_BATCH])
        diff = arr[[index[a] for a, _ in batch]] - arr[[index[b] for _, b in batch]]   # (pair, period, trait, draw)
        frames.append(_difference_rows(batch, diff, values, prob))
    return pd.concat(frames, ignore_index=True)


def _difference_rows(pairs: Sequence[tuple[str, str]], diff: np.ndarray, labels, prob: float) -> pd.DataFrame:
    """The rows of :func:`compare` and :func:`differences`: one per (pair, period, trait), in that order.

    ``diff`` holds the draws of a - b, shape (pair, period, trait, draw); ``labels`` has the ``period`` and
    ``trait`` coordinates.
    """
    lower, upper = interval(diff, prob)
    low, high = interval_names(prob)
    period, trait = np.meshgrid(labels["period"].values, labels["trait"].values, indexing="ij")
    cells = period.size
    return pd.DataFrame({
        "a": np.repeat([a for a, _ in pairs], cells), "b": np.repeat([b for _, b in pairs], cells),
        "period": np.tile(period.ravel(), len(pairs)), "trait": np.tile(trait.ravel(), len(pairs)),
        "mean": diff.mean(-1).ravel(), "sd": diff.std(-1).ravel(), low: lower.ravel(), high: upper.ravel(),
        "p_a_greater": (diff > 0).mean(-1).ravel()})


def comparison_tables(fit: Drawn, pair: tuple[str, str] | None = None,
                      periods: Sequence | None = (), pairs: Sequence[tuple[str, str]] | None = None
                      ) -> dict[str, pd.DataFrame]:
    """The comparison tables printed by ``nexusbayes compare`` and written beside a multi-country fit.

    Parameters
    ----------
    fit : Fit
    pair : (str, str), optional
        Two countries or regions; default every pair of countries (or ``pairs``).
    periods : sequence, optional
        Periods to report; ``()`` (the default) means the first and the last, ``None`` every period.
    pairs : sequence of (str, str), optional
        The pairs of countries in ``differences`` when ``pair`` is not given (default every pair;
        the report passes :func:`report_pairs`).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``differences`` (see :func:`compare`), ``country_ranks`` (:func:`rank_table`) and, when the
        spec has the typology, ``country_types`` (:func:`type_distribution_table`).
    """
    all_periods = list(fit.tree["posterior"]["period"].values)
    if periods is not None and len(periods) == 0:
        periods = list(dict.fromkeys([all_periods[0], all_periods[-1]]))
    if pair:
        diffs = compare(fit, *pair, periods)
    else:
        pairs = country_pairs(fit) if pairs is None else list(pairs)
        if not pairs:
            raise CompareError("this fit has a single country: name two regions to compare")
        diffs = differences(fit, pairs, periods)
    out = {"differences": diffs, "country_ranks": rank_table(fit, "country", periods)}
    if fit.spec.has_typology:
        out["country_types"] = type_distribution_table(fit, periods)
    return out


def country_pairs(fit: Drawn) -> list[tuple[str, str]]:
    """Every pair of countries of the fit, in coordinate order."""
    return list(combinations([str(c) for c in fit.tree["posterior"]["country"].values], 2))


def report_pairs(fit: Drawn, max_all: int = REPORT_ALL_PAIRS) -> tuple[list[tuple[str, str]], str | None]:
    """The pairs of countries the report's difference table holds, and a note saying what it leaves out.

    Up to ``max_all`` countries, every pair (and no note). Beyond, each country against its rank neighbour:
    per trait, the countries ordered by posterior mean in the last period, each paired with the one ranked
    just below it (``a`` above ``b``), so the table says how sure the ranking's every step is; at most
    traits x (countries - 1) pairs instead of countries x (countries - 1) / 2.
    """
    countries = [str(c) for c in fit.tree["posterior"]["country"].values]
    if len(countries) <= max_all:
        return country_pairs(fit), None
    last = fit.tree["posterior"]["country_theta"].isel(period=-1).mean(SAMPLE_DIMS)
    pairs = []
    for trait in last["trait"].values:
        order = [countries[i] for i in np.argsort(-last.sel(trait=trait).values, kind="stable")]
        pairs.extend(zip(order[:-1], order[1:], strict=True))
    pairs = list({frozenset(pair): pair for pair in reversed(pairs)}.values())[::-1]   # each pair once, first kept
    total = len(countries) * (len(countries) - 1) // 2
    note = (f"{len(countries)} countries: the differences table holds {len(pairs)} of the {total:,} pairs, each "
            f"country against its rank neighbour (per trait, by posterior mean in {last['period'].item()}); "
            f"the other pairs are left out (all pairs are kept up to {max_all} countries). "
            "Any pair: `nexusbayes compare FIT.nc A B`; "
            "the country ranks and types tables cover every country.")
    return pairs, note


def _periods(obj, periods: Sequence) -> list:
    """Validate requested periods against the fit's (years given as strings are accepted)."""
    have = list(obj["period"].values)
    lookup = {str(p): p for p in have}
    out = []
    for p in periods:
        if str(p) not in lookup:
            raise CompareError(f"period {p!r} is not in this fit; it has {have[0]}..{have[-1]}")
        out.append(lookup[str(p)])
    return out
