"""A Dask client on a new local cluster or a running scheduler: what batches and a fit's chains run on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from nexusbayes.errors import SettingsError, check_count


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

    Raises
    ------
    SettingsError
        When no scheduler answers at ``scheduler``.

    Examples
    --------
    >>> with connect(n_workers=2) as client:  # doctest: +SKIP
    ...     print(client.run(lambda: __import__("nexusbayes").__file__))
    """
    import dask
    from distributed import Client, LocalCluster

    check_workers(n_workers, worker_deaths)
    if scheduler is not None:
        try:
            client = Client(scheduler)
        except (OSError, ValueError) as exc:    # a refused connection, a timeout, an address of no protocol
            raise SettingsError(f"no Dask scheduler answered at {scheduler!r} ({type(exc).__name__}: {exc}); start "
                                "one (`dask scheduler`, with workers: `dask worker ADDRESS`) or pass the address "
                                "it prints, e.g. tcp://10.0.0.5:8786") from exc
        with client:
            yield client
        return
    with dask.config.set({"distributed.scheduler.allowed-failures": worker_deaths}):   # read when the scheduler starts
        # no dashboard; the scheduler's HTTP endpoint on a free port (8787 may be another cluster's: a warning)
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               scheduler_kwargs={"dashboard_address": ":0"})
    with cluster, Client(cluster) as client:
        yield client


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
