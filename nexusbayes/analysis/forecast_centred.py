"""Forecasts of centred walks (``[dynamics] centred = true``): each region's walk continued from its span's end.

A centred fit samples one walk per region over its span of periods with data (``region_state`` over
``region_cell`` and ``trait``; :func:`nexusbayes.model.centred._centred_spans`); the grid holds a region at its
span's end values outside the span, and ``theta`` is the grid standardised per trait over the region-periods with
data (``mean``, ``sd`` per draw and trait, recovered here from the stored states and checked against ``theta``).
The forecast continues each region's walk from its span's last state with that draw's ``region_innovation_sd``
(and, with several traits, its trait correlation ``trait_chol``: the steps are correlated as in the model), the
first step over the years from the span's end (so a region last seen earlier gets the wider spread it has
earned), on the standardised scale::

    theta[h] = theta[h-1] + region_innovation_sd * sqrt(gap_h) * (L z) / sd

``country_theta`` is the average of its regions' traits, as in the model.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from nexusbayes.data.panel import Panel
from nexusbayes.errors import NexusBayesError
from nexusbayes.model.design import observed_cells
from nexusbayes.model.roles import THETA

#: Largest relative residual of the recovered standardisation before the forecast is refused.
RESIDUAL_TOLERANCE = 1e-5


def _spans(panel: Panel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each region's first and last period with data and the position of its first state among the states."""
    n_region, n_period = len(panel.regions), len(panel.periods)
    cells = observed_cells(panel)
    first, last = np.full(n_region, n_period), np.full(n_region, -1)
    np.minimum.at(first, cells // n_period, cells % n_period)
    np.maximum.at(last, cells // n_period, cells % n_period)
    starts = np.concatenate([[0], np.cumsum(last - first + 1)[:-1]])
    return first, last, starts


def centred_forecast(post: xr.Dataset, panel: Panel, times: np.ndarray, rng: np.random.Generator, draws,
                     error: type[Exception] = NexusBayesError):
    """Future ``theta`` (draw, region, horizon, trait) and ``country_theta`` (draw, country, horizon, trait).

    ``draws(post, name, dims)`` reads a variable as (draw, *dims); ``times`` are the future periods' years;
    ``error`` is raised when the stored traits are not the stored states standardised.
    """
    if "region_state" in post and "trait" not in post["region_state"].dims:   # fits saved before several traits
        post = post.assign(region_state=post["region_state"].expand_dims(trait=post["trait"].values, axis=-1))
    state = draws(post, "region_state", ("region_cell", "trait"))                # (draw, cell, trait)
    innovation = draws(post, "region_innovation_sd", ("trait",))                 # (draw, trait)
    theta = draws(post, THETA, ("region", "period", "trait"))                    # (draw, region, period, trait)
    n_draw, n_trait = innovation.shape
    chol = draws(post, "trait_chol", ("trait", "trait_")) if n_trait > 1 else np.ones((n_draw, 1, 1))
    n_period = len(panel.periods)
    first, last, starts = _spans(panel)
    grid = np.clip(np.arange(n_period)[None, :], first[:, None], last[:, None])
    grid_state = state[:, starts[:, None] + grid - first[:, None]]               # (draw, region, period, trait)
    seen = observed_cells(panel)
    flat = grid_state.reshape(n_draw, -1, n_trait)[:, seen]
    mean, sd = flat.mean(axis=1), np.sqrt(flat.var(axis=1) + 1e-12)              # (draw, trait)
    fitted = (grid_state - mean[:, None, None]) / sd[:, None, None]
    residual = np.abs(fitted - theta).max() / max(np.abs(theta).max(), 1e-300)
    if not np.isfinite(residual) or residual > RESIDUAL_TOLERANCE:
        raise error(f"the fit's traits are not its centred walk's states standardised (relative residual "
                    f"{residual:.2g}): was the spec changed after fitting?")
    period_time = np.asarray(panel.period_time, dtype=float)
    current = theta[:, np.arange(len(first)), last]                               # (draw, region, trait): span ends
    since = period_time[last]                                                     # (region,)
    out = []
    for t in times:
        white = rng.standard_normal(current.shape)
        correlated = np.einsum("srj,skj->srk", white, chol)                       # L z per draw and region
        step = (innovation / sd)[:, None, :] * np.sqrt(t - since)[None, :, None]
        current = current + step * correlated
        since = np.full_like(since, t)
        out.append(current)
    future = np.stack(out, axis=2)                                                # (draw, region, horizon, trait)
    average = np.zeros((len(panel.countries), len(first)))
    average[panel.region_country, np.arange(len(first))] = 1.0
    average /= average.sum(axis=1, keepdims=True)
    return future, np.einsum("cr,srhk->schk", average, future)
