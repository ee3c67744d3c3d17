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

    def with_log_likelihood(self) -> xr.DataTree:
        """The tree with its pointwise ``log_likelihood`` group (recomputed when a loaded fit has none)."""


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
    prob = CI_PROB if ci_prob is None else ci_prob
    diff = difference(fit, a, b)
    if periods is not None:
        diff = diff.sel(period=_periods(diff, periods))
    lower, upper = interval(diff, prob)
    low, high = interval_names(prob)
    table = xr.Dataset({"mean": diff.mean(SAMPLE_DIMS), "sd": diff.std(SAMPLE_DIMS), low: lower,
                        high: upper, "p_a_greater": prob_greater(diff)}).to_dataframe().reset_index()
    table.insert(0, "b", b)
    table.insert(0, "a", a)
    return table[["a", "b", "period", "trait", "mean", "sd", low, high, "p_a_greater"]]


def rank_probabilities(fit: Drawn, level: str = "country") -> xr.DataArray:
    """P(rank) of every country (or region) per period and trait; rank 1 is the highest.

    Returns
    -------
    xarray.DataArray
        Dims (<level>, period, trait, rank), summing to 1 over ``rank``.
    """
    var = {"country": "country_theta", "region": "theta"}.get(level)
    if var is None:
        raise CompareError(f"level must be 'country' or 'region', not {level!r}")
    values = fit.tree["posterior"][var]
    ranks = rank_draws(values, level)
    n = values.sizes[level]
    probs = xr.concat([(ranks == k).mean(SAMPLE_DIMS) for k in range(1, n + 1)], dim="rank")
    return probs.assign_coords(rank=np.arange(1, n + 1)).transpose(level, "period", "trait", "rank").rename(
        "rank_probability")


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


def comparison_tables(fit: Drawn, pair: tuple[str, str] | None = None,
                      periods: Sequence | None = ()) -> dict[str, pd.DataFrame]:
    """The comparison tables printed by ``nexusbayes compare`` and written beside a multi-country fit.

    Parameters
    ----------
    fit : Fit
    pair : (str, str), optional
        Two countries or regions; default every pair of countries.
    periods : sequence, optional
        Periods to report; ``()`` (the default) means the first and the last, ``None`` every period.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``differences`` (see :func:`compare`), ``country_ranks`` (:func:`rank_table`) and, when the
        spec has the typology, ``country_types`` (:func:`type_distribution_table`).
    """
    all_periods = list(fit.tree["posterior"]["period"].values)
    if periods is not None and len(periods) == 0:
        periods = list(dict.fromkeys([all_periods[0], all_periods[-1]]))
    pairs = [pair] if pair else country_pairs(fit)
    if not pairs:
        raise CompareError("this fit has a single country: name two regions to compare")
    out = {"differences": pd.concat([compare(fit, a, b, periods) for a, b in pairs], ignore_index=True),
           "country_ranks": rank_table(fit, "country", periods)}
    if fit.spec.has_typology:
        out["country_types"] = type_distribution_table(fit, periods)
    return out


def country_pairs(fit: Drawn) -> list[tuple[str, str]]:
    """Every pair of countries of the fit, in coordinate order."""
    return list(combinations([str(c) for c in fit.tree["posterior"]["country"].values], 2))


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
