"""build_model(panel, spec) -> pm.Model: the hierarchical dynamic latent-trait model (no sampling here).

The latent process
------------------
For trait k, region r in country c and period t (times tau_t in years, gaps d_t = tau_t - tau_{t-1})::

    theta_raw[r, t, k] = country_path[c, t, k] + region_path[r, t, k]
    path[., 0]  = initial_sd_k * (L z_0)_k
    path[., t]  = a_t * path[., t-1] + step_sd_{k,t} * (L z_t)_k

``L`` is the Cholesky factor of an LKJ-distributed trait correlation, ``z`` are standard normal
(Student-t for ``student_t_rw``) non-centred innovations. For a random walk ``a_t = 1`` and
``step_sd = innovation_sd * sqrt(d_t)``, so unequal periods get proportionally larger steps;
for AR(1) ``a_t = phi^d_t`` and ``step_sd = initial_sd * sqrt(1 - phi^(2 d_t))`` (stationary).
Region innovations are centred within each country (sum-to-zero region deviations, through the
orthonormal map :class:`ZeroSum`, whose cost is linear in the number of regions), so the country path
*is* the country's average and the split between levels is identified.

Under a random walk the countries' starts are sum-to-zero over countries (a single country starts at
0): a common shift of every start moves every ``theta_raw`` alike, which the standardisation below
removes, so that direction would be set by the prior alone. They are centred
(``country_start``, multivariate normal over traits with SD ``country_initial_sd``), because every
region of a country informs its start and the non-centred form is then a funnel. The medium
benchmark panel's worst-mixing variables were ``country_z0`` and ``country_initial_sd`` before
(bulk ESS 620-690 of 4,000 draws) and are no longer among the slowest after. With two or three
countries (one or two contrasts) ``country_initial_sd`` has a gamma prior that is 0 at 0 instead of
the half-normal (see :data:`FEW_CONTRASTS`).

Identification
--------------
* **Location and scale**: ``theta`` is ``theta_raw`` standardised per trait over the region-periods
  with data (mean 0, SD 1; all region-periods when none is empty). Region-periods without data
  (e.g. years before a unit exists, terms a justice did not serve) still get traits from the
  dynamics, but these extrapolations, whose spread grows with the distance to the data, do not set
  the scale. The likelihood depends on ``theta`` only, so its location and scale are
  fixed by construction; 0 is the average region-period with data. Since only ratios of the process scales
  reach ``theta``, the initial SD of region deviations is fixed at 1 (the country one when every
  country has a single region; the step SD when there is a single unit) and the others are relative
  to it, which leaves no scale direction that only the prior pins down.
* **Sign**: every trait has an anchor indicator (checked by the spec) whose loading has a fixed sign,
  or, when all its loadings are free, an orientation by regions, applied after sampling (the model
  is then symmetric under reflecting the trait; see :func:`nexusbayes.fit.orient`).
* **Rotation**: anchors load on their trait alone, i.e. have zero loadings on the other traits.
* **Between countries**: an indicator marked ``comparable = false`` gets a location per country
  (sum-to-zero offsets), so only comparable indicators tell the countries apart; every trait needs one.

The measurement model
---------------------
``eta_i = centre_j + intercept_j [+ offset_{j, c_i}] + sum_k loading[j, k] theta[r_i, t_i, k]``
(the country offset only for indicators not comparable across countries) with one vectorised
likelihood term per family (per number of categories for ordinal) over all its observations,
gathered by integer indexing, so a gradient costs time linear in the number of observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.data import Panel
from nexusbayes.errors import SpecError
from nexusbayes.families import FAMILIES, Block
from nexusbayes.spec import Spec


@dataclass(frozen=True)
class Design:
    """Everything the model needs from the panel, as arrays: blocks per likelihood term and constants."""

    blocks: list[Block]
    families: list[str]                        # family of each indicator, in panel order
    centres: np.ndarray                        # (indicator, 2): location and scale, in panel order
    loading_sign: np.ndarray                   # (indicator, trait): 0 none, 1 positive, -1 negative, 2 free
    region_country: np.ndarray
    period_time: np.ndarray
    coords: dict

    @property
    def normal(self) -> np.ndarray:
        """Whether each indicator (panel order) is normal: centred on the data scale, not in ``eta``."""
        return np.array([family == "normal" for family in self.families])


SIGN_CODE = {"positive": 1, "negative": -1, "free": 2}


def term_key(spec: Spec, indicator: str) -> str:
    """Name of the likelihood term holding ``indicator``.

    Its family, or ``ordinal_k<K>`` when ordinal indicators with different numbers of categories
    need separate terms.
    """
    ind = spec.indicator(indicator)
    every = [*spec.indicators.values(), *([spec.item_bank] if spec.item_bank is not None else [])]
    ordinal_k = {i.categories for i in every if i.family == "ordinal"}
    if ind.family == "ordinal" and len(ordinal_k) > 1:
        return f"ordinal_k{ind.categories}"
    return ind.family


def make_design(panel: Panel, spec: Spec) -> Design:
    """Split the panel into likelihood blocks and compute the fixed constants.

    Raises
    ------
    SpecError
        When the data hold several countries and a trait has no comparable indicator, so that the
        differences between countries in that trait would be set by the prior alone.
    """
    frame = panel.frame
    if len(panel.countries) > 1:
        for trait in spec.traits:
            if not any(spec.indicator(n).comparable and trait in spec.indicator(n).loads
                       for n in panel.indicators):
                raise SpecError(
                    f"spec {spec.name!r}: the data hold {len(panel.countries)} countries but no indicator loading "
                    f"on {trait!r} is comparable across them, so how the countries differ in {trait!r} would be "
                    "set by the prior alone; mark at least one such indicator `comparable = true` (the default)")
    fam_of = {n: spec.indicator(n).family for n in panel.indicators}
    key_of = {n: term_key(spec, n) for n in panel.indicators}
    centres = np.tile([0.0, 1.0], (len(panel.indicators), 1))
    for j, sub in frame.groupby("indicator_idx", sort=True):   # one pass, however many indicators
        name = panel.indicators[j]
        exposure = sub["exposure"].to_numpy(float) if "exposure" in sub else np.full(len(sub), np.nan)
        exposure = np.where(np.isfinite(exposure), exposure, 1.0)
        trials = sub["trials"].to_numpy(float) if "trials" in sub else np.full(len(sub), np.nan)
        centres[j] = FAMILIES[fam_of[name]].centre(sub["value"].to_numpy(float), exposure, trials)

    keys: dict[str, list[str]] = {}
    for name in panel.indicators:
        keys.setdefault(key_of[name], []).append(name)

    blocks = []
    coords = {
        "country": panel.countries, "region": panel.regions, "period": panel.periods,
        "trait": spec.traits, "trait_": spec.traits, "indicator": panel.indicators,
    }
    if len(panel.periods) > 1:
        coords["step"] = panel.periods[1:]
    n_contrast = len(panel.regions) - len(panel.countries)
    if n_contrast > 0:
        coords["region_contrast"] = np.arange(n_contrast)
    if len(panel.countries) > 1:
        coords["country_contrast"] = np.arange(len(panel.countries) - 1)   # sum-to-zero contrasts of countries
    if panel.raters:
        coords["rater"] = panel.raters
    for key, names in keys.items():
        mask = frame["indicator"].isin(names).to_numpy()
        sub = frame[mask]
        exposure = sub["exposure"].to_numpy(float) if "exposure" in sub else np.full(len(sub), np.nan)
        trials = sub["trials"].to_numpy(float) if "trials" in sub else np.full(len(sub), np.nan)
        block = Block(
            key=key, names=names, rows=np.flatnonzero(mask), labels=sub["row"].to_numpy(),
            local=sub["indicator"].map({n: i for i, n in enumerate(names)}).to_numpy(int),
            y=sub["value"].to_numpy(float), exposure=np.where(np.isfinite(exposure), exposure, 1.0),
            trials=trials, rater=sub["rater_idx"].to_numpy(int),
            categories=spec.indicator(names[0]).categories,
        )
        blocks.append(block)
        coords[block.dim] = block.labels
        coords[f"indicator_{key}"] = names
        if block.categories is not None:
            coords[f"cut_{key}"] = np.arange(1, block.categories)

    sign = np.zeros((len(panel.indicators), len(spec.traits)), dtype=int)
    for j, name in enumerate(panel.indicators):
        for trait, s in spec.indicator(name).loads.items():
            sign[j, spec.traits.index(trait)] = SIGN_CODE[s]
    return Design(blocks=blocks, families=[fam_of[n] for n in panel.indicators], centres=centres,
                  loading_sign=sign, region_country=panel.region_country,
                  period_time=np.asarray(panel.period_time, dtype=float), coords=coords)


@dataclass(frozen=True)
class BlockIndex:
    """Integer indices and constants of one likelihood block, aligned with its observations."""

    region: np.ndarray
    period: np.ndarray
    country: np.ndarray
    indicator: np.ndarray
    centre: np.ndarray                     # added to eta (0 for normal: handled on the data scale)
    scale: tuple[np.ndarray, np.ndarray]   # (location, scale) of the indicator, for normal


def block_index(design: Design, panel: Panel, block: Block) -> BlockIndex:
    """Indices into theta/loading/intercept for a block's observations (shared by model and predictions)."""
    frame = panel.frame
    rows = block.rows
    j = frame["indicator_idx"].to_numpy()[rows]
    loc, scale = design.centres[j, 0], design.centres[j, 1]
    centre = np.where(design.normal[j], 0.0, loc)
    return BlockIndex(region=frame["region_idx"].to_numpy()[rows], period=frame["period_idx"].to_numpy()[rows],
                      country=frame["country_idx"].to_numpy()[rows], indicator=j, centre=centre,
                      scale=(loc, scale))


def build_model(panel: Panel, spec: Spec) -> pm.Model:
    """Build the PyMC model for ``panel`` under ``spec``; samples nothing.

    Parameters
    ----------
    panel : Panel
        Validated observations (see :func:`nexusbayes.data.load_panel`).
    spec : Spec
        Model specification.

    Returns
    -------
    pymc.Model
        With dims ``country, region, period, trait, indicator`` and one ``obs_<family>`` dim per
        likelihood term. Key variables: ``theta`` (region, period, trait), ``country_theta``
        (country, period, trait), ``loading`` (indicator, trait), ``intercept`` (indicator). Every
        value that comes from the data is a data container (``pm.Data``): the observations
        (``data_<key>``), the centring constants (``indicator_location``, ``indicator_scale``) and
        the families' inputs (``log_exposure_<key>``, ``trials_<key>``), so a compiled model serves
        any dataset of the same shape (nutpie's ``with_data``; see :mod:`nexusbayes.compile_cache`).

    Examples
    --------
    >>> from nexusbayes.simulate import simulate
    >>> sim = simulate(n_regions=3, n_periods=4, seed=1)
    >>> model = build_model(sim.panel, sim.spec)
    >>> sorted(model.named_vars_to_dims["theta"])
    ['period', 'region', 'trait']
    """
    design = make_design(panel, spec)
    with pm.Model(coords=design.coords) as model:
        if spec.dynamics.centred:
            theta_raw, country_raw = _centred_spans(design, spec, panel)
        else:
            theta_raw, country_raw = _latent_process(design, spec)
        # standardised over the region-periods with data (all of them when none is empty)
        seen = theta_raw.reshape((-1, len(spec.traits)))[observed_cells(panel)]
        mean = seen.mean(axis=0)
        sd = pt.sqrt(seen.var(axis=0) + 1e-12)  # the epsilon only matters at an all-zero start
        theta = pm.Deterministic("theta", (theta_raw - mean) / sd, dims=("region", "period", "trait"))
        pm.Deterministic("country_theta", (country_raw - mean) / sd, dims=("country", "period", "trait"))
        loading, intercept = _measurement_parameters(design, spec)
        offset = _country_offsets(design, spec)
        # the centring constants are computed from the data, so they are data containers too
        location = pm.Data("indicator_location", design.centres[:, 0], dims="indicator")
        spread = pm.Data("indicator_scale", design.centres[:, 1], dims="indicator")
        linear_predictor = _linear_predictor(design, panel.n_obs, theta, loading, intercept, location, offset)
        for block in design.blocks:
            family = FAMILIES[spec.indicator(block.names[0]).family]
            idx = block_index(design, panel, block)
            eta = linear_predictor(idx)
            params = family.nuisance(block, spec.priors)
            observed = pm.Data(f"data_{block.key}", family.observed_values(block), dims=block.dim)
            inputs = {name: pm.Data(f"{name}_{block.key}", values, dims=block.dim)
                      for name, values in family.inputs(block).items()}
            family.likelihood(block, eta, (location[idx.indicator], spread[idx.indicator]), params, observed, inputs)
    return model


#: The linear predictors come from a dense (indicator, region-period) table while it has at most this
#: many entries per observation. Sparser designs, such as an item bank of thousands of roll calls each
#: voted on in one term, would make the table hundreds of times larger than the data (Martin-Quinn:
#: 5,164 cases x 45 justices x 77 terms, 17.9 million entries for 44,812 votes), so each observation
#: gathers its own terms instead.
DENSE_TABLE_MAX_RATIO = 4


def uses_dense_table(design: Design, n_obs: int) -> bool:
    """Whether the linear predictors of ``n_obs`` observations come from the dense (indicator, cell) table."""
    n_cell = len(design.coords["region"]) * len(design.period_time)
    return len(design.families) * n_cell <= DENSE_TABLE_MAX_RATIO * n_obs


def _linear_predictor(design: Design, n_obs: int, theta, loading, intercept, location, offset):
    """A function from a block's :class:`BlockIndex` to its observations' linear predictors.

    ``intercept + loading . theta``, plus the centre of each non-normal indicator (normal ones are
    centred on the data scale instead) and the country offset of each non-comparable one.

    Where the grid of (indicator, region, period) is about as large as the data (at most
    :data:`DENSE_TABLE_MAX_RATIO` entries per observation: every panel of indicators observed in most
    cells), it is computed once as a dense table and each observation costs one gather (the gradient
    one scatter-add) instead of one per term: 7-15% of the medium panel's gradient (measured,
    ``benchmarks/README.md``). Otherwise each observation gathers its indicator's parameters and its
    cell's traits.
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
        return eta

    return per_observation


def kernel_containers(design: Design, spec: Spec, key: str, y: np.ndarray) -> dict[str, np.ndarray]:
    """Values of the data containers that likelihood term ``key`` derives from observations ``y``, by name.

    Swap them in with ``data_<key>`` (nutpie's ``with_data``) when refitting a compiled model to new
    observations of the same structure (see :meth:`nexusbayes.families.Family.kernel_tables`).
    """
    block = next(b for b in design.blocks if b.key == key)
    family = FAMILIES[spec.indicator(block.names[0]).family]
    return {f"{name}_{key}": values for name, values in family.kernel_tables(block.local, np.asarray(y)).items()}


def observed_cells(panel: Panel) -> np.ndarray:
    """Flat positions ``region * n_period + period`` of the region-periods with data, sorted.

    Examples
    --------
    >>> from nexusbayes.simulate import simulate
    >>> observed_cells(simulate(n_regions=2, n_periods=3, seed=1).panel).tolist()
    [0, 1, 2, 3, 4, 5]
    """
    frame = panel.frame
    flat = frame["region_idx"].to_numpy() * len(panel.periods) + frame["period_idx"].to_numpy()
    return np.unique(flat)


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

    innov_sd = pm.HalfNormal("region_innovation_sd", spec.priors.innovation_region_sd, dims="trait")
    scale = pt.where(is_start, 1.0, innov_sd[0] * np.sqrt(gap))                # (region_cell,)
    previous = np.where(is_start, 0, np.arange(len(span_region)) - 1)

    def dist(scale, size):
        increments = pm.Normal.dist(0.0, scale)   # no batch dimensions: size is unused
        total = pt.cumsum(increments)
        return total - total[start_of] + increments[start_of]                  # cumulative sums restarting per span

    def logp(value, scale):
        steps = value - pt.where(is_start, 0.0, value[previous])
        return pm.logp(pm.Normal.dist(0.0, scale), steps).sum()

    # With an orientation the walk starts from it (higher regions at +1, lower at -1, others at 0) rather than
    # a prior draw: dynamic item-response models have local modes in which the sign flips between eras.
    initval = None
    if spec.orientation:
        how = spec.orientation[spec.traits[0]]
        sign = np.array([(r in how.higher) - (r in how.lower) for r in panel.regions], dtype=float)
        # small fixed jitter: exact zeros give zero gradients, which nutpie rejects as a starting point
        initval = sign[span_region] + 0.1 * np.random.default_rng(0).standard_normal(len(span_region))
    state = pm.CustomDist("region_state", scale, dist=dist, logp=logp, signature="(n)->(n)", dims="region_cell",
                          initval=initval)
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
        chol = pm.LKJCorr("trait_chol", n=n_trait, eta=pri.lkj_eta, dims=("trait", "trait_"))
        pm.Deterministic("trait_corr", chol @ chol.T, dims=("trait", "trait_"))
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
        phi = pm.Beta("ar_phi", a, b, dims="trait")

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
                init_sd = pm.Gamma(f"{level}_initial_sd", alpha=2.0, beta=1.0 / pri.initial_country_sd, dims="trait")
            else:
                init_sd = pm.HalfNormal(f"{level}_initial_sd", getattr(pri, f"initial_{level}_sd"), dims="trait")
            if level == "country" and walk and level != reference:
                # centred: the data pin the starts far more tightly than their free scale does
                start = to_units(pm.MvNormal("country_start", mu=0.0, chol=init_sd[:, None] * chol,
                                             dims=(start_dim, "trait")))
            else:
                z0 = _correlate(pm.Normal(f"{level}_z0", 0.0, 1.0, dims=(start_dim, "trait")), chol)
                start = init_sd * (z0 if to_units is None else to_units(z0))
        if n_period == 1:
            paths[level] = start[:, None, :]
            continue
        if dyn.kind == "student_t_rw":
            z = pm.StudentT(f"{level}_z", nu=dyn.df, mu=0.0, sigma=1.0, dims=(dim, "step", "trait"))
        else:
            z = pm.Normal(f"{level}_z", 0.0, 1.0, dims=(dim, "step", "trait"))
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
                innov_sd = pm.HalfNormal(f"{level}_innovation_sd", getattr(pri, f"innovation_{level}_sd"),
                                         dims="trait")
            steps = innov_sd * np.sqrt(gaps)[:, None] * z
            paths[level] = _cumulate(pt.concatenate([start[:, None, :], steps], axis=1), n_period)
    country = paths["country"]
    theta_raw = country[region_country] + paths["region"]
    return theta_raw, country


def _correlate(z, chol):
    """``z @ chol.T`` over the last (trait) axis, as a broadcast product and sum.

    With two or three traits this is about 3x faster, value and gradient, than the batched matrix
    product under nutpie's numba backend (measured: 6 against 18 us for 70 x 9 x 2 innovations).
    """
    return (z[..., None, :] * chol).sum(axis=-1)


def _cumulate(increments, n_period: int):
    """Cumulative sums over periods (axis 1) of (unit, period, trait) increments.

    As one product with a lower-triangular matrix of ones: with at most a few dozen periods, a
    matrix product (BLAS) is about 3x faster, value and gradient, than ``cumsum`` under nutpie's numba
    backend (measured: 4 against 14 us for 70 x 9 x 2 increments).
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
        """The map as a dense (unit, contrast) matrix (for checks)."""
        return self(pt.as_tensor(np.eye(self.n_contrast))).eval()


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
            raw = pm.Normal(name, 0.0, scale, dims=dim, initval=start)
        else:
            raw = code * pm.HalfNormal(name, scale, dims=dim)
        loading = pt.set_subtensor(loading[where], raw)
    loading = pm.Deterministic("loading", loading.reshape((n_ind, n_trait)), dims=("indicator", "trait"))

    names = design.coords["indicator"]
    with_intercept = np.array([FAMILIES[design.families[j]].has_intercept for j in range(len(names))])
    intercept = pt.zeros(n_ind)
    if with_intercept.any():
        pm.Model.get_context().add_coord("indicator_with_intercept", [n for n, w in zip(names, with_intercept,
                                                                                         strict=True) if w])
        raw = pm.Normal("intercept_raw", 0.0, spec.priors.intercept, dims="indicator_with_intercept")
        intercept = pt.set_subtensor(intercept[np.flatnonzero(with_intercept)], raw)
    intercept = pm.Deterministic("intercept", intercept, dims="indicator")
    return loading, intercept


def _country_offsets(design: Design, spec: Spec):
    """Country offsets (indicator, country) of the indicators not comparable across countries, or None.

    Sum-to-zero over countries (orthonormal contrasts, :class:`ZeroSum`, non-centred), so the indicator's own
    intercept (or cut-point centre) stays its average over countries and nothing is left for the prior
    alone to pin down.
    """
    names = design.coords["indicator"]
    countries = design.coords["country"]
    local = [j for j, n in enumerate(names) if not spec.indicator(n).comparable]
    if len(countries) < 2 or not local:
        return None
    model = pm.Model.get_context()
    model.add_coord("indicator_country_specific", [names[j] for j in local])
    z = pm.Normal("country_offset_z", 0.0, 1.0, dims=("country_contrast", "indicator_country_specific"))
    offsets = spec.priors.country_offset * ZeroSum.of(np.zeros(len(countries), dtype=int))(z).T
    full = pt.set_subtensor(pt.zeros((len(names), len(countries)))[np.array(local)], offsets)
    return pm.Deterministic("country_offset", full, dims=("indicator", "country"))
