"""Forecasts of a regime fit (``[model] kind = "regime"``): the types' Markov chain run forward, draw by draw.

For every posterior draw, the filtered type probabilities at the last fitted period,
``p_T = P(type_T | y_1..T)`` (the forward algorithm's; at the last period the smoothed probabilities the fit
stores in ``regime.type_probability`` are the filtered ones), are carried ahead by that draw's transition
matrix of the region's country, one matrix power per future gap (a gap of ``m`` time units, the fit's
``regime.attrs["time_unit_years"]``, uses ``transition ** m``)::

    p_{T+h} = p_{T+h-1} @ transition[c] ** m_h

Exact given each draw: nothing is simulated, so the forecast's spread across draws is the parameters' and the
last state's uncertainty, and its mean over draws is the posterior predictive P(type). The output has the
shape of the trait model's forecast (:func:`nexusbayes.analysis.forecast.forecast`), so its tables
(:func:`~nexusbayes.analysis.forecast.forecast_table`, :func:`~nexusbayes.analysis.forecast.forecast_types_table`)
and the report read either kind: ``forecast.theta`` is the expected level ``E[level] = p_{T+h} @ levels``
per draw (as the fit's ``posterior.theta``), ``country_theta`` its mean over each country's regions, and
``types`` holds P(type), P(type at T, type at T+h) and ``p_change``. Also in ``forecast``:
``type_probability`` per draw (chain, draw, region, horizon, type), whose intervals
:func:`forecast_type_intervals` tabulates.

Examples
--------
>>> import numpy as np
>>> p = carry_forward(np.array([[[1.0, 0.0, 0.0, 0.0]]]), np.full((1, 1, 4, 4), 0.25), [1, 2])
>>> p.shape, bool(np.allclose(p, 0.25))
((1, 1, 2, 4), True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis import typology
from nexusbayes.analysis.forecast import ForecastError, forecast_coords, forecast_tree, future_times, types_group
from nexusbayes.constants import CI_PROB, TYPES
from nexusbayes.data.panel import Panel
from nexusbayes.model.regime import DEVIATION, TRANSITION, levels
from nexusbayes.model.regime_covariates import transition_columns
from nexusbayes.model.roles import COUNTRY_THETA, THETA
from nexusbayes.spec.document import Spec

SAMPLE_DIMS = typology.SAMPLE_DIMS


def carry_forward(filtered: np.ndarray, transition: np.ndarray, multiples: Sequence[int]) -> np.ndarray:
    """P(type) at each future step: ``filtered`` (draw, region, S) moved by ``transition`` (draw, region, S, S).

    Returns (draw, region, horizon, S), horizon ``h`` being ``sum(multiples[:h + 1])`` time units ahead.
    """
    out, p = [], filtered
    for m in multiples:
        p = np.einsum("drs,drst->drt", p, np.linalg.matrix_power(transition, int(m)))
        out.append(p)
    return np.stack(out, axis=2)


def cumulative_transitions(transition: np.ndarray, multiples: Sequence[int]) -> np.ndarray:
    """P(type at T+h | type at T) per draw and region: (draw, region, horizon, S, S)."""
    out, acc = [], None
    for m in multiples:
        step = np.linalg.matrix_power(transition, int(m))
        acc = step if acc is None else acc @ step
        out.append(acc)
    return np.stack(out, axis=2)


def future_multiples(last_time: float, times: np.ndarray, unit: float) -> np.ndarray:
    """Each future gap as a whole number of the fit's time units; a ForecastError when one is not."""
    gaps = np.diff(np.concatenate([[last_time], np.asarray(times, dtype=float)]))
    multiples = np.rint(gaps / unit).astype(int)
    if np.any(multiples < 1) or not np.allclose(multiples * unit, gaps, atol=1e-6 * unit):
        raise ForecastError(f"a regime fit's transition matrix is over {unit:g} year(s): the forecast's gaps "
                            f"({', '.join(f'{g:g}' for g in gaps)} years) must be whole multiples of it; pass "
                            f"times= {unit:g}, {2 * unit:g}, ... years after the last period")
    return multiples


def regime_forecast(tree: xr.DataTree, spec: Spec, panel: Panel, periods: int | None = None, *,
                    times: Sequence[float] | None = None, labels: Sequence | None = None,
                    seed: int = 0) -> xr.DataTree:
    """P(type) and the implied levels ``periods`` ahead of the last fitted period, per draw (module docstring).

    Parameters
    ----------
    tree : xarray.DataTree
        A regime fit's DataTree (its ``posterior`` and ``regime`` groups).
    spec, panel
        The fit's spec and data.
    periods : int, optional
        How many periods ahead: default 1, or one per ``times``.
    times, labels : sequence, optional
        Times (years) and labels of the future periods (:func:`~nexusbayes.analysis.forecast.future_times`);
        each gap a whole multiple of the fit's time unit.
    seed : int
        Kept in the attrs for the trait forecast's API: the regime forecast is exact and draws nothing.

    Returns
    -------
    xarray.DataTree
        As :func:`nexusbayes.analysis.forecast.forecast`'s, plus ``forecast.type_probability`` per draw.
    """
    if "regime" not in tree.children:
        raise ForecastError("the fit has no `regime` group (its states): was it fitted with [model] kind = \"regime\"?")
    if transition_columns(spec):
        raise ForecastError("this regime fit's transitions depend on covariates (on = \"transition\"), whose future "
                            "values a forecast would need; refit without them to forecast")
    period_time = np.asarray(panel.period_time, dtype=float)
    times, labels = future_times(period_time, periods, times, labels, eras=spec.periods.eras is not None)
    unit = float(tree["regime"].attrs.get("time_unit_years", 1.0))
    multiples = future_multiples(period_time[-1], times, unit)
    post = tree["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    last = tree["regime"]["type_probability"].isel(period=-1).transpose(*SAMPLE_DIMS, "region", "type")
    filtered = last.values.astype(float).reshape(n_chain * n_draw, *last.shape[2:])
    filtered /= filtered.sum(axis=-1, keepdims=True)
    trans = post[TRANSITION].transpose(*SAMPLE_DIMS, "country", "type", "type_").values.astype(float)
    trans = trans.reshape(n_chain * n_draw, *trans.shape[2:])
    trans = trans / trans.sum(axis=-1, keepdims=True)
    by_region = trans[:, np.asarray(panel.region_country)]                 # (draw, region, S, S)
    probs = carry_forward(filtered, by_region, multiples)                  # (draw, region, horizon, S)
    theta = probs @ levels(spec.traits)                                     # (draw, region, horizon, trait)
    if DEVIATION in post:                                                   # the region's within-state deviation
        dev = post[DEVIATION].transpose(*SAMPLE_DIMS, "region", "trait").values
        theta = theta + dev.reshape(n_chain * n_draw, 1, *dev.shape[2:]).transpose(0, 2, 1, 3)
    average = np.zeros((len(panel.countries), len(panel.regions)))
    average[np.asarray(panel.region_country), np.arange(len(panel.regions))] = 1.0
    average /= average.sum(axis=1, keepdims=True)
    country_theta = np.einsum("cr,srhk->schk", average, theta)
    moves = filtered[:, :, None, :, None] * cumulative_transitions(by_region, multiples)   # (draw, r, h, from, to)

    def shaped(values):
        return values.reshape(n_chain, n_draw, *values.shape[1:])

    coords = forecast_coords(post, spec, panel, times, labels)
    draws = xr.Dataset({THETA: ((*SAMPLE_DIMS, "region", "horizon", "trait"), shaped(theta)),
                        COUNTRY_THETA: ((*SAMPLE_DIMS, "country", "horizon", "trait"), shaped(country_theta)),
                        "type_probability": ((*SAMPLE_DIMS, "region", "horizon", "type"), shaped(probs))},
                       coords={**coords, "type": list(TYPES)})
    types = types_group(probs.mean(axis=0), moves.mean(axis=0), coords)
    return forecast_tree(draws, types, panel, seed, "regime (Markov chain)")


def forecast_type_intervals(forecast: xr.DataTree, ci_prob: float | None = None) -> pd.DataFrame:
    """P(type) ahead with its spread over the draws: one row per (region, horizon, type).

    Columns country, region, horizon, period, type, mean, sd and the equal-tailed interval (``q05``, ``q95``
    for the default 90%) of the per-draw P(type) (a regime forecast's; a trait forecast has no per-draw P(type)).
    """
    if "type_probability" not in forecast["forecast"]:
        raise ForecastError("this forecast has no per-draw P(type): only a regime fit's forecast has one")
    prob = CI_PROB if ci_prob is None else ci_prob
    lo, hi = typology.interval_names(prob)
    draws = forecast["forecast"]["type_probability"]
    lower, upper = typology.eti(draws, prob)
    out = xr.Dataset({"mean": draws.mean(SAMPLE_DIMS), "sd": draws.std(SAMPLE_DIMS), lo: lower, hi: upper})
    out = out.drop_vars([c for c in out.coords if c not in (*out.dims, "period", "region_country")])
    table = out.to_dataframe().reset_index().rename(columns={"region_country": "country"})
    return table[["country", "region", "horizon", "period", "type", "mean", "sd", lo, hi]]
