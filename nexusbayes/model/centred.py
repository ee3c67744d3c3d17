"""Centred random walks over each region's span of periods with data (``[dynamics] centred = true``).

Each region has its own Gaussian random walk over its span (first to last period with data), with no
country/region split. With several traits the walk is multivariate: a span's first state is
MvNormal(0, R) (unit variances: the scale reference, as the non-centred model's region starts) and each
later step MvNormal(0, gap * D R D), ``D = diag(region_innovation_sd)``, ``R`` the LKJ trait correlation
(``trait_chol``, as the non-centred model's innovations are correlated). The identification is the
non-centred model's: ``theta`` is the states standardised per trait over the region-periods with data
(location and scale), anchors fix each trait's sign and load on their trait alone (rotation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.data.panel import Panel
from nexusbayes.model.design import Design, observed_cells
from nexusbayes.model.latent import trait_correlation
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec


def _centred_spans(design: Design, spec: Spec, panel: Panel):
    """One centred Gaussian random walk per region over its span of periods with data (any number of traits).

    The states of all spans form one matrix ``region_state`` (dims ``region_cell``, ``trait``); see the module
    docstring for their distribution. Outside its span a region keeps the span's end values.
    Returns (theta_raw[region, period, trait], country_raw[country, period, trait]).
    """
    n_region, n_period, n_trait = len(panel.regions), len(panel.periods), len(spec.traits)
    cells = observed_cells(panel)
    region_of, period_of = cells // n_period, cells % n_period
    first = np.full(n_region, n_period)
    last = np.full(n_region, -1)
    np.minimum.at(first, region_of, period_of)
    np.maximum.at(last, region_of, period_of)
    span_region = np.concatenate([np.full(last[r] - first[r] + 1, r) for r in range(n_region)])
    span_period = np.concatenate([np.arange(first[r], last[r] + 1) for r in range(n_region)])
    starts = np.concatenate([[0], np.cumsum(last - first + 1)[:-1]])          # position of each span's start
    is_start = np.zeros(len(span_region), dtype=bool)
    is_start[starts] = True
    start_of = starts[span_region]                                             # the span start of each state
    gap = np.ones(len(span_region))
    later = ~is_start
    gap[later] = design.period_time[span_period[later]] - design.period_time[span_period[later] - 1]
    labels = [f"{panel.regions[r]}:{panel.periods[t]}" for r, t in zip(span_region, span_period, strict=True)]
    pm.Model.get_context().add_coord("region_cell", labels)

    chol = trait_correlation(spec)
    innov_sd = declare(pm.HalfNormal("region_innovation_sd", spec.priors.innovation_region_sd, dims="trait"),
                       "scale", prior="innovation_region_sd")
    scale = pt.where(is_start[:, None], 1.0, innov_sd[None, :] * np.sqrt(gap)[:, None])   # (region_cell, trait)
    previous = np.where(is_start, 0, np.arange(len(span_region)) - 1)

    def walk_draw(scale, chol):
        white = pm.Normal.dist(0.0, 1.0, size=scale.shape)
        increments = (white[:, None, :] * chol).sum(axis=-1) * scale          # each row L w, times its scale
        total = pt.cumsum(increments, axis=0)
        return total - total[start_of] + increments[start_of]                  # cumulative sums restarting per span

    def walk_logp(states, scale, chol):
        steps = (states - pt.where(is_start[:, None], 0.0, states[previous])) / scale
        white = _whiten(steps, chol, n_trait)                                  # L^-1 of each row
        log_diag = pt.log(pt.stack([chol[k, k] for k in range(n_trait)]))
        return (pm.logp(pm.Normal.dist(0.0, 1.0), white).sum() - pt.log(scale).sum()
                - steps.shape[0] * log_diag.sum())

    # The span cells with data: theta is standardised over them (``_graph``), so each trait's common location
    # and scale over these cells never reach the likelihood (see ``_SplitStates``).
    seen = np.isin(span_region * n_period + span_period, cells)
    split = _SplitStates(seen, n_trait)
    initval = _oriented_start(spec, panel, split, span_region, span_period)
    pm.Model.get_context().add_coord(
        "region_free_label", [f"{label}:{trait}" for label in labels for trait in spec.traits]
        + [f"location:{trait}" for trait in spec.traits] + [f"log_scale({trait})" for trait in spec.traits])
    free = declare(pm.CustomDist("region_state_free", scale, chol,
                                 dist=lambda scale, chol, size: split.draw(walk_draw(scale, chol)),
                                 logp=lambda value, scale, chol: split.logp(value, walk_logp, scale, chol),
                                 support_point=lambda rv, size, scale, chol: split.support_point(),
                                 signature="(n,k),(k,k)->(m)", dims="region_free_label", initval=initval),
                   "latent", reflect="labels")
    state = declare(pm.Deterministic("region_state", split.states(free), dims=("region_cell", "trait")), "latent",
                    reflect="trait")
    # each grid cell reads its region's state at the nearest period of the span
    grid_period = np.clip(np.arange(n_period)[None, :], first[:, None], last[:, None])      # (region, period)
    position = starts[:, None] + grid_period - first[:, None]
    theta_raw = state[position.ravel()].reshape((n_region, n_period, n_trait))
    n_country = len(design.coords["country"])
    average = np.zeros((n_country, n_region))
    average[design.region_country, np.arange(n_region)] = 1.0
    average /= average.sum(axis=1, keepdims=True)
    country_raw = pt.tensordot(average, theta_raw, axes=[[1], [0]])
    return theta_raw, country_raw


def _whiten(steps, chol, n_trait: int):
    """``L^-1 y`` for each row ``y`` of ``steps`` (n, trait), by forward substitution over the few traits."""
    white = []
    for k in range(n_trait):
        rest = steps[:, k]
        for j in range(k):
            rest = rest - chol[k, j] * white[j]
        white.append(rest / chol[k, k])
    return pt.stack(white, axis=1)


def _oriented_start(spec: Spec, panel: Panel, split: _SplitStates, span_region, span_period):
    """The free vector's start when some trait has an ``[orientation]``, else ``None`` (prior draws).

    An oriented trait's walk starts from its period scores (higher regions at +1, lower at -1, others at 0 where
    a period has none) rather than a prior draw: dynamic item-response models have local modes in which the sign
    flips between eras. Traits without one start from a ramp. A small fixed jitter: exact zeros give zero
    gradients, which nutpie rejects as a starting point.
    """
    if not spec.orientation:
        return None
    start = np.tile(np.linspace(-1.0, 1.0, len(span_region))[:, None], (1, len(spec.traits)))
    for k, trait in enumerate(spec.traits):
        how = spec.orientation.get(trait)
        if how is None:
            continue
        on_trait = [name for name, ind in spec.indicators.items() if trait in ind.loads]
        score = period_scores(panel, on_trait if len(spec.traits) > 1 else None)   # (region, period)
        sign = np.array([(r in how.higher) - (r in how.lower) for r in panel.regions], dtype=float)
        # the scores' sign is chained over periods, so one global flip orients them all
        if np.sum(np.nan_to_num(score) * sign[:, None]) < 0:
            score = -score
        column = score[span_region, span_period]
        start[:, k] = np.where(np.isnan(column), sign[span_region], column)
    jitter = 0.1 * np.random.default_rng(0).standard_normal(start.shape)
    return split.initial(start + jitter)


@dataclass(frozen=True)
class _SplitStates:
    """The centred walk's states ``x`` sampled per trait as a shape ``u``, a location ``m`` and a log scale ``log_s``.

    theta is ``x`` standardised per trait over the cells with data, so the likelihood sees ``u`` alone, and with
    ``x`` sampled directly each trait's common location and scale over those cells (one direction moving every
    state at once, set by the walk's prior alone) mixed very slowly (Martin-Quinn, ``benchmarks/HISTORY.md``).
    Here the free vector is ``[z, m, log_s]`` (``z`` the (state, trait) matrix flattened by rows, then ``m`` and
    ``log_s`` per trait): ``u`` is ``z`` standardised per trait over ``seen`` and ``x = m + exp(log_s) * u``. The
    density is the walk's density of ``x`` with the Jacobians of both maps (per trait, ``x`` -> ``(m, s, u)`` and
    ``z`` -> ``(a, b, u)`` scale the ``n - 2`` directions of ``u`` by ``s`` and ``b``), and ``z``'s own location
    ``a`` and scale ``b`` per trait, which nothing else reads, get N(0, aux_sd) and LogNormal(0, aux_sd):

        log p = walk(x) + sum_k [(n - 1) (log s_k - log b_k) + log N(a_k; 0, aux_sd) + log N(log b_k; 0, aux_sd)],

    so the posterior of ``x`` (and of theta) is the centred walk's, unchanged, and the two slow directions of each
    trait are two scalars (``m_k``, ``log_s_k``) and two auxiliaries with a fixed distribution.
    """

    seen: np.ndarray   # (n,) bool: the states at region-periods with data
    n_trait: int = 1

    #: How far ``z`` moves along each of its two redundant directions (shift, and scaling about its mean), in
    #: SDs: the auxiliaries get SD ``AUX_SPREAD / sqrt(n_seen)``, since each moves all ``n_seen`` elements of
    #: ``z`` together. A wider spread makes that direction a long diagonal ridge across ``z`` (a diagonal mass
    #: matrix then needs many steps along it: R-hat 1.2 on Martin-Quinn with a spread of ``0.1 * sqrt(n_seen)``);
    #: at 0.1 it is no longer than a well-measured state's posterior SD.
    AUX_SPREAD = 0.1

    @property
    def aux_sd(self) -> float:
        """The SD of ``a`` and ``log b``."""
        return self.AUX_SPREAD / np.sqrt(self.seen.sum())

    def _standardise(self, values):
        """(mean, sd, standardised values) per trait (column) over the seen states, PyTensor tensors."""
        sub = values[np.flatnonzero(self.seen)]
        mean = sub.mean(axis=0)
        sd = pt.sqrt(pt.sqr(sub - mean).mean(axis=0))
        return mean, sd, (values - mean) / sd

    def _parts(self, free):
        n, k = len(self.seen), self.n_trait
        return free[:n * k].reshape((n, k)), free[n * k:n * k + k], free[n * k + k:]

    def states(self, free):
        """The walk's states ``x = m + exp(log_s) * u`` (state, trait) from the free vector."""
        z, m, log_s = self._parts(free)
        return m + pt.exp(log_s) * self._standardise(z)[2]

    def logp(self, free, walk_logp, *params):
        """The free vector's log density (see the class docstring)."""
        n = len(self.seen)
        z, m, log_s = self._parts(free)
        a, b, u = self._standardise(z)
        log_b = pt.log(b)
        aux = pm.Normal.dist(0.0, self.aux_sd)
        return (walk_logp(m + pt.exp(log_s) * u, *params) + (n - 1) * (log_s - log_b).sum()
                + pm.logp(aux, a).sum() + pm.logp(aux, log_b).sum())

    def draw(self, states):
        """A forward draw of the free vector from a forward draw of the walk's states (PyTensor)."""
        m, s, u = self._standardise(states)
        shape = (self.n_trait,)
        z = pm.Normal.dist(0.0, self.aux_sd, size=shape) + pt.exp(pm.Normal.dist(0.0, self.aux_sd, size=shape)) * u
        return pt.concatenate([z.ravel(), m, pt.log(s)])

    def support_point(self):
        """A finite point of the free vector (``z`` a standardised ramp, ``m = 0``, ``s = 1``) for PyMC."""
        ramp = np.linspace(-1.0, 1.0, len(self.seen))[:, None]
        return pt.as_tensor(self.initial(np.tile(ramp, (1, self.n_trait))))

    def initial(self, states: np.ndarray) -> np.ndarray:
        """The free vector (with ``a = 0``, ``b = 1``) of given states (state, trait), NumPy: a starting point."""
        m, s = states[self.seen].mean(axis=0), states[self.seen].std(axis=0)
        return np.concatenate([((states - m) / s).ravel(), m, np.log(s)])


#: Periods with fewer indicators that vary among their regions than this get no score in :func:`period_scores`
#: (their units start from the orientation's +1 / -1 / 0, as before): with a handful of binary items the first
#: component's sign is a coin toss, and a wrongly chained period would start the chains in a flipped mode.
PERIOD_SCORE_MIN_ITEMS = 20


def period_scores(panel: Panel, indicators: list[str] | None = None) -> np.ndarray:
    """A rough one-trait score per region-period with data (NaN elsewhere): starting values for centred spans.

    Per period, the first principal component of the (region x indicator) responses, each indicator
    standardised over the regions it observes (missing responses at 0), scaled to SD 1 over the regions; its
    sign is chained over periods by the regions two neighbouring periods share (the sign of their scores'
    inner product), so every period points the same way and one global sign remains. Without it, a dynamic
    item-response model starts every unit near 0 and a chain can settle in a local mode whose sign is flipped
    in an era that no orienting region reaches (seen on Martin-Quinn; see ``benchmarks/HISTORY.md``).
    Periods with fewer than :data:`PERIOD_SCORE_MIN_ITEMS` varying indicators are left out (NaN).
    ``indicators``: the names of the indicators to use (those loading on one trait); all when ``None``.
    """
    frame = panel.frame
    if indicators is not None:
        frame = frame[frame["indicator"].isin(indicators)]
    n_region, n_period = len(panel.regions), len(panel.periods)
    period, region = frame["period_idx"].to_numpy(), frame["region_idx"].to_numpy()
    indicator, value = frame["indicator_idx"].to_numpy(), frame["value"].to_numpy(dtype=float)
    score = np.full((n_region, n_period), np.nan)
    previous = None
    for t in range(n_period):
        at = np.flatnonzero(period == t)
        rows, r_pos = np.unique(region[at], return_inverse=True)
        cols, c_pos = np.unique(indicator[at], return_inverse=True)
        if len(rows) < 2:
            continue
        total, count = np.zeros((len(rows), len(cols))), np.zeros((len(rows), len(cols)))
        np.add.at(total, (r_pos, c_pos), value[at])
        np.add.at(count, (r_pos, c_pos), 1.0)
        with np.errstate(invalid="ignore"):
            values = total / count                                                  # NaN where not observed
        spread = np.nanstd(values, axis=0)
        keep = spread > 0
        if keep.sum() < PERIOD_SCORE_MIN_ITEMS:   # too few to say which way a period points: start as before
            continue
        z = (values[:, keep] - np.nanmean(values[:, keep], axis=0)) / spread[keep]
        u, d, _ = np.linalg.svd(np.nan_to_num(z), full_matrices=False)
        first = u[:, 0] * d[0]
        first = (first - first.mean()) / (first.std() or 1.0)
        if previous is not None:
            shared = ~np.isnan(previous[rows])
            if shared.any() and np.dot(previous[rows][shared], first[shared]) < 0:
                first = -first
        score[rows, t] = first
        current = np.full(n_region, np.nan)
        current[rows] = first
        previous = current if previous is None else np.where(np.isnan(current), previous, current)
    return score
