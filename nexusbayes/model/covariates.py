"""Covariates on the traits: a latent regression on their level or on their steps (``[covariates]``).

With ``x[r, t, c]`` the covariate standardised over the region-periods the model uses (mean 0, SD 1; see
:class:`nexusbayes.data.covariate_table.CovariateTable`) and ``beta[c, k]`` its coefficient on trait k,
before the traits are standardised::

    level:  theta_raw[r, t, k] += beta[c, k] * x[r, t, c]
    step:   theta_raw[r, t, k] += sum_{s <= t} a(t, s) * beta[c, k] * x[r, s, c] * d_s     (s >= 1)

that is, a step effect gives the random-walk increment into period s (gap ``d_s`` years) the mean
``beta x d_s`` (per year), accumulated as the walk accumulates its increments (``a = 1``) or, under AR(1),
decaying with the persistence (``a = phi^(tau_t - tau_s)``). ``country_theta`` gains the average of its
regions' terms, so it stays the average of its regions' traits. The coefficients are independent
normals, ``beta ~ Normal(0, prior_scale)``, with role ``effect``, each labelled ``covariate:trait`` so a
trait's reflection (:func:`nexusbayes.model.orient.orient`) flips the coefficients on it.

What is identified
------------------
``theta`` is ``theta_raw`` standardised per trait over the region-periods with data (location ``m_k`` and
scale ``s_k``). The covariate terms are part of ``theta_raw``, so the standardisation cannot absorb them: a
constant shift is absorbed by ``m_k`` (hence no intercept, and ``x`` is centred), and ``s_k`` includes the
spread the covariates cause. What the data identify is therefore ``covariate_effect = beta / s_k``: the change
in the standardised trait (in its SDs over region-periods) per SD of the covariate, with the latent path held
fixed (per year for a step effect). ``beta`` itself is on the raw scale, whose reference (the initial SD of
region deviations) is fixed at 1. As in any random-effects regression, the effect is identified under the
assumption that the latent path (region starts, innovations) is independent of the covariate: a covariate
that is constant over periods within each region is told from the regions' own starting deviations only by
that assumption and the starts' prior; a covariate that varies within regions is told from the walk by its
smoothness. Effects per raw unit are the per-SD effects divided by the covariate's SD
(:attr:`CovariateTable.scale`; see :func:`nexusbayes.analysis.covariates.covariate_effects`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.data.panel import Panel
from nexusbayes.model.latent import _ar1_accumulate, _cumulate
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec

#: The dim of the coefficients, one per (covariate, trait) pair labelled ``covariate:trait``.
EFFECT_DIM = "covariate_label"

#: The names of the free coefficients (raw scale) and of the identified, standardised effects.
BETA, EFFECT = "covariate_beta", "covariate_effect"


@dataclass(frozen=True)
class EffectIndex:
    """The coefficients as arrays: the covariate, trait and target of each ``covariate:trait`` label."""

    labels: list[str]
    covariate: np.ndarray     # (label,) index into the table's covariates
    trait: np.ndarray         # (label,) index into the spec's traits
    step: np.ndarray          # (label,) bool: acts on steps (else on the level)
    prior_scale: np.ndarray   # (label,)

    @classmethod
    def of(cls, spec: Spec) -> EffectIndex:
        """The coefficients of the spec's ``[covariates]``, in spec order (covariates, then their traits)."""
        rows = [(c, spec.traits.index(t), e.on == "step", e.prior_scale, f"{name}:{t}")
                for c, (name, e) in enumerate(spec.covariates.columns.items()) for t in e.traits]
        cov, trait, step, scale, labels = zip(*rows, strict=True)
        return cls(labels=list(labels), covariate=np.array(cov), trait=np.array(trait), step=np.array(step),
                   prior_scale=np.array(scale, dtype=float))

    def to_traits(self, n_trait: int, step: bool) -> np.ndarray:
        """(label, trait) 0/1 matrix sending each coefficient of the given target to its trait."""
        m = np.zeros((len(self.labels), n_trait))
        keep = self.step == step
        m[np.flatnonzero(keep), self.trait[keep]] = 1.0
        return m


def add_covariates(theta_raw, country_raw, spec: Spec, panel: Panel, period_time: np.ndarray):
    """Add the covariate terms to the raw traits (call inside the model, before standardising).

    Returns
    -------
    theta_raw, country_raw : TensorVariable
        With the terms added (as given when the spec has no ``[covariates]``).
    beta : TensorVariable or None
        The coefficients (dim :data:`EFFECT_DIM`), for :func:`standardised_effects`.
    """
    if spec.covariates is None:
        return theta_raw, country_raw, None
    table = panel.covariates
    if table is None:
        raise ValueError(f"spec {spec.name!r} has [covariates] but the panel carries no covariate table; attach "
                         "it with nexusbayes.data.covariates.attach_covariates")
    model = pm.Model.get_context()
    index = EffectIndex.of(spec)
    model.add_coord("covariate", table.names)
    model.add_coord(EFFECT_DIM, index.labels)
    x = pm.Data("covariate_values", table.standardised(), dims=("region", "period", "covariate"))
    beta = declare(pm.Normal(BETA, 0.0, index.prior_scale, dims=EFFECT_DIM), "effect", reflect="labels")
    n_region, n_period, n_trait = len(panel.regions), len(panel.periods), len(spec.traits)
    contribution = x[:, :, index.covariate] * beta                                 # (region, period, label)
    terms = pt.zeros((n_region, n_period, n_trait))
    if not index.step.all():
        terms = terms + pt.tensordot(contribution, index.to_traits(n_trait, False), axes=[[2], [0]])
    if index.step.any():
        gaps = np.concatenate([[0.0], np.diff(period_time)])                      # no step into the first period
        steps = pt.tensordot(contribution, index.to_traits(n_trait, True), axes=[[2], [0]]) * gaps[None, :, None]
        if spec.dynamics.kind == "ar1":
            terms = terms + _ar1_accumulate(pt.zeros((n_region, n_trait)), steps[:, 1:], model["ar_phi"],
                                            period_time)
        else:
            terms = terms + _cumulate(steps, n_period)
    # country_theta stays the average of its regions' traits
    average = np.zeros((len(panel.countries), n_region))
    average[panel.region_country, np.arange(n_region)] = 1.0
    average /= average.sum(axis=1, keepdims=True)
    return theta_raw + terms, country_raw + pt.tensordot(average, terms, axes=[[1], [0]]), beta


def standardised_effects(beta, sd, spec: Spec):
    """Declare ``covariate_effect`` = ``beta / s_k``: per covariate SD, in SDs of the standardised trait."""
    index = EffectIndex.of(spec)
    effect = pm.Deterministic(EFFECT, beta / sd[index.trait], dims=EFFECT_DIM)
    return declare(effect, "effect", reflect="labels")
