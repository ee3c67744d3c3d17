"""Sharing checks: does an indicator measure the same thing in every country? Refit and compare by LOO."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis.compare import CompareError, interval
from nexusbayes.analysis.model_choice import pointwise_tree
from nexusbayes.constants import CI_PROB
from nexusbayes.fit import Fit
from nexusbayes.fit import fit as run_fit


# ---- is sharing an indicator's measurement across countries supported? ------------------------------
def elpd_loo(fit: Fit) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise PSIS-LOO elpd and Pareto k of every observation (all likelihood terms, in term order).

    ArviZ's warning about large Pareto k is not repeated here: the k values are returned (and
    :func:`sharing_check` reports their maximum next to its verdict).
    """
    result = _loo(fit)
    return np.asarray(result.elpd_i), np.asarray(result.pareto_k)


def _loo(fit: Fit):
    """:func:`arviz_stats.loo` (pointwise) over all likelihood terms of the fit, stacked in term order."""
    import warnings

    import arviz_stats as azs

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto", category=UserWarning)
        return azs.loo(pointwise_tree(fit.log_likelihood()), pointwise=True, var_name="y")


def _elpd_difference(shared, specific) -> tuple[float, float]:
    """elpd(country-specific) - elpd(shared) and its standard error, from :func:`arviz_stats.compare`."""
    import warnings

    import arviz_stats as azs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # its notes on small data and on high Pareto k: ours are in the table
        table = azs.compare({"shared": shared, "country-specific": specific}, reference="shared", round_to="none")
    return float(table.loc["country-specific", "elpd_diff"]), float(table.loc["country-specific", "dse"])


def sharing_check(fit: Fit, indicators: Sequence[str] | None = None, *, draws: int | None = None,
                  tune: int | None = None, chains: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Check by PSIS-LOO whether the data support sharing an indicator's measurement across countries.

    For each indicator, the model is refitted with that indicator's comparability flipped (shared
    <-> country-specific location, see :class:`~nexusbayes.spec.indicators.Indicator`) and the two fits are
    compared by PSIS-LOO over the same observations. A clearly better elpd for the country-specific
    model (difference above twice its standard error) says the indicator is not comparable as
    specified; otherwise sharing is supported (the simpler, more informative model). LOO judges
    predictive fit, so a country shift small against the indicator's noise can pass it while the
    country-specific fit still finds the shift: ``offset_excludes_zero`` reports that more sensitive
    evidence (some country's offset has a 90% interval away from 0).

    Parameters
    ----------
    fit : Fit
        A fit with more than one country.
    indicators : sequence of str, optional
        Default: every indicator whose flip keeps each trait with a comparable indicator.
    draws, tune, chains : int, optional
        Sampler settings of the refits (default the fit's own; for a fit run by need, its cap of draws).
    progress : bool
        Show the refits' progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per indicator: ``comparable`` (as in the fit), ``elpd_shared``,
        ``elpd_country_specific``, ``elpd_diff`` (country-specific minus shared), ``se_diff``,
        ``max_pareto_k`` of the two fits (above 0.7 the LOO estimate is unreliable),
        ``offset_excludes_zero`` and ``verdict`` (from LOO).
    """
    if len(fit.panel.countries) < 2:
        raise CompareError("sharing_check needs a fit with more than one country")
    spec = fit.spec
    candidates = list(indicators) if indicators is not None else [
        n for n in spec.indicators if n in fit.panel.indicators
        and _flip_keeps_identified(spec, n, fit.panel.indicators)]
    unknown = [n for n in candidates if n not in spec.indicators]
    if unknown:
        raise CompareError(f"unknown indicator(s) {unknown}; the spec lists {list(spec.indicators)} "
                           "(item-bank items cannot be flipped one by one)")
    attrs = fit.tree.attrs
    # a fit run by need (until_converged) kept fewer draws than its cap: its refits get the same cap
    settings = {"draws": draws or int(attrs.get("draws_cap", attrs.get("draws", spec.sampler.draws))),
                "tune": tune or int(attrs.get("tune", spec.sampler.tune)),
                "chains": chains or int(attrs.get("chains", spec.sampler.chains))}
    base = _loo(fit)
    rows = []
    for name in candidates:
        flipped = spec.model_copy(deep=True)
        flipped.indicators[name] = flipped.indicators[name].model_copy(
            update={"comparable": not spec.indicators[name].comparable})
        other = run_fit(flipped, fit.panel, progress=progress, check=False, **settings)
        flipped_loo = _loo(other)
        comparable = spec.indicators[name].comparable
        shared, specific = (base, flipped_loo) if comparable else (flipped_loo, base)
        specific_tree = other.tree if comparable else fit.tree
        total, se = _elpd_difference(shared, specific)
        verdict = "country-specific preferred" if total > 2 * se else "sharing supported"
        rows.append({"indicator": name, "comparable": comparable,
                     "elpd_shared": float(shared.elpd), "elpd_country_specific": float(specific.elpd),
                     "elpd_diff": total, "se_diff": se,
                     "max_pareto_k": float(max(np.max(base.pareto_k), np.max(flipped_loo.pareto_k))),
                     "offset_excludes_zero": _offset_excludes_zero(specific_tree, name), "verdict": verdict})
    return pd.DataFrame(rows)


def _offset_excludes_zero(tree: xr.DataTree, indicator: str, ci_prob: float = CI_PROB) -> bool:
    """Whether the interval of some country's offset of ``indicator`` (a country-specific fit) excludes 0."""
    offset = tree["posterior"]["country_offset"].sel(indicator=indicator)
    lower, upper = interval(offset, ci_prob)
    return bool(((lower > 0) | (upper < 0)).any())


def _flip_keeps_identified(spec, name: str, present: Sequence[str]) -> bool:
    """Whether flipping ``name``'s comparability leaves every trait with a comparable indicator."""
    flipped = {n: (spec.indicator(n).comparable != (n == name)) for n in present}
    return all(any(flipped[n] and t in spec.indicator(n).loads for n in present) for t in spec.traits)
