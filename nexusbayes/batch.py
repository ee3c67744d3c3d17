"""Run many fits on Dask distributed: one folder per task, resumable, reproducible, robust to dying workers.

A :class:`Task` is a name, a spec, a data source and fit options. :func:`run_batch` fits every task on
a Dask cluster (a local one by default), writes each result as soon as it arrives, skips tasks whose
result is already on disk, and returns one tidy row per task. Recovery studies and sensitivity sweeps
(:func:`sweep_tasks`) are batches.

Underneath is a generic layer: a :class:`Job` is a name, an identity (what its result depends on) and a
work function run on a worker; :func:`run_jobs` submits jobs, gathers and writes their results as they
finish, skips the ones already done and records failures. :func:`run_batch` runs each task as a job;
simulation-based calibration (:func:`nexusbayes.sbc.run_sbc`) runs each simulation as one.

Layout of ``out_dir``::

    out_dir/<task name>/summary.json   the task's record (written last: its presence means "done")
    out_dir/<task name>/fit.nc         the whole fit (only with ``save_fits=True``)
    out_dir/<task name>/error.json     exception type, message and traceback of a failed task
    out_dir/batch.csv                  the table :func:`run_batch` returns

Seeds come from the batch seed and the task's *name* (never its position or the worker that runs it),
so the same batch gives the same results with any number of workers, in any order, after any resume.

Examples
--------
>>> from nexusbayes.simulate import default_spec
>>> tasks = [Task(f"sim{i}", default_spec(), Simulate(n_regions=3, n_periods=4), {"draws": 100, "chains": 1})
...          for i in range(4)]
>>> task_seeds(2024, "sim0") == task_seeds(2024, "sim0"), task_seeds(2024, "sim0") != task_seeds(2024, "sim1")
(True, True)
>>> table = run_batch(tasks, "runs/sim", n_workers=2, seed=2024)  # doctest: +SKIP
>>> table[["task", "status", "max_rhat", "divergences"]]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nexusbayes.constants import TYPES
from nexusbayes.data import read_table, validate
from nexusbayes.errors import NexusBayesError, OutputExistsError, SettingsError, SpecError
from nexusbayes.fit import Fit, atomic_write, fit
from nexusbayes.outputs import write_csv
from nexusbayes.simulate import Simulation, simulate
from nexusbayes.spec import NAME_PATTERN, Spec

SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.json"
FIT_FILE = "fit.nc"
TABLE_FILE = "batch.csv"
#: Fit options a task may set (the keyword arguments of :func:`nexusbayes.fit.fit`).
FIT_OPTIONS = ("backend", "draws", "tune", "chains", "seed")

Summariser = Callable[[Fit, Any], dict]


# ---- tasks --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Simulate:
    """Recipe for data simulated on the worker with :func:`nexusbayes.simulate.simulate`.

    Parameters
    ----------
    spec : Spec, optional
        Generating spec; default the task's own spec.
    n_countries, n_regions, n_periods, missing, n_raters
        Shape, as in :func:`~nexusbayes.simulate.simulate`.
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


DataSource = str | Path | pd.DataFrame | Simulation | Simulate | Callable[[int], "pd.DataFrame | Simulation"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One fit of a batch.

    Parameters
    ----------
    name : str
        Unique within the batch; names the task's output folder, so only letters, digits and ``_.-``.
    spec : Spec or dict
        The model specification (a dict is validated into a :class:`~nexusbayes.spec.Spec`).
    data : path, DataFrame, Simulation, Simulate or callable
        A CSV/Parquet path (read on the worker, so it must be visible there), a DataFrame, a
        :class:`~nexusbayes.simulate.Simulation` (its truth goes to the summariser), a :class:`Simulate`
        recipe (simulated on the worker), or a callable ``f(seed) -> DataFrame | Simulation`` run on the
        worker with the task's data seed (for custom simulators, e.g. draws from the prior for SBC).
    options : dict
        Keyword arguments for :func:`~nexusbayes.fit.fit`: ``backend``, ``draws``, ``tune``, ``chains``,
        ``seed``. Without ``seed`` the sampler seed is derived from the batch seed and the name (the
        spec's own ``sampler.seed`` is not used, so that every task of a batch gets its own stream).

    Examples
    --------
    >>> from nexusbayes.simulate import default_spec
    >>> Task("a b", default_spec(), Simulate())
    Traceback (most recent call last):
    ...
    nexusbayes.errors.SpecError: task name 'a b': use only letters, digits, '_', '.' and '-' ...
    """

    name: str
    spec: Spec
    data: DataSource
    options: dict = dataclasses.field(default_factory=dict)

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
    true values inside the central ``CI_PROB`` interval) and ``theta_rmse``.
    """
    from nexusbayes.constants import CI_PROB
    from nexusbayes.typology import eti

    out = diagnostics_summary(fit)
    if truth is not None:
        theta = fit.tree["posterior"]["theta"]
        true = truth["theta"].sel(region=theta["region"], period=theta["period"], trait=theta["trait"])
        mean = theta.mean(("chain", "draw"))
        lower, upper = eti(theta, CI_PROB)
        inside = (true >= lower) & (true <= upper)
        out.update({"theta_corr": float(np.corrcoef(mean.values.ravel(), true.values.ravel())[0, 1]),
                    "theta_coverage": float(inside.mean()),
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


# ---- jobs: what runs on the cluster -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class JobResult:
    """What a job's work function returns on the worker.

    Attributes
    ----------
    summary : dict
        JSON-able values (NumPy scalars and arrays are converted, non-finite floats become None): the
        ``summary`` of the job's ``summary.json``.
    files : dict of str to bytes
        Further files for the job's folder (e.g. ``fit.nc``), written before ``summary.json``.
    """

    summary: dict
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work of :func:`run_jobs`: a folder name, what its result depends on, and how to compute it.

    A fit of :func:`run_batch` and a simulation of :func:`nexusbayes.sbc.run_sbc` are jobs.

    Parameters
    ----------
    name : str
        Unique among the jobs of a run; names the job's folder.
    identity : dict
        JSON-able description of everything the result depends on (inputs, seeds, settings). Its
        SHA-256 (:attr:`digest`) decides whether a result on disk is this job's.
    work : callable
        ``work(*args) -> JobResult``, run on a worker (it must be importable there, or pickled by
        value); an exception it raises is recorded as the job's failure (:func:`perform`).
    args : tuple
        The arguments of ``work``, pickled to the worker.

    Examples
    --------
    >>> job = Job("a", {"x": 1}, JobResult, ({"x": 1},))
    >>> job.digest == Job("a", {"x": 1}, JobResult).digest, job.digest == Job("a", {"x": 2}, JobResult).digest
    (True, False)
    """

    name: str
    identity: dict
    work: Callable[..., JobResult]
    args: tuple = ()

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the identity (keys sorted; values that are not JSON types by their ``str``)."""
        return hashlib.sha256(json.dumps(self.identity, sort_keys=True, default=str).encode()).hexdigest()


# ---- worker side -----------------------------------------------------------------------------------
def _materialise(source: DataSource, spec: Spec, seed: int):
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


def _worker_info() -> dict:
    import nexusbayes

    info = {"pid": os.getpid(), "nexusbayes": nexusbayes.__file__}
    with contextlib.suppress(ValueError):  # not on a Dask worker (e.g. called directly)
        from distributed import get_worker

        info["address"] = get_worker().address
    return info


def perform(work: Callable[..., JobResult], *args) -> dict:
    """Run ``work(*args)`` where it is called (a worker) and return the job's record; never raises an Exception.

    An exception is returned as a failure record (type, message, traceback) rather than raised, so
    that it is recorded once and not retried; a worker that dies is retried by the scheduler.

    Returns
    -------
    dict
        ``worker`` (pid, the package file, the Dask address), ``status`` (``"ok"`` or ``"failed"``),
        ``summary`` and ``files`` or ``error``, and ``seconds`` (the whole call).
    """
    start = time.perf_counter()
    record: dict = {"worker": _worker_info()}
    try:
        result = work(*args)
        record["summary"] = _jsonable(result.summary)
        json.dumps(record["summary"], allow_nan=False)   # fail here, with a traceback, if not JSON
        record["files"] = dict(result.files)
        record["status"] = "ok"
    except Exception as exc:  # recorded with its traceback; the run goes on
        record["status"] = "failed"
        record["error"] = _error(exc, traceback.format_exc())
    record["seconds"] = time.perf_counter() - start
    return record


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
    result = fit(task.spec, data, progress=False, check=False, **options)
    files = {}
    if save_fit:
        with tempfile.TemporaryDirectory(prefix="nexusbayes-batch-") as tmp:
            files[FIT_FILE] = result.save(Path(tmp) / FIT_FILE).read_bytes()
    return JobResult(summarise(result, truth), files)


def _error(exc: BaseException, trace: str) -> dict:
    return {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc), "traceback": trace}


def _jsonable(obj):
    """Plain JSON types: NumPy scalars and arrays converted, non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---- client side -----------------------------------------------------------------------------------
@contextlib.contextmanager
def connect(scheduler: str | None = None, n_workers: int = 2, *, worker_deaths: int = 2) -> Iterator:
    """A Dask client: on a new local cluster (``scheduler=None``) or on a running scheduler.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``. Default: start a
        :class:`distributed.LocalCluster` of ``n_workers`` processes with one thread each, closed on exit.
    n_workers : int
        Worker processes of the local cluster.
    worker_deaths : int
        Local cluster only: a task whose worker dies is run again, until it has killed
        ``worker_deaths + 1`` workers; then it fails with ``KilledWorker`` (distributed's
        ``scheduler.allowed-failures``). A running scheduler uses its own setting (default 3).

    Examples
    --------
    >>> with connect(n_workers=2) as client:  # doctest: +SKIP
    ...     print(client.run(lambda: __import__("nexusbayes").__file__))
    """
    import dask
    from distributed import Client, LocalCluster

    check_workers(n_workers, worker_deaths)
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with dask.config.set({"distributed.scheduler.allowed-failures": worker_deaths}):   # read when the scheduler starts
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        yield client


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
    return Job(task.name, identity, execute, (task, seeds, summarise, save_fits))


def run_jobs(jobs: Iterable[Job], out_dir: str | Path, *, scheduler: str | None = None, n_workers: int = 2,
             progress: bool = True, worker_deaths: int = 2, what: str = "job",
             status: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Run jobs on a Dask cluster, writing each result as soon as it arrives; skip jobs already done.

    The machinery of :func:`run_batch` and :func:`nexusbayes.sbc.run_sbc`: one folder per job
    (``out_dir/<job name>/``, laid out as in the module docstring), resumable, robust to failing jobs
    and dying workers.

    Parameters
    ----------
    jobs : iterable of Job
        Names must be unique.
    out_dir : path
        Parent of the job folders.
    scheduler, n_workers, worker_deaths
        The cluster, as in :func:`connect`.
    progress : bool
        Show a progress bar (on stderr).
    what : str
        What a job is called in messages, the progress bar and the Dask keys (``"task"``, ``"sim"``).
    status : callable, optional
        Called with a one-line message: how many jobs were already done, before any is run.

    Returns
    -------
    dict of str to dict
        Each job's record, in the order given, as written to its ``summary.json`` (``status`` ``ok``)
        or ``error.json`` (``failed``); a record found on disk has ``status`` ``skipped``.

    Raises
    ------
    SpecError
        When names repeat.
    OutputExistsError
        When a job folder holds the result of a different job (another identity), naming what changed:
        results are never silently mixed.

    Notes
    -----
    Results are written by this process, atomically (temporary file, then rename); ``summary.json``
    is written last and marks the job done, so an interrupted run resumes where it stopped. A failed
    job's ``error.json`` does not count as done: a rerun tries it again. No cluster is started when
    every job is done.
    """
    jobs = list(jobs)
    repeated = sorted(n for n, k in collections.Counter(j.name for j in jobs).items() if k > 1)
    if repeated:
        raise SpecError(f"{what} names repeat: {repeated}; each {what} needs its own name (it names its folder)")
    out_dir = Path(out_dir)
    records: dict[str, dict] = {}
    todo = []
    for job in jobs:
        done = _read_done(out_dir / job.name, job, what)
        if done is None:
            todo.append(job)
        else:
            records[job.name] = {**done, "status": "skipped"}
    if status is not None:
        status(f"{len(records)} of {len(jobs)} {what}s already done in {out_dir}/; {len(todo)} to run")

    if todo:
        bar = _progress_bar(len(jobs), len(records), progress, what)
        try:
            with _signals_latched() as lost, connect(scheduler, n_workers, worker_deaths=worker_deaths) as client:
                for job, record in _submit_and_gather(client, todo, what, lost):
                    records[job.name] = _write(out_dir / job.name, job, record)
                    bar.update(1)
                    bar.set_postfix(failed=sum(r["status"] == "failed" for r in records.values()), refresh=False)
        finally:
            bar.close()
    return {job.name: records[job.name] for job in jobs}


@contextlib.contextmanager
def _signals_latched() -> Iterator[Callable[[], None]]:
    """Remember SIGINT and SIGTERM while jobs run; yield a function that raises again for one whose exception was lost.

    Python runs a signal's handler between two bytecodes of the main thread. When those belong to a
    ``__del__`` (distributed's futures release themselves in theirs), the KeyboardInterrupt the
    handler raises is printed as "Exception ignored" and dropped, and the run would go on waiting
    for its jobs. The yielded function calls the handler again for the last signal received. Only
    handlers that are Python callables (Python's own for Ctrl-C, the command line's for SIGTERM) are
    wrapped, only in the main thread, and they are restored on exit.
    """
    import signal
    import threading

    received: list[int] = []
    previous: dict[int, Callable] = {}

    def latch(signum, frame):
        received.append(signum)
        previous[signum](signum, frame)

    def raise_lost() -> None:
        if received:
            previous[received[-1]](received[-1], None)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if callable(handler):
                previous[sig] = handler
                signal.signal(sig, latch)
    try:
        yield raise_lost
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _submit_and_gather(client, todo: list[Job], what: str,
                       raise_lost: Callable[[], None]) -> Iterator[tuple[Job, dict]]:
    """Yield (job, record) as jobs finish, keeping at most one job per worker thread in flight.

    Submitting only as many jobs as there are threads means that a worker that dies takes only its
    own job with it (every job on a dying worker counts towards ``allowed-failures``), and results
    are fetched as soon as they exist (``with_results``), before a later job can kill their worker.
    While waiting it calls ``raise_lost`` (see :func:`_signals_latched`) every 0.1 s.
    """
    from distributed import as_completed

    pending = list(todo)
    in_flight: dict[str, Job] = {}
    finished = as_completed(with_results=True, raise_errors=False)

    def top_up() -> None:
        slots = max(1, sum(client.nthreads().values()))
        while pending and len(in_flight) < slots:
            job = pending.pop(0)
            future = client.submit(perform, job.work, *job.args, key=f"nexusbayes-{what}-{job.name}-{job.digest[:12]}")
            in_flight[future.key] = job
            finished.add(future)

    top_up()
    while not finished.is_empty():
        while not finished.has_ready():
            raise_lost()
            time.sleep(0.1)
        future, result = next(finished)
        job = in_flight.pop(future.key)
        if future.status == "error":          # KilledWorker, or the job could not be deserialised
            kind, exc, tb = result
            record = {"status": "failed", "error": _error(exc, "".join(traceback.format_exception(kind, exc, tb))),
                      "seconds": None}
        elif future.status == "cancelled":
            record = {"status": "failed", "error": _error(result, "cancelled on the cluster"), "seconds": None}
        else:
            record = result
        future.release()
        top_up()
        yield job, record


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress_bar(total: int, initial: int, show: bool, what: str):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"nexusbayes {what}s", unit=what, file=sys.stderr)


def _describe(source: DataSource) -> dict:
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


def _read_done(job_dir: Path, job: Job, what: str) -> dict | None:
    """The record of a finished job on disk, None when there is none; refuse another job's result."""
    path = job_dir / SUMMARY_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("digest") != job.digest:
        stored = record.get("identity") or {}
        wanted = _jsonable(json.loads(json.dumps(job.identity, default=str)))
        changed = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
        raise OutputExistsError(
            f"{path} holds the result of a different {what} (changed: {', '.join(changed) or 'its identity'}); "
            "write to a new output folder, or delete that folder to redo it")
    return record


def _write(job_dir: Path, job: Job, record: dict) -> dict:
    """Write a finished job's files atomically (``summary.json`` last, or ``error.json``); return the record stored."""
    files = record.pop("files", None) or {}
    stored = {"task": job.name, "status": record["status"], "digest": job.digest,
              "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **record, "identity": job.identity}
    if record["status"] == "ok":
        for name, content in files.items():
            atomic_write(job_dir / name, lambda tmp, content=content: Path(tmp).write_bytes(content))
        if files:
            stored["files"] = sorted(files)
        atomic_write(job_dir / SUMMARY_FILE, lambda tmp: Path(tmp).write_text(
            json.dumps(_jsonable(stored), indent=1, allow_nan=False), encoding="utf-8"))
        (job_dir / ERROR_FILE).unlink(missing_ok=True)
    else:
        atomic_write(job_dir / ERROR_FILE, lambda tmp: Path(tmp).write_text(
            json.dumps(_jsonable(stored), indent=1), encoding="utf-8"))
    return stored


def _row(record: dict) -> dict:
    error = record.get("error") or {}
    row = {"task": record["task"], "status": record["status"], "seconds": record.get("seconds"),
           "error_type": error.get("type"), "error_message": error.get("message")}
    summary = record.get("summary") or {}
    row.update(pd.json_normalize(summary, sep=".").iloc[0].to_dict() if summary else {})
    return row


# ---- command-line helpers ------------------------------------------------------------------------
def check_workers(n_workers: int, worker_deaths: int = 0) -> None:
    """Refuse a local cluster of no workers (it would wait for one forever) or a negative ``worker_deaths``.

    Examples
    --------
    >>> check_workers(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nexusbayes.errors.SettingsError: n_workers (--workers) must be a whole number >= 1, got 0: ... waits forever
    """
    check_count("n_workers (--workers)", n_workers, 1,
                why=": a cluster without workers runs nothing and waits forever")
    check_count("worker_deaths", worker_deaths, 0)


def check_count(label: str, value, low: int, high: int | None = None, why: str = "") -> None:
    """Refuse (:class:`SettingsError`) a count given in Python that is not a whole number in ``low..high``.

    Booleans are refused (``True`` is not 1 worker); ``why`` ends the message.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low or \
            (high is not None and value > high):
        raise SettingsError(f"{label} must be a whole number {_wanted(low, high)}, got {value!r}{why}")


def _wanted(low: int, high: int | None) -> str:
    return f">= {low}" if high is None else f"from {low} to {high:,}"


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (e.g. ``--workers``, ``--n-sims``).

    Examples
    --------
    >>> positive_int("3")
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number >= 1, got '0'
    """
    return bounded_int(1)(text)


def bounded_int(low: int, high: int | None = None):
    """An argparse type: a whole number in ``low..high`` (a clear message instead of "invalid int value")."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {_wanted(low, high)}, got {text!r}")
        return value
    parse.__name__ = "whole number"
    return parse


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler ADDRESS`` and ``--workers N`` to a subcommand (batch-running commands share them).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_cluster_arguments(parser)
    >>> cluster_options(parser.parse_args(["--scheduler", "tcp://10.0.0.5:8786"]))
    {'scheduler': 'tcp://10.0.0.5:8786', 'n_workers': 2}
    """
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: start a "
                             "local cluster)")
    parser.add_argument("--workers", type=positive_int, default=2, metavar="N",
                        help="worker processes of the local cluster (default 2; ignored with --scheduler)")


def cluster_options(args: argparse.Namespace) -> dict:
    """The :func:`run_batch` keyword arguments set by :func:`add_cluster_arguments`."""
    return {"scheduler": args.scheduler, "n_workers": args.workers}


# ---- sensitivity sweeps --------------------------------------------------------------------------
SWEEP_KINDS = ("prior_scale", "leave_one_indicator_out", "per_country")

#: Prior scale fields and the model variables whose prior they set (a field is swept only when used).
PRIOR_SCALE_VARIABLES = {
    "loading": ("loading_pos", "loading_neg", "loading_free"),
    "intercept": ("intercept_raw",),
    "cutpoint": ("cut_centre_",),
    "rater_sd": ("rater_sd_",),
    "noise_sd": ("sigma_",),
    "inv_dispersion": ("inv_dispersion_",),
    "initial_country_sd": ("country_initial_sd",),
    "innovation_country_sd": ("country_innovation_sd",),
    "innovation_region_sd": ("region_innovation_sd",),
}


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
                factors: tuple[float, ...] = (0.5, 2.0), fields: Iterable[str] | None = None) -> Sweep:
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

    Returns
    -------
    Sweep

    Examples
    --------
    >>> from nexusbayes.simulate import simulate
    >>> from nexusbayes.spec import Indicator
    >>> spec = Spec(name="demo", indicators={
    ...     "staff": Indicator(family="normal", loads={"capability": "positive"}),
    ...     "seizures": Indicator(family="negbin", loads={"capability": "positive", "willingness": "positive"}),
    ...     "quota": Indicator(family="binomial", loads={"willingness": "positive"})})
    >>> sweep = sweep_tasks(spec, simulate(spec, n_regions=3, n_periods=3).frame, "leave_one_indicator_out")
    >>> [t.name for t in sweep.tasks]
    ['baseline', 'drop-seizures']
    >>> sweep.refused["drop-staff"]
    "the only anchor of trait 'capability' (nothing else loads on it alone with a fixed sign)"
    """
    if kind not in SWEEP_KINDS:
        raise SpecError(f"unknown sweep kind {kind!r}; choose one of {', '.join(SWEEP_KINDS)}")
    options = dict(options or {})
    source = Path(data).resolve() if isinstance(data, str | Path) else data
    frame, label, _ = read_table(source)
    tasks = [Task("baseline", spec, source, options)]
    refused: dict[str, str] = {}
    if kind == "prior_scale":
        used = _used_prior_fields(spec, frame, label)
        chosen = list(fields) if fields is not None else used
        unknown = [f for f in chosen if f not in PRIOR_SCALE_VARIABLES]
        if unknown:
            raise SpecError(f"not prior scale fields: {unknown}; choose from {', '.join(PRIOR_SCALE_VARIABLES)}")
        for field in chosen:
            for factor in factors:
                name = f"prior-{field}-x{factor:g}"
                if field not in used:
                    refused[name] = f"this model does not use priors.{field}"
                    continue
                priors = spec.priors.model_copy(update={field: getattr(spec.priors, field) * factor})
                tasks.append(Task(name, spec.model_copy(update={"priors": priors}), source, options))
    elif kind == "leave_one_indicator_out":
        for indicator in spec.indicators:
            name = _safe_name("drop", indicator)
            reason = _required_anchor(spec, indicator)
            if reason is None:
                raw = spec.to_dict()
                del raw["indicators"][indicator]
                try:
                    variant = Spec.from_dict(raw, source=f"spec without {indicator!r}")
                except SpecError as exc:
                    reason = str(exc).split("\n", 1)[-1].strip().removeprefix("- ")
            if reason is not None:
                refused[name] = reason
                continue
            tasks.append(Task(name, variant, frame[frame["indicator"] != indicator].reset_index(drop=True), options))
    else:
        countries = sorted(frame["country"].dropna().astype(str).unique())
        for country in countries:
            name = _safe_name("country", country)
            if len(countries) == 1:
                refused[name] = "the data hold a single country: its fit is the baseline"
                continue
            tasks.append(Task(name, spec, frame[frame["country"].astype(str) == country].reset_index(drop=True),
                              options))
    return Sweep(kind=kind, tasks=tasks, refused=refused)


def _safe_name(prefix: str, label: str) -> str:
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}"[:100]


def _required_anchor(spec: Spec, indicator: str) -> str | None:
    """Why ``indicator`` cannot be dropped (the only anchor of a trait), or None."""
    ind = spec.indicators[indicator]
    if len(ind.loads) != 1 or next(iter(ind.loads.values())) == "free":
        return None
    trait = next(iter(ind.loads))
    others = [n for n, o in spec.indicators.items()
              if n != indicator and list(o.loads) == [trait] and o.loads[trait] != "free"]
    if others:
        return None
    return f"the only anchor of trait {trait!r} (nothing else loads on it alone with a fixed sign)"


def _used_prior_fields(spec: Spec, frame: pd.DataFrame, label: str) -> list[str]:
    """Prior scale fields whose prior enters the model of ``spec`` on these data (builds, does not sample)."""
    from nexusbayes.model import build_model

    try:
        panel = validate(frame, spec, label)
    except NexusBayesError:
        return list(PRIOR_SCALE_VARIABLES)   # the baseline task will report the data problem
    names = [v.name for v in build_model(panel, spec).free_RVs]
    return [field for field, prefixes in PRIOR_SCALE_VARIABLES.items()
            if any(n == p or (p.endswith("_") and n.startswith(p)) for n in names for p in prefixes)]
