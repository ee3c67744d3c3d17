"""Forecasts of the next periods: the traits' predictive distribution under the fitted dynamics, draw by draw.

For every posterior draw the latent process of :mod:`nexusbayes.model.latent` is continued from the
last period with that draw's innovation scales, persistence and trait correlation. The traits are
standardised (``theta = (theta_raw - mean) / sd`` over the region-periods with data, per draw and trait;
see :mod:`nexusbayes.model.build`), so a future step on the ``theta`` scale is the raw step divided by
that draw's ``sd``, and under AR(1) the decay towards the raw 0 is a decay towards ``-mean / sd``::

    theta[h] = a_h * theta[h-1] + (a_h - 1) * mean / sd + (country step + region step) / sd

with ``a_h = 1`` for a random walk and ``phi ** gap`` for AR(1); the raw steps are
``innovation_sd * sqrt(gap) * L z`` (random walk; ``z`` Student-t for ``student_t_rw``) or
``initial_sd * sqrt(1 - a_h**2) * L z`` (AR(1)), region steps summing to zero within each country
(:class:`~nexusbayes.model.latent.ZeroSum`). The fit does not store ``mean`` and ``sd``; they are
recovered exactly from what it does store: the fitted steps of ``theta`` and ``country_theta`` are
the raw steps (made from the stored innovations ``country_z``, ``region_z`` and scales) divided by
``sd``, a per-draw least-squares fit with no residual (checked).

Examples
--------
>>> future_times(np.array([2000.0, 2002.0, 2004.0]), periods=2)
(array([2006., 2008.]), [2006, 2008])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis import typology
from nexusbayes.analysis.forecast_centred import centred_forecast
from nexusbayes.analysis.forecast_covariates import CovariateTerms, future_values
from nexusbayes.constants import CI_PROB, TYPES
from nexusbayes.data.panel import Panel
from nexusbayes.errors import NexusBayesError
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.roles import COUNTRY_THETA, THETA, TRAIT_CORR
from nexusbayes.spec.document import Spec

SAMPLE_DIMS = typology.SAMPLE_DIMS

#: Largest relative residual of the recovered standardisation (``theta`` steps = raw steps / sd): above it
#: the stored draws do not follow the spec's dynamics as this module reads them, and nothing is forecast. The
#: draws are stored in single precision (6e-8 of each value), and a step is the difference of two traits that can
#: be several times larger than it (with covariate terms in them, more), so a faithful fit reaches about 1e-6; a
#: changed spec gives residuals of order 1e-2 and more.
RESIDUAL_TOLERANCE = 1e-5


class ForecastError(NexusBayesError, ValueError):
    """A forecast that cannot be made as asked (the message says what to pass instead)."""


def future_times(period_time: np.ndarray, periods: int | None = None, times: Sequence[float] | None = None,
                 labels: Sequence | None = None, eras: bool = False) -> tuple[np.ndarray, list]:
    """Times (in years) and labels of the periods to forecast.

    Years continue with the panel's typical gap (the median of its period gaps) unless ``times`` are
    given; named eras need ``times`` (e.g. the future eras' midpoints). Labels default to the years
    (whole numbers when whole).

    Examples
    --------
    >>> future_times(np.array([2000.0, 2001.0]), times=[2003.5], labels=["2003-04"])
    (array([2003.5]), ['2003-04'])
    """
    period_time = np.asarray(period_time, dtype=float)
    if len(period_time) < 2:
        raise ForecastError("a forecast needs a fit of at least two periods (the dynamics are learnt from its steps)")
    if times is None:
        if eras:
            raise ForecastError("the periods are named eras: pass times= (the future eras' midpoints in years, e.g. "
                                "--times 2030) and labels= (their names)")
        periods = 1 if periods is None else periods
        if periods < 1:
            raise ForecastError(f"periods must be a whole number >= 1, got {periods!r}")
        gap = float(np.median(np.diff(period_time)))
        times = period_time[-1] + gap * np.arange(1, periods + 1)
    times = np.asarray(times, dtype=float).ravel()
    if periods is not None and len(times) != periods:
        raise ForecastError(f"{len(times)} times given for {periods} periods: give one time per period")
    steps = np.diff(np.concatenate([[period_time[-1]], times]))
    if len(times) == 0 or not np.all(np.isfinite(times)) or np.any(steps <= 0):
        raise ForecastError(f"times must be finite, increasing and after the last period ({period_time[-1]:g}); "
                            f"got {list(times)}")
    if labels is None:
        whole = bool(np.all(times == np.round(times)))
        labels = [int(t) if whole else f"{t:g}" for t in times]
    labels = list(labels)
    if len(labels) != len(times):
        raise ForecastError(f"{len(labels)} labels given for {len(times)} periods: give one label per period")
    return times, labels


def _draws(post: xr.Dataset, name: str, dims: tuple[str, ...]) -> np.ndarray:
    """A posterior variable as (draw, *dims), the chains stacked."""
    if name not in post:
        raise ForecastError(f"the fit's posterior has no {name!r}, which its spec's dynamics need: was the spec "
                            "changed after fitting?")
    var = post[name].transpose(*SAMPLE_DIMS, *dims)
    return var.values.reshape(-1, *var.shape[2:])


def _correlate(z: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``L z`` over the last (trait) axis of z (draw, ..., trait), with ``chol`` (draw, trait, trait)."""
    shape = z.shape
    flat = z.reshape(shape[0], -1, shape[-1])
    return np.einsum("suj,skj->suk", flat, chol).reshape(shape)


class Dynamics:
    """The fitted dynamics of every posterior draw, on the scale of the standardised traits.

    Attributes
    ----------
    kind : str
        The spec's dynamics kind.
    chol : ndarray (draw, trait, trait)
        Cholesky factor of the trait correlation.
    country_scale, region_scale : ndarray (draw, trait)
        Random walk: the innovation SDs (1 for a scale reference); AR(1): the initial (stationary) SDs.
    phi : ndarray (draw, trait) or None
        AR(1) persistence per year.
    inv_sd, mean_over_sd : ndarray (draw, trait)
        ``1 / sd`` and ``mean / sd`` of each draw's standardisation (``mean_over_sd`` is 0 for a random walk,
        where it cancels).
    """

    def __init__(self, tree: xr.DataTree, spec: Spec, panel: Panel):
        if spec.dynamics.centred:
            raise ForecastError("centred dynamics are forecast by nexusbayes.analysis.forecast_centred, not Dynamics")
        post = tree["posterior"].to_dataset()
        self.kind = spec.dynamics.kind
        self.df = spec.dynamics.df
        self.region_country = np.asarray(panel.region_country)
        n_trait = len(spec.traits)
        self.q = ZeroSum.of(self.region_country).matrix()
        n_draw = post.sizes["chain"] * post.sizes["draw"]
        if n_trait > 1:
            self.chol = np.linalg.cholesky(_draws(post, TRAIT_CORR, ("trait", "trait_")))
        else:
            self.chol = np.ones((n_draw, 1, 1))
        has_regions = self.q.shape[1] > 0
        reference = "region" if has_regions else ("country" if len(panel.countries) > 1 else None)
        ones = np.ones((n_draw, n_trait))

        def scale(name: str, fixed: bool) -> np.ndarray:
            return ones if fixed else _draws(post, name, ("trait",))

        if self.kind == "ar1":
            self.phi = _draws(post, "ar_phi", ("trait",))
            self.country_scale = scale("country_initial_sd", reference == "country")
            self.region_scale = ones   # with region deviations they are the scale reference; without, unused
        else:
            self.phi = None
            self.country_scale = scale("country_innovation_sd", reference is None)
            self.region_scale = scale("region_innovation_sd", not has_regions)
        self.has_regions = has_regions
        self.covariates = CovariateTerms(post, spec, panel, _draws) if spec.covariates is not None else None
        self._recover_standardisation(post, np.asarray(panel.period_time, dtype=float))

    def decay(self, gap: np.ndarray) -> np.ndarray:
        """``a`` per draw, step and trait for gaps (step,): 1 for a random walk, ``phi ** gap`` for AR(1)."""
        if self.phi is None:
            return np.ones((self.chol.shape[0], len(gap), self.chol.shape[-1]))
        return self.phi[:, None, :] ** gap[None, :, None]

    def raw_steps(self, z_country: np.ndarray, z_region: np.ndarray | None, gap: np.ndarray):
        """Raw-scale steps (country steps, region steps (draw, region, step, trait)) from standard innovations.

        ``z_country`` is (draw, country, step, trait), ``z_region`` (draw, contrast, step, trait) or None.
        """
        if self.phi is None:
            factor = np.sqrt(gap)[None, :, None]
        else:
            factor = np.sqrt(1.0 - self.decay(gap) ** 2)
        country = self.country_scale[:, None, None, :] * factor[:, None] * _correlate(z_country, self.chol)
        if z_region is None:
            region = np.zeros((country.shape[0], len(self.region_country), *country.shape[2:]))
        else:
            region = np.einsum("uc,sctk->sutk", self.q, _correlate(z_region, self.chol))
            region = self.region_scale[:, None, None, :] * factor[:, None] * region
        return country, region

    def _recover_standardisation(self, post: xr.Dataset, period_time: np.ndarray) -> None:
        """Find ``1 / sd`` and ``mean / sd`` per draw and trait from the fitted steps (see the module docstring)."""
        gap = np.diff(period_time)
        z_country = _draws(post, "country_z", ("country", "step", "trait"))
        z_region = _draws(post, "region_z", ("region_contrast", "step", "trait")) if self.has_regions else None
        country_raw, region_raw = self.raw_steps(z_country, z_region, gap)
        theta = _draws(post, THETA, ("region", "period", "trait"))
        country_theta = _draws(post, COUNTRY_THETA, ("country", "period", "trait"))
        if self.covariates is not None:     # the traits less their covariate terms follow the dynamics
            terms, country_terms, self.step_terms = self.covariates.fitted(self.decay(gap), gap)
            theta, country_theta = theta - terms, country_theta - country_terms
            self.last_terms = terms[:, :, -1], country_terms[:, :, -1]
        a = self.decay(gap)[:, None]                                          # (draw, 1, step, trait)
        # theta[t] - a theta[t-1] = raw step / sd + (a - 1) mean / sd, for countries and regions alike
        y = np.concatenate([country_theta[:, :, 1:] - a * country_theta[:, :, :-1],
                            theta[:, :, 1:] - a * theta[:, :, :-1]], axis=1)
        x = np.concatenate([country_raw, country_raw[:, self.region_country] + region_raw], axis=1)
        n_draw, n_trait = y.shape[0], y.shape[-1]
        w = np.broadcast_to(a - 1.0, y.shape).transpose(0, 3, 1, 2).reshape(n_draw, n_trait, -1)
        y = y.transpose(0, 3, 1, 2).reshape(n_draw, n_trait, -1)
        x = x.transpose(0, 3, 1, 2).reshape(n_draw, n_trait, -1)
        if self.phi is None:
            self.inv_sd = (x * y).sum(-1) / (x * x).sum(-1)
            self.mean_over_sd = np.zeros_like(self.inv_sd)
            fitted = self.inv_sd[..., None] * x
        else:
            design = np.stack([x, w], axis=-1)                                # (draw, trait, obs, 2)
            gram = np.einsum("stoi,stoj->stij", design, design)
            coef = np.linalg.solve(gram, np.einsum("stoi,sto->sti", design, y)[..., None])[..., 0]
            self.inv_sd, self.mean_over_sd = coef[..., 0], coef[..., 1]
            fitted = np.einsum("stoi,sti->sto", design, coef)
        residual = np.abs(y - fitted).max() / max(np.abs(y).max(), 1e-300)
        if not np.isfinite(residual) or residual > RESIDUAL_TOLERANCE or np.any(self.inv_sd <= 0):
            raise ForecastError(f"the fit's traits do not follow its spec's {self.kind} dynamics as stored "
                                f"(relative residual {residual:.2g}): was the spec changed after fitting?")

    def simulate(self, theta: np.ndarray, country_theta: np.ndarray, gaps: np.ndarray,
                 rng: np.random.Generator, z_future: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Continue the last period's traits over steps of ``gaps`` years: (draw, unit, horizon, trait) arrays.

        ``theta`` is (draw, region, trait) and ``country_theta`` (draw, country, trait); with covariates,
        ``z_future`` (region, horizon, covariate) are their standardised future values.
        """
        if self.covariates is not None:
            theta, country_theta = theta - self.last_terms[0], country_theta - self.last_terms[1]
            acc = self.step_terms
        n_draw, n_trait = theta.shape[0], theta.shape[-1]
        n_country, n_contrast = country_theta.shape[1], self.q.shape[1]
        draw = ((lambda size: rng.standard_t(self.df, size)) if self.kind == "student_t_rw"
                else rng.standard_normal)
        out_r, out_c = [], []
        for h, gap in enumerate(gaps):
            g = np.array([gap])
            z_country = draw((n_draw, n_country, 1, n_trait))
            z_region = draw((n_draw, n_contrast, 1, n_trait)) if self.has_regions else None
            country_step, region_step = (s[:, :, 0] for s in self.raw_steps(z_country, z_region, g))
            a = self.decay(g)[:, 0][:, None]                                  # (draw, 1, trait)
            pull = ((a - 1.0) * self.mean_over_sd[:, None])
            inv = self.inv_sd[:, None]
            country_theta = a * country_theta + pull + inv * country_step
            theta = a * theta + pull + inv * (country_step[:, self.region_country] + region_step)
            if self.covariates is None:
                out_r.append(theta)
                out_c.append(country_theta)
            else:
                terms, acc = self.covariates.future(z_future[:, h], acc, a[:, 0], gap)
                out_r.append(theta + terms)
                out_c.append(country_theta + self.covariates.country(terms))
        return np.stack(out_r, axis=2), np.stack(out_c, axis=2)


def forecast(tree: xr.DataTree, spec: Spec, panel: Panel, periods: int | None = None, *,
             times: Sequence[float] | None = None, labels: Sequence | None = None, seed: int = 0,
             covariates=None, hold_covariates: bool = False) -> xr.DataTree:
    """The traits' predictive distribution ``periods`` ahead of the last fitted period, one path per draw.

    Parameters
    ----------
    tree : xarray.DataTree
        A fit's DataTree (its ``posterior``).
    spec, panel
        The fit's spec and data.
    periods : int, optional
        How many periods ahead: default 1, or one per ``times``.
    times, labels : sequence, optional
        Times (years) and labels of the future periods (see :func:`future_times`); needed for named eras.
    seed : int
        Seed of the simulated innovations (the same seed gives the same forecast).
    covariates : path or DataFrame, optional
        With ``[covariates]``: their values in the forecast periods, a table like the covariate table
        (``region``, ``period``, the covariates; one row per region and forecast period;
        :func:`~nexusbayes.analysis.forecast_covariates.future_values`).
    hold_covariates : bool
        With ``[covariates]`` and no ``covariates``: hold each region's covariates at their last fitted values.

    Returns
    -------
    xarray.DataTree
        ``forecast``: ``theta`` (chain, draw, region, horizon, trait) and ``country_theta``
        (chain, draw, country, horizon, trait), with coordinates ``period`` (labels) and ``time`` on
        ``horizon`` (1, 2, ...) and ``region_country``; with a typology, also ``types``: ``type_probability``
        (region, horizon, type) and ``transition_probability`` (region, horizon, from, to), the probability of
        each type in the last fitted period (``from``) and at the horizon (``to``). The root's attrs hold the
        last fitted period, the seed and (with ``[covariates]``) how their future values were set.
    """
    period_time = np.asarray(panel.period_time, dtype=float)
    times, labels = future_times(period_time, periods, times, labels, eras=spec.periods.eras is not None)
    z_future, said = _future_covariates(spec, panel, labels, covariates, hold_covariates)
    post = tree["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    rng = np.random.default_rng(seed)
    if spec.dynamics.centred:
        if spec.covariates is not None:
            raise ForecastError("forecasts of centred walks with [covariates] are not implemented; refit without "
                                "`centred = true` to forecast with covariates")
        future, country_future = centred_forecast(post, panel, times, rng, _draws, ForecastError)
    else:
        dynamics = Dynamics(tree, spec, panel)
        theta = _draws(post, THETA, ("region", "period", "trait"))[:, :, -1]
        country_theta = _draws(post, COUNTRY_THETA, ("country", "period", "trait"))[:, :, -1]
        gaps = np.diff(np.concatenate([[period_time[-1]], times]))
        future, country_future = dynamics.simulate(theta, country_theta, gaps, rng, z_future)
    coords = forecast_coords(post, spec, panel, times, labels)
    dims = (*SAMPLE_DIMS, "region", "horizon", "trait")
    draws = xr.Dataset({THETA: (dims, future.reshape(n_chain, n_draw, *future.shape[1:])),
                        COUNTRY_THETA: ((*SAMPLE_DIMS, "country", "horizon", "trait"),
                                        country_future.reshape(n_chain, n_draw, *country_future.shape[1:]))},
                       coords=coords)
    types = _types(tree, spec, draws[THETA], coords) if spec.has_typology else None
    return forecast_tree(draws, types, panel, seed, spec.dynamics.kind, **({"covariates": said} if said else {}))


def forecast_coords(post: xr.Dataset, spec: Spec, panel: Panel, times: np.ndarray, labels: list) -> dict:
    """The coordinates of a forecast's groups: the fit's units and traits, the draws, and the future periods.

    ``horizon`` counts the periods ahead (1, 2, ...) and carries their ``period`` labels and ``time``s;
    ``region_country`` names each region's country. One place for the trait and the regime forecasts
    (:mod:`nexusbayes.analysis.regime_forecast`).
    """
    return {"region": list(panel.regions), "country": list(panel.countries), "trait": list(spec.traits),
            "chain": post["chain"].values, "draw": post["draw"].values, "horizon": np.arange(1, len(times) + 1),
            "period": ("horizon", labels), "time": ("horizon", times),
            "region_country": ("region", [panel.countries[c] for c in panel.region_country])}


def types_group(probability: np.ndarray, moves: np.ndarray, coords: dict) -> xr.Dataset:
    """A forecast's ``types`` group from P(type) (region, horizon, type) and P(type at T, type at T+h).

    ``moves`` is (region, horizon, from, to); ``p_change`` is the probability of a type other than the last
    fitted period's. ``coords`` are :func:`forecast_coords`'.
    """
    kept = {name: coords[name] for name in ("region", "horizon", "period", "time", "region_country")}
    return xr.Dataset({"type_probability": (("region", "horizon", "type"), probability),
                       "transition_probability": (("region", "horizon", "from", "to"), moves),
                       "p_change": (("region", "horizon"), 1.0 - np.trace(moves, axis1=-2, axis2=-1))},
                      coords={**kept, "type": list(TYPES), "from": list(TYPES), "to": list(TYPES)})


def forecast_tree(draws: xr.Dataset, types: xr.Dataset | None, panel: Panel, seed: int, dynamics: str,
                  **attrs) -> xr.DataTree:
    """A forecast's DataTree: ``forecast`` (the draws), ``types`` (if any) and the attrs every forecast has."""
    out = xr.DataTree.from_dict({"forecast": draws, **({"types": types} if types is not None else {})})
    out.attrs.update({"last_period": str(panel.periods[-1]), "last_time": float(panel.period_time[-1]),
                      "seed": seed, "dynamics": dynamics, **attrs})
    return out


def _future_covariates(spec: Spec, panel: Panel, labels: list, source, hold: bool):
    """The standardised future covariates (region, horizon, covariate) and what the output says of them."""
    if spec.covariates is None:
        if source is not None or hold:
            raise ForecastError("the fit has no [covariates]: drop the future covariates (--covariates, "
                                "--hold-covariates)")
        return None, None
    if source is not None and hold:
        raise ForecastError("give future covariate values or hold them at their last values, not both")
    if source is not None:
        label = source if isinstance(source, str | Path) else "<DataFrame>"
        return future_values(source, spec, panel, labels), f"future covariate values from {label}"
    if not hold:
        raise ForecastError("the fit has [covariates]: a forecast needs their future values; pass a table of them "
                            "for the forecast periods (covariates=..., CLI --covariates FILE) or hold each region's "
                            "at its last values (hold_covariates=True, CLI --hold-covariates)")
    z = panel.covariates.standardised()[:, -1:]
    return np.repeat(z, len(labels), axis=1), f"covariates held at their values in {panel.periods[-1]}"


def _types(tree: xr.DataTree, spec: Spec, theta: xr.DataArray, coords: dict) -> xr.Dataset:
    """P(type) per region and horizon, and P(type in the last fitted period, type at the horizon)."""
    thresholds = (typology.threshold_draws(tree, spec, "capability"),
                  typology.threshold_draws(tree, spec, "willingness"))
    codes = xr.apply_ufunc(typology.classify, theta.sel(trait="capability", drop=True),
                           theta.sel(trait="willingness", drop=True), *thresholds)
    last = typology.type_codes(tree, spec, thresholds=thresholds).isel(period=-1, drop=True)
    n = len(TYPES)
    codes = codes.transpose(*SAMPLE_DIMS, "region", "horizon").values
    probs = np.stack([(codes == k).mean(axis=(0, 1)) for k in range(n)], axis=-1)
    pair = last.transpose(*SAMPLE_DIMS, "region").values[..., None] * n + codes
    moves = np.stack([(pair == k).mean(axis=(0, 1)) for k in range(n * n)], axis=-1)
    return types_group(probs, moves.reshape(*moves.shape[:-1], n, n), coords)


def forecast_table(forecast: xr.DataTree, ci_prob: float | None = None) -> pd.DataFrame:
    """Tidy forecast traits: one row per (region, horizon, trait) with mean, sd and the interval.

    Columns country, region, horizon, period, trait, mean, sd and the interval's quantiles (``q05``, ``q95``
    for the default 90%: :func:`nexusbayes.analysis.typology.interval_names`).
    """
    prob = CI_PROB if ci_prob is None else ci_prob
    lo, hi = typology.interval_names(prob)
    theta = forecast["forecast"][THETA]
    lower, upper = typology.eti(theta, prob)
    out = xr.Dataset({"mean": theta.mean(SAMPLE_DIMS), "sd": theta.std(SAMPLE_DIMS), lo: lower, hi: upper})
    table = out.to_dataframe().reset_index().rename(columns={"region_country": "country"})
    return table[["country", "region", "horizon", "period", "trait", "mean", "sd", lo, hi]]


def forecast_types_table(forecast: xr.DataTree) -> pd.DataFrame:
    """Tidy forecast types: one row per (region, horizon) with P(each type) and the modal type.

    Columns country, region, horizon, period, one per type, ``modal_type``, ``modal_probability`` and
    ``p_change``, the probability that the type differs from the one of the last fitted period.
    """
    if "types" not in forecast.children:
        raise ForecastError("this forecast has no types: the spec's traits are not capability and willingness")
    types = forecast["types"].to_dataset()
    wide = types["type_probability"].to_dataset(dim="type").assign(p_change=types["p_change"])
    wide = wide.to_dataframe().reset_index().rename(columns={"region_country": "country"})
    wide["modal_type"] = wide[list(TYPES)].idxmax(axis=1)
    wide["modal_probability"] = wide[list(TYPES)].max(axis=1)
    return wide[["country", "region", "horizon", "period", *TYPES, "modal_type", "modal_probability", "p_change"]]
