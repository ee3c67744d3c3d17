"""A resumable runner of jobs on Dask distributed: one record per job, written as each finishes."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from nexusbayes.cluster import check_workers, connect  # noqa: F401 (check_workers: the workflows' import)
from nexusbayes.errors import OutputExistsError, SpecError
from nexusbayes.files import atomic_write

#: The record of a finished job, and of a failed one, in its folder.
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.json"


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

    A fit of :func:`run_batch` and a simulation of :func:`nexusbayes.workflows.sbc.run_sbc` are jobs.

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
def run_jobs(jobs: Iterable[Job], out_dir: str | Path, *, scheduler: str | None = None, n_workers: int = 2,
             progress: bool = True, worker_deaths: int = 2, what: str = "job",
             status: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Run jobs on a Dask cluster, writing each result as soon as it arrives; skip jobs already done.

    The machinery of :func:`run_batch` and :func:`nexusbayes.workflows.sbc.run_sbc`: one folder per job
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
