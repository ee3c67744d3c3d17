"""Chains here against chains as Dask tasks: ``python -m benchmarks.dask_chains SIZE [--workers N]``.

The fit of SIZE (:mod:`benchmarks.cases`, the spec's defaults) runs twice, in turn: every chain in this process
(nutpie, one chain per core), then each chain as a task on a new :class:`distributed.LocalCluster` of ``--workers``
processes with one thread each (``fit(..., scheduler=ADDRESS)``), every worker loading the compiled model from the
disk cache. Printed, one JSON line per run: wall seconds of ``fit()`` (the cluster's start apart), CPU seconds
of this process and of the workers, the fit's compile and sampling seconds, gradient evaluations, min bulk and
tail ESS, max R-hat, divergences, and the load average before and after.

Examples
--------
``python -m benchmarks.dask_chains small --workers 2``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from benchmarks.cases import make_case
from nexusbayes.fit import fit


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(case, scheduler: str | None = None, workers_cpu=None) -> dict:
    load_before = os.getloadavg()[0]
    before, workers_before = _cpu(), workers_cpu() if workers_cpu else 0.0
    start = time.perf_counter()
    result = fit(case.spec, case.panel, progress=False, check=False, scheduler=scheduler,
                 status=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    wall = time.perf_counter() - start
    checks = result.diagnostics.checks
    attrs = result.tree.attrs
    return {"size": case.size, "run": "dask" if scheduler else "local", "wall_s": round(wall, 1),
            "cpu_s_lead": round(_cpu() - before, 1),
            "cpu_s_workers": round(workers_cpu() - workers_before, 1) if workers_cpu else 0.0,
            "compile_s": round(attrs["seconds_compile"], 1), "sampling_s": round(attrs["seconds_sampling"], 1),
            "compile_source": attrs["compile_source"],
            "chain_sampling_s": [round(s, 1) for s in attrs.get("chain_seconds_sampling", [])],
            "grad_evals": int(result.tree["sample_stats"]["n_steps"].sum()),
            "min_ess_bulk": round(float(checks.loc["ess_bulk", "value"]), 1),
            "min_ess_tail": round(float(checks.loc["ess_tail", "value"]), 1),
            "max_rhat": round(float(checks.loc["rhat", "value"]), 4),
            "divergences": int(checks.loc["divergences", "value"]),
            "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> int:
    """Run the case here, then on a local cluster; print a JSON line per run."""
    from distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_chains", description=__doc__.splitlines()[0])
    parser.add_argument("size", help="small, medium, large or item_panel")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster (default 2)")
    parser.add_argument("--only-dask", action="store_true", help="leave out the local run")
    args = parser.parse_args(argv)
    case = make_case(args.size)
    if not args.only_dask:
        print(json.dumps(_measure(case)), flush=True)
    start = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        started = time.perf_counter() - start

        def workers_cpu() -> float:
            return sum(client.run(_cpu).values())

        print(json.dumps({**_measure(case, cluster.scheduler_address, workers_cpu), "workers": args.workers,
                          "cluster_start_s": round(started, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
