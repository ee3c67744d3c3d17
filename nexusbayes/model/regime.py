"""The regime model (``[model] kind = "regime"``): the four capacity types as hidden Markov states.

The states
----------
Each region-period is in one of the four types of :data:`~nexusbayes.constants.TYPES`; a type places
capability and willingness each at a low or a high level (:func:`levels`). Every indicator's linear
predictor is that of the trait model with the levels in place of theta::

    eta_i(s) = centre_j + intercept_j [+ offset_{j, c_i}] + sum_k loading[j, k] level[s, k]

with the same loadings, intercepts, cut-points, rater shifts, exposures and nuisance parameters
(:mod:`nexusbayes.model.measurement`, :mod:`nexusbayes.model.families`).

Identification: with two levels per trait, any affine map of a trait's levels is absorbed by the
intercepts (or cut-point centres) and loadings on it, so the levels carry no free parameter: they are
fixed at -1 (low) and +1 (high), which fixes the trait's location (0, midway) and scale (a half-gap of 1;
a trait split evenly between its levels has SD 1, as the trait model's standardised theta). Each trait's
anchor has a fixed-sign loading (checked by the spec), so "high" cannot swap with "low": the four states
have fixed meanings and cannot switch labels, by construction.

Transitions
-----------
``transition[c]`` is a 4 x 4 matrix per country (row: from, column: to) over one time unit (the
smallest gap between periods, :func:`step_multiples`); a gap of m units uses its m-th power. Rows are
Dirichlet: ``transition_shared`` rows have concentration ``persistence`` (stay, move) of ``[model]``. With
several countries, a country's row is the softmax of the shared row's logs plus a deviation
``transition_sd * Q z`` (``z`` standard normal per country, row and 3 contrasts, ``Q`` the orthonormal 4 x 3
map to sum-to-zero vectors, so no direction of ``z`` is left to the prior alone; ``transition_sd`` half-normal
with scale ``pooling``): partial pooling, non-centred (the centred form, country rows
Dirichlet(concentration x shared row), mixed poorly: R-hat 1.17 on two countries). One country's matrix is the
shared one.
```initial_type`` (country, type) are the first period's type probabilities, Dirichlet(1, 1, 1, 1).
Covariates with ``on = "transition"`` shift the log-odds of leaving the current type per region and step
(:mod:`nexusbayes.model.regime_covariates`).

Within-state deviations
-----------------------
With ``[model] region_deviation = true`` a region in state s sits at ``level[s] + region_deviation[r]``
(:func:`region_deviations`): a per-region, per-trait deviation summing to zero over the regions (a common
shift is the intercepts'), partially pooled with SD ``region_deviation_sd`` (half-normal), non-centred. It
moves a region's indicators alike in every state, so the states keep their meaning while a persistently
stronger region is not pushed into a higher type.

The likelihood
--------------
The states are summed out exactly by the forward algorithm in log space (:func:`forward_loglik`),
vectorised over regions, the periods unrolled (a few dozen at most: no ``scan`` overhead in the gradient).
Each observation's log-density is computed under all four states at once, shape (obs, 4), per family
(:mod:`nexusbayes.model.regime_emission`), and scattered onto (region-period, state) in one scatter-add.
The model's log-density enters as one ``pm.Potential`` (``regime_loglik``); the per-region marginal
log-likelihood (for LOO with a region's whole series left out), smoothed type probabilities, state draws and
predictions are computed after sampling (:mod:`nexusbayes.model.regime_predict`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.constants import TYPES
from nexusbayes.data.panel import Panel
from nexusbayes.errors import SpecError
from nexusbayes.model.design import Design, block_index
from nexusbayes.model.families import FAMILIES
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.measurement import _country_offsets, _measurement_parameters
from nexusbayes.model.regime_covariates import log_transitions_pt, transition_effects
from nexusbayes.model.regime_emission import state_logp
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec

#: The level of (capability, willingness) in each type, in the order of TYPES: 1 high, 0 low.
HIGH = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])

#: Names of the regime model's variables that analyses read.
TRANSITION, INITIAL = "transition", "initial_type"
SHARED, POOLING_SD = "transition_shared", "transition_sd"
DEVIATION, DEVIATION_SD = "region_deviation", "region_deviation_sd"


def levels(traits: list[str]) -> np.ndarray:
    """The latent level of each trait (spec order) in each type: (type, trait), -1 low and +1 high.

    Examples
    --------
    >>> levels(["willingness", "capability"]).tolist()
    [[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]
    """
    columns = [("capability", "willingness").index(t) for t in traits]
    return np.where(HIGH[:, columns] == 1, 1.0, -1.0)


def step_multiples(period_time: np.ndarray) -> tuple[float, np.ndarray]:
    """The time unit of the transition matrix (the smallest gap) and each step's gap as a whole multiple of it.

    Raises
    ------
    SpecError
        When a gap is not a whole multiple of the smallest (e.g. eras 4 and 6 years apart): a matrix power
        needs whole exponents.

    Examples
    --------
    >>> step_multiples(np.array([2000.0, 2001.0, 2003.0]))
    (1.0, array([1, 2]))
    """
    gaps = np.diff(np.asarray(period_time, dtype=float))
    if gaps.size == 0:
        return 1.0, np.zeros(0, dtype=int)
    unit = float(gaps.min())
    multiples = np.rint(gaps / unit).astype(int)
    if not np.allclose(multiples * unit, gaps, atol=1e-6 * unit):
        raise SpecError(f"model.kind = \"regime\": the gaps between periods ({', '.join(f'{g:g}' for g in gaps)} "
                        f"years) are not whole multiples of the smallest ({unit:g}), which the transition matrix's "
                        "powers need; choose era bounds whose midpoints are evenly spaced, or use yearly periods")
    return unit, multiples


def matrix_powers(matrix, multiples: np.ndarray):
    """``matrix ** m`` (batched over leading dims) for each step's multiple m: (..., step, S, S), by squaring."""
    cache = {1: matrix}

    def power(m: int):
        if m not in cache:
            half = power(m // 2)
            cache[m] = pt.matmul(half, half) if m % 2 == 0 else pt.matmul(pt.matmul(half, half), matrix)
        return cache[m]

    return pt.stack([power(int(m)) for m in multiples], axis=-3)


def forward_loglik(log_init, log_trans, emission, n_period: int):
    """Each region's marginal log-likelihood by the forward algorithm in log space (PyTensor).

    ``log_init`` (region, S), ``log_trans`` (region, step, S, S), ``emission`` (region, period, S).
    """
    alpha = log_init + emission[:, 0]
    for t in range(1, n_period):
        alpha = pt.logsumexp(alpha[:, :, None] + log_trans[:, t - 1], axis=1) + emission[:, t]
    return pt.logsumexp(alpha, axis=1)


def transition_variables(design: Design, spec: Spec):
    """The transition matrices (country, type, type_) and initial probabilities (country, type), declared."""
    n_country = len(design.coords["country"])
    stay, move = spec.model.persistence
    prior = np.full((len(TYPES), len(TYPES)), move)
    np.fill_diagonal(prior, stay)
    shared = declare(pm.Dirichlet(SHARED, a=prior, dims=("type", "type_")), "dynamics")
    if n_country > 1:
        pm.Model.get_context().add_coord("type_contrast", np.arange(len(TYPES) - 1))
        sd = declare(pm.HalfNormal(POOLING_SD, spec.model.pooling), "scale")
        z = declare(pm.Normal("transition_z", 0.0, 1.0, dims=("country", "type", "type_contrast")), "latent")
        contrasts = ZeroSum.of(np.zeros(len(TYPES), dtype=int)).matrix()              # (type_, type_contrast)
        logits = pt.log(shared)[None] + sd * pt.dot(z, contrasts.T)
        transition = declare(pm.Deterministic(TRANSITION, pt.special.softmax(logits, axis=-1),
                                              dims=("country", "type", "type_")), "dynamics", ranked=True)
    else:   # one country: its matrix is the shared one (a second level would be set by the prior alone)
        transition = declare(pm.Deterministic(TRANSITION, shared[None], dims=("country", "type", "type_")), "dynamics",
                             ranked=False)
    initial = declare(pm.Dirichlet(INITIAL, a=np.ones((n_country, len(TYPES))), dims=("country", "type")), "dynamics")
    return transition, initial


def region_deviations(design: Design, spec: Spec):
    """The within-state deviation of each region, (region, trait), declared; None without ``region_deviation``.

    ``region_deviation_sd * Q z`` with ``z`` standard normal per contrast and trait and ``Q`` the orthonormal map
    to vectors summing to zero over the regions: a shift of every region alike is the intercepts', so none is left
    to the prior (non-centred partial pooling; ``region_deviation_sd`` half-normal, scale ``[model]``'s).
    """
    n_region = len(design.coords["region"])
    if not spec.model.region_deviation or n_region < 2:
        return None
    pm.Model.get_context().add_coord("deviation_contrast", np.arange(n_region - 1))
    sd = declare(pm.HalfNormal(DEVIATION_SD, spec.model.region_deviation_sd, dims="trait"), "scale")
    z = declare(pm.Normal("region_deviation_z", 0.0, 1.0, dims=("deviation_contrast", "trait")), "latent",
                reflect="trait")
    contrasts = ZeroSum.of(np.zeros(n_region, dtype=int)).matrix()                   # (region, contrast)
    return declare(pm.Deterministic(DEVIATION, sd * pt.dot(contrasts, z), dims=("region", "trait")), "latent",
                   reflect="trait", ranked=False)


def regime_graph(design: Design, panel: Panel, spec: Spec) -> pm.Model:
    """The PyMC graph of the regime model, every variable declared with its role (see the module docstring)."""
    n_region, n_period, n_state = len(panel.regions), len(panel.periods), len(TYPES)
    _, multiples = step_multiples(design.period_time)
    with pm.Model(coords={**design.coords, "type": list(TYPES), "type_": list(TYPES)}) as model:
        loading, intercept = _measurement_parameters(design, spec)
        offset = _country_offsets(design, spec)
        location = pm.Data("indicator_location", design.centres[:, 0], dims="indicator")
        spread = pm.Data("indicator_scale", design.centres[:, 1], dims="indicator")
        centre = pt.where(design.normal, 0.0, location)
        deviation = region_deviations(design, spec)
        # (indicator, state): every indicator's linear predictor in every state, before country offsets
        by_state = (centre + intercept)[:, None] + pt.dot(loading, levels(spec.traits).T)
        logps, cells = [], []
        for block in design.blocks:
            family = FAMILIES[spec.indicator(block.names[0]).family]
            idx = block_index(design, panel, block)
            eta = by_state[idx.indicator]
            if offset is not None:
                eta = eta + offset[idx.indicator, idx.country][:, None]
            if deviation is not None:   # the same in every state: level[s] + deviation[region]
                eta = eta + (loading[idx.indicator] * deviation[idx.region]).sum(axis=-1)[:, None]
            params = family.nuisance(block, spec.priors)
            observed = pm.Data(f"data_{block.key}", family.observed_values(block), dims=block.dim)
            inputs = {name: pm.Data(f"{name}_{block.key}", values, dims=block.dim)
                      for name, values in family.inputs(block).items()}
            logps.append(state_logp(family, block, eta, (location[idx.indicator], spread[idx.indicator]), params,
                                    observed, inputs))
            cells.append(idx.region * n_period + idx.period)
        emission = pt.inc_subtensor(pt.zeros((n_region * n_period, n_state))[np.concatenate(cells)],
                                    pt.concatenate(logps, axis=0))
        transition, initial = transition_variables(design, spec)
        effects = transition_effects(spec, panel)
        rc = design.region_country
        if n_period > 1 and effects is not None:     # covariates on the transitions: a matrix per region-step
            log_trans = log_transitions_pt(transition, rc, multiples, *effects)
        elif n_period > 1:
            log_trans = pt.log(matrix_powers(transition, multiples))[rc]          # (region, step, S, S)
        else:
            log_trans = pt.zeros((n_region, 0, n_state, n_state))
        loglik = forward_loglik(pt.log(initial)[rc], log_trans, emission.reshape((n_region, n_period, n_state)),
                                n_period)
        pm.Potential("regime_loglik", loglik.sum())
    return model
