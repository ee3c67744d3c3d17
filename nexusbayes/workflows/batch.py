"""Run many fits on Dask distributed: one folder per task, resumable, reproducible, robust to dying workers.

A :class:`Task` is a name, a spec, a data source and fit options. :func:`run_batch` fits every task on
a Dask cluster (a local one by default), writes each result as soon as it arrives, skips tasks whose
result is already on disk, and returns one tidy row per task. Recovery studies and sensitivity sweeps
(:func:`sweep_tasks`) are batches.

Underneath is a generic layer: a :class:`Job` is a name, an identity (what its result depends on) and a
work function run on a worker; :func:`run_jobs` submits jobs, gathers and writes their results as they
finish, skips the ones already done and records failures. :func:`run_batch` runs each task as a job;
simulation-based calibration (:func:`nexusbayes.workflows.sbc.run_sbc`) runs each simulation as one.

Layout of ``out_dir``::

    out_dir/<task name>/summary.json   the task's record (written last: its presence means "done")
    out_dir/<task name>/fit.nc         the whole fit (only with ``save_fits=True``)
    out_dir/<task name>/error.json     exception type, message and traceback of a failed task
    out_dir/batch.csv                  the table :func:`run_batch` returns

Seeds come from the batch seed and the task's *name* (never its position or the worker that runs it),
so the same batch gives the same results with any number of workers, in any order, after any resume.

Examples
--------
>>> from nexusbayes.model.simulate import default_spec
>>> tasks = [Task(f"sim{i}", default_spec(), Simulate(n_regions=3, n_periods=4), {"draws": 100, "chains": 1})
...          for i in range(4)]
>>> task_seeds(2024, "sim0") == task_seeds(2024, "sim0"), task_seeds(2024, "sim0") != task_seeds(2024, "sim1")
(True, True)
>>> table = run_batch(tasks, "runs/sim", n_workers=2, seed=2024)  # doctest: +SKIP
>>> table[["task", "status", "max_rhat", "divergences"]]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nexusbayes.analysis.recovery import correlation, interval_covers, on_labels
from nexusbayes.constants import TYPES
from nexusbayes.errors import SpecError
from nexusbayes.files import atomic_write, write_csv
from nexusbayes.fit import Fit, fit
from nexusbayes.model.simulate import Simulation, simulate
from nexusbayes.outputs import FIT_FILE
from nexusbayes.spec.document import Spec
from nexusbayes.spec.limits import NAME_PATTERN
from nexusbayes.workflows.jobs import Job, JobResult, check_workers, run_jobs

#: The table of a batch: one row per task.
TABLE_FILE = "batch.csv"
#: Fit options a task may set (the keyword arguments of :func:`nexusbayes.fit.fit`).
FIT_OPTIONS = ("backend", "draws", "tune", "chains", "seed")


Summariser = Callable[[Fit, Any], dict]


# ---- tasks --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Simulate:
    """Recipe for data simulated on the worker with :func:`nexusbayes.model.simulate.simulate`.

    Parameters
    ----------
    spec : Spec, optional
        Generating spec; default the task's own spec.
    n_countries, n_regions, n_periods, missing, n_raters
        Shape, as in :func:`~nexusbayes.model.simulate.simulate`.
    seed : int, optional
        Data seed; default derived from the batch seed and the task name (see :func:`task_seeds`).
    """

    spec: Spec | None = None
    n_countries: int = 1
    n_regions: int = 3
    n_periods: int = 4
    missing: float = 0.0
    n_raters: int = 0
    seed: int | None = None

    def shape(self) -> dict:
        """The keyword arguments of ``simulate`` other than ``spec`` and ``seed``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("spec", "seed")}


TaskData = str | Path | pd.DataFrame | Simulation | Simulate | Callable[[int], "pd.DataFrame | Simulation"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One fit of a batch.

    Parameters
    ----------
    name : str
        Unique within the batch; names the task's output folder, so only letters, digits and ``_.-``.
    spec : Spec or dict
        The model specification (a dict is validated into a :class:`~nexusbayes.spec.document.Spec`).
    data : path, DataFrame, Simulation, Simulate or callable
        A CSV/Parquet path (read on the worker, so it must be visible there), a DataFrame, a
        :class:`~nexusbayes.model.simulate.Simulation` (its truth goes to the summariser), a :class:`Simulate`
        recipe (simulated on the worker), or a callable ``f(seed) -> DataFrame | Simulation`` run on the
        worker with the task's data seed (for custom simulators, e.g. draws from the prior for SBC).
    options : dict
        Keyword arguments for :func:`~nexusbayes.fit.fit`: ``backend``, ``draws``, ``tune``, ``chains``,
        ``seed``. Without ``seed`` the sampler seed is derived from the batch seed and the name (the
        spec's own ``sampler.seed`` is not used, so that every task of a batch gets its own stream).

    Examples
    --------
    >>> from nexusbayes.model.simulate import default_spec
    >>> Task("a b", default_spec(), Simulate())
    Traceback (most recent call last):
    ...
    nexusbayes.errors.SpecError: task name 'a b': use only letters, digits, '_', '.' and '-' ...
    """

    name: str
    spec: Spec
    data: TaskData
    options: dict = dataclasses.field(default_factory=dict)
    #: The covariate table of a spec with ``[covariates]`` (a path, visible to the workers, or a DataFrame).
    covariates: Path | pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.match(NAME_PATTERN, self.name) or len(self.name) > 100:
            raise SpecError(f"task name {self.name!r}: use only letters, digits, '_', '.' and '-' (starting with a "
                            "letter or digit, at most 100 characters); it names the task's output folder")
        if isinstance(self.spec, dict):
            object.__setattr__(self, "spec", Spec.from_dict(self.spec, source=f"task {self.name!r}"))
        if not isinstance(self.spec, Spec):
            raise SpecError(f"task {self.name!r}: spec must be a Spec or a dict, not {type(self.spec).__name__}")
        unknown = set(self.options) - set(FIT_OPTIONS)
        if unknown:
            raise SpecError(f"task {self.name!r}: unknown fit option(s) {sorted(unknown)}; allowed: "
                            f"{', '.join(FIT_OPTIONS)}")
        if isinstance(self.data, str | Path):
            object.__setattr__(self, "data", Path(self.data).resolve())
        if isinstance(self.covariates, str | Path):
            object.__setattr__(self, "covariates", Path(self.covariates).resolve())


def task_seeds(batch_seed: int, name: str) -> tuple[int, int]:
    """The (data seed, sampler seed) of a task: a function of the batch seed and the task name only.

    The name enters through SHA-256 (Python's ``hash()`` is salted per process), and
    :class:`numpy.random.SeedSequence` turns both into well-mixed, independent 32-bit seeds.

    Examples
    --------
    >>> task_seeds(1, "task-a")
    (3306582283, 156423850)
    """
    words = np.frombuffer(hashlib.sha256(name.encode("utf-8")).digest(), dtype="<u4")
    sequence = np.random.SeedSequence([int(batch_seed), *(int(w) for w in words)])
    data_seed, fit_seed = (int(s) for s in sequence.generate_state(2, dtype=np.uint32))
    return data_seed, fit_seed


# ---- summaries -----------------------------------------------------------------------------------
def diagnostics_summary(fit: Fit, truth=None) -> dict:
    """The default summary: max R-hat, min bulk/tail ESS, divergences, min E-BFMI, verdict and timings.

    Parameters
    ----------
    fit : Fit
    truth : xarray.Dataset, optional
        The simulated truth when there is one (unused here; summarisers receive it for recovery numbers).
    """
    d = fit.diagnostics
    # with a single short chain R-hat can be undefined everywhere: then there is no verdict (None)
    assessable = bool(d.table["max_rhat"].notna().any())
    return {"max_rhat": float(d.table["max_rhat"].max()), "min_ess_bulk": float(d.table["min_ess_bulk"].min()),
            "min_ess_tail": float(d.table["min_ess_tail"].min()), "divergences": int(d.divergences),
            "min_bfmi": float(np.min(d.bfmi)), "diagnostics_passed": bool(d.passed) if assessable else None,
            "n_draws": int(d.n_draws), **{f"seconds_{k}": v for k, v in fit.timings.items()}}


def recovery_summary(fit: Fit, truth=None) -> dict:
    """Diagnostics plus, when the truth is known, how well θ is recovered.

    Adds ``theta_corr`` (correlation of posterior means with the true θ), ``theta_coverage`` (share of
    true values inside the central ``CI_PROB`` interval) and ``theta_rmse`` (:mod:`nexusbayes.analysis.recovery`).
    """
    out = diagnostics_summary(fit)
    if truth is not None:
        theta = fit.tree["posterior"]["theta"]
        mean = theta.mean(("chain", "draw"))
        true = on_labels(truth["theta"], mean)
        out.update({"theta_corr": correlation(mean, true), "theta_coverage": float(interval_covers(theta, true).mean()),
                    "theta_rmse": float(np.sqrt(((mean - true) ** 2).mean()))})
    return out


def sweep_summary(fit: Fit, truth=None) -> dict:
    """Key results for side-by-side comparison: mean θ per country and trait, type shares, diagnostics.

    Keys are ``theta.<country>.<trait>`` (posterior mean over the country's region-periods),
    ``share.<type>`` (mean P(type) over all region-periods, when the spec has both traits of the
    typology) and those of :func:`diagnostics_summary`.

    Notes
    -----
    θ is standardised within each fit (mean 0, SD 1 over its region-periods), so levels compare across
    fits of the same data (prior and leave-one-out sweeps); a per-country fit is standardised over that
    country alone, where the means are 0 by construction and the type shares are relative to it.
    """
    theta = fit.tree["posterior"]["theta"].mean(("chain", "draw"))
    country = [fit.region_country[r] for r in theta["region"].values]
    by_country = theta.assign_coords(country=("region", country)).groupby("country").mean(("region", "period"))
    out = {f"theta.{c}.{t}": float(by_country.sel(country=c, trait=t))
           for c in by_country["country"].values for t in by_country["trait"].values}
    if fit.spec.has_typology:
        shares = fit.type_probabilities().mean(("region", "period"))
        out.update({f"share.{t}": float(shares.sel(type=t)) for t in TYPES})
    out.update(diagnostics_summary(fit))
    return out


# ---- worker side -----------------------------------------------------------------------------------
def _materialise(source: TaskData, spec: Spec, seed: int):
    """The data to fit and the truth (or None)."""
    if isinstance(source, Simulate):
        sim = simulate(source.spec or spec, **source.shape(), seed=seed if source.seed is None else source.seed)
        return sim.frame, sim.truth
    if isinstance(source, Simulation):
        return source.frame, source.truth
    if isinstance(source, str | Path | pd.DataFrame):
        return source, None
    if callable(source):
        made = source(seed)
        if isinstance(made, Simulation):
            return made.frame, made.truth
        if isinstance(made, pd.DataFrame):
            return made, None
        raise TypeError(f"the data callable returned {type(made).__name__}; it must return a DataFrame or a "
                        "Simulation")
    raise TypeError(f"unsupported data source {type(source).__name__}")


def execute(task: Task, seeds: tuple[int, int], summarise: Summariser = diagnostics_summary,
            save_fit: bool = False) -> JobResult:
    """Fit one task where it is called (a worker): materialise the data, fit, summarise.

    The work of :func:`run_batch`'s jobs; :func:`perform` records an exception it raises.

    Returns
    -------
    JobResult
        The summary, and with ``save_fit`` the file ``fit.nc`` (written by :meth:`Fit.save`).
    """
    data, truth = _materialise(task.data, task.spec, seeds[0])
    options = {"seed": seeds[1], **task.options}
    result = fit(task.spec, data, progress=False, check=False, covariates=task.covariates, **options)
    files = {}
    if save_fit:
        with tempfile.TemporaryDirectory(prefix="nexusbayes-batch-") as tmp:
            files[FIT_FILE] = result.save(Path(tmp) / FIT_FILE).read_bytes()
    return JobResult(summarise(result, truth), files)


def run_batch(tasks: Iterable[Task], out_dir: str | Path, *, scheduler: str | None = None, n_workers: int = 2,
              seed: int = 0, progress: bool = True, summarise: Summariser = diagnostics_summary,
              save_fits: bool = False, worker_deaths: int = 2) -> pd.DataFrame:
    """Fit every task on a Dask cluster, writing each result as it finishes; skip tasks already done.

    Parameters
    ----------
    tasks : iterable of Task
        Names must be unique.
    out_dir : path
        One folder per task (see the module docstring) and ``batch.csv``.
    scheduler : str, optional
        Address of a running Dask scheduler; default a local cluster (see :func:`connect`).
    n_workers : int
        Worker processes of the local cluster (one thread each).
    seed : int
        Batch seed; each task's seeds are derived from it and the task name (:func:`task_seeds`).
    progress : bool
        Show a progress bar (on stderr).
    summarise : callable
        ``summarise(fit, truth) -> dict`` of JSON-able values, run on the worker; ``truth`` is the
        simulated truth (xarray.Dataset) or None. Default :func:`diagnostics_summary`.
    save_fits : bool
        Also write each fit's ``fit.nc`` (with its spec and data inside; can be large).
    worker_deaths : int
        How often a task may kill its worker before it is recorded as failed (local cluster).

    Returns
    -------
    pandas.DataFrame
        One row per task, in the order given: ``task``, ``status`` (``ok``, ``failed``, or
        ``skipped`` for a result found on disk), ``seconds`` (on the worker), ``error_type``,
        ``error_message``, then the summary's keys (nested keys joined with ``.``).

    Raises
    ------
    OutputExistsError
        When a task folder holds the result of a different task (another spec, data, options, seed or
        summariser): results are never silently mixed.

    Notes
    -----
    Results are written by this process, atomically (temporary file, then rename); ``summary.json``
    is written last and marks the task done, so an interrupted batch resumes where it stopped. A
    failed task's ``error.json`` does not count as done: a rerun tries it again. Workers only need the
    package, not the output folder.
    """
    check_workers(n_workers, worker_deaths)
    tasks = list(tasks)
    records = run_jobs([_job(t, seed, summarise, save_fits) for t in tasks], out_dir, scheduler=scheduler,
                       n_workers=n_workers, progress=progress, worker_deaths=worker_deaths, what="task")
    table = pd.DataFrame([_row(r) for r in records.values()])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / TABLE_FILE, lambda tmp: write_csv(table, tmp))
    return table


def _job(task: Task, batch_seed: int, summarise: Summariser, save_fits: bool) -> Job:
    """A task as a job, identified by its inputs, seeds and summariser (not by ``save_fits``)."""
    seeds = task_seeds(batch_seed, task.name)
    identity = {"name": task.name, "spec": task.spec.to_toml(), "data": _describe(task.data),
                "options": task.options, "batch_seed": batch_seed, "seeds": list(seeds),
                "summarise": _callable_name(summarise)}
    if task.covariates is not None:
        identity["covariates"] = _describe(task.covariates)
    return Job(task.name, identity, execute, (task, seeds, summarise, save_fits))


def _describe(source: TaskData) -> dict:
    if isinstance(source, Simulate):
        return {"kind": "simulate", **source.shape(), "seed": source.seed,
                "spec": source.spec.to_toml() if source.spec is not None else None}
    if isinstance(source, Simulation):
        return {"kind": "simulation", "sha256": _frame_sha(source.frame)}
    if isinstance(source, pd.DataFrame):
        return {"kind": "dataframe", "rows": len(source), "sha256": _frame_sha(source)}
    if isinstance(source, Path):
        sha = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None
        return {"kind": "file", "path": str(source), "sha256": sha}
    return {"kind": "callable", "name": _callable_name(source)}


def _frame_sha(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False, float_format="%.17g").encode()).hexdigest()


def _callable_name(fn) -> str:
    if isinstance(fn, functools.partial):
        return f"{_callable_name(fn.func)}(*{fn.args!r}, **{fn.keywords!r})"
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def _row(record: dict) -> dict:
    error = record.get("error") or {}
    row = {"task": record["task"], "status": record["status"], "seconds": record.get("seconds"),
           "error_type": error.get("type"), "error_message": error.get("message")}
    summary = record.get("summary") or {}
    row.update(pd.json_normalize(summary, sep=".").iloc[0].to_dict() if summary else {})
    return row
