"""The measurement model: loadings, intercepts, country offsets and the linear predictors."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.model.design import BlockIndex, Design
from nexusbayes.model.families import FAMILIES
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.roles import INTERCEPT, LOADING, declare
from nexusbayes.spec.document import Spec

#: The linear predictors come from a dense (indicator, region-period) table while it has at most this
#: many entries per observation. Sparser designs, such as an item bank of thousands of roll calls each
#: voted on in one term, would make the table hundreds of times larger than the data (the Martin-Quinn
#: item bank), so each observation gathers its own terms instead.
DENSE_TABLE_MAX_RATIO = 4


def uses_dense_table(design: Design, n_obs: int) -> bool:
    """Whether the linear predictors of ``n_obs`` observations come from the dense (indicator, cell) table."""
    n_cell = len(design.coords["region"]) * len(design.period_time)
    return len(design.families) * n_cell <= DENSE_TABLE_MAX_RATIO * n_obs


def _linear_predictor(design: Design, n_obs: int, theta, loading, intercept, location, offset, drift=None,
                      scaling=None):
    """A function from a block's :class:`BlockIndex` to its observations' linear predictors.

    ``intercept + loading . theta``, plus the centre of each non-normal indicator (normal ones are
    centred on the data scale instead), the country offset of each non-comparable one and the period's
    drift of each drifting one (``drift``: the pair of :func:`nexusbayes.model.drift.item_drift`, or None); with
    ``scaling`` (the pair of :func:`nexusbayes.model.drift.loading_drift`), ``loading . theta`` is multiplied by
    ``exp`` of the indicator's log-loading path in the period.

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
        table = (loading[:, None, :] * cells[None, :, :]).sum(axis=-1)     # (indicator, cell)
        cell_period = np.tile(np.arange(n_period), n_region)
        if scaling is not None:
            logs, row = scaling                                      # (drifting + 1, period), (indicator,)
            table = table * pt.exp(logs)[row][:, cell_period]
        table = intercept[:, None] + table
        if not normal.all():
            table = table + centre[:, None]
        if offset is not None:
            table = table + offset[:, np.repeat(design.region_country, n_period)]
        if drift is not None:
            shift, position = drift                                  # (drifting + 1, period), (indicator,)
            table = table + shift[position][:, cell_period]
        flat = table.ravel()
        # one flat integer index (a fast gather and scatter-add) rather than several index arrays
        return lambda idx: flat[idx.indicator * n_cell + idx.region * n_period + idx.period]

    def per_observation(idx: BlockIndex):
        j = idx.indicator
        eta = (loading[j] * cells[idx.region * n_period + idx.period]).sum(axis=-1)
        if scaling is not None:
            logs, row = scaling
            eta = eta * pt.exp(logs.ravel()[row[j] * n_period + idx.period])    # the zero row for the steady ones
        eta = intercept[j] + eta
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
            # free loadings start near 0 when an orientation sets the start (see nexusbayes.model.centred)
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
