"""The latent process: country paths and region deviations over periods (random walk or AR(1)), non-centred.

The centred walks of ``[dynamics] centred = true`` are in :mod:`nexusbayes.model.centred`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.model.design import Design
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec


def trait_correlation(spec: Spec):
    """The Cholesky factor of the traits' correlation: LKJ (``trait_chol``, ``trait_corr``) with two or more traits.

    With one trait it is the constant 1 (no variable declared).
    """
    n_trait = len(spec.traits)
    if n_trait == 1:
        return pt.ones((1, 1))
    chol = declare(pm.LKJCorr("trait_chol", n=n_trait, eta=spec.priors.lkj_eta, dims=("trait", "trait_")),
                   "correlation", reflect="trait", ranked=False)   # ranked through the correlation
    declare(pm.Deterministic("trait_corr", chol @ chol.T, dims=("trait", "trait_")), "correlation",
            reflect="trait", ranked=True)
    return chol


#: Under a random walk, with fewer sum-to-zero contrasts than this among the countries' starts (two or three
#: countries), ``country_initial_sd`` gets a Gamma(2, 1 / scale) prior instead of the half-normal: the few
#: contrasts inform it weakly, so the half-normal's mass at 0 leaves a funnel with the centred starts, where
#: divergent transitions gather. The gamma's density is 0 at 0 (Chung et al. 2013, boundary-avoiding priors for
#: few groups) and its mode is the spec's scale.
FEW_CONTRASTS = 3


def _latent_process(design: Design, spec: Spec):
    """Country and region paths (raw scale); returns (theta_raw[region, period, trait], country_raw)."""
    pri, dyn = spec.priors, spec.dynamics
    n_trait = len(spec.traits)
    n_period = len(design.period_time)
    gaps = np.diff(design.period_time)
    chol = trait_correlation(spec)

    region_country = design.region_country
    n_country = len(design.coords["country"])
    regions = ZeroSum.of(region_country)           # region deviations that sum to zero within countries

    # Only ratios of scales reach the standardised theta, so one scale is fixed at 1 (otherwise the
    # common scale of all of them is a direction only the prior pins down, which slows mixing).
    if regions.n_contrast > 0:
        reference = "region"
    elif n_country > 1:
        reference = "country"
    else:
        reference = None
    phi = None
    if dyn.kind == "ar1":
        a, b = pri.ar_phi
        phi = declare(pm.Beta("ar_phi", a, b, dims="trait"), "dynamics")

    # Random walk: the countries' starts are sum-to-zero contrasts (none for a single country), which leaves the
    # likelihood and the implied prior of their differences unchanged (see the module docstring). Under AR(1)
    # the common level decays towards 0 and is identified, so it stays.
    walk = dyn.kind != "ar1"
    countries = ZeroSum.of(np.zeros(n_country, dtype=int)) if walk else None   # None: one start per country

    paths = {}
    for level, dim, start_dim, to_units in (
            ("country", "country", "country_contrast" if walk else "country", countries),
            ("region", "region_contrast", "region_contrast", regions)):
        if level == "region" and regions.n_contrast == 0:
            paths[level] = pt.zeros((len(region_country), n_period, n_trait))
            continue
        if to_units is not None and to_units.n_contrast == 0:
            start = pt.zeros((1, n_trait))   # a single country under a random walk: it starts at the reference 0
        else:
            if level == reference:
                init_sd = pt.ones(n_trait)   # the scale reference: other scales are relative to it
            elif level == "country" and walk and countries.n_contrast < FEW_CONTRASTS:
                # a boundary-avoiding prior (see FEW_CONTRASTS): zero density at 0, mode at the scale
                init_sd = declare(pm.Gamma(f"{level}_initial_sd", alpha=2.0, beta=1.0 / pri.initial_country_sd,
                                           dims="trait"), "scale", prior="initial_country_sd")
            else:
                init_sd = pm.HalfNormal(f"{level}_initial_sd", getattr(pri, f"initial_{level}_sd"), dims="trait")
                declare(init_sd, "scale", prior=f"initial_{level}_sd")
            if level == "country" and walk and level != reference:
                # centred: the data pin the starts far more tightly than their free scale does
                start = to_units(declare(pm.MvNormal("country_start", mu=0.0, chol=init_sd[:, None] * chol,
                                                     dims=(start_dim, "trait")), "latent", reflect="trait"))
            else:
                z0 = declare(pm.Normal(f"{level}_z0", 0.0, 1.0, dims=(start_dim, "trait")), "latent", reflect="trait")
                z0 = _correlate(z0, chol)
                start = init_sd * (z0 if to_units is None else to_units(z0))
        if n_period == 1:
            paths[level] = start[:, None, :]
            continue
        if dyn.kind == "student_t_rw":
            z = pm.StudentT(f"{level}_z", nu=dyn.df, mu=0.0, sigma=1.0, dims=(dim, "step", "trait"))
            declare(z, "latent", reflect="trait")
        else:
            z = declare(pm.Normal(f"{level}_z", 0.0, 1.0, dims=(dim, "step", "trait")), "latent", reflect="trait")
        z = _correlate(z, chol)
        if level == "region":
            z = regions(z)
        if dyn.kind == "ar1":
            decay = phi[None, :] ** gaps[:, None]                      # (step, trait)
            step_sd = init_sd * pt.sqrt(1.0 - decay**2)
            steps = step_sd * z
            paths[level] = _ar1_accumulate(start, steps, phi, design.period_time)
        else:
            if reference is None and level == "country":
                innov_sd = pt.ones(n_trait)   # a single unit: its steps are the scale reference
            else:
                innov_sd = declare(pm.HalfNormal(f"{level}_innovation_sd", getattr(pri, f"innovation_{level}_sd"),
                                                 dims="trait"), "scale", prior=f"innovation_{level}_sd")
            steps = innov_sd * np.sqrt(gaps)[:, None] * z
            paths[level] = _cumulate(pt.concatenate([start[:, None, :], steps], axis=1), n_period)
    country = paths["country"]
    theta_raw = country[region_country] + paths["region"]
    return theta_raw, country


def _correlate(z, chol):
    """``z @ chol.T`` over the last (trait) axis, as a broadcast product and sum.

    With two or three traits this is faster than a batched matrix product under nutpie's numba backend
    (see ``benchmarks/HISTORY.md``).
    """
    return (z[..., None, :] * chol).sum(axis=-1)


def _cumulate(increments, n_period: int):
    """Cumulative sums over periods (axis 1) of (unit, period, trait) increments.

    As one product with a lower-triangular matrix of ones, which with at most a few dozen periods is faster
    than ``cumsum`` under nutpie's numba backend (see ``benchmarks/HISTORY.md``).
    """
    n_unit, n_trait = increments.shape[0], increments.shape[2]
    flat = increments.transpose(1, 0, 2).reshape((n_period, -1))
    return pt.dot(np.tril(np.ones((n_period, n_period))), flat).reshape((n_period, n_unit, n_trait)).transpose(1, 0, 2)


@dataclass(frozen=True)
class ZeroSum:
    """Orthonormal map from contrasts to unit values that sum to zero within each group, in O(n).

    Group ``g`` with ``n`` units has ``n - 1`` contrasts ``z``; its first ``n - 1`` units get
    ``z_i - S / (n + sqrt(n))`` and its last ``-S / sqrt(n)``, with ``S = sum(z)`` (a Householder
    reflection, as PyMC's ``ZeroSumNormal`` uses). The map's matrix has orthonormal columns, so
    standard-normal contrasts give exactly the within-group-centred normal distribution, with no
    direction left that only the prior pins down, at the cost of one gather and one scatter-add rather
    than a dense (unit x contrast) product.

    Examples
    --------
    >>> m = ZeroSum.of(np.array([0, 0, 0, 1, 1, 2]))
    >>> q = m.matrix()
    >>> q.shape, bool(np.allclose(q.T @ q, np.eye(3))), bool(np.allclose([q[:3].sum(0), q[3:5].sum(0), q[5]], 0))
    ((6, 3), True, True)
    """

    group: np.ndarray        # (contrast,) the group of each contrast
    source: np.ndarray       # (unit,) each unit's contrast, or ``n_contrast + group`` (a zero) for a group's last
    unit_group: np.ndarray   # (unit,)
    weight: np.ndarray       # (unit,) the multiple of its group's sum subtracted from each unit

    @classmethod
    def of(cls, groups: np.ndarray) -> ZeroSum:
        """The map for units in ``groups`` (group index per unit, 0..G-1)."""
        groups = np.asarray(groups, dtype=int)
        n_contrast = len(groups) - len(np.unique(groups))
        source = np.empty(len(groups), dtype=int)
        weight = np.empty(len(groups))
        group_of_contrast = []
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            n = len(idx)
            source[idx[:-1]] = np.arange(len(group_of_contrast), len(group_of_contrast) + n - 1)
            source[idx[-1]] = n_contrast + g
            weight[idx[:-1]] = 1.0 / (n + np.sqrt(n))
            weight[idx[-1]] = 1.0 / np.sqrt(n)
            group_of_contrast += [g] * (n - 1)
        return cls(group=np.array(group_of_contrast, dtype=int), source=source, unit_group=groups, weight=weight)

    @property
    def n_contrast(self) -> int:
        """Number of contrasts (units less groups)."""
        return len(self.group)

    def __call__(self, z):
        """Unit values (unit, ...) from contrasts ``z`` (contrast, ...), a PyTensor tensor."""
        n_group = int(self.unit_group.max()) + 1
        shape = (n_group, *(z.shape[i] for i in range(1, z.ndim)))
        total = pt.inc_subtensor(pt.zeros(shape)[self.group], z)
        padded = pt.concatenate([z, pt.zeros(shape)], axis=0)
        weight = self.weight.reshape((-1,) + (1,) * (z.ndim - 1))
        return padded[self.source] - weight * total[self.unit_group]

    def matrix(self) -> np.ndarray:
        """The map as a dense (unit, contrast) NumPy matrix (no compiling; forecasts and checks use it)."""
        q = np.zeros((len(self.unit_group), self.n_contrast))
        own = self.source < self.n_contrast
        q[np.flatnonzero(own), self.source[own]] = 1.0
        return q - self.weight[:, None] * (self.unit_group[:, None] == self.group[None, :])


def _ar1_accumulate(start, steps, phi, times):
    """path_t = sum_{s <= t} phi^(tau_t - tau_s) * increment_s, vectorised as one weighted sum."""
    increments = pt.concatenate([start[:, None, :], steps], axis=1)        # (unit, period, trait)
    lag = times[:, None] - times[None, :]                                    # (t, s)
    lower = (lag >= 0).astype(float)
    weights = (phi[:, None, None] ** np.where(lag >= 0, lag, 0.0)[None]) * lower[None]   # (trait, t, s)
    # out[u, t, k] = sum_s weights[k, t, s] * increments[u, s, k], by broadcasting: pt.einsum warns
    # ("same subscript ... broadcastable and non-broadcastable") when there is a single trait
    terms = weights[None, :, :, :] * increments.dimshuffle(0, 2, "x", 1)                 # (unit, trait, t, s)
    return terms.sum(axis=-1).dimshuffle(0, 2, 1)
