"""Forecast calibration: score a fit's forecast of held-out periods on their indicators.

A fit of the panel without its last period(s) (``kept``) forecasts them
(:func:`~nexusbayes.analysis.forecast.forecast`),
and the held-out observations are scored under that forecast, draw by draw, with the fit's measurement
parameters (the same NumPy log-likelihood and predictive draws as :mod:`nexusbayes.model.predict`):

- **log predictive density** per observation, ``log mean_s p(y | draw s)``, against a **no-change baseline**
  whose traits in the held-out periods are those of the last fitted period (draw by draw): the forecast's gain
  is the mean difference per observation, with its standard error over observations;
- **coverage** of the central 50% and 90% predictive intervals, read off the randomised PIT
  ``u = F(y-) + V (F(y) - F(y-))`` (``V`` uniform; ``F`` the predictive CDF of the draws), which is uniform
  under a calibrated forecast for continuous and discrete indicators alike (a discrete value's interval would
  otherwise over-cover): an observation is inside the ``p`` interval when ``|u - 1/2| <= p/2``.

Held-out rows of a region, indicator or rater the kept fit does not know cannot be scored: they are counted in
:attr:`ForecastCheck.dropped`. Indicator drift (its path has no future) and the reporting model are not scored.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from nexusbayes.analysis.forecast import SAMPLE_DIMS, ForecastError, forecast
from nexusbayes.data.panel import Panel
from nexusbayes.data.reporting import no_non_reports
from nexusbayes.model.design import make_design
from nexusbayes.model.drift import WALKS
from nexusbayes.model.heaping import mix_draws
from nexusbayes.model.predict import _logp, _predictors, draw_chunks
from nexusbayes.model.roles import THETA
from nexusbayes.spec.document import Spec

#: The central predictive intervals whose coverage is scored.
LEVELS = (0.5, 0.9)
#: The two forecasts scored: the fitted dynamics, and the traits held at the last fitted period.
KINDS = ("forecast", "no_change")


@dataclasses.dataclass(frozen=True)
class ForecastCheck:
    """Scores of a forecast of held-out periods.

    Attributes
    ----------
    observations : pandas.DataFrame
        One row per scored observation: ``indicator``, ``region``, ``period``, ``horizon``, ``lpd_forecast``,
        ``lpd_no_change`` (log predictive densities) and ``pit`` (randomised PIT under the forecast).
    periods : list
        The held-out periods.
    dropped : dict of str to int
        Held-out rows not scored, by reason.
    """

    observations: pd.DataFrame
    periods: list
    dropped: dict[str, int]

    def scores(self) -> pd.DataFrame:
        """Per indicator and over ``all``: n, mean lpd of both forecasts, the gain and its SE, the coverages."""
        obs = self.observations
        rows = [_score("all", obs)] + [_score(name, sub) for name, sub in obs.groupby("indicator", sort=False)]
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """One sentence: the gain over the no-change baseline and the coverages, over all observations."""
        s = _score("all", self.observations)
        return (f"held-out period(s) {', '.join(map(str, self.periods))}: {s['n']} observations; log predictive "
                f"density per observation {s['lpd_forecast']:.3f} (forecast) against {s['lpd_no_change']:.3f} "
                f"(no change), gain {s['lpd_gain']:.3f} ± {s['gain_se']:.3f}; coverage of the 50% interval "
                f"{s['coverage_50']:.2f}, of the 90% interval {s['coverage_90']:.2f}")


def _score(name: str, obs: pd.DataFrame) -> dict:
    gain = obs["lpd_forecast"] - obs["lpd_no_change"]
    n = len(obs)
    out = {"indicator": name, "n": n, "lpd_forecast": obs["lpd_forecast"].mean(),
           "lpd_no_change": obs["lpd_no_change"].mean(), "lpd_gain": gain.mean(),
           "gain_se": gain.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan}
    for level in LEVELS:
        out[f"coverage_{round(100 * level)}"] = float((np.abs(obs["pit"] - 0.5) <= level / 2).mean())
    return out


def coverage_tolerance(level: float, n: int, ses: float = 3.0) -> float:
    """``ses`` binomial standard errors of a coverage rate ``level`` over ``n`` observations.

    Examples
    --------
    >>> round(coverage_tolerance(0.9, 100), 3)
    0.09
    """
    return ses * float(np.sqrt(level * (1.0 - level) / n))


def held_out_panel(full: Panel, kept: Panel, periods: int) -> tuple[Panel, dict[str, int]]:
    """The full panel's rows in its last ``periods`` periods, coded on the kept panel's grid.

    The held-out periods follow the kept ones (``period_idx`` from ``len(kept.periods)``); rows of a region,
    indicator or rater the kept panel lacks are dropped and counted by reason.
    """
    n_full = len(full.periods)
    frame = full.frame[full.frame["period_idx"] >= n_full - periods].copy()
    dropped = {}
    for column, names in (("region", kept.regions), ("indicator", kept.indicators)):
        code = frame[column].map({n: i for i, n in enumerate(names)})
        dropped[f"{column} not in the kept periods"] = int(code.isna().sum())
        frame = frame[code.notna()]
        frame[f"{column}_idx"] = code[code.notna()].astype(int)
    if "rater" in frame and kept.raters:
        code = frame["rater"].map({n: i for i, n in enumerate(kept.raters)})
        unknown = code.isna() & frame["rater"].notna()
        dropped["rater not in the kept periods"] = int(unknown.sum())
        frame = frame[~unknown]
        frame["rater_idx"] = code[~unknown].fillna(-1).astype(int)
    frame["country_idx"] = frame["country"].map({n: i for i, n in enumerate(kept.countries)}).astype(int)
    frame["period_idx"] = frame["period_idx"] - (n_full - periods) + len(kept.periods)
    panel = dataclasses.replace(kept, frame=frame.reset_index(drop=True), periods=[*kept.periods,
                                *full.periods[n_full - periods:]],
                                period_time=np.concatenate([kept.period_time, full.period_time[n_full - periods:]]),
                                empty_cells=[], not_reported=no_non_reports(), covariates=None)
    return panel, {k: v for k, v in dropped.items() if v}


def score_forecast(tree: xr.DataTree, spec: Spec, kept: Panel, full: Panel, periods: int = 1,
                   seed: int = 0) -> ForecastCheck:
    """Score the forecast of the full panel's last ``periods`` periods by a fit of the ``kept`` panel.

    Parameters
    ----------
    tree : xarray.DataTree
        The fit of ``kept`` (the full panel without its last ``periods`` periods).
    spec : Spec
    kept, full : Panel
    periods : int
        How many last periods were held out.
    seed : int
        Seed of the forecast's innovations, the predictive draws and the PIT's randomisation.

    With ``[covariates]``, the forecast takes the held-out periods' covariate values from ``full``'s table.

    Returns
    -------
    ForecastCheck
    """
    if len(full.periods) - periods != len(kept.periods) or list(full.periods[:len(kept.periods)]) != list(
            kept.periods):
        raise ForecastError(f"the kept panel's periods {kept.periods} are not the full panel's "
                            f"{full.periods} without its last {periods}: refit on the periods before them")
    post = tree["posterior"].to_dataset()
    if any(walk.path in post for walk in WALKS):
        raise ForecastError("indicators with `drift` have intercepts or loadings that move with the periods, and "
                            "no forecast of them: the forecast check needs a spec without drift")
    held, dropped = held_out_panel(full, kept, periods)
    if held.n_obs == 0:
        raise ForecastError("no held-out observation can be scored (their regions or indicators are not in the "
                            "kept periods)")
    design = dataclasses.replace(make_design(held, spec), centres=make_design(kept, spec).centres)
    labels = list(full.periods[-periods:])
    future = None
    if spec.covariates is not None:
        table = full.covariates.frame
        future = table[table["period"].isin(labels)].reset_index(drop=True)
    fc = forecast(tree, spec, kept, times=full.period_time[-periods:], labels=labels, seed=seed, covariates=future)
    fitted = post[THETA].transpose(*SAMPLE_DIMS, "region", "period", "trait").values
    future = fc["forecast"][THETA].transpose(*SAMPLE_DIMS, "region", "horizon", "trait").values
    last = np.repeat(fitted[:, :, :, -1:], periods, axis=3)
    rng = np.random.default_rng(seed)
    base = post.drop_dims("period")
    scored = {}
    for kind, ahead in zip(KINDS, (future, last), strict=True):
        theta = np.concatenate([fitted, ahead], axis=3)
        draws = base.assign({THETA: ((*SAMPLE_DIMS, "region", "period", "trait"), theta)})
        scored[kind] = _score_blocks(draws, design, held, spec, rng if kind == "forecast" else None)
    frame = held.frame
    obs = pd.DataFrame({"indicator": frame["indicator"].to_numpy(), "region": frame["region"].to_numpy(),
                        "period": [held.periods[p] for p in frame["period_idx"]],
                        "horizon": frame["period_idx"].to_numpy() - len(kept.periods) + 1,
                        "lpd_forecast": scored["forecast"][0], "lpd_no_change": scored["no_change"][0],
                        "pit": scored["forecast"][1]})
    return ForecastCheck(observations=obs, periods=labels, dropped=dropped)


def _score_blocks(post: xr.Dataset, design, panel: Panel, spec: Spec, rng: np.random.Generator | None):
    """Per observation of ``panel`` (frame order): the log predictive density and (with ``rng``) the PIT."""
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    lpd, pit = np.full(panel.n_obs, np.nan), np.full(panel.n_obs, np.nan)
    for block, family, eta, params, mixture in _predictors(post, design, panel, spec):
        if len(block.rows) == 0:
            continue
        logp = np.empty((n_samples, len(block.rows)))
        below, at = np.zeros(len(block.rows)), np.zeros(len(block.rows))
        for rows in draw_chunks(n_samples, len(block.rows)):
            value, scale = eta(rows)
            chunk = {p: v[rows] for p, v in params.items()}
            parts, logits = mixture(rows)
            logp[rows] = _logp(family, value, scale, block, chunk, parts, logits)
            if rng is not None:
                drawn = family.simulate(rng, value, scale, block, chunk)
                if parts:
                    drawn = mix_draws(rng, drawn, parts, logits)
                below += (drawn < block.y).sum(0)
                at += (drawn == block.y).sum(0)
        lpd[block.rows] = logsumexp(logp, axis=0) - np.log(n_samples)
        if rng is not None:
            pit[block.rows] = (below + rng.random(len(block.rows)) * at) / n_samples
    return lpd, pit
