"""The tables of a spec (indicators, periods, dynamics, priors, typology, sampler), each a strict pydantic model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from nexusbayes.spec.limits import (
    MAX_CHAINS,
    MAX_DRAWS,
    PRIOR_BOUNDS,
    Dynamics,
    PriorScale,
    Sampler,
    Year,
    _tuple,
)


class _Strict(BaseModel):
    # NaN and infinity (valid TOML floats) are never sensible settings: a prior scale of inf or a
    # threshold of nan would pass `gt=0`-style checks and poison the model. Strict: a value of the wrong
    # type is an error, never coerced (`draws = true` is not 1 draw, `comparable = "false"` is not false);
    # an integer is still accepted where a float is wanted (`scale = 1`), which changes no meaning
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True, allow_inf_nan=False,
                              strict=True)


class Orientation(_Strict):
    """Which way a trait points, given by units (regions) known to lie high or low on it.

    An alternative to a sign-fixed anchor indicator, for a trait whose loadings are all ``free``:
    the model is then exactly symmetric under reflecting the trait (theta and every loading on it
    change sign together), so the reflection can be chosen after sampling without changing the
    posterior. Each draw is reflected, if needed, so that the mean trait of the ``higher`` regions
    exceeds that of the ``lower`` ones (each averaged over the region-periods with data). This is
    how Martin and Quinn (2002) orient their justices (e.g. Douglas, Marshall and Brennan low,
    Rehnquist, Scalia and Thomas high). At least one of the two lists is needed; with one list the
    comparison is against 0, the average region-period.
    """

    higher: list[str] = Field(default_factory=list)
    lower: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Orientation:
        if not self.higher and not self.lower:
            raise ValueError("an orientation needs regions in `higher`, `lower` or both")
        both = sorted(set(self.higher) & set(self.lower))
        if both:
            raise ValueError(f"region(s) {both} are listed as both higher and lower")
        return self


DataFormat = Literal["long", "martin_quinn", "tip_tiers"]


class DataSource(_Strict):
    """Where the data are and how to read them: ``[data]`` with ``path`` and ``format``.

    ``format = "long"`` (the default, as when ``data`` is a plain path) is the package's long table
    (CSV or Parquet). Other formats are public data sets in their published layout, read by a
    loader in :mod:`nexusbayes.data.datasets`; e.g. ``"martin_quinn"``: a directory holding the U.S.
    Supreme Court votes in Martin and Quinn's wide layout (see
    :func:`nexusbayes.data.datasets.load_martin_quinn`); ``"tip_tiers"``: the Trafficking-in-Persons
    tiers and 3P index CSV (see :func:`nexusbayes.data.datasets.load_tip_tiers`), where ``countries``
    (names or ISO codes) and ``years`` (first, last) select a part of it.
    """

    path: str
    format: DataFormat = "long"
    countries: list[str] | None = None
    years: Annotated[tuple[int, int] | None, BeforeValidator(_tuple)] = None

    @model_validator(mode="after")
    def _selection(self) -> DataSource:
        if (self.countries is not None or self.years is not None) and self.format != "tip_tiers":
            raise ValueError(f"`countries` and `years` select parts of format 'tip_tiers', not {self.format!r}")
        return self

    def options(self) -> dict:
        """The selection keys given, as keyword arguments for the format's reader."""
        return {k: v for k, v in (("countries", self.countries), ("years", self.years)) if v is not None}


class CovariateEffect(_Strict):
    """One covariate column of the covariate table and what it acts on.

    ``on = "level"``: the traits' level, ``theta[r, t] + beta * x[r, t]``; ``on = "step"``: the traits' steps,
    the random-walk (or AR(1)) increment into period t getting the mean ``beta * x[r, t] * gap`` (per year);
    ``on = "transition"`` (a regime model's, without ``traits``): the log-odds of leaving the current type on the
    step into period t, ``+ beta * x[r, t]`` (:mod:`nexusbayes.model.regime_covariates`).
    ``traits`` lists the traits it acts on, each with its own coefficient; ``prior_scale`` is the SD of the
    coefficients' normal prior, per SD of the covariate on the latent process's raw scale (see
    :mod:`nexusbayes.model.covariates`).
    """

    on: Literal["level", "step", "transition"]
    traits: list[str] = Field(default_factory=list)
    prior_scale: PriorScale = 1.0
    label: str | None = None

    @model_validator(mode="after")
    def _targets(self) -> CovariateEffect:
        if self.on == "transition" and self.traits:
            raise ValueError(f"on = \"transition\" acts on the log-odds of leaving the current type, not on traits: "
                             f"remove traits = {self.traits}")
        if self.on != "transition" and not self.traits:
            raise ValueError(f"on = {self.on!r} needs `traits`, the traits it acts on (e.g. traits = "
                             "[\"capability\"])")
        return self


class CovariatesSpec(_Strict):
    """``[covariates]``: a region-period table of covariates (``path``, relative to the spec, as ``[data]``).

    ``columns`` names the table's columns used, each a :class:`CovariateEffect`; the table's other columns
    are ignored. The table has columns ``region``, ``period`` (as in the data), optionally ``country``, and
    the covariates (see ``data/README.md``). Without ``path`` the table is passed to ``fit(covariates=...)``.
    """

    path: str | None = None
    columns: Annotated[dict[str, CovariateEffect], Field(min_length=1)]


class Era(_Strict):
    """A named period covering the years ``start <= year < end``."""

    name: str
    start: Year
    end: Year

    @model_validator(mode="after")
    def _order(self) -> Era:
        if self.end <= self.start:
            raise ValueError(f"era {self.name!r}: end ({self.end}) must be after start ({self.start})")
        return self

    @property
    def midpoint(self) -> float:
        """Middle of the era in years, used for the spacing of periods."""
        return (self.start + self.end) / 2


class Periods(_Strict):
    """How the ``period`` column is read.

    With ``eras`` the period values are era names and the spacing between eras is the distance
    between their midpoints; otherwise periods are integer years, spanning ``first``..``last``
    when given (years with no data still get traits, from the dynamics).
    """

    first: Year | None = None
    last: Year | None = None
    eras: list[Era] | None = None

    @model_validator(mode="after")
    def _check(self) -> Periods:
        if self.eras is not None and (self.first is not None or self.last is not None):
            raise ValueError("give either `eras` or `first`/`last`, not both")
        if self.first is not None and self.last is not None and self.last < self.first:
            raise ValueError(f"`last` ({self.last}) is before `first` ({self.first})")
        if self.eras is not None:
            names = [e.name for e in self.eras]
            if len(set(names)) != len(names):
                raise ValueError(f"era names repeat: {names}")
            mids = [e.midpoint for e in self.eras]
            if mids != sorted(mids) or len(set(mids)) != len(mids):
                raise ValueError("eras must be listed in time order with distinct midpoints")
        return self


class DynamicsSpec(_Strict):
    """How traits evolve from one period to the next.

    ``gaussian_rw`` (default): random walk whose innovation variance grows with the period length.
    ``student_t_rw``: the same with Student-t innovations of ``df`` degrees of freedom, for abrupt
    shifts (revolutions, purges). ``ar1``: mean-reverting, the autocorrelation over a period of
    length d years being ``phi ** d``.

    ``centred = true`` (``gaussian_rw`` only) gives every region its own random walk in
    the centred parameterisation, over its *span*: from its first to its last period with data,
    with the traits held at the span's end values outside it (no drift is extrapolated where the
    region has no data), and no country/region split (``country_theta`` is the average of the
    country's regions); with several traits the steps are correlated across traits (LKJ), as the
    non-centred innovations are. Suited to long panels of well-measured units (judges, legislators,
    item panels with several ratings per unit-period): there the non-centred cumulative sums have a
    posterior whose condition number grows with the square of the path length, which makes NUTS
    take very long trajectories.
    """

    kind: Dynamics = "gaussian_rw"
    df: Annotated[float, Field(gt=1, le=PRIOR_BOUNDS[1])] = 4.0
    centred: bool = False

    @model_validator(mode="after")
    def _check(self) -> DynamicsSpec:
        if self.centred and self.kind != "gaussian_rw":
            raise ValueError(f"`centred = true` is implemented for kind = \"gaussian_rw\" only, not {self.kind!r}")
        return self


class ModelSpec(_Strict):
    """Which model the traits come from: ``[model]`` with ``kind = "trait"`` (default) or ``"regime"``.

    ``trait``: capability and willingness are continuous traits that follow the ``[dynamics]``, and the capacity
    types are read off them by the ``[typology]`` thresholds. ``regime``: each region-period is in one of the four
    types (a hidden Markov state; :mod:`nexusbayes.model.regime`), each type placing capability and willingness at
    a low or a high level, with a 4 x 4 transition matrix per country. The rows of the matrix shared by the
    countries are Dirichlet with concentration ``persistence[0]`` on staying in the type and ``persistence[1]`` on
    each move; with several countries, each country's row is the shared row moved on the log scale by a
    sum-to-zero deviation whose SD has a half-normal prior of scale ``pooling`` (partial pooling, non-centred).

    ``region_deviation = true`` (regime only) adds a within-state deviation per region and trait: a region in a
    type sits at the type's level plus its own deviation, partially pooled (non-centred, summing to zero over the
    regions so the intercepts keep the location; its SD half-normal with scale ``region_deviation_sd``).

    The regime kind needs the traits ``capability`` and ``willingness`` (only), and does not yet support indicators
    with ``drift``, an ``[orientation]``, ``[dynamics]`` other than the default, or ``[typology]`` thresholds
    (its types are its states).

    Examples
    --------
    >>> ModelSpec().kind, ModelSpec(kind="regime").persistence
    ('trait', (3.0, 1.0))
    """

    kind: Literal["trait", "regime"] = "trait"
    persistence: Annotated[tuple[PriorScale, PriorScale], BeforeValidator(_tuple)] = (3.0, 1.0)
    pooling: PriorScale = 0.5
    region_deviation: bool = False
    region_deviation_sd: PriorScale = 0.5

    @model_validator(mode="after")
    def _deviation_is_regime(self) -> ModelSpec:
        if self.region_deviation and self.kind != "regime":
            raise ValueError("model.region_deviation = true is an option of kind = \"regime\" (a trait model's "
                             "regions already deviate continuously): remove it or set model.kind = \"regime\"")
        return self


class Priors(_Strict):
    """Prior scales. Traits are standardised (mean 0, SD 1 over region-periods), so are these.

    The process scales are relative to one reference fixed at 1: the initial SD of region
    deviations (the initial SD of countries when every country has a single region, which has no
    region deviations; the step SD when there is a single unit).

    ``heap_intercept`` and ``heap_loading`` are the scales of the normal priors of the logits of quota heaping
    and of structural zeros (indicators with ``quota`` or ``zero_inflated``): the intercept's is centred on
    logit 0.1 (:data:`nexusbayes.model.heaping.HEAP_PRIOR_LOGIT`); the loadings are at most 0, half-normal in size.
    ``offset_global_scale`` and ``offset_slab_scale`` are the regularised horseshoe's global scale (half-Cauchy
    scale of ``tau``) and slab scale (``c``) of the country offsets that ``[comparability] detect = true`` gives
    every indicator (see :class:`Comparability`).

    ``drift_sd`` is the scale of the step SD per year of the intercepts (or cut-point centres) of
    indicators with ``drift`` (see :class:`Indicator`), on the scale of their linear predictor;
    ``loading_drift_sd`` that of the log loadings of indicators with ``drift = "loading"`` (at 0.1, a
    loading that changes by some 10% a year is well inside the prior).

    ``reporting_loading`` is the scale of the (normal) reporting loadings of indicators with ``missing =
    "informative"``, on the logit of P(reported): at 2, a probability of reporting that rises from 12% to 88%
    over two SDs of a trait is well inside the prior, as gaps that track state weakness can be.

    Every value is the scale of a half-normal prior (normal for intercepts, free loadings and the
    country offsets of indicators not comparable across countries, whose location is 0), except
    ``lkj_eta`` (LKJ shape on the trait correlation), ``ar_phi`` (Beta(a, b) on the AR(1)
    coefficient per year), ``initial_country_sd`` under a random walk with two or three
    countries (Gamma(2, 1 / scale), mode at the scale; see :data:`nexusbayes.model.latent.FEW_CONTRASTS`) and
    ``inv_dispersion``, the negative binomial's inverse dispersion (Gamma(2, 2 / scale), mean at the scale):
    neither has mass at 0, where a chain would stick in a funnel (:meth:`nexusbayes.model.families.NegBin.nuisance`).
    """

    loading: PriorScale = 1.0
    intercept: PriorScale = 2.0
    country_offset: PriorScale = 1.0
    cutpoint: PriorScale = 3.0
    rater_sd: PriorScale = 0.5
    noise_sd: PriorScale = 1.0
    inv_dispersion: PriorScale = 1.0
    initial_country_sd: PriorScale = 1.0
    innovation_country_sd: PriorScale = 0.3
    innovation_region_sd: PriorScale = 0.3
    drift_sd: PriorScale = 0.2
    loading_drift_sd: PriorScale = 0.1
    reporting_loading: PriorScale = 2.0
    heap_intercept: PriorScale = 1.5
    heap_loading: PriorScale = 1.0
    offset_global_scale: PriorScale = 0.1
    offset_slab_scale: PriorScale = 1.0
    lkj_eta: PriorScale = 2.0
    ar_phi: Annotated[tuple[PriorScale, PriorScale], BeforeValidator(_tuple)] = (4.0, 1.5)


class Comparability(_Strict):
    """Detecting indicators that are not comparable across countries: ``[comparability]``.

    With ``detect = true`` every indicator gets country offsets on its linear predictor (on its cut-point
    centre for ordinal ratings), summing to zero over countries and shrunk towards zero by a regularised
    horseshoe prior (Piironen and Vehtari 2017): a global scale ``tau`` (half-Cauchy, scale
    ``priors.offset_global_scale``), a local scale ``lambda`` per indicator (half-Cauchy(1)) and a slab
    ``c`` (``c^2`` inverse-gamma with 4 degrees of freedom and scale ``priors.offset_slab_scale``), so an
    indicator's offsets have SD ``tau * lambda_j * c / sqrt(c^2 + tau^2 lambda_j^2)``: near zero for the
    comparable ones, up to about ``c`` for those that are not. Indicators marked ``comparable = false`` keep
    their plain offsets (normal, scale ``priors.country_offset``), unshrunk. The fit's non-comparability
    table (:func:`nexusbayes.analysis.comparability.noncomparability_table`) gives, per indicator and
    country, the offset's interval and P(|offset| > ``delta``), on the linear predictor's scale.

    Identification: with every indicator's offsets free, a shift of a country's traits could as well be
    offsets of all its indicators, so how the countries differ is identified only through the shrinkage
    (the prior's belief that most indicators are comparable), not by construction. It needs at least two
    countries (refused otherwise) and is best read with a few indicators per trait. With few countries,
    offsets that line up with the countries' trait levels are, between countries, a change of the
    indicator's loadings (with three countries, any pattern of an indicator on two traits is), told apart only
    by the loading's sign and the variation within countries, so they can go undetected; and a trait level
    shifted to halve one indicator's offsets can flag another indicator of the same trait. Measured (three
    countries, six indicators, two with planted offsets, seeds 11-16): 11 of 12 found and no false alarm with 8
    regions per country, 7 of 12 and 1 of 24 with 4 (``benchmarks/results/comparability_detection.md``).

    Examples
    --------
    >>> Comparability(detect=True, delta=0.4).delta
    0.4
    """

    detect: bool = False
    delta: Annotated[float, Field(gt=0, le=PRIOR_BOUNDS[1])] = 0.5


class AnchoredThreshold(_Strict):
    """A threshold fixed on an indicator's scale rather than the latent one.

    The latent threshold is the trait value at which the indicator's expected response equals
    ``value`` (for an ordinal indicator, default: the middle category (1 + K) / 2; for a count,
    a rate per unit of exposure; for binomial and bernoulli, a proportion; for normal, a value on
    the data scale). It is computed draw by draw, so its uncertainty enters the type probabilities.
    The indicator must load on that trait alone. For an indicator with ``drift`` it is computed from
    its intercept or cut-points averaged over its periods with data (where its drift path sums to zero), and
    its loading's geometric mean over them (with ``drift = "loading"``).
    """

    indicator: str
    value: float | None = None


Threshold = float | AnchoredThreshold


class Typology(_Strict):
    """Thresholds that split each trait into high and low (default 0: the average region-period)."""

    thresholds: dict[str, Threshold] = Field(default_factory=dict)


class Summary(_Strict):
    """Groupings used to summarise type probabilities (e.g. the memo's eras and region groups)."""

    eras: list[Era] = Field(default_factory=list)
    region_groups: dict[str, list[str]] = Field(default_factory=dict)


class SamplerSpec(_Strict):
    """Sampler settings. ``backend`` is ``nutpie`` (default) or ``pymc`` (PyMC's NUTS).

    ``adaptation`` is nutpie's mass-matrix adaptation: ``draw_diag`` (default; a diagonal mass matrix
    from the draws' variances, as Stan and PyMC do), ``diag`` (nutpie's gradient-based diagonal) or
    ``low_rank``. PyMC's backend uses its own diagonal adaptation. ``draw_diag`` mixed best on the
    benchmark panels: ``diag`` lost a chain with 300 tuning steps and ``low_rank`` gave far less ESS per
    second (see ``benchmarks/HISTORY.md``).

    ``tune`` defaults to 300 tuning steps per chain, nutpie's own default, not Stan's 1000: nutpie's
    adaptation settles within them, sampling is about 30% shorter, and adaptation fails no more often
    (see ``benchmarks/HISTORY.md``). Raise it when a fit's diagnostics call for it.

    **Run length.** By default every chain takes exactly ``draws`` draws after warm-up. With
    ``until_converged = true`` (nutpie only, at least 2 chains) ``draws`` is the most each chain takes
    (the cap): at multiples of ``check_every`` draws per chain the draws so far are checked (skipping the
    multiples that the last check projects cannot pass yet; see :mod:`nexusbayes.inference.run_length`),
    and sampling stops at the first check where the convergence gates pass, R-hat at most
    :data:`~nexusbayes.constants.RHAT_MAX` and bulk and tail ESS at least
    :data:`~nexusbayes.constants.ESS_MIN` for every posterior element (the thresholds of the fit's
    diagnostics); the fit keeps the draws of that check, every chain cut to the same number. A run
    whose gates never pass stops at the cap. The draws kept depend only on the seed, never on timing:
    the same checks at the same draw counts give the same answer. The fit's attrs say how it ended:
    ``draws`` (kept per chain), ``draws_cap``, ``check_every`` and ``stopped_by`` (``"gates"`` or
    ``"cap"``). ``check_every`` (default 100, at least 10) is used only with ``until_converged``; a check
    first judges the free variables alone (cheap) and the whole posterior only when they pass, so checking
    more often costs little, but each check still reads the trace so far. Off by default: on the benchmark
    panels it kept 700-800 of 1,000 draws (13-19% fewer gradient evaluations); the example took 31% less
    wall time, but medium twice as much (its checks cost ~15 s each; one seed each)
    (``benchmarks/HISTORY.md``, 2026-12-06 05:40).

    **Starts.** ``init = "prior"`` (default) starts each chain at its own prior draw. ``init = "advi"``
    (nutpie only) first fits mean-field ADVI on nutpie's compiled log density (``init_iterations``
    gradient evaluations, default 2000; nothing compiled a second time) and starts each chain at its own
    draw from that approximation (:mod:`nexusbayes.inference.warm_start`); the warm-up then starts near
    the posterior. Its figures are in ``benchmarks/HISTORY.md`` (2026-12-06 08:37).

    Examples
    --------
    >>> SamplerSpec(until_converged=True, draws=4000).check_every
    100
    >>> SamplerSpec(until_converged=True, draws=50)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for SamplerSpec
      Value error, until_converged checks the draws every check_every = 100 draws, but draws = 50 (the cap) ...
    """

    backend: Sampler = "nutpie"
    draws: Annotated[int, Field(ge=1, le=MAX_DRAWS)] = 1000
    tune: Annotated[int, Field(ge=0, le=MAX_DRAWS)] = 300
    chains: Annotated[int, Field(ge=1, le=MAX_CHAINS)] = 4
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 20161
    target_accept: Annotated[float, Field(gt=0, lt=1)] = 0.8
    adaptation: Literal["draw_diag", "diag", "low_rank"] = "draw_diag"
    until_converged: bool = False
    check_every: Annotated[int, Field(ge=10, le=MAX_DRAWS)] = 100
    init: Literal["prior", "advi"] = "prior"
    init_iterations: Annotated[int, Field(ge=100, le=100_000)] = 2000

    @model_validator(mode="after")
    def _check_run_length(self) -> SamplerSpec:
        if self.init != "prior" and self.backend != "nutpie":
            raise ValueError(f"init = \"{self.init}\" fits the approximation on nutpie's compiled model; the "
                             f"{self.backend} backend starts from its own initial points: set backend = \"nutpie\" "
                             "or init = \"prior\"")
        if not self.until_converged:
            return self
        if self.backend != "nutpie":
            raise ValueError(f"until_converged stops nutpie's sampler when the diagnostics pass; the {self.backend} "
                             "backend samples a fixed length: set backend = \"nutpie\" or until_converged = false")
        if self.chains < 2:
            raise ValueError("until_converged needs at least 2 chains: R-hat, one of its gates, compares chains "
                             f"(got chains = {self.chains})")
        if self.check_every >= self.draws:
            raise ValueError(f"until_converged checks the draws every check_every = {self.check_every} draws, but "
                             f"draws = {self.draws} (the cap) allows no check before it: raise draws (e.g. 4000) "
                             "or lower check_every")
        return self
