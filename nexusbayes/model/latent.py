"""The latent process: country paths and region deviations over periods (random walk or AR(1))."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.data.panel import Panel
from nexusbayes.model.design import Design, observed_cells
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec


def _centred_spans(design: Design, spec: Spec, panel: Panel):
    """One centred Gaussian random walk per region over its span of periods with data (one trait).

    The states of all spans form one vector ``region_state`` (dim ``region_cell``): a span's first
    state is Normal(0, 1) (the scale reference) and each later one Normal(previous,
    ``region_innovation_sd * sqrt(gap)``). Outside its span a region keeps the span's end values.
    Returns (theta_raw[region, period, trait], country_raw[country, period, trait]).
    """
    n_region, n_period = len(panel.regions), len(panel.periods)
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

    innov_sd = declare(pm.HalfNormal("region_innovation_sd", spec.priors.innovation_region_sd, dims="trait"),
                       "scale", prior="innovation_region_sd")
    scale = pt.where(is_start, 1.0, innov_sd[0] * np.sqrt(gap))                # (region_cell,)
    previous = np.where(is_start, 0, np.arange(len(span_region)) - 1)

    def walk_draw(scale):
        increments = pm.Normal.dist(0.0, scale)
        total = pt.cumsum(increments)
        return total - total[start_of] + increments[start_of]                  # cumulative sums restarting per span

    def walk_logp(states, scale):
        steps = states - pt.where(is_start, 0.0, states[previous])
        return pm.logp(pm.Normal.dist(0.0, scale), steps).sum()

    # The span cells with data: theta is standardised over them (``_graph``), so the states' common location
    # and scale over these cells never reach the likelihood (see ``_split_states``).
    seen = np.isin(span_region * n_period + span_period, cells)
    split = _SplitStates(seen)

    # With an orientation the walk starts from it (higher regions at +1, lower at -1, others at 0) rather than
    # a prior draw: dynamic item-response models have local modes in which the sign flips between eras.
    initval = None
    if spec.orientation:
        how = spec.orientation[spec.traits[0]]
        score = period_scores(panel)                                              # (region, period)
        sign = np.array([(r in how.higher) - (r in how.lower) for r in panel.regions], dtype=float)
        # the scores' sign is chained over periods, so one global flip orients them all
        if np.sum(np.nan_to_num(score) * sign[:, None]) < 0:
            score = -score
        start = score[span_region, span_period]
        start = np.where(np.isnan(start), sign[span_region], start)
        # small fixed jitter: exact zeros give zero gradients, which nutpie rejects as a starting point
        initval = split.initial(start + 0.1 * np.random.default_rng(0).standard_normal(len(span_region)))
    trait = spec.traits[0]
    pm.Model.get_context().add_coord(
        "region_free_label", [f"{label}:{trait}" for label in labels] + [f"location:{trait}", "log_scale"])
    free = declare(pm.CustomDist("region_state_free", scale, dist=lambda scale, size: split.draw(walk_draw(scale)),
                                 logp=lambda value, scale: split.logp(value, walk_logp, scale),
                                 support_point=lambda rv, size, scale: split.support_point(),
                                 signature="(n)->(m)", dims="region_free_label", initval=initval),
                   "latent", reflect="labels")
    state = declare(pm.Deterministic("region_state", split.states(free), dims="region_cell"), "latent",
                    reflect="whole")
    # each grid cell reads its region's state at the nearest period of the span
    grid_period = np.clip(np.arange(n_period)[None, :], first[:, None], last[:, None])      # (region, period)
    position = starts[:, None] + grid_period - first[:, None]
    theta_raw = state[position.ravel()].reshape((n_region, n_period, 1))
    n_country = len(design.coords["country"])
    average = np.zeros((n_country, n_region))
    average[design.region_country, np.arange(n_region)] = 1.0
    average /= average.sum(axis=1, keepdims=True)
    country_raw = pt.tensordot(average, theta_raw, axes=[[1], [0]])
    return theta_raw, country_raw


@dataclass(frozen=True)
class _SplitStates:
    """The centred walk's states ``x`` sampled as a shape ``u``, a location ``m`` and a log scale ``log_s``.

    theta is ``x`` standardised over the cells with data, so the likelihood sees ``u`` alone, and with ``x``
    sampled directly its common location and scale over those cells (one direction moving every state at once,
    set by the walk's prior alone) mixed very slowly (Martin-Quinn, ``benchmarks/HISTORY.md``). Here the free
    vector is ``[z, m, log_s]``: ``u`` is ``z`` standardised over ``seen`` and ``x = m + exp(log_s) * u``. The
    density is the walk's density of ``x`` with the Jacobians of both maps (``x`` -> ``(m, s, u)`` and ``z`` ->
    ``(a, b, u)`` scale the ``n - 2`` directions of ``u`` by ``s`` and ``b``), and ``z``'s own location ``a``
    and scale ``b``, which nothing else reads, get N(0, aux_sd) and LogNormal(0, aux_sd):

        log p = walk(x) + (n - 1) log s - (n - 1) log b + log N(a; 0, aux_sd) + log N(log b; 0, aux_sd),

    so the posterior of ``x`` (and of theta) is the centred walk's, unchanged, and the two slow directions are
    two scalars (``m``, ``log_s``) and two auxiliaries with a fixed distribution.
    """

    seen: np.ndarray   # (n,) bool: the states at region-periods with data

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
        """(mean, sd, standardised values) over the seen states, a PyTensor tensor."""
        sub = values[np.flatnonzero(self.seen)]
        mean = sub.mean()
        sd = pt.sqrt(pt.sqr(sub - mean).mean())
        return mean, sd, (values - mean) / sd

    def _parts(self, free):
        n = len(self.seen)
        return free[:n], free[n], free[n + 1]

    def states(self, free):
        """The walk's states ``x = m + exp(log_s) * u`` from the free vector."""
        z, m, log_s = self._parts(free)
        return m + pt.exp(log_s) * self._standardise(z)[2]

    def logp(self, free, walk_logp, scale):
        """The free vector's log density (see the class docstring)."""
        n = len(self.seen)
        z, m, log_s = self._parts(free)
        a, b, u = self._standardise(z)
        log_b = pt.log(b)
        aux = pm.Normal.dist(0.0, self.aux_sd)
        return (walk_logp(m + pt.exp(log_s) * u, scale) + (n - 1) * (log_s - log_b)
                + pm.logp(aux, a) + pm.logp(aux, log_b))

    def draw(self, states):
        """A forward draw of the free vector from a forward draw of the walk's states (PyTensor)."""
        m, s, u = self._standardise(states)
        z = pm.Normal.dist(0.0, self.aux_sd) + pt.exp(pm.Normal.dist(0.0, self.aux_sd)) * u
        return pt.concatenate([z, pt.stack([m, pt.log(s)])])

    def support_point(self):
        """A finite point of the free vector (``z`` a standardised ramp, ``m = 0``, ``s = 1``) for PyMC."""
        return pt.as_tensor(self.initial(np.linspace(-1.0, 1.0, len(self.seen))))

    def initial(self, states: np.ndarray) -> np.ndarray:
        """The free vector (with ``a = 0``, ``b = 1``) of given states, NumPy: a starting point."""
        m, s = states[self.seen].mean(), states[self.seen].std()
        return np.concatenate([(states - m) / s, [m, np.log(s)]])


#: Periods with fewer indicators that vary among their regions than this get no score in :func:`period_scores`
#: (their units start from the orientation's +1 / -1 / 0, as before): with a handful of binary items the first
#: component's sign is a coin toss, and a wrongly chained period would start the chains in a flipped mode.
PERIOD_SCORE_MIN_ITEMS = 20


def period_scores(panel: Panel) -> np.ndarray:
    """A rough one-trait score per region-period with data (NaN elsewhere): starting values for centred spans.

    Per period, the first principal component of the (region x indicator) responses, each indicator
    standardised over the regions it observes (missing responses at 0), scaled to SD 1 over the regions; its
    sign is chained over periods by the regions two neighbouring periods share (the sign of their scores'
    inner product), so every period points the same way and one global sign remains. Without it, a dynamic
    item-response model starts every unit near 0 and a chain can settle in a local mode whose sign is flipped
    in an era that no orienting region reaches (seen on Martin-Quinn; see ``benchmarks/HISTORY.md``).
    Periods with fewer than :data:`PERIOD_SCORE_MIN_ITEMS` varying indicators are left out (NaN).
    """
    frame = panel.frame
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
    if n_trait > 1:
        chol = declare(pm.LKJCorr("trait_chol", n=n_trait, eta=pri.lkj_eta, dims=("trait", "trait_")),
                       "correlation", reflect="trait", ranked=False)   # ranked through the correlation
        declare(pm.Deterministic("trait_corr", chol @ chol.T, dims=("trait", "trait_")), "correlation",
                reflect="trait", ranked=True)
    else:
        chol = pt.ones((1, 1))

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
