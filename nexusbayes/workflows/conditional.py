"""Second-stage regressions over plausible values conditional on the outcome (``regress(..., conditional=True)``).

Plausible values drawn from the measurement model alone shrink a trait's slope in a second-stage regression
towards zero by the trait's reliability (:mod:`nexusbayes.analysis.second_stage`). Large-scale assessments
remove that bias by drawing the plausible values from a model that includes the second stage's variables.
Here the outcome joins the measurement model as one more normal indicator loading on the formula's traits,
``y = m + s (a + sum_k b_k theta_k + sigma e)``: the same linear-normal regression as the second stage, so the
traits' posterior, and the plausible values drawn from it, carry the outcome's information. Each loading's sign
is fixed to that of the slope on posterior means: with a free sign, a precise outcome beside weak indicators
gives the refit a mirror mode (trait = minus the outcome, the indicators' loadings near zero) in which chains
stay, and the slope comes out reversed (seen: -0.84 for a true 0.8 on two binary items). The spec with that
indicator is refitted (the one cost: a second fit) and the second stage is run over its plausible values and
combined by Rubin's rules, next to the unconditional plausible values and the regression on posterior means of
the original fit.

Only formulas whose terms are traits (``y ~ capability + willingness``) can be conditioned on this way. A
formula with other columns (``y ~ capability + aid``) is refused, naming them: the outcome indicator would need
their effects in its own linear predictor (indicator-level covariates, which the measurement model does not
have), and without them the refit would credit the columns' share of the outcome to the traits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from nexusbayes.analysis import second_stage
from nexusbayes.analysis.formula import Formula, FormulaError
from nexusbayes.analysis.typology import interval_names
from nexusbayes.constants import CI_PROB
from nexusbayes.fit import Fit
from nexusbayes.fit import fit as fit_model
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator
from nexusbayes.workflows.forecast_check import kept_table

#: The conditioning indicator's name prefix (``outcome_<column>``).
PREFIX = "outcome_"


def regress(fit: Fit, formula: str, data: pd.DataFrame, n: int = 20, seed: int = 0, ci_prob: float = CI_PROB,
            conditional: bool = False, fit_options: dict | None = None) -> second_stage.Regression:
    """Regress an outcome on the traits over plausible values; with ``conditional``, PVs conditioned on it.

    Without ``conditional``: :func:`nexusbayes.analysis.second_stage.regress`. With it, the fit's spec is
    refitted with the outcome as a normal indicator of the formula's traits (see the module docstring), and the
    table's ``estimate``, ``se``, interval, ``df`` and ``fmi`` are those of that refit's plausible values; the
    columns ``unconditional_*`` hold the original fit's plausible values' and ``naive_*`` its posterior means'.

    Parameters
    ----------
    fit : Fit
    formula, data, n, seed, ci_prob
        As :func:`nexusbayes.analysis.second_stage.regress`.
    conditional : bool
        Condition the plausible values on the outcome (costs a refit).
    fit_options : dict, optional
        For the refit (:func:`nexusbayes.fit.fit`: ``draws``, ``tune``, ``chains``, ``seed``, ...).
    """
    base = second_stage.regress(fit, formula, data, n=n, seed=seed, ci_prob=ci_prob)   # validates the input
    if not conditional:
        return base
    signs = {t: float(np.sign(base.table.loc[t, "naive_estimate"])) for t in _traits_of(fit.spec, formula)[1]}
    refit = fit_model(conditioned_spec(fit.spec, formula, signs), conditioned_table(fit, formula, data),
                covariates=fit.panel.covariates.frame if fit.panel.covariates is not None else None,
                **{"progress": False, "check": False, **(fit_options or {})})
    cond = second_stage.regress(refit, formula, data, n=n, seed=seed, ci_prob=ci_prob)
    lo, hi = interval_names(ci_prob)
    shown = ["estimate", "se", lo, hi, "fmi"]
    table = cond.table[[*shown, "df", "within", "between"]].join(
        base.table[shown].add_prefix("unconditional_")).join(base.table.filter(like="naive_"))
    said = f"{formula} (plausible values conditional on {Formula.parse(formula).outcome!r})"
    return dataclasses.replace(base, formula=said, table=table)


def _traits_of(spec: Spec, formula: str) -> tuple[str, list[str]]:
    """The formula's outcome and traits; a FormulaError naming any term that is not a trait.

    Examples
    --------
    >>> from nexusbayes.model.simulate import default_spec
    >>> _traits_of(default_spec(), "y ~ willingness + capability")
    ('y', ['willingness', 'capability'])
    >>> _traits_of(default_spec(), "y ~ capability + aid + capability:aid")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nexusbayes.analysis.formula.FormulaError: formula 'y ~ capability + aid + capability:aid': ... the terms 'aid', \
'capability:aid', which are not traits (capability, willingness): ... drop them ('y ~ capability') or run this \
formula with conditional=False
    """
    parsed = Formula.parse(formula)
    traits = [t[0] for t in parsed.terms if len(t) == 1 and t[0] in spec.traits]
    others = [":".join(t) for t in parsed.terms if not (len(t) == 1 and t[0] in spec.traits)]
    suggestion = f"{parsed.outcome} ~ {' + '.join(traits or spec.traits)}"
    if others:
        many = len(others) > 1
        raise FormulaError(
            f"formula {formula!r}: conditional plausible values cannot condition on the term{'s' * many} "
            f"{', '.join(map(repr, others))}, which {'are not traits' if many else 'is not a trait'} "
            f"({', '.join(spec.traits)}): the outcome joins the measurement model as an indicator of the traits "
            f"alone, and an effect of another column on it is not modelled (its share of {parsed.outcome!r} would "
            f"be credited to the traits); drop {'them' if many else 'it'} ({suggestion!r}) or run this formula "
            "with conditional=False")
    if not traits or not parsed.intercept:
        raise FormulaError(f"formula {formula!r}: conditional plausible values need at least one trait and an "
                           f"intercept (e.g. {suggestion!r}); run the others with conditional=False")
    return parsed.outcome, traits


def conditioned_spec(spec: Spec, formula: str, signs: dict[str, float] | None = None) -> Spec:
    """The spec with the outcome as a normal indicator loading on the formula's traits.

    Each loading's sign is that of ``signs[trait]`` (the slope on posterior means), or free without it.
    """
    outcome, traits = _traits_of(spec, formula)
    signs = signs or {}
    name = PREFIX + outcome
    if name in spec.indicators:
        raise FormulaError(f"the spec already has an indicator {name!r}: rename the outcome column")
    sign = {1.0: "positive", -1.0: "negative"}
    indicator = Indicator(family="normal", loads={t: sign.get(signs.get(t), "free") for t in traits},
                          label=f"second-stage outcome {outcome!r}")
    return spec.model_copy(update={"indicators": {**spec.indicators, name: indicator}})


def conditioned_table(fit: Fit, formula: str, data: pd.DataFrame) -> pd.DataFrame:
    """The fit's indicator table with the outcome's rows added (one per data row, at its region-period)."""
    outcome, _ = _traits_of(fit.spec, formula)
    panel = fit.panel
    periods = {str(p): p for p in panel.periods}
    rows = pd.DataFrame({"country": data["region"].astype(str).map(panel.country_of).to_numpy(),
                         "region": data["region"].astype(str).to_numpy(),
                         "period": data["period"].astype(str).map(periods).to_numpy(),
                         "indicator": PREFIX + outcome,
                         "value": np.asarray(data[outcome], dtype=float)})
    return pd.concat([kept_table(panel, 0), rows], ignore_index=True)
