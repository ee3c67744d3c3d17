"""Changing standards: indicator parameters that drift over periods (``drift`` in ``[indicators.NAME]``).

Two kinds of path, each a Gaussian random walk over periods per drifting indicator, non-centred and vectorised,
with the indicator's own step SD per year (a step over a gap of d years has SD ``sqrt(d)`` times it, as the
traits' steps), centred over the periods in which the indicator has data:

* **location** (``drift = "intercept"`` or ``"cutpoints"``): ``drift`` (indicator_drifting, period), added to
  the intercept (subtracted from the cut-point centre, see :func:`drift_sign`); step SD ``drift_sd``
  (half-normal, scale ``priors.drift_sd``), innovations ``drift_z``.
* **loading** (``drift = "loading"``): ``loading_drift`` (indicator_loading_drifting, period), the log of the
  factor by which every loading of the indicator is multiplied in that period, so a positive loading stays
  positive, a negative one negative and an anchor's zeros zero in every period; step SD ``loading_drift_sd``
  (scale ``priors.loading_drift_sd``), innovations ``loading_drift_z``. The loading itself is then the geometric
  mean of the period loadings over the periods with data.

What each leaves identified is checked by the spec: the traits' trend needs indicators whose location does not
drift (:func:`nexusbayes.spec.indicators.trend_free_traits`), their spread in each period indicators whose
loading does not (:func:`nexusbayes.spec.indicators.scale_free_traits`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.data.panel import Panel
from nexusbayes.model.design import Design
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec


@dataclass(frozen=True)
class Walk:
    """The variables of one kind of drift path.

    Attributes
    ----------
    path, sd, z : str
        The path (drifting, period), its step SD per year (drifting) and its innovations (drifting, step).
    dim : str
        The coord of the drifting indicators.
    prior : str
        The ``[priors]`` field of the step SD's half-normal scale.
    role : str
        The path's role (``intercept`` for a location, ``loading`` for a log loading).
    """

    path: str
    sd: str
    z: str
    dim: str
    prior: str
    role: str

    def drifts(self, spec: Spec, name: str) -> bool:
        """Whether indicator ``name`` has a path of this kind."""
        ind = spec.indicator(name)
        return ind.loading_drift if self is LOADING_WALK else ind.location_drift is not None


#: The location paths (intercepts, cut-point centres) and the log-loading paths.
LOCATION_WALK = Walk("drift", "drift_sd", "drift_z", "indicator_drifting", "drift_sd", "intercept")
LOADING_WALK = Walk("loading_drift", "loading_drift_sd", "loading_drift_z", "indicator_loading_drifting",
                    "loading_drift_sd", "loading")
WALKS = (LOCATION_WALK, LOADING_WALK)

#: The model variable holding the location paths (kept under this name for the consumers that read it).
DRIFT = LOCATION_WALK.path


def drift_sign(spec: Spec, names) -> np.ndarray:
    """How each drifting indicator's location path enters its linear predictor: +1 (intercept) or -1 (cut-points).

    Raising every cut-point by ``d`` changes the ordered-logit probabilities as lowering ``eta`` by ``d`` does.
    """
    return np.array([-1.0 if spec.indicator(n).location_drift == "cutpoints" else 1.0 for n in names])


def drift_layout(design: Design, spec: Spec, walk: Walk = LOCATION_WALK) -> tuple[list[int], np.ndarray]:
    """The indicators with a ``walk`` path (their panel positions) and each indicator's row of its table.

    The row is the indicator's place among the drifting ones, and ``len(drifting)`` (a row of zeros) for the others.
    """
    names = design.coords["indicator"]
    drifting = [j for j, n in enumerate(names) if walk.drifts(spec, n)]
    position = np.full(len(names), len(drifting))
    position[drifting] = np.arange(len(drifting))
    return drifting, position


def centring_walk(design: Design, panel: Panel, drifting: list[int]) -> np.ndarray:
    """The constant (drifting, step, period) map from a walk's steps to its path, centred over observed periods.

    ``path[j, t] = sum_s step[j, s] * walk[j, s, t]``: cumulated from 0 at the first period, less the average over
    the periods in which j has data (one constant per indicator does both). Periods without data for j are the
    walk's extrapolation and do not set its average.
    """
    n_period = len(design.period_time)
    frame = panel.frame
    seen = np.zeros((len(design.coords["indicator"]), n_period))
    seen[frame["indicator_idx"].to_numpy(), frame["period_idx"].to_numpy()] = 1.0
    weight = seen[drifting] / seen[drifting].sum(axis=1, keepdims=True)         # (drifting, period)
    after = (np.arange(n_period)[None, :] >= np.arange(1, n_period)[:, None]).astype(float)   # (step, period)
    return after[None, :, :] - (after[None, :, :] * weight[:, None, :]).sum(axis=-1, keepdims=True)


def _walk(design: Design, spec: Spec, panel: Panel, walk: Walk):
    """The paths of one kind as a table with a last row of zeros, and each indicator's row; None without any.

    Centred rather than anchored at 0 in the first period: both leave no direction of the likelihood to the
    prior (the T - 1 steps make T path values with one linear constraint), but centred, the intercept (or
    loading) is the indicator's average over the periods it informs, estimated from all of them and little
    correlated with the path, and its prior keeps its meaning (anchored, it would be the first period's value,
    set by that period's data alone, and every later period's drift would move with it).
    """
    drifting, position = drift_layout(design, spec, walk)
    n_period = len(design.period_time)
    if not drifting or n_period < 2:
        return None
    names = [design.coords["indicator"][j] for j in drifting]
    pm.Model.get_context().add_coord(walk.dim, names)
    sd = declare(pm.HalfNormal(walk.sd, getattr(spec.priors, walk.prior), dims=walk.dim), "scale", prior=walk.prior)
    z = declare(pm.Normal(walk.z, 0.0, 1.0, dims=(walk.dim, "step")), "latent")
    steps = sd[:, None] * np.sqrt(np.diff(design.period_time))[None, :] * z
    path = (steps[:, :, None] * centring_walk(design, panel, drifting)).sum(axis=1)
    # ranked by SBC as the hyperparameters are: the paths are what the option estimates
    path = declare(pm.Deterministic(walk.path, path, dims=(walk.dim, "period")), walk.role, ranked=True)
    if walk is LOCATION_WALK:
        path = drift_sign(spec, names)[:, None] * path
    return pt.concatenate([path, pt.zeros((1, n_period))], axis=0), position


def item_drift(design: Design, spec: Spec, panel: Panel):
    """Location paths: (shift table (drifting + 1, period), row of each indicator), or None.

    The table holds ``sign * drift`` (:func:`drift_sign`) and a last row of zeros, the row of every indicator
    whose location does not drift.
    """
    return _walk(design, spec, panel, LOCATION_WALK)


def loading_drift(design: Design, spec: Spec, panel: Panel):
    """Log-loading paths: (table (drifting + 1, period), row of each indicator), or None.

    The loadings of indicator j in period t are ``loading[j] * exp(table[row_j, t])``; the last row (zeros) is
    that of every indicator whose loading does not drift.
    """
    return _walk(design, spec, panel, LOADING_WALK)


def posterior_tables(flat, post, design: Design, spec: Spec, panel: Panel):
    """NumPy copies of the two tables from posterior draws: ``(shift, position)`` and ``(log scale, position)``.

    ``flat[name]`` gives a variable as (sample, ...) doubles; each pair is None when the fit has no such path.
    """
    out = []
    for walk in WALKS:
        if walk.path not in post:
            out.append(None)
            continue
        drifting, position = drift_layout(design, spec, walk)
        path = flat[walk.path]
        if walk is LOCATION_WALK:
            path = path * drift_sign(spec, [panel.indicators[j] for j in drifting])[:, None]
        out.append((np.concatenate([path, np.zeros_like(path[:, :1])], axis=1), position))
    return tuple(out)
