"""Which indicators are not comparable across countries: the non-comparability table.

With ``[comparability] detect = true`` every indicator has country offsets on its linear predictor (on its
cut-point centre for ordinal ratings), summing to zero over countries and shrunk towards zero by a
regularised horseshoe (see :class:`~nexusbayes.spec.sections.Comparability`). An indicator whose offsets
stay near zero measures the traits on the same scale in every country and can be trusted for comparisons
between them; one with a clearly non-zero offset in a country reads higher or lower there for the same traits.

Examples
--------
>>> import numpy as np, xarray as xr
>>> draws = np.stack([np.full((1, 400), 1.0), np.zeros((1, 400))], axis=-1)[..., None] * [1.0, -1.0]
>>> offset = xr.DataArray(draws + np.random.default_rng(0).normal(0, 0.1, draws.shape),
...                       dims=("chain", "draw", "indicator", "country"),
...                       coords={"indicator": ["seizures", "staff"], "country": ["A", "B"]})
>>> table = offset_table(offset, delta=0.5)
>>> table[["indicator", "country", "p_exceeds"]].round(2).values.tolist()
[['seizures', 'A', 1.0], ['seizures', 'B', 1.0], ['staff', 'A', 0.0], ['staff', 'B', 0.0]]
"""

from __future__ import annotations

import pandas as pd
import xarray as xr

from nexusbayes.analysis.typology import SAMPLE_DIMS, eti, interval_names
from nexusbayes.constants import CI_PROB
from nexusbayes.errors import SpecError
from nexusbayes.spec.document import Spec

#: The posterior variable holding the country offsets (indicator, country).
OFFSET = "country_offset"


def offset_table(offset: xr.DataArray, delta: float, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """Per indicator and country: the offset's mean, equal-tailed interval and P(|offset| > ``delta``).

    Parameters
    ----------
    offset : xarray.DataArray
        Draws with dims ``chain, draw, indicator, country``.
    delta : float
        The size of offset that counts as non-comparable, on the linear predictor's scale.
    ci_prob : float
        Probability of the interval (columns named by :func:`~nexusbayes.analysis.typology.interval_names`).

    Returns
    -------
    pandas.DataFrame
        Columns ``indicator, country, mean, q05, q95, p_exceeds`` (for a 90% interval), indicator by indicator.
    """
    lower, upper = eti(offset, ci_prob)
    lo_name, hi_name = interval_names(ci_prob)
    summary = xr.Dataset({"mean": offset.mean(SAMPLE_DIMS), lo_name: lower, hi_name: upper,
                          "p_exceeds": (abs(offset) > delta).mean(SAMPLE_DIMS)})
    table = summary.to_dataframe(dim_order=["indicator", "country"]).reset_index()
    return table[["indicator", "country", "mean", lo_name, hi_name, "p_exceeds"]]


def noncomparability_table(tree: xr.DataTree, spec: Spec, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """The non-comparability table of a fit: every indicator with country offsets, per country.

    ``delta`` is the spec's ``[comparability] delta``. The column ``shrunk`` says whether the indicator's
    offsets had the horseshoe prior (found by the model) or were declared (``comparable = false``);
    ``aliased`` (:func:`aliased`) whether, between countries, its offsets could as well be a change of its
    loadings, so that a low ``p_exceeds`` is weak evidence that it is comparable.

    Raises
    ------
    SpecError
        When the fit has no country offsets (a single country, or neither ``[comparability] detect = true``
        nor an indicator with ``comparable = false``).
    """
    if OFFSET not in tree["posterior"]:
        raise SpecError(f"spec {spec.name!r}: the fit has no country offsets, so there is no non-comparability "
                        "table; set [comparability] detect = true and fit data with several countries")
    offset = tree["posterior"][OFFSET]
    kept = [n for n in offset["indicator"].values
            if spec.comparability.detect or not spec.indicator(str(n)).comparable]
    table = offset_table(offset.sel(indicator=kept), spec.comparability.delta, ci_prob)
    table["shrunk"] = [spec.indicator(n).comparable for n in table["indicator"]]
    table["aliased"] = [aliased(spec, n, offset.sizes["country"]) for n in table["indicator"]]
    return table


def aliased(spec: Spec, name: str, n_countries: int) -> bool:
    """Whether indicator ``name``'s country offsets are, between countries, a change of its loadings.

    Offsets ``o_c = dl . theta_c`` (``theta_c`` the country's mean traits) shift the country means of the
    indicator exactly as loadings ``loading + dl`` would. The sum-to-zero offsets have ``n_countries - 1``
    contrasts and the indicator as many loadings as traits it loads on: when the contrasts are no more than
    the loadings, every offset pattern is such a change (given the countries' trait levels differ), told apart
    only by the loadings' signs and the variation within countries. Offsets found there can have gone into the
    loading instead (benchmarks/results/comparability_detection.md: with three countries, a planted offset on an
    indicator on two traits was missed so).

    Examples
    --------
    >>> from nexusbayes.model.simulate import default_spec
    >>> spec = default_spec()
    >>> [aliased(spec, "seizures", n) for n in (2, 3, 4)], aliased(spec, "staff", 3)
    ([True, True, False], False)
    """
    return n_countries - 1 <= len(spec.indicator(name).loads)


def flagged(table: pd.DataFrame, threshold: float = 0.5) -> list[str]:
    """The indicators with P(|offset| > delta) above ``threshold`` in at least one country, in table order."""
    return list(dict.fromkeys(table.loc[table["p_exceeds"] > threshold, "indicator"]))
