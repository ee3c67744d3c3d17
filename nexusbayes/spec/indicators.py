"""The indicator tables of a spec (``[indicators.NAME]``, ``[item_bank]``) and the trend identification rule.

:func:`trend_free_traits` says which traits keep an identified trend when indicators drift.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)

from nexusbayes.spec.limits import (
    FamilyName,
    Sign,
)
from nexusbayes.spec.sections import _Strict


def _quota(value):
    """One clear message for a quota that is neither a whole number >= 0 nor a column name."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer() or value < 0:
        raise ValueError(f"`quota` must be a whole number >= 0 (quota = 10) or the name of the data column giving "
                         f"each row's quota in quotes (quota = \"quota_target\"); got {value!r}")
    if isinstance(value, float):
        raise ValueError(f"`quota` is a count: write it as a whole number without a decimal point "
                         f"(quota = {int(value)}), got {value!r}")
    return value


#: What may drift over periods: an intercept, an ordinal indicator's cut-point centre, the loadings.
DriftKind = Literal["intercept", "cutpoints", "loading"]


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
    drift : {"intercept", "cutpoints", "loading"} or list of them, optional
        Changing standards: the indicator's parameters drift over periods (reporting rules, coding
        practice or raters' standards that change). ``"intercept"`` (every family but ordinal):
        its intercept follows a Gaussian random walk over periods; ``"cutpoints"`` (ordinal only):
        the centre of its cut-points does, the gaps between them staying fixed; ``"loading"``: its
        loadings are multiplied by ``exp(path)``, a random walk of the log loading shared by the traits it
        loads on, so every loading keeps its sign (and an anchor its zeros) in every period. A list
        combines them (``["intercept", "loading"]``). Each walk's step SD per year is the indicator's own
        (half-normal, scale ``priors.drift_sd`` for the location, ``priors.loading_drift_sd`` for the log
        loading; a step over a gap of d years has SD ``sqrt(d)`` times it), the path sums to zero over the
        periods in which the indicator has data, so the intercept (or cut-point centre) stays its average
        over them and the loading its geometric mean (see :mod:`nexusbayes.model.drift`). A trait's trend
        over periods is then identified only by the indicators whose location does not drift, and its spread
        in each period only by those whose loading does not: the spec is refused unless the first pin down
        every trait's trend (:func:`trend_free_traits`) and every trait has one of the second
        (:func:`scale_free_traits`).
    missing : {"ignorable", "informative"}
        What a non-report says (rows with ``status = "not_reported"`` in the data; see ``data/README.md``).
        ``"ignorable"`` (default): nothing, and such rows are dropped. ``"informative"``: whether the
        indicator is reported is itself an outcome, Bernoulli over every region-period at which the series
        existed (a row with a value or a non-report), with logit ``reporting intercept (+ a sum-to-zero
        country offset when comparable = false) + reporting loadings . traits``, the loadings free on every
        trait (normal, scale ``priors.reporting_loading``), so non-reports inform the traits (low capability, fewer
        reports). See :func:`nexusbayes.model.reporting.reporting_likelihood`. The data must hold at least
        one non-report of the indicator.
    quota : int or str, optional
        Quota heaping (counts: ``negbin`` and ``binomial`` only): a whole number >= 0 at which reports pile
        up, or the name of a data column giving it per row (e.g. a quota set per region and year). The
        observed count is then the honest count with probability ``1 - pi`` and the quota with probability
        ``pi``, ``logit(pi) = heap_intercept + heap_loading . theta`` with loadings at most 0 on every trait (gaming
        as a sign of low capability or willingness; the sign also identifies, see :mod:`nexusbayes.model.heaping`).
    zero_inflated : bool
        Structural zeros (counts only): with probability ``pi0``, ``logit(pi0) = zero_intercept +
        zero_loading . theta``, the report is 0 whatever the honest count (a series not collected but
        recorded as nothing). With a ``quota`` too, the quota must not be 0.
    """

    family: FamilyName
    loads: dict[str, Sign]
    categories: Annotated[int, Field(ge=2, le=20)] | None = None
    label: str | None = None
    comparable: bool = True
    drift: DriftKind | list[DriftKind] | None = None
    missing: Literal["ignorable", "informative"] = "ignorable"
    quota: Annotated[int | str | None, BeforeValidator(_quota)] = None
    zero_inflated: bool = False

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
        self._check_drift()
        self._check_inflation()
        return self

    def _check_drift(self) -> None:
        """A drift the family has, each kind once, a list that is not empty."""
        if isinstance(self.drift, list):
            if not self.drift:
                raise ValueError("`drift = []` is empty: leave `drift` out, or list what drifts, e.g. "
                                 "drift = [\"intercept\", \"loading\"]")
            if len(set(self.drift)) != len(self.drift):
                raise ValueError(f"`drift = {self.drift}` names a kind twice: list each of \"intercept\", "
                                 "\"cutpoints\", \"loading\" once")
        if "intercept" in self.drifts and self.family == "ordinal":
            raise ValueError("an ordinal indicator has no intercept (its cut-points carry its location); "
                             "use drift = \"cutpoints\" for cut-points whose centre drifts over periods")
        if "cutpoints" in self.drifts and self.family != "ordinal":
            raise ValueError(f"drift = \"cutpoints\" is for ordinal indicators; a {self.family} indicator "
                             "drifts through its intercept: drift = \"intercept\"")

    @property
    def drifts(self) -> tuple[str, ...]:
        """What drifts over periods (``()`` without ``drift``), in the order given."""
        if self.drift is None:
            return ()
        return (self.drift,) if isinstance(self.drift, str) else tuple(self.drift)

    @property
    def location_drift(self) -> str | None:
        """``"intercept"`` or ``"cutpoints"`` when the indicator's location drifts, else None."""
        return next((k for k in self.drifts if k != "loading"), None)

    @property
    def loading_drift(self) -> bool:
        """Whether the indicator's loadings drift (a random walk of their log)."""
        return "loading" in self.drifts

    def _check_inflation(self) -> None:
        """Quota heaping and zero inflation only for counts; a quota that is a whole number or a column name."""
        counts = ("negbin", "binomial")
        for key, given in (("quota", self.quota is not None), ("zero_inflated", self.zero_inflated)):
            if given and self.family not in counts:
                raise ValueError(f"`{key}` is for count indicators ({' or '.join(counts)}), not {self.family!r}: "
                                 f"remove `{key}` or change the family")
        if isinstance(self.quota, str) and not self.quota.strip():
            raise ValueError("`quota` is an empty column name: give a whole number (quota = 10) or the name of the "
                             "data column holding each row's quota (quota = \"quota_target\")")
        if self.quota == 0 and not isinstance(self.quota, str) and self.zero_inflated:
            raise ValueError("`quota = 0` with `zero_inflated = true` puts the heap and the structural zeros on the "
                             "same value, which the data cannot tell apart: keep one of them")

    @property
    def inflated(self) -> bool:
        """Whether the indicator's counts are a mixture (``quota`` or ``zero_inflated``)."""
        return self.quota is not None or self.zero_inflated


def trend_free_traits(traits: list[str], every: dict[str, Indicator]) -> list[str]:
    """Traits whose common trend over periods the indicators without location drift do not identify ([] if all are).

    Location drift is ``drift`` of an intercept or cut-points (a drifting loading leaves the trend identified: it
    scales the trait's spread in a period, not its level). A shift ``delta_k`` of trait k in one period is undone by
    drifting indicators' intercepts (or cut-point centres), so only the indicators without drift tell it from drift:
    their loadings ``L`` must satisfy ``L delta = 0`` only for ``delta = 0``, i.e. have full column rank. For
    loadings in general position that holds exactly when every trait can be matched to its own indicator without
    drift that loads on it (the structural rank of the loading pattern, by augmenting paths). Every indicator
    loading on a trait drifting fails it; a trait whose anchor drifts passes when other indicators without drift pin
    its trend down. When it fails, the traits returned are a set that the indicators without drift cannot separate
    (Hall's condition): they load on fewer of them than there are traits in it. Item-bank items never drift and
    count once per trait.

    Examples
    --------
    >>> ind = lambda loads, drift=None: Indicator(family="normal", loads=loads, drift=drift)
    >>> trend_free_traits(["a"], {"x": ind({"a": "positive"}, "intercept"), "y": ind({"a": "free"})})
    []
    >>> trend_free_traits(["a", "b"], {"x": ind({"a": "positive"}, "intercept"), "y": ind({"b": "positive"}),
    ...                                 "z": ind({"a": "free", "b": "free"})})
    []
    >>> trend_free_traits(["a", "b"], {"x": ind({"a": "positive"}, "intercept"),
    ...                                 "y": ind({"b": "positive"}, "intercept"), "z": ind({"a": "free", "b": "free"})})
    ['a', 'b']
    """
    steady = [(n, ind) for n, ind in every.items() if ind.location_drift is None]
    slots = [(n, copy) for n, ind in steady for copy in range(len(traits) if n == "(item_bank)" else 1)]
    reach = {trait: [s for s in slots if trait in dict(steady)[s[0]].loads] for trait in traits}
    owner: dict = {}

    def augment(trait: str, seen: set) -> bool:
        for slot in reach[trait]:
            if slot not in seen:
                seen.add(slot)
                if slot not in owner or augment(owner[slot], seen):
                    owner[slot] = trait
                    return True
        return False

    for trait in traits:
        seen: set = set()
        if not augment(trait, seen):
            # the traits reachable from it by alternating paths share too few indicators (Hall's condition)
            return [t for t in traits if t == trait or t in {owner[s] for s in seen if s in owner}]
    return []


def scale_free_traits(traits: list[str], every: dict[str, Indicator]) -> list[str]:
    """Traits whose spread over regions in each period no indicator without a drifting loading fixes.

    A drifting loading multiplies the indicator's loadings in period t by ``exp(path_t)``; scaling trait k in
    period t by ``c`` (``theta[:, t, k] -> c theta[:, t, k]``) is undone by lowering that path by ``log c`` when
    every indicator loading on k drifts so, and the traits' standardisation over all region-periods fixes
    only their overall spread, so the trait's spread per period (hence how far regions move apart or together)
    would be set by the prior alone. An indicator whose loading does not drift fixes ``c = 1`` for every trait
    it loads on, whatever its other loadings (the regions' traits vary independently), and anchors (zero
    loadings elsewhere) rule out a rotation per period, so a trait needs one such indicator. Item-bank items
    never drift.

    Examples
    --------
    >>> ind = lambda loads, drift=None: Indicator(family="normal", loads=loads, drift=drift)
    >>> scale_free_traits(["a"], {"x": ind({"a": "positive"}, "loading"), "y": ind({"a": "free"}, "intercept")})
    []
    >>> scale_free_traits(["a", "b"], {"x": ind({"a": "positive"}, "loading"), "y": ind({"b": "positive"}),
    ...                                 "z": ind({"a": "free", "b": "free"}, ["intercept", "loading"])})
    ['a']
    """
    return [t for t in traits if not any(t in ind.loads and not ind.loading_drift for ind in every.values())]


class ItemBank(_Strict):
    """Settings shared by every indicator in the data that ``[indicators]`` does not list.

    For item-response data with thousands of items (court cases, roll calls, test questions),
    which cannot sensibly be listed one by one: ``[item_bank]`` with ``family`` and ``loads``
    (and ``categories`` for ordinal items) makes each unlisted value of the data's ``indicator``
    column an indicator of its own, with its own intercept and loadings. Without an item bank an
    unlisted indicator in the data is an error. ``missing = "informative"`` gives every item its own
    reporting model (see :class:`Indicator`; abstentions that depend on the traits): the data must hold
    at least one non-report of a bank item, not one of each.

    Examples
    --------
    >>> bank = ItemBank(family="bernoulli", loads={"ideology": "free"})
    >>> item = bank.indicator()
    >>> item.family, item.loads, item.comparable, item.drift, item.missing, item.quota
    ('bernoulli', {'ideology': 'free'}, True, None, 'ignorable', None)
    """

    family: FamilyName
    loads: dict[str, Sign]
    categories: Annotated[int, Field(ge=2, le=20)] | None = None
    missing: Literal["ignorable", "informative"] = "ignorable"

    @model_validator(mode="after")
    def _check(self) -> ItemBank:
        self.indicator()   # the same checks as a listed indicator
        return self

    def indicator(self) -> Indicator:
        """The settings as an :class:`Indicator` (what every bank item is)."""
        return Indicator(family=self.family, loads=self.loads, categories=self.categories, missing=self.missing)
