"""Covariates on a regime model's transitions (``[covariates]`` columns with ``on = "transition"``).

A covariate ``x[r, t]`` (standardised over the region-periods the model uses, as the trait model's; see
:class:`nexusbayes.data.covariate_table.CovariateTable`) shifts the log-odds of *leaving* the current type on
the step into period t, in every row of the transition matrix alike::

    logit_rt[a, b] = log transition[c(r), a, b] + [b != a] * sum_k effect[k] * x[r, t, k]
    P_rt[a, :]     = softmax(logit_rt[a, :])   (then to the power of the step's gap in time units)

so ``effect[k]`` is the change in the log-odds of leaving a type (any type) per SD of covariate k, and the
shares of the destinations among the moves are the country's matrix's. At ``x = 0`` (the covariates' mean)
the matrix is ``transition[c]``, which the result API reports. Identified: each row's staying logit is the
reference, one coefficient per covariate (normal prior of SD ``prior_scale``, role ``effect``, labelled
``covariate:leave`` so :func:`nexusbayes.analysis.covariates.covariate_effects` tabulates it). A gap of m time
units holds the covariate's value of the later period over the m unit steps.

Examples
--------
>>> import numpy as np
>>> trans = np.full((1, 1, 2, 2), 0.5)
>>> p = np.exp(log_transitions(trans, np.array([0]), np.array([1]), np.full((1, 2, 1), 1.0), np.log([[3.0]])))
>>> p[0, 0, 0].round(3).tolist()          # odds of leaving 1:1 times 3
[[0.25, 0.75], [0.75, 0.25]]
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.constants import TYPES
from nexusbayes.data.panel import Panel
from nexusbayes.model.covariates import EFFECT, EFFECT_DIM
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec

#: The target's name in a transition effect's label (``covariate:leave``).
LEAVE = "leave"


def transition_columns(spec: Spec) -> list[str]:
    """The spec's covariates acting on the transitions, in spec order (empty without any)."""
    if spec.covariates is None:
        return []
    return [name for name, e in spec.covariates.columns.items() if e.on == "transition"]


def transition_effects(spec: Spec, panel: Panel):
    """Declare the covariates' data and effects: ``(x (region, period, covariate), effect (covariate,))`` or None."""
    names = transition_columns(spec)
    if not names:
        return None
    table = panel.covariates
    if table is None:
        raise ValueError(f"spec {spec.name!r} has [covariates] but the panel carries no covariate table; attach "
                         "it with nexusbayes.data.covariates.attach_covariates")
    model = pm.Model.get_context()
    model.add_coord("covariate", table.names)
    model.add_coord(EFFECT_DIM, [f"{n}:{LEAVE}" for n in names])
    x = pm.Data("covariate_values", table.standardised(), dims=("region", "period", "covariate"))
    scale = np.array([spec.covariates.columns[n].prior_scale for n in names])
    effect = declare(pm.Normal(EFFECT, 0.0, scale, dims=EFFECT_DIM), "effect")
    return x[:, :, [table.names.index(n) for n in names]], effect


def transition_values(spec: Spec, panel: Panel) -> np.ndarray | None:
    """The standardised values of the transition covariates, (region, period, covariate), or None (NumPy)."""
    names = transition_columns(spec)
    if not names or panel.covariates is None:
        return None
    return panel.covariates.standardised()[:, :, [panel.covariates.names.index(n) for n in names]]


def _off_diagonal(n_state: int) -> np.ndarray:
    return 1.0 - np.eye(n_state)


def log_transitions_pt(transition, region_country: np.ndarray, multiples: np.ndarray, x, effect):
    """Log transition probabilities per region and step, (region, step, S, S), with the covariates' shifts (PyTensor).

    ``transition`` (country, S, S); ``x`` (region, period, covariate); ``effect`` (covariate,).
    """
    n_state = len(TYPES)
    shift = pt.dot(x[:, 1:], effect)                                                # (region, step)
    logits = pt.log(transition)[region_country][:, None] + shift[:, :, None, None] * _off_diagonal(n_state)
    unit = pt.special.softmax(logits, axis=-1)                                      # (region, step, S, S)
    steps = []
    for t, m in enumerate(multiples):
        step, power = unit[:, t], None
        for _ in range(int(m)):           # gaps are a few units at most: repeated products
            power = step if power is None else pt.matmul(power, step)
        steps.append(power)
    return pt.log(pt.stack(steps, axis=1))


def log_transitions(transition: np.ndarray, region_country: np.ndarray, multiples: np.ndarray, x: np.ndarray,
                    effect: np.ndarray) -> np.ndarray:
    """The same in NumPy per draw: (draw, region, step, S, S).

    ``transition`` (draw, country, S, S), ``x`` (region, period, covariate), ``effect`` (draw, covariate).
    """
    n_state = transition.shape[-1]
    shift = np.einsum("rtk,dk->drt", x[:, 1:], effect)
    with np.errstate(divide="ignore"):
        logits = np.log(transition)[:, region_country][:, :, None] + shift[..., None, None] * _off_diagonal(n_state)
    logits = logits - logits.max(axis=-1, keepdims=True)
    unit = np.exp(logits)
    unit /= unit.sum(axis=-1, keepdims=True)
    steps = np.stack([np.linalg.matrix_power(unit[:, :, t], int(m)) for t, m in enumerate(multiples)], axis=2)
    with np.errstate(divide="ignore"):
        return np.log(steps)
