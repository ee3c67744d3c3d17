"""The measurement model: loadings, intercepts, country offsets and the linear predictors."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.data.panel import Panel
from nexusbayes.model.design import BlockIndex, Design
from nexusbayes.model.families import FAMILIES
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.roles import INTERCEPT, LOADING, declare
from nexusbayes.spec.document import Spec

#: The model variable holding the drift paths (drifting indicator, period) of indicators with ``drift``.
DRIFT = "drift"

#: The linear predictors come from a dense (indicator, region-period) table while it has at most this
#: many entries per observation. Sparser designs, such as an item bank of thousands of roll calls each
#: voted on in one term, would make the table hundreds of times larger than the data (the Martin-Quinn
#: item bank), so each observation gathers its own terms instead.
DENSE_TABLE_MAX_RATIO = 4


def uses_dense_table(design: Design, n_obs: int) -> bool:
    """Whether the linear predictors of ``n_obs`` observations come from the dense (indicator, cell) table."""
    n_cell = len(design.coords["region"]) * len(design.period_time)
    return len(design.families) * n_cell <= DENSE_TABLE_MAX_RATIO * n_obs


def _linear_predictor(design: Design, n_obs: int, theta, loading, intercept, location, offset, drift=None):
    """A function from a block's :class:`BlockIndex` to its observations' linear predictors.

    ``intercept + loading . theta``, plus the centre of each non-normal indicator (normal ones are
    centred on the data scale instead), the country offset of each non-comparable one and the period's
    drift of each drifting one (``drift``: the pair of :func:`_item_drift`, or None).

    Where the grid of (indicator, region, period) is about as large as the data (at most
    :data:`DENSE_TABLE_MAX_RATIO` entries per observation: every panel of indicators observed in most
    cells), it is computed once as a dense table and each observation costs one gather (the gradient
    one scatter-add) instead of one per term, a cheaper gradient (see ``benchmarks/HISTORY.md``).
    Otherwise each observation gathers its indicator's parameters and its cell's traits.
    """
    n_region, n_period, n_trait = len(design.coords["region"]), len(design.period_time), len(design.coords["trait"])
    n_cell = n_region * n_period
    cells = theta.reshape((n_cell, n_trait))
    normal = design.normal
    centre = pt.where(normal, 0.0, location)
    if uses_dense_table(design, n_obs):
        table = intercept[:, None] + (loading[:, None, :] * cells[None, :, :]).sum(axis=-1)     # (indicator, cell)
        if not normal.all():
            table = table + centre[:, None]
        if offset is not None:
            table = table + offset[:, np.repeat(design.region_country, n_period)]
        if drift is not None:
            shift, position = drift                                  # (drifting + 1, period), (indicator,)
            table = table + shift[position][:, np.tile(np.arange(n_period), n_region)]
        flat = table.ravel()
        # one flat integer index (a fast gather and scatter-add) rather than several index arrays
        return lambda idx: flat[idx.indicator * n_cell + idx.region * n_period + idx.period]

    def per_observation(idx: BlockIndex):
        j = idx.indicator
        eta = intercept[j] + (loading[j] * cells[idx.region * n_period + idx.period]).sum(axis=-1)
        if not normal[j].all():
            eta = eta + centre[j]
        if offset is not None:
            eta = eta + offset[j, idx.country]
        if drift is not None:
            shift, position = drift
            eta = eta + shift.ravel()[position[j] * n_period + idx.period]    # the zero row for the steady ones
        return eta

    return per_observation


def _measurement_parameters(design: Design, spec: Spec):
    """Loadings (sign-constrained, zero where an indicator does not load) and intercepts."""
    sign = design.loading_sign
    n_ind, n_trait = sign.shape
    flat = np.zeros(n_ind * n_trait)
    loading = pt.as_tensor_variable(flat)
    scale = spec.priors.loading
    for code, name in ((1, "loading_pos"), (-1, "loading_neg"), (2, "loading_free")):
        where = np.flatnonzero(sign.ravel() == code)
        if where.size == 0:
            continue
        dim = f"{name}_label"
        labels = [f"{design.coords['indicator'][i // n_trait]}:{spec.traits[i % n_trait]}" for i in where]
        pm.Model.get_context().add_coord(dim, labels)
        if code == 2:
            # free loadings start near 0 when an orientation sets the start (see _centred_spans)
            start = (0.1 * np.random.default_rng(1).standard_normal(where.size)
                     if spec.orientation and spec.dynamics.centred else None)
            raw = declare(pm.Normal(name, 0.0, scale, dims=dim, initval=start), "loading", prior="loading",
                          reflect="labels")
        else:
            raw = code * declare(pm.HalfNormal(name, scale, dims=dim), "loading", prior="loading")
        loading = pt.set_subtensor(loading[where], raw)
    loading = declare(pm.Deterministic(LOADING, loading.reshape((n_ind, n_trait)), dims=("indicator", "trait")),
                      "loading", reflect="trait")

    names = design.coords["indicator"]
    with_intercept = np.array([FAMILIES[design.families[j]].has_intercept for j in range(len(names))])
    intercept = pt.zeros(n_ind)
    if with_intercept.any():
        pm.Model.get_context().add_coord("indicator_with_intercept", [n for n, w in zip(names, with_intercept,
                                                                                         strict=True) if w])
        raw = declare(pm.Normal("intercept_raw", 0.0, spec.priors.intercept, dims="indicator_with_intercept"),
                      "intercept", prior="intercept")
        intercept = pt.set_subtensor(intercept[np.flatnonzero(with_intercept)], raw)
    intercept = declare(pm.Deterministic(INTERCEPT, intercept, dims="indicator"), "intercept")
    return loading, intercept


def _country_offsets(design: Design, spec: Spec):
    """Country offsets (indicator, country): of the indicators not comparable across countries, or None.

    Sum-to-zero over countries (orthonormal contrasts, :class:`ZeroSum`, non-centred), so the indicator's own
    intercept (or cut-point centre) stays its average over countries and nothing is left for the prior
    alone to pin down. An indicator marked ``comparable = false`` gets normal offsets (scale
    ``priors.country_offset``); with ``[comparability] detect = true`` every other indicator gets offsets
    shrunk towards zero by a regularised horseshoe (:func:`_horseshoe_offsets`).
    """
    names = design.coords["indicator"]
    countries = design.coords["country"]
    local = [j for j, n in enumerate(names) if not spec.indicator(n).comparable]
    shrunk = [j for j in range(len(names)) if j not in local] if spec.comparability.detect else []
    if len(countries) < 2 or not (local or shrunk):
        return None
    zero_sum = ZeroSum.of(np.zeros(len(countries), dtype=int))
    model = pm.Model.get_context()
    full = pt.zeros((len(names), len(countries)))
    if local:
        model.add_coord("indicator_country_specific", [names[j] for j in local])
        z = declare(pm.Normal("country_offset_z", 0.0, 1.0,
                              dims=("country_contrast", "indicator_country_specific")), "latent")
        full = pt.set_subtensor(full[np.array(local)], spec.priors.country_offset * zero_sum(z).T)
    if shrunk:
        model.add_coord("indicator_shrunk", [names[j] for j in shrunk])
        full = pt.set_subtensor(full[np.array(shrunk)], _horseshoe_offsets(spec, zero_sum))
    return declare(pm.Deterministic("country_offset", full, dims=("indicator", "country")), "offset", ranked=True)


#: Degrees of freedom of the horseshoe's slab (``c^2 ~ InverseGamma(df / 2, df * s^2 / 2)``), as Piironen and
#: Vehtari (2017) use: a Student-t slab whose tails let a clearly non-comparable indicator keep a large offset.
SLAB_DF = 4.0


def _horseshoe_offsets(spec: Spec, zero_sum: ZeroSum):
    """Sum-to-zero country offsets (indicator_shrunk, country) under a regularised horseshoe, non-centred.

    Piironen and Vehtari (2017): global scale ``tau ~ half-Cauchy(priors.offset_global_scale)``, a local
    scale per indicator ``lambda_j ~ half-Cauchy(1)`` (an indicator's offsets shrink together: the
    question is whether the indicator means the same thing across countries), a slab ``c^2 ~
    InverseGamma(SLAB_DF / 2, SLAB_DF * s^2 / 2)`` with ``s = priors.offset_slab_scale``, and
    ``lambda~_j = c lambda_j / sqrt(c^2 + tau^2 lambda_j^2)``; offsets ``tau lambda~_j Q z_j`` with ``z``
    standard normal over the country contrasts and ``Q`` the orthonormal sum-to-zero map.

    The countries' trait levels are identified only through this shrinkage: moving a country's traits by
    ``d`` and every indicator's offset in it by ``-loading . d`` leaves the likelihood unchanged, and only
    the prior's preference for most offsets near zero says which it is. The design refuses it with a single
    country (:func:`nexusbayes.model.design.make_design`).
    """
    slab = spec.priors.offset_slab_scale
    tau = declare(pm.HalfCauchy("offset_tau", spec.priors.offset_global_scale), "scale", prior="offset_global_scale")
    lam = declare(pm.HalfCauchy("offset_lambda", 1.0, dims="indicator_shrunk"), "scale")
    slab_sq = declare(pm.InverseGamma("offset_slab_sq", alpha=SLAB_DF / 2, beta=SLAB_DF * slab**2 / 2), "scale",
                      prior="offset_slab_scale")
    lam_tilde = pt.sqrt(slab_sq * lam**2 / (slab_sq + tau**2 * lam**2))
    z = declare(pm.Normal("offset_z", 0.0, 1.0, dims=("country_contrast", "indicator_shrunk")), "latent")
    return (tau * lam_tilde)[:, None] * zero_sum(z).T


def drift_sign(spec: Spec, names) -> np.ndarray:
    """How each drifting indicator's path enters its linear predictor: +1 (intercept) or -1 (cut-point centre).

    Raising every cut-point by ``d`` changes the ordered-logit probabilities as lowering ``eta`` by ``d`` does.
    """
    return np.array([-1.0 if spec.indicator(n).drift == "cutpoints" else 1.0 for n in names])


def drift_layout(design: Design, spec: Spec) -> tuple[list[int], np.ndarray]:
    """The drifting indicators' positions (panel order) and each indicator's row of the shift table.

    The row is the indicator's place among the drifting ones, and ``len(drifting)`` (a row of zeros) for the others.
    """
    names = design.coords["indicator"]
    drifting = [j for j, n in enumerate(names) if spec.indicator(n).drift is not None]
    position = np.full(len(names), len(drifting))
    position[drifting] = np.arange(len(drifting))
    return drifting, position


def _item_drift(design: Design, spec: Spec, panel: Panel):
    """Drift paths of the indicators with ``drift``: (shift table, row of each indicator), or None.

    Per drifting indicator j, a Gaussian random walk over periods, non-centred and vectorised: one
    (indicator_drifting, step) matrix ``drift_z`` of standard normals, steps
    ``drift_sd_j * sqrt(gap_t) * z[j, t]`` (gaps in years, as the traits' steps), cumulated from 0 at the
    first period and centred over the periods in which j has data (one constant matrix per indicator does both),
    giving ``drift`` (indicator_drifting, period), the path of its intercept (or cut-point centre).

    Centred rather than anchored at 0 in the first period: both leave no direction of the likelihood to the
    prior (the T - 1 steps make T path values with one linear constraint), but centred, the intercept is the
    indicator's average over the periods it informs, estimated from all of them and little correlated with the
    path, and the intercept's prior keeps its meaning (anchored, the intercept would be the first period's value,
    set by that period's data alone, and every later period's drift would move with it). Periods without data for
    j are the walk's extrapolation and do not set its average. The shift table holds ``sign * drift``
    (:func:`drift_sign`) and a last row of zeros, the row of every indicator without drift.
    """
    drifting, position = drift_layout(design, spec)
    n_period = len(design.period_time)
    if not drifting or n_period < 2:
        return None
    names = [design.coords["indicator"][j] for j in drifting]
    model = pm.Model.get_context()
    model.add_coord("indicator_drifting", names)
    frame = panel.frame
    seen = np.zeros((len(design.coords["indicator"]), n_period))
    seen[frame["indicator_idx"].to_numpy(), frame["period_idx"].to_numpy()] = 1.0
    weight = seen[drifting] / seen[drifting].sum(axis=1, keepdims=True)         # (drifting, period)
    after = (np.arange(n_period)[None, :] >= np.arange(1, n_period)[:, None]).astype(float)   # (step, period)
    # path[j, t] = sum_s step[j, s] * (after[s, t] - sum_u weight[j, u] after[s, u])
    walk = after[None, :, :] - (after[None, :, :] * weight[:, None, :]).sum(axis=-1, keepdims=True)
    sd = declare(pm.HalfNormal("drift_sd", spec.priors.drift_sd, dims="indicator_drifting"), "scale",
                 prior="drift_sd")
    z = declare(pm.Normal("drift_z", 0.0, 1.0, dims=("indicator_drifting", "step")), "latent")
    steps = sd[:, None] * np.sqrt(np.diff(design.period_time))[None, :] * z
    path = declare(pm.Deterministic(DRIFT, (steps[:, :, None] * walk).sum(axis=1), dims=("indicator_drifting",
                                                                                          "period")), "intercept")
    shift = pt.concatenate([drift_sign(spec, names)[:, None] * path, pt.zeros((1, n_period))], axis=0)
    return shift, position
