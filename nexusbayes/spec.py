"""The model specification: TOML <-> validated objects.

A spec says which data file to read, which latent traits to measure, how each indicator is
generated from them (family, loadings and their signs), how the traits evolve over periods,
the priors, the typology thresholds, how to summarise results, and how to sample.

Every table is a pydantic model with ``extra="forbid"``, so a mistyped key is an error that names
the file, the key and the nearest valid key. The same objects are the Python API, and
:meth:`Spec.to_toml` writes a file that :func:`load_spec` reads back to an equal spec.

Examples
--------
>>> spec = Spec(
...     name="demo",
...     indicators={
...         "staff": Indicator(family="normal", loads={"capability": "positive"}),
...         "rating": Indicator(family="ordinal", categories=5, loads={"willingness": "positive"}),
...     },
... )
>>> spec.traits
['capability', 'willingness']
>>> Spec.from_toml(spec.to_toml()) == spec
True
"""

from __future__ import annotations

import difflib
import os
import stat
import tomllib
import unicodedata
from pathlib import Path
from typing import Annotated, Literal, get_origin

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nexusbayes.errors import SpecError

Family = Literal["negbin", "normal", "binomial", "ordinal", "bernoulli"]
Sign = Literal["positive", "negative", "free"]
Dynamics = Literal["gaussian_rw", "student_t_rw", "ar1"]
Sampler = Literal["nutpie", "pymc"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Year = Annotated[int, Field(ge=-9999, le=9999)]

#: Longest name of an indicator, region, country, rater, trait, era or group: names become table rows,
#: figure labels and file names, and a 100,000-character name made figures of 700,000 pixels.
MAX_NAME_LENGTH = 200
#: Largest spec file read: a spec is a few kilobytes; the cap keeps e.g. /dev/zero from filling memory.
MAX_SPEC_BYTES = 10 * 2**20
#: Prior scales and shapes outside these bounds make the log-density underflow or overflow (a normal of
#: SD 1e-300 has a density of inf at 0 and 0 elsewhere); traits are standardised, so useful scales are near 1.
PRIOR_BOUNDS = (1e-6, 1e6)
#: Upper bounds of the sampler settings, far above any useful run; :func:`nexusbayes.fit.fit` also checks
#: that the draws fit in memory.
MAX_DRAWS = 10_000_000
MAX_CHAINS = 1_000


def name_problem(name: str, variable: bool = False) -> str | None:
    """Why ``name`` cannot name an indicator, region, country, rater, trait, era or group, or None.

    Names become figure labels and netCDF coordinates: a control character (NUL, newline, tab ...)
    breaks the saved fit and the tables, and a very long name makes figures of absurd size. Indicator
    and trait names (``variable=True``) also become variable names of the saved fit and file names of
    the report's figures, where a ``/`` is a path separator; a region named "Chuy/Bishkek" is fine.

    Examples
    --------
    >>> name_problem("staff/1000", variable=True)
    "contains '/'"
    >>> name_problem("Chuy/Bishkek") is None
    True
    """
    if variable and "/" in name:
        return "contains '/'"
    bad = sorted({unicodedata.name(c, f"U+{ord(c):04X}") if c != "\0" else "NUL" for c in name
                  if unicodedata.category(c) == "Cc"})
    if bad:
        return f"contains control character(s) {', '.join(bad)}"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name):,} characters long (at most {MAX_NAME_LENGTH})"
    return None


def name_advice(variable: bool = False) -> str:
    """What a refused name is used for, and the fix: the end of every message about a :func:`name_problem`."""
    return "names become " + ("variable and file names, " if variable else "") + \
        "figure labels and coordinates of the saved fit, so rename it"


def _tuple(value):
    """TOML has arrays, not tuples: accept a list where a pair is wanted (strict mode would not)."""
    return tuple(value) if isinstance(value, list) else value


def _prior_bound(value: float) -> float:
    low, high = PRIOR_BOUNDS
    if not low <= value <= high:
        raise ValueError(f"{value:g} is outside {low:g}..{high:g}: a prior this extreme makes the log-density "
                         "underflow or overflow where sampling starts (traits are standardised, so scales near 1 "
                         "are the useful ones); use a value in that range")
    return value


PriorScale = Annotated[float, Field(gt=0), AfterValidator(_prior_bound)]


class _Strict(BaseModel):
    # NaN and infinity (valid TOML floats) are never sensible settings: a prior scale of inf or a
    # threshold of nan would pass `gt=0`-style checks and poison the model. Strict: a value of the wrong
    # type is an error, never coerced (`draws = true` is not 1 draw, `comparable = "false"` is not false);
    # an integer is still accepted where a float is wanted (`scale = 1`), which changes no meaning
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True, allow_inf_nan=False,
                              strict=True)


class Indicator(_Strict):
    """One observed indicator and how it is generated from the latent traits.

    Parameters
    ----------
    family : {"negbin", "normal", "binomial", "ordinal", "bernoulli"}
        Likelihood. ``negbin`` is a negative-binomial count with a log-exposure offset (needs an
        ``exposure`` column, or uses 1); ``binomial`` needs a ``trials`` column; ``ordinal`` takes
        ratings ``1..categories`` with cut-points per rater when a ``rater`` column is present.
    loads : dict of str to {"positive", "negative", "free"}
        The traits this indicator loads on, each with a sign constraint.
    categories : int, optional
        Number of ordinal categories K (ratings 1..K); required for, and only for, ``ordinal``.
    label : str, optional
        Human-readable name for tables and figures.
    comparable : bool
        Whether the indicator measures the traits on the same scale in every country (default).
        Set it to ``false`` when definitions or reporting differ between countries (national staff
        definitions, quota regimes): the indicator then gets a location per country (a
        sum-to-zero country offset on its linear predictor, or on its cut-points for ordinal
        ratings), so it informs differences within countries but not between them. In a fit with
        several countries every trait needs at least one comparable indicator.
    """

    family: Family
    loads: dict[str, Sign]
    categories: Annotated[int, Field(ge=2, le=20)] | None = None
    label: str | None = None
    comparable: bool = True

    @model_validator(mode="after")
    def _check(self) -> Indicator:
        if not self.loads:
            raise ValueError("`loads` is empty: name at least one trait, e.g. loads = {capability = \"positive\"}")
        if self.family == "ordinal" and self.categories is None:
            raise ValueError(
                "an ordinal indicator needs `categories` (ratings run 1..categories), e.g. categories = 5"
            )
        if self.family != "ordinal" and self.categories is not None:
            raise ValueError(f"`categories` is only for ordinal indicators, not {self.family!r}")
        return self


class ItemBank(_Strict):
    """Settings shared by every indicator in the data that ``[indicators]`` does not list.

    For item-response data with thousands of items (court cases, roll calls, test questions),
    which cannot sensibly be listed one by one: ``[item_bank]`` with ``family`` and ``loads``
    (and ``categories`` for ordinal items) makes each unlisted value of the data's ``indicator``
    column an indicator of its own, with its own intercept and loadings. Without an item bank an
    unlisted indicator in the data is an error.

    Examples
    --------
    >>> bank = ItemBank(family="bernoulli", loads={"ideology": "free"})
    >>> bank.indicator()
    Indicator(family='bernoulli', loads={'ideology': 'free'}, categories=None, label=None, comparable=True)
    """

    family: Family
    loads: dict[str, Sign]
    categories: Annotated[int, Field(ge=2, le=20)] | None = None

    @model_validator(mode="after")
    def _check(self) -> ItemBank:
        self.indicator()   # the same checks as a listed indicator
        return self

    def indicator(self) -> Indicator:
        """The settings as an :class:`Indicator` (what every bank item is)."""
        return Indicator(family=self.family, loads=self.loads, categories=self.categories)


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
    loader in :mod:`nexusbayes.datasets`; e.g. ``"martin_quinn"``: a directory holding the U.S.
    Supreme Court votes in Martin and Quinn's wide layout (see
    :func:`nexusbayes.datasets.load_martin_quinn`); ``"tip_tiers"``: the Trafficking-in-Persons
    tiers and 3P index CSV (see :func:`nexusbayes.datasets.load_tip_tiers`), where ``countries``
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

    ``centred = true`` (one trait, ``gaussian_rw`` only) gives every region its own random walk in
    the centred parameterisation, over its *span*: from its first to its last period with data,
    with the trait held at the span's end values outside it (no drift is extrapolated where the
    region has no data), and no country/region split (``country_theta`` is the average of the
    country's regions). Suited to long panels of well-measured units that enter and leave (judges,
    legislators): there the non-centred cumulative sums have a posterior whose condition number
    grows with the square of the path length, which makes NUTS take very long trajectories.
    """

    kind: Dynamics = "gaussian_rw"
    df: Annotated[float, Field(gt=1, le=PRIOR_BOUNDS[1])] = 4.0
    centred: bool = False

    @model_validator(mode="after")
    def _check(self) -> DynamicsSpec:
        if self.centred and self.kind != "gaussian_rw":
            raise ValueError(f"`centred = true` is implemented for kind = \"gaussian_rw\" only, not {self.kind!r}")
        return self


class Priors(_Strict):
    """Prior scales. Traits are standardised (mean 0, SD 1 over region-periods), so are these.

    The process scales are relative to one reference fixed at 1: the initial SD of region
    deviations (the initial SD of countries when every country has a single region, which has no
    region deviations; the step SD when there is a single unit).

    Every value is the scale of a half-normal prior (normal for intercepts, free loadings and the
    country offsets of indicators not comparable across countries, whose location is 0), except
    ``lkj_eta`` (LKJ shape on the trait correlation), ``ar_phi`` (Beta(a, b) on the AR(1)
    coefficient per year) and ``initial_country_sd`` under a random walk with two or three
    countries (Gamma(2, 1 / scale), mode at the scale; see :data:`nexusbayes.model.FEW_CONTRASTS`).
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
    lkj_eta: PriorScale = 2.0
    ar_phi: Annotated[tuple[PriorScale, PriorScale], BeforeValidator(_tuple)] = (4.0, 1.5)


class AnchoredThreshold(_Strict):
    """A threshold fixed on an indicator's scale rather than the latent one.

    The latent threshold is the trait value at which the indicator's expected response equals
    ``value`` (for an ordinal indicator, default: the middle category (1 + K) / 2; for a count,
    a rate per unit of exposure; for binomial and bernoulli, a proportion; for normal, a value on
    the data scale). It is computed draw by draw, so its uncertainty enters the type probabilities.
    The indicator must load on that trait alone.
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
    ``low_rank``. PyMC's backend uses its own diagonal adaptation. On the benchmark's medium panel
    (4 x 1000 tuning steps + 1000 draws, target 0.8) ``draw_diag`` gave 7.5 bulk ESS per second of
    sampling against 6.2-6.8 for ``diag``; its warm-up is slower, so on short runs (a few hundred
    tuning steps) ``diag`` can give more ESS per second (``benchmarks/README.md``), but with 300 tuning
    steps it left a chain stuck on the medium panel (max R-hat 1.58). ``low_rank`` took
    fewer leapfrog steps on the Kyrgyzstan panel (47 against 63 per draw) but each cost more, and it
    gave a quarter of ``draw_diag``'s ESS per second (2.2 against 9.0, 4 x 500 + 500).

    ``tune`` defaults to 300 tuning steps per chain, nutpie's own default, not Stan's 1000: nutpie's
    adaptation settles within them, and with 1000 the warm-up took 55% of the leapfrog steps. With
    ``draw_diag`` at seed 1 (``benchmarks/README.md``) 300 cut the sampling time by 32% (Kyrgyzstan panel,
    23.8 -> 16.1 s) and 31% (medium, 57.5 -> 39.5 s) for 15% and 7% less min bulk ESS, and by 30% on
    the large panel (benchmark runs, 1,266 -> 883 s, max R-hat 1.0078). Adaptation failed no more often:
    on eight simulated 9-region x 10-period panels, max R-hat above 1.01 once with 300 (1.012) and three
    times with 1000 (1.011, 1.012, 1.055). Raise it when a fit's diagnostics call for it.
    """

    backend: Sampler = "nutpie"
    draws: Annotated[int, Field(ge=1, le=MAX_DRAWS)] = 1000
    tune: Annotated[int, Field(ge=0, le=MAX_DRAWS)] = 300
    chains: Annotated[int, Field(ge=1, le=MAX_CHAINS)] = 4
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 20161
    target_accept: Annotated[float, Field(gt=0, lt=1)] = 0.8
    adaptation: Literal["draw_diag", "diag", "low_rank"] = "draw_diag"


class Spec(_Strict):
    """A complete model specification.

    Parameters
    ----------
    name : str
        Name of the model; output goes to ``reports/<name>/``. Letters, digits, ``_.-`` only, so it
        can never point outside the output directory.
    indicators : dict of str to Indicator
        The indicators, keyed by the names used in the data's ``indicator`` column.
    data : str, list of str or DataSource, optional
        Path of the data file (CSV or Parquet), relative to the spec file; a list of files (e.g.
        one per country) read as one table; or a ``[data]`` table with ``path`` and ``format`` for a
        public data set in its own layout (see :class:`DataSource`).
    traits : list of str
        Latent traits, default ``["capability", "willingness"]``.
    item_bank : ItemBank, optional
        Settings for every indicator in the data not listed under ``indicators`` (thousands of
        items: cases, roll calls); without it an unlisted indicator is an error.
    orientation : dict of str to Orientation
        For traits whose loadings are all ``free``: regions known to lie high or low on the trait,
        which fix its sign after sampling (see :class:`Orientation`).

    Notes
    -----
    Identification is checked here: every trait needs an *anchor*, an indicator that loads on it
    alone with a fixed sign. Anchors fix the sign of each trait and, having zero loadings on the
    other traits, its rotation; location and scale are fixed in the model (see
    :func:`nexusbayes.model.build_model`). Item-bank items count as anchors when the bank loads on
    one trait with a fixed sign. A trait whose loadings are all ``free`` (listed and bank) can take
    its sign from an ``orientation`` instead; it still needs an indicator loading on it alone when
    there are several traits (rotation).

    Examples
    --------
    A one-trait item-response model of votes, oriented by known justices:

    >>> spec = Spec(name="court", traits=["ideology"], indicators={},
    ...             item_bank=ItemBank(family="bernoulli", loads={"ideology": "free"}),
    ...             orientation={"ideology": Orientation(higher=["Scalia"], lower=["Douglas"])})
    >>> spec.indicator("case 17").loads
    {'ideology': 'free'}
    >>> Spec.from_toml(spec.to_toml()) == spec
    True
    """

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    indicators: dict[str, Indicator]
    data: str | Annotated[list[str], Field(min_length=1)] | DataSource | None = None
    traits: list[str] = Field(default_factory=lambda: ["capability", "willingness"])
    item_bank: ItemBank | None = None
    orientation: dict[str, Orientation] = Field(default_factory=dict)
    periods: Periods = Field(default_factory=Periods)
    dynamics: DynamicsSpec = Field(default_factory=DynamicsSpec)
    priors: Priors = Field(default_factory=Priors)
    typology: Typology = Field(default_factory=Typology)
    summary: Summary = Field(default_factory=Summary)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)

    @field_validator("traits")
    @classmethod
    def _traits(cls, traits: list[str]) -> list[str]:
        if not traits:
            raise ValueError("at least one trait is needed")
        if len(set(traits)) != len(traits):
            raise ValueError(f"trait names repeat: {traits}")
        return traits

    @model_validator(mode="after")
    def _names(self) -> Spec:
        for where, name, variable in self._named():
            problem = name_problem(name, variable=variable)
            if problem is not None:
                raise ValueError(f"{where}: the name {_short(name)} {problem}; {name_advice(variable)}")
        return self

    def _named(self):
        """Every user-chosen name in the spec: (the key that holds it, the name, whether it names a variable).

        Trait and indicator names become variable and file names (see :func:`name_problem`).
        """
        yield from ((f"traits[{i}]", t, True) for i, t in enumerate(self.traits))
        yield from ((f"indicators.{_short(n)}", n, True) for n in self.indicators)
        for name, ind in self.indicators.items():
            if ind.label is not None:
                yield f"indicators.{name}.label", ind.label, False
        for table, eras in (("periods.eras", self.periods.eras or []), ("summary.eras", self.summary.eras)):
            yield from ((f"{table}[{i}].name", e.name, False) for i, e in enumerate(eras))
        for group, members in self.summary.region_groups.items():
            yield f"summary.region_groups.{_short(group)}", group, False
            yield from ((f"summary.region_groups.{group}[{i}]", m, False) for i, m in enumerate(members))
        for trait, o in self.orientation.items():
            yield from ((f"orientation.{trait}.{side}", r, False) for side in ("higher", "lower")
                        for r in getattr(o, side))

    @model_validator(mode="after")
    def _identified(self) -> Spec:
        if not self.indicators and self.item_bank is None:
            raise ValueError("no indicators: add at least one [indicators.NAME] table (or an [item_bank])")
        every = dict(self.indicators)
        if self.item_bank is not None:
            every["(item_bank)"] = self.item_bank.indicator()
        for name, ind in every.items():
            unknown = [t for t in ind.loads if t not in self.traits]
            if unknown:
                guesses = [g for t in unknown for g in difflib.get_close_matches(t, self.traits, n=1)]
                where = "item_bank" if name == "(item_bank)" else f"indicators.{name}"
                raise ValueError(
                    f"{where}.loads names trait(s) {unknown} not in traits = {self.traits}"
                    + (f" (did you mean {', '.join(map(repr, guesses))}?)" if guesses else "")
                    + "; fix the name or add the trait to `traits`"
                )
        for trait in self.orientation:
            if trait not in self.traits:
                raise ValueError(f"orientation.{trait}: not a trait (traits = {self.traits})")
            fixed = [n for n, ind in every.items() if ind.loads.get(trait, "free") != "free"]
            if fixed:
                raise ValueError(
                    f"orientation.{trait}: {', '.join(fixed)} load(s) on {trait!r} with a fixed sign, which already "
                    "orients it (and breaks the reflection symmetry an orientation relies on); drop "
                    f"[orientation.{trait}] or make every loading on {trait!r} free"
                )
        for trait in self.traits:
            alone = [n for n, ind in every.items() if list(ind.loads) == [trait]]
            if trait in self.orientation:
                if len(self.traits) > 1 and not alone:
                    raise ValueError(
                        f"trait {trait!r} is not identified: no indicator loads on it alone, so it can rotate into "
                        f"the other traits. Give one indicator loads = {{{trait} = \"free\"}} only."
                    )
                continue
            if not [n for n in alone if every[n].loads[trait] != "free"]:
                raise ValueError(
                    f"trait {trait!r} is not identified: no indicator loads on it alone with a fixed sign. "
                    f"Add one, e.g. loads = {{{trait} = \"positive\"}} on an indicator that measures only "
                    f"{trait}; it fixes the trait's sign and separates it from the other traits. "
                    f"(When every loading on {trait!r} is free, e.g. items whose direction is unknown, "
                    f"[orientation.{trait}] with regions known to lie `higher` and `lower` fixes the sign instead.)"
                )
        if self.dynamics.centred and len(self.traits) > 1:
            raise ValueError("dynamics.centred = true is implemented for one-trait models only; "
                             f"this spec has traits {self.traits}")
        for trait, thr in self.typology.thresholds.items():
            if trait not in self.traits:
                raise ValueError(f"typology.thresholds.{trait}: not a trait (traits = {self.traits})")
            if isinstance(thr, AnchoredThreshold):
                ind = self.indicators.get(thr.indicator)
                if ind is None:
                    raise ValueError(
                        f"typology.thresholds.{trait}.indicator = {thr.indicator!r} is not an indicator"
                    )
                if list(ind.loads) != [trait]:
                    raise ValueError(
                        f"typology.thresholds.{trait}: indicator {thr.indicator!r} must load on {trait!r} alone"
                    )
                if thr.value is None and ind.family != "ordinal":
                    raise ValueError(
                        f"typology.thresholds.{trait}.value is required for a {ind.family} indicator "
                        "(only ordinal indicators default to their middle category)"
                    )
        return self

    # ---- TOML round trip -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain-data form, without defaults left unset (``None`` values dropped for TOML)."""
        return _drop_none(self.model_dump(mode="json"))

    def to_toml(self) -> str:
        """Write the spec as TOML text that :meth:`from_toml` reads back to an equal spec."""
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str, source: str = "<string>") -> Spec:
        """Parse and validate TOML text; ``source`` names the file in error messages."""
        try:
            raw = tomllib.loads(text.removeprefix("\ufeff"))   # a byte-order mark, as some editors write
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{source}: not valid TOML: {exc}") from None
        return cls.from_dict(raw, source=source)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> Spec:
        """Validate a plain dict; errors name ``source`` and the offending key."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise SpecError(_explain(exc, raw, source)) from None

    # ---- derived facts used downstream -----------------------------------------------------
    def indicator(self, name: str) -> Indicator:
        """The settings of indicator ``name``: its ``[indicators]`` entry, else the item bank's.

        Raises ``KeyError`` for an unlisted name when there is no item bank.
        """
        found = self.indicators.get(name)
        if found is not None:
            return found
        if self.item_bank is None:
            raise KeyError(name)
        return self.item_bank.indicator()

    @property
    def data_path(self) -> str | list[str] | None:
        """The ``data`` path(s) as written (relative to the spec file), whatever its form."""
        return self.data.path if isinstance(self.data, DataSource) else self.data

    @property
    def data_format(self) -> str:
        """How to read the data: ``"long"`` or a public layout (see :class:`DataSource`)."""
        return self.data.format if isinstance(self.data, DataSource) else "long"

    @property
    def has_typology(self) -> bool:
        """True when the traits include ``capability`` and ``willingness`` (the memo's types)."""
        return {"capability", "willingness"} <= set(self.traits)

    def threshold(self, trait: str) -> Threshold:
        """The typology threshold of ``trait`` (0.0 when the spec gives none)."""
        return self.typology.thresholds.get(trait, 0.0)


def load_spec(path: str | Path) -> tuple[Spec, Path | list[Path] | None]:
    """Read a TOML spec file.

    Returns
    -------
    spec : Spec
    data_path : Path, list of Path or None
        The data file(s) (or directory, for a public layout) named by the spec, resolved relative
        to the spec file.
    """
    path = Path(path)
    spec = Spec.from_toml(_read_spec_text(path), source=str(path))
    if isinstance(spec.data_path, list):
        return spec, [(path.parent / d).resolve() for d in spec.data_path]
    data_path = (path.parent / spec.data_path).resolve() if spec.data_path else None
    return spec, data_path


def _read_spec_text(path: Path) -> str:
    """The text of a spec file: a regular UTF-8 file of at most MAX_SPEC_BYTES (a BOM is left to from_toml).

    A directory, a FIFO or a device (``/dev/zero`` reads forever) is refused before reading.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))   # O_NONBLOCK: a FIFO does not block
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a spec file; give the path of a .toml file") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
        raise SpecError(f"{path}: is {what}, not a spec file; give the path of a .toml file")
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_SPEC_BYTES + 1)
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: is larger than {MAX_SPEC_BYTES // 2**20} MB, far more than a spec needs; is it "
                        "the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError(f"{path}: line {line} is not UTF-8 text (byte {raw[exc.start]:#04x}); re-save the file "
                        "as UTF-8") from None


def _short(name: str, limit: int = 40) -> str:
    """``repr(name)``, cut to ``limit`` characters (a name may be 100,000 characters long)."""
    return repr(name) if len(name) <= limit else repr(name[:limit]) + f"... ({len(name):,} characters)"


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def _model_in(annotation) -> type[BaseModel] | None:
    """The pydantic model class inside an annotation such as ``list[Era] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _valid_keys(loc: tuple) -> list[str]:
    """Field names of the table at ``loc`` (for 'did you mean' suggestions)."""
    current: type[BaseModel] | None = Spec
    parts = list(loc[:-1])
    while parts and current is not None:
        part = parts.pop(0)
        if isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        current = _model_in(field.annotation) if field is not None else None
        if field is not None and get_origin(field.annotation) is dict and parts:
            parts.pop(0)  # the user's key, e.g. the indicator's name in indicators.NAME.family
    return list(current.model_fields) if current is not None else []


def _explain(exc: ValidationError, raw: dict, source: str) -> str:
    lines = [f"{source}: invalid model specification"]
    thresholds_done = set()
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-after",))))
        if loc[:2] == ("typology", "thresholds") and len(loc) >= 4:
            # a threshold is `float | AnchoredThreshold`: pydantic reports each branch, tagged by type name
            loc = loc[:3] + loc[4:]
            if len(loc) == 3 or err["type"] == "model_type":
                if loc in thresholds_done:
                    continue
                thresholds_done.add(loc)
                if not isinstance(err.get("input"), dict):
                    lines.append(f"  - `{'.'.join(map(str, loc))}`: a threshold is a finite number or a table "
                                 f"{{indicator = \"NAME\", value = NUMBER}} (got {err.get('input')!r})")
                continue
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "string_pattern_mismatch" and loc == ("name",):
            lines.append("  - `name`: use only letters, digits, '_', '.' and '-', starting with a letter or "
                         f"digit (output goes to reports/<name>/; got {err.get('input')!r})")
        elif err["type"] == "extra_forbidden":
            valid = _valid_keys(loc)
            guess = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else f"; valid keys here: {', '.join(valid)}"
            lines.append(f"  - unknown key `{key}`{hint}")
        elif err["type"] == "missing":
            lines.append(f"  - missing required key `{key}`")
        elif err["type"] in _WANTED:
            got = err.get("input")
            unquote = isinstance(got, str) and _parses_as(got, err["type"])
            lines.append(f"  - `{key}`: expected {_WANTED[err['type']]}, got {_toml_value(got)} "
                         f"({_TOML_TYPES.get(type(got), type(got).__name__)}); values are not converted between "
                         "types" + ("; remove the quotes" if unquote else ""))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  - `{key}`: {msg} (got {err.get('input')!r})" if err["type"] != "value_error"
                         else f"  - {('`' + key + '`: ') if loc else ''}{msg}")
    return "\n".join(lines)


#: What a field of each pydantic type error wants, in words (strict mode: no coercion between types).
_WANTED = {"int_type": "a whole number (e.g. 1000)", "float_type": "a number (e.g. 1.5)",
           "bool_type": "true or false", "string_type": "a string in quotes", "list_type": "an array [...]",
           "tuple_type": "an array of two values [a, b]", "dict_type": "a table", "model_type": "a table",
           "model_attributes_type": "a table"}
_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
               tuple: "an array", dict: "a table"}


def _parses_as(text: str, error_type: str) -> bool:
    """Whether the quoted ``text`` would be a valid value without its quotes (then say: remove them)."""
    try:
        value = tomllib.loads(f"x = {text.strip()}")["x"]
    except tomllib.TOMLDecodeError:
        return False
    wanted = {"int_type": (int,), "float_type": (int, float), "bool_type": (bool,)}.get(error_type, ())
    return isinstance(value, wanted) and (error_type == "bool_type" or not isinstance(value, bool))


def _toml_value(value) -> str:
    """A value as TOML writes it (true, not True), cut short."""
    text = "true" if value is True else "false" if value is False else repr(value)
    return text if len(text) <= 60 else text[:60] + "..."
