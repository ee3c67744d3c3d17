"""Sensitivity sweeps: the same fit under other prior scales, without one indicator, or per country."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from nexusbayes.constants import SWEEP_KINDS
from nexusbayes.data.covariates import attach_covariates
from nexusbayes.data.panel import validate
from nexusbayes.data.read import read_table
from nexusbayes.errors import NexusBayesError, SpecError
from nexusbayes.model.build import Model
from nexusbayes.spec.document import Spec
from nexusbayes.workflows.batch import Task

#: The ``[priors]`` fields a ``prior_scale`` sweep may vary: the scales of priors (each swept only when the
#: model's roles registry says a variable uses it).
PRIOR_FIELDS = ("loading", "intercept", "cutpoint", "rater_sd", "noise_sd", "inv_dispersion", "initial_country_sd",
                "innovation_country_sd", "innovation_region_sd", "drift_sd",
                "loading_drift_sd", "reporting_loading", "heap_intercept", "heap_loading")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The tasks of a sensitivity sweep, and the variants refused with the reason.

    Attributes
    ----------
    kind : str
    tasks : list of Task
        ``baseline`` (the spec and data as given) first, then one task per variant.
    refused : dict of str to str
        Variant name to the reason it is not fitted (e.g. dropping the only anchor of a trait).
    """

    kind: str
    tasks: list[Task]
    refused: dict[str, str]


def sweep_tasks(spec: Spec, data: str | Path | pd.DataFrame, kind: str, *, options: dict | None = None,
                factors: tuple[float, ...] = (0.5, 2.0), fields: Iterable[str] | None = None,
                covariates: str | Path | pd.DataFrame | None = None) -> Sweep:
    """Build the tasks of a sensitivity sweep.

    Parameters
    ----------
    spec : Spec
    data : path or DataFrame
        The indicator table.
    kind : {"prior_scale", "leave_one_indicator_out", "per_country"}
        ``prior_scale``: each prior scale the model uses, multiplied by each factor, one at a time
        (task ``prior-<field>-x<factor>``). ``leave_one_indicator_out``: the model without each
        indicator in turn (``drop-<indicator>``); an indicator that is the only anchor of a trait, or
        that a typology threshold is anchored on, is refused with the reason. ``per_country``: one fit
        per country's data (``country-<country>``).
    options : dict, optional
        Fit options for every task (see :class:`Task`).
    factors : tuple of float
        Multipliers of the prior scales (``prior_scale``).
    fields : iterable of str, optional
        Prior fields to sweep (``prior_scale``); default every scale field the model uses.
    covariates : path or DataFrame, optional
        The covariate table of a spec with ``[covariates]``, given to every task (a ``per_country`` task gets
        the rows of its country's regions).

    Returns
    -------
    Sweep

    Examples
    --------
    >>> from nexusbayes.model.simulate import simulate
    >>> from nexusbayes.spec.indicators import Indicator
    >>> spec = Spec(name="demo", indicators={
    ...     "staff": Indicator(family="normal", loads={"capability": "positive"}),
    ...     "seizures": Indicator(family="negbin", loads={"capability": "positive", "willingness": "positive"}),
    ...     "quota": Indicator(family="binomial", loads={"willingness": "positive"})})
    >>> sweep = sweep_tasks(spec, simulate(spec, n_regions=3, n_periods=3).frame, "leave_one_indicator_out")
    >>> [t.name for t in sweep.tasks]
    ['baseline', 'drop-seizures']
    >>> print(sweep.refused["drop-staff"].split(". ")[0])
    trait 'capability' is not identified: no indicator loads on it alone with a fixed sign
    """
    if kind not in SWEEP_KINDS:
        raise SpecError(f"unknown sweep kind {kind!r}; choose one of {', '.join(SWEEP_KINDS)}")
    options = dict(options or {})
    source = Path(data).resolve() if isinstance(data, str | Path) else data
    frame, label, _ = read_table(source)
    if covariates is not None and spec.covariates is None:
        raise SpecError("a covariate table was given, but the spec has no [covariates]")
    covariates = Path(covariates).resolve() if isinstance(covariates, str | Path) else covariates
    tasks = [Task("baseline", spec, source, options, covariates)]
    refused: dict[str, str] = {}
    if kind == "prior_scale":
        used = _used_prior_fields(spec, frame, label, covariates)
        chosen = list(fields) if fields is not None else used
        unknown = [f for f in chosen if f not in PRIOR_FIELDS]
        if unknown:
            raise SpecError(f"not prior scale fields: {unknown}; choose from {', '.join(PRIOR_FIELDS)}")
        for field in chosen:
            for factor in factors:
                name = f"prior-{field}-x{factor:g}"
                if field not in used:
                    refused[name] = f"this model does not use priors.{field}"
                    continue
                priors = spec.priors.model_copy(update={field: getattr(spec.priors, field) * factor})
                tasks.append(Task(name, spec.model_copy(update={"priors": priors}), source, options, covariates))
    elif kind == "leave_one_indicator_out":
        for indicator in spec.indicators:
            name = _safe_name("drop", indicator)
            reason = None
            raw = spec.to_dict()
            del raw["indicators"][indicator]
            try:   # the spec's own rules say what cannot be dropped (e.g. a trait's only anchor)
                variant = Spec.from_dict(raw, source=f"spec without {indicator!r}")
            except SpecError as exc:
                reason = str(exc).split("\n", 1)[-1].strip().removeprefix("- ")
            if reason is not None:
                refused[name] = reason
                continue
            tasks.append(Task(name, variant, frame[frame["indicator"] != indicator].reset_index(drop=True), options,
                              covariates))
    else:
        countries = sorted(frame["country"].dropna().astype(str).unique())
        for country in countries:
            name = _safe_name("country", country)
            if len(countries) == 1:
                refused[name] = "the data hold a single country: its fit is the baseline"
                continue
            rows = frame[frame["country"].astype(str) == country].reset_index(drop=True)
            tasks.append(Task(name, spec, rows, options, _own_rows(covariates, rows)))
    return Sweep(kind=kind, tasks=tasks, refused=refused)


def _safe_name(prefix: str, label: str) -> str:
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}"[:100]


def _own_rows(covariates, rows: pd.DataFrame) -> pd.DataFrame | None:
    """The covariate table's rows of the regions in ``rows`` (a country's data), or None without a table."""
    if covariates is None:
        return None
    table = read_table(covariates)[0]
    regions = set(rows["region"].astype(str).str.strip())
    return table[table["region"].astype(str).str.strip().isin(regions)].reset_index(drop=True)


def _used_prior_fields(spec: Spec, frame: pd.DataFrame, label: str, covariates=None) -> list[str]:
    """The ``[priors]`` scale fields the model of ``spec`` on these data uses (its roles registry; samples nothing)."""
    try:
        panel = attach_covariates(validate(frame, spec, label), spec, covariates)
    except NexusBayesError:
        return list(PRIOR_FIELDS)   # the baseline task will report the data problem
    return Model(spec, panel).roles.used_prior_fields()
