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
from pathlib import Path
from typing import Annotated

import tomli_w
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nexusbayes.errors import SpecError
from nexusbayes.spec.indicators import Indicator, ItemBank, scale_free_traits, trend_free_traits
from nexusbayes.spec.limits import MAX_SPEC_BYTES, NAME_PATTERN, _short, name_advice, name_problem
from nexusbayes.spec.messages import explain_errors
from nexusbayes.spec.sections import (
    AnchoredThreshold,
    Comparability,
    CovariatesSpec,
    DataSource,
    DynamicsSpec,
    ModelSpec,
    Orientation,
    Periods,
    Priors,
    SamplerSpec,
    Summary,
    Threshold,
    Typology,
    _Strict,
)


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
    covariates : CovariatesSpec, optional
        Covariates from a region-period table with effects on the traits' level or steps (a latent
        regression; see :class:`~nexusbayes.spec.sections.CovariatesSpec`).
    model : ModelSpec
        ``[model] kind``: continuous traits (``"trait"``, the default) or the four types as hidden Markov
        states (``"regime"``; see :class:`ModelSpec`).
    comparability : Comparability
        ``detect = true`` gives every indicator country offsets shrunk by a horseshoe prior, to find the
        ones not comparable across countries (see :class:`~nexusbayes.spec.sections.Comparability`).

    Notes
    -----
    Identification is checked here: every trait needs an *anchor*, an indicator that loads on it
    alone with a fixed sign. Anchors fix the sign of each trait and, having zero loadings on the
    other traits, its rotation; location and scale are fixed in the model (see
    :func:`nexusbayes.model.build.build_model`). Item-bank items count as anchors when the bank loads on
    one trait with a fixed sign. A trait whose loadings are all ``free`` (listed and bank) can take
    its sign from an ``orientation`` instead; it still needs an indicator loading on it alone when
    there are several traits (rotation). With indicators whose location drifts over periods (``drift``),
    the indicators without location drift must pin down every trait's trend (see
    :func:`~nexusbayes.spec.indicators.trend_free_traits`), and with drifting loadings every trait needs an
    indicator whose loading does not drift (its spread per period;
    :func:`~nexusbayes.spec.indicators.scale_free_traits`). With ``[comparability] detect = true`` the countries'
    differences are identified only through the offsets' shrinkage (see
    :class:`~nexusbayes.spec.sections.Comparability`).

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
    comparability: Comparability = Field(default_factory=Comparability)
    summary: Summary = Field(default_factory=Summary)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    covariates: CovariatesSpec | None = None
    model: ModelSpec = Field(default_factory=ModelSpec)

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
        for column, effect in (self.covariates.columns.items() if self.covariates else ()):
            yield f"covariates.columns.{_short(column)}", column, True
            if effect.label is not None:
                yield f"covariates.columns.{column}.label", effect.label, False

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
        self._trends_identified(every)
        self._covariates_valid()
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

    def _covariates_valid(self) -> None:
        """Refuse covariate effects on unknown traits, reserved column names, or with centred spans."""
        for column, effect in (self.covariates.columns.items() if self.covariates else ()):
            if column in ("region", "period", "country"):
                raise ValueError(f"covariates.columns.{column}: {column!r} is the table's key column, not a "
                                 "covariate; name a column of covariate values")
            unknown = [t for t in effect.traits if t not in self.traits]
            if unknown or len(set(effect.traits)) != len(effect.traits):
                raise ValueError(f"covariates.columns.{column}.traits = {effect.traits}: list each trait once, "
                                 f"from traits = {self.traits}")
        if self.model.kind != "regime":
            on_steps = [n for n, e in (self.covariates.columns.items() if self.covariates else ())
                        if e.on == "transition"]
            if on_steps:
                raise ValueError(f"covariates.columns.{on_steps[0]}: on = \"transition\" is for [model] kind = "
                                 "\"regime\" (a trait model's types have no transition matrix to shift); use "
                                 "on = \"step\" for the traits' steps")
        if self.covariates and self.dynamics.centred:
            raise ValueError("[covariates] are not implemented with dynamics.centred = true; drop one of them")

    @model_validator(mode="after")
    def _regime_supported(self) -> Spec:
        """Refuse the options that ``[model] kind = "regime"`` does not support (yet), saying what to change."""
        if self.model.kind != "regime":
            return self
        fix = "; or set [model] kind = \"trait\""
        if sorted(self.traits) != ["capability", "willingness"]:
            raise ValueError(f"model.kind = \"regime\": the regime model's states are the four capacity types, so "
                             f"traits must be [\"capability\", \"willingness\"] (got {self.traits}){fix}")
        drifting = [n for n, ind in self.indicators.items() if ind.drift is not None]
        if drifting:
            raise ValueError(f"model.kind = \"regime\" does not support `drift` yet: remove it from indicators "
                             f"{', '.join(f'{n}' for n in drifting)}{fix}")
        if self.orientation:
            raise ValueError("model.kind = \"regime\" needs each trait's sign fixed by an anchor (its low and high "
                             "levels are ordered by construction), not an [orientation]: remove [orientation."
                             f"{next(iter(self.orientation))}] and give an anchor a fixed sign{fix}")
        if self.dynamics != DynamicsSpec():
            raise ValueError("model.kind = \"regime\": the types follow the transition matrices, not [dynamics] "
                             f"(got kind = {self.dynamics.kind!r}, centred = {str(self.dynamics.centred).lower()}); "
                             "remove the [dynamics] table (AR, Student-t and centred walks are trait-model "
                             f"options){fix}")
        inflated = [n for n, ind in self.indicators.items()
                    if ind.missing != "ignorable" or ind.quota is not None or ind.zero_inflated]
        if inflated:
            raise ValueError(f"model.kind = \"regime\" does not support `missing = \"informative\"`, `quota` or "
                             f"`zero_inflated` yet: remove them from indicators {', '.join(inflated)}{fix}")
        on_traits = [n for n, e in (self.covariates.columns.items() if self.covariates else ()) if e.on != "transition"]
        if on_traits:
            raise ValueError(f"model.kind = \"regime\": covariates act on its transitions only (its traits are the "
                             f"types' levels): set on = \"transition\" (and no traits) for covariates.columns."
                             f"{on_traits[0]}{fix}")
        if self.comparability.detect:
            raise ValueError("model.kind = \"regime\" does not support [comparability] detect = true yet: set it "
                             f"to false{fix}")
        if self.typology.thresholds:
            raise ValueError("model.kind = \"regime\": the types are the model's states, so [typology] thresholds "
                             f"do not apply; remove typology.thresholds.{next(iter(self.typology.thresholds))}{fix}")
        return self

    def _trends_identified(self, every: dict[str, Indicator]) -> None:
        """Refuse drift that leaves a trait's trend or spread over periods to the prior (:func:`trend_free_traits`)."""
        loose = scale_free_traits(self.traits, every)
        if loose:
            drifting = [n for n, ind in every.items() if loose[0] in ind.loads]
            raise ValueError(
                f"trait {loose[0]!r} is not identified over time: every indicator loading on it "
                f"({', '.join(drifting)}) has drift = \"loading\", so the trait's spread over regions in a period "
                "could as well be those loadings growing or shrinking and would be set by the prior alone. Remove "
                f"\"loading\" from the `drift` of one of them (best the anchor), or add an indicator without a "
                f"drifting loading that loads on {loose[0]!r}.")
        free = trend_free_traits(self.traits, every)
        if not free:
            return
        steady = sorted({n for n, ind in every.items() if ind.location_drift is None and set(ind.loads) & set(free)})
        first = free[0]
        drifting = [n for n, ind in every.items() if ind.location_drift is not None and first in ind.loads]
        if not steady:
            what = (f"trait {first!r} is not identified over time: every indicator loading on it "
                    f"({', '.join(drifting)}) has `drift` of its intercept or cut-points")
        else:
            what = (f"traits {free} are not identified over time: the indicators without `drift` of their location "
                    f"that load on them ({', '.join(steady)}) are fewer than the traits")
        raise ValueError(
            f"{what}, so a common trend in the trait over periods could as well be drift in those indicators' "
            "parameters and would be set by the prior alone. Remove `drift` from one of them (best an anchor, "
            f"which then fixes the trait's trend as it fixes its sign), or add an indicator without `drift` that "
            f"loads on {first!r} alone."
        )

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
            raise SpecError(explain_errors(exc, raw, source, Spec)) from None

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

    @property
    def is_regime(self) -> bool:
        """True for ``[model] kind = "regime"``: the types are hidden Markov states (:mod:`nexusbayes.model.regime`)."""
        return self.model.kind == "regime"

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


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj
