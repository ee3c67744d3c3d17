"""What drives the traits: the covariates' effects, and the transitions they change (``[covariates]``).

:func:`covariate_effects` summarises each coefficient ``covariate_effect`` (see
:mod:`nexusbayes.model.covariates`) per SD of the covariate and per raw unit, with an equal-tailed interval and
P(effect > 0). :func:`transition_contrast` shows what an effect on the steps does to the types: per country, the
probability that a region changes type from one period to the next when the covariate takes one of two values.

Examples
--------
>>> import numpy as np
>>> [round(v, 3) for v in effect_summary(np.array([[-0.1, 0.2, 0.3, 0.4]]), 0.5)]
[0.2, 0.125, 0.325, 0.75]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis.typology import SAMPLE_DIMS, classify, eti, interval_names, threshold_draws
from nexusbayes.constants import CI_PROB
from nexusbayes.data.panel import Panel
from nexusbayes.model.covariates import EFFECT, EFFECT_DIM
from nexusbayes.spec.document import Spec


def effect_summary(draws: np.ndarray, ci_prob: float) -> tuple[float, float, float, float]:
    """(mean, lower, upper, P(> 0)) of the draws of one effect (any shape)."""
    flat = np.asarray(draws, dtype=float).ravel()
    lower, upper = eti(flat, ci_prob)
    return float(flat.mean()), float(lower), float(upper), float((flat > 0).mean())


def covariate_effects(tree: xr.DataTree, spec: Spec, panel: Panel, ci_prob: float | None = None) -> pd.DataFrame:
    """The table of effects: one row per covariate and trait it acts on.

    Columns: ``covariate``, ``label``, ``on`` (level or step), ``trait``; ``mean``, the interval and
    ``sd`` of the effect per SD of the covariate (in SDs of the standardised trait; per year for steps);
    ``covariate_sd`` (the covariate's SD in its raw units, over the region-periods the model uses) and
    ``per_unit_mean`` with its interval (the effect per raw unit: per SD over ``covariate_sd``); and
    ``p_positive``, the posterior probability that the effect is above 0.
    """
    ci_prob = CI_PROB if ci_prob is None else ci_prob
    if spec.covariates is None:
        raise ValueError(f"spec {spec.name!r} has no [covariates]: there are no effects to summarise")
    post = tree["posterior"]
    low, high = interval_names(ci_prob)
    rows = []
    for label in post[EFFECT][EFFECT_DIM].values.tolist():
        name, trait = label.rsplit(":", 1)
        setting = spec.covariates.columns[name]
        unit = float(panel.covariates.scale[panel.covariates.names.index(name)])
        draws = post[EFFECT].sel({EFFECT_DIM: label}).values
        mean, lower, upper, positive = effect_summary(draws, ci_prob)
        rows.append({"covariate": name, "label": setting.label or name, "on": setting.on, "trait": trait,
                     "mean": mean, low: lower, high: upper, "sd": float(draws.std()), "covariate_sd": unit,
                     "per_unit_mean": mean / unit, f"per_unit_{low}": lower / unit,
                     f"per_unit_{high}": upper / unit, "p_positive": positive})
    return pd.DataFrame(rows)


def transition_contrast(tree: xr.DataTree, spec: Spec, panel: Panel, covariate: str,
                        values: tuple[float, float] | None = None, ci_prob: float | None = None) -> pd.DataFrame:
    """P(a region changes type between periods | the covariate at each of two values), per country.

    For every draw, region and step into period t, the trait in t is moved by what the step would have
    been with the covariate at value v instead of its observed ``x[r, t]``: ``effect * (v - x[r, t]) /
    covariate_sd * gap`` (the fitted innovation kept; a counterfactual of that one step). The region changes
    type when its type in t so moved differs from its type in t - 1. The probability is the share of the
    country's region-steps that change, per draw; its mean and interval over draws are reported.

    Parameters
    ----------
    covariate : str
        A covariate of ``[covariates]`` acting on the steps.
    values : (float, float), optional
        The two values in the covariate's raw units; default its 10th and 90th percentiles over the
        region-periods the model uses.

    Returns
    -------
    pandas.DataFrame
        One row per country and setting: ``country``, ``covariate``, ``setting`` (``observed``: the
        covariate as observed; ``low`` and ``high``: at the two values), ``value`` (NaN when observed),
        ``mean`` and the interval of P(change of type).
    """
    ci_prob = CI_PROB if ci_prob is None else ci_prob
    if not spec.has_typology:
        raise ValueError(f"transitions need the typology's traits 'capability' and 'willingness'; the spec has "
                         f"{spec.traits}")
    setting = spec.covariates.columns.get(covariate) if spec.covariates else None
    if setting is None or setting.on != "step":
        steps = [n for n, e in (spec.covariates.columns.items() if spec.covariates else ()) if e.on == "step"]
        raise ValueError(f"{covariate!r} is not a covariate on the steps (those are: {steps or 'none'})")
    table = panel.covariates
    k = table.names.index(covariate)
    x = table.values[:, 1:, k]                                                       # (region, step), raw units
    if values is None:
        values = tuple(np.quantile(x, [0.1, 0.9]).tolist())
    post = tree["posterior"]
    theta = post["theta"].transpose(*SAMPLE_DIMS, "region", "period", "trait").values
    theta = theta.reshape(-1, *theta.shape[2:])                                       # (draw, region, period, trait)
    shift = np.zeros((theta.shape[0], len(spec.traits)))                              # effect per raw unit
    for t, trait in enumerate(spec.traits):
        if trait in setting.traits:
            shift[:, t] = post[EFFECT].sel({EFFECT_DIM: f"{covariate}:{trait}"}).values.ravel() / table.scale[k]
    gap = np.diff(np.asarray(panel.period_time, dtype=float))                        # (step,)
    thresholds = [threshold_draws(tree, spec, trait).values.ravel() for trait in ("capability", "willingness")]
    cap, will = spec.traits.index("capability"), spec.traits.index("willingness")

    def codes(th):   # (draw, region, period) types
        return classify(th[..., cap], th[..., will], thresholds[0][:, None, None], thresholds[1][:, None, None])

    before = codes(theta[:, :, :-1])
    low, high = interval_names(ci_prob)
    rows = []
    for setting_name, value in (("observed", None), ("low", values[0]), ("high", values[1])):
        moved = theta[:, :, 1:].copy()
        if value is not None:
            moved += shift[:, None, None, :] * ((value - x) * gap[None, :])[None, :, :, None]
        changed = codes(moved) != before                                              # (draw, region, step)
        for c, country in enumerate(panel.countries):
            share = changed[:, panel.region_country == c].mean(axis=(1, 2))           # (draw,)
            lower, upper = eti(share, ci_prob)
            rows.append({"country": country, "covariate": covariate, "setting": setting_name,
                         "value": np.nan if value is None else float(value), "mean": float(share.mean()),
                         low: float(lower), high: float(upper)})
    return pd.DataFrame(rows)
