"""New regions of fitted countries in an update: their prior, their past, and their countries' paths regrouped.

A region the fit does not have, in a country it has, enters an update (:mod:`nexusbayes.inference.update`)
as the model would have had it from the start: its traits are its country's path plus a deviation that
follows the region-level process with the held draw's parameters (standard deviation 1 at the first period,
the scale reference; then the held ``region_scale``, persistence and trait correlation). The filter
(:mod:`nexusbayes.model.update`) samples the deviation at the last fitted period from that process's
marginal there and carries it over the new periods with the new data; the fitted periods, which hold no
data of the region, are then drawn from the process given that value (:func:`bridge`, backward sampling).

Relative to the held country path (the mean of the fitted regions) the deviation's variance is scaled by
``m / (m - 1)`` (``m`` the country's regions with the new one), so that after :func:`regroup` re-centres the
country on all ``m`` regions (the country's traits become the mean of all of them, as in a refit) each
region's deviation has the refit's prior variance ``(m - 1) / m`` of a region step, and their covariances
too when a country gains one region (with several, the variances match). :func:`regroup` then recomputes the
stored innovations (``country_z``, ``region_z``, ``region_z0`` over the new sum-to-zero contrasts, and the
country starts) from the traits, so every draw follows the fitted dynamics exactly (what forecasts read). Its
step helpers (:func:`raw_steps`, :func:`whiten`, :func:`contrasts`) also recompute the last fitted step's
innovations of an update without new regions (``update._restep``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from nexusbayes.data.panel import Panel
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.roles import COUNTRY_THETA, THETA
from nexusbayes.model.update import Held, NewRegions


@dataclass(frozen=True)
class Placement:
    """Where the fit's regions and the new ones sit among the combined data's regions.

    Attributes
    ----------
    old_index : ndarray (fitted region,)
        Each fitted region's position among the combined regions.
    new_index, new_country : ndarray (new region,)
        Each new region's position, and its country's index (the fit's countries, unchanged).
    share : ndarray (new region,)
        The variance factor of a new region's deviation from the held country path (see the module docstring).
    """

    old_index: np.ndarray
    new_index: np.ndarray
    new_country: np.ndarray
    share: np.ndarray

    @classmethod
    def of(cls, panel: Panel, combined: Panel) -> Placement:
        """The placement of the fit's regions (``panel``) among those of the fit's data with the new rows."""
        position = {r: i for i, r in enumerate(combined.regions)}
        old_index = np.array([position[r] for r in panel.regions], dtype=int)
        new_index = np.setdiff1d(np.arange(len(combined.regions)), old_index)
        new_country = np.asarray(combined.region_country)[new_index]
        m = np.bincount(combined.region_country, minlength=len(combined.countries))[new_country]
        j = np.bincount(new_country, minlength=len(combined.countries))[new_country]
        return cls(old_index, new_index, new_country, (m - 1) * m / (m * m - 2 * m + j))

    @property
    def any(self) -> bool:
        """Whether the update adds regions."""
        return len(self.new_index) > 0


def decays(held: Held, gaps: np.ndarray) -> np.ndarray:
    """``a`` per held copy, step and trait (1 for a random walk, ``phi ** gap`` for AR(1))."""
    if held.phi is None:
        return np.ones((held.size, len(gaps), held.inv_sd.shape[1]))
    return held.phi[:, None, :] ** gaps[None, :, None]


def deviation_covariances(held: Held, times: np.ndarray) -> np.ndarray:
    """The region-level deviation's marginal covariance at each fitted period, per held copy: (K, period, k, k).

    Starting at ``L L^T`` (the region scale is the reference, SD 1), each step ``A P A + s^2 f^2 L L^T``
    with ``s`` the held ``region_scale``, ``f^2`` the gap (random walk) or ``1 - a^2`` (AR(1)).
    """
    gaps = np.diff(times)
    a = decays(held, gaps)
    corr = held.chol @ np.swapaxes(held.chol, -1, -2)
    out = [corr]
    for h, gap in enumerate(gaps):
        factor2 = np.full_like(a[:, h], gap) if held.phi is None else 1.0 - a[:, h] ** 2
        s = held.region_scale * np.sqrt(factor2)
        out.append(a[:, h, :, None] * out[-1] * a[:, h, None, :] + s[:, :, None] * corr * s[:, None, :])
    return np.stack(out, axis=1)


def new_regions(place: Placement, held: Held, times: np.ndarray) -> NewRegions:
    """What the filter needs of the new regions: their places, shares and the last fitted period's prior."""
    last = deviation_covariances(held, times)[:, -1]
    return NewRegions(old_index=place.old_index, new_index=place.new_index, new_country=place.new_country,
                      share=place.share, last_chol=np.linalg.cholesky(last))


def bridge(last: np.ndarray, copy: np.ndarray, held: Held, share: np.ndarray, times: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """The new regions' raw deviations at the fitted periods, given the last one's: (sample, new, period, k).

    Backward sampling of the region-level process (no data at these periods): ``x_t | x_{t+1}`` is normal
    with mean ``J x_{t+1}`` and covariance ``P_t - J P_{t+1} J^T``, ``J = P_t A P_{t+1}^{-1}``, all times
    ``share``. ``last`` is (sample, new, k); ``copy`` each sample's held copy.
    """
    cov = deviation_covariances(held, times)[copy]                      # (sample, period, k, k)
    a = decays(held, np.diff(times))[copy]                              # (sample, step, k)
    n_period = len(times)
    out = np.empty((*last.shape[:2], n_period, last.shape[2]))
    out[:, :, -1] = last
    root = np.sqrt(share)[None, :, None]
    for t in range(n_period - 2, -1, -1):
        gain = np.linalg.solve(cov[:, t + 1], (cov[:, t] * a[:, t, None, :]).swapaxes(-1, -2)).swapaxes(-1, -2)
        rest = cov[:, t] - gain @ cov[:, t + 1] @ gain.swapaxes(-1, -2)
        rest = 0.5 * (rest + rest.swapaxes(-1, -2)) + 1e-12 * np.eye(rest.shape[-1])
        noise = np.einsum("sij,snj->sni", np.linalg.cholesky(rest), rng.standard_normal(last.shape))
        out[:, :, t] = np.einsum("sij,snj->sni", gain, out[:, :, t + 1]) + root * noise
    return out


def raw_steps(values: np.ndarray, held: Held, copy: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The raw steps of traits over ``times`` and each step's factor, per sample.

    ``values`` (sample, unit, period, k) are traits at ``times`` on the fit's scale; ``copy`` (sample,) each
    sample's held copy. Returns the steps ``(x_t - a x_{t-1} - (a - 1) mean_over_sd) / inv_sd`` (sample, unit,
    step, k) and ``f`` (the square root of the gap for a random walk, of ``1 - a^2`` for AR(1)), broadcastable
    to them: a step is ``scale * f * L z``.
    """
    gaps = np.diff(times)
    a = decays(held, gaps)[copy][:, None]                                         # (sample, 1, step, k)
    factor = np.sqrt(gaps)[None, None, :, None] if held.phi is None else np.sqrt(1.0 - a**2)
    pull, inv_sd = held.mean_over_sd[copy][:, None, None], held.inv_sd[copy][:, None, None]
    return (values[:, :, 1:] - a * values[:, :, :-1] - (a - 1.0) * pull) / inv_sd, factor


def whiten(steps: np.ndarray, scale: np.ndarray, held: Held, copy: np.ndarray) -> np.ndarray:
    """The innovations ``z`` of ``steps = scale * L z`` (sample, unit, step, k): a triangular solve per sample."""
    return np.linalg.solve(held.chol[copy][:, None, None], (steps / scale)[..., None])[..., 0]


def contrasts(theta_steps: np.ndarray, country_steps: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The region steps less their country's, over the orthonormal sum-to-zero contrasts of ``groups``."""
    return np.einsum("rc,srtk->sctk", ZeroSum.of(groups).matrix(), theta_steps - country_steps[:, groups])


def regroup(posterior: xr.Dataset, held: Held, copy: np.ndarray, combined: Panel, times: np.ndarray) -> xr.Dataset:
    """Each country's traits as the mean of all its regions, and the innovations recomputed from the traits.

    ``posterior`` holds ``theta`` over the combined regions and every period; ``copy`` (sample,) is each
    sample's held copy. Returns the posterior with ``country_theta``, ``country_z``, ``region_z`` (over the
    combined data's sum-to-zero contrasts), ``region_z0`` and the country starts recomputed.
    """
    k = copy.ravel()
    groups = np.asarray(combined.region_country)
    n_country = len(combined.countries)
    theta = posterior[THETA].transpose("chain", "draw", "region", "period", "trait").values
    shape = theta.shape[:2]
    theta = theta.reshape(-1, *theta.shape[2:])                                   # (sample, region, period, k)
    average = (groups[None, :] == np.arange(n_country)[:, None]).astype(float)
    average /= average.sum(1, keepdims=True)
    before = posterior[COUNTRY_THETA].transpose("chain", "draw", "country", "period", "trait").values
    country = np.einsum("cr,srtk->sctk", average, theta)
    inv_sd = held.inv_sd[k]
    country_raw, factor = raw_steps(country, held, k, times)
    theta_raw, _ = raw_steps(theta, held, k, times)
    contrast = contrasts(theta_raw, country_raw, groups)
    q = ZeroSum.of(groups).matrix()
    out = posterior.drop_vars([v for v in ("country_z", "region_z", "region_z0") if v in posterior])
    out = out.drop_dims([d for d in ("region_contrast",) if d in out.dims])

    def put(name, values, dims_):     # stored as the fit's draws are (single precision)
        out[name] = (("chain", "draw", *dims_), values.reshape(*shape, *values.shape[1:]).astype(theta.dtype))

    put(COUNTRY_THETA, country, ("country", "period", "trait"))
    put("country_z", whiten(country_raw, held.country_scale[k][:, None, None] * factor, held, k),
        ("country", "step", "trait"))
    put("region_z", whiten(contrast, held.region_scale[k][:, None, None] * factor, held, k),
        ("region_contrast", "step", "trait"))
    start = np.einsum("rc,srk->sck", q, (theta[:, :, 0] - country[:, groups, 0]) / inv_sd[:, None])
    put("region_z0", whiten(start[:, :, None], 1.0, held, k)[:, :, 0], ("region_contrast", "trait"))
    shift = (country[:, :, 0] - before.reshape(-1, *before.shape[2:])[:, :, 0]) / inv_sd[:, None]   # raw
    if "country_start" in posterior:     # random walk: sum-to-zero contrasts of the raw starts
        qc = ZeroSum.of(np.zeros(n_country, dtype=int)).matrix()
        var = posterior["country_start"].transpose("chain", "draw", ...)
        value = var.values.reshape(-1, *var.shape[2:])
        put("country_start", value + np.einsum("uc,suk->sck", qc, shift), var.dims[2:])
    if "country_z0" in posterior:        # AR(1): the starts, non-centred
        var = posterior["country_z0"].transpose("chain", "draw", ...)
        value = var.values.reshape(shift.shape)
        put("country_z0", value + whiten(shift[:, :, None], held.country_scale[k][:, None, None], held, k)[:, :, 0],
            var.dims[2:])
    return out.assign_coords(region_contrast=np.arange(q.shape[1]))
