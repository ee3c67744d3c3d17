"""Pooled 90% coverage of the reporting model's and the heap's parameters over seeds (issue 23, parts 2 and 3).

With six to eight such parameters per fit, one fit cannot tell a coverage of 0.9 from 0.7; pooled over seeds it
can. Two parts, each fitting the test modules' panels (their builders and planted values) once per seed:

``reporting``
    :func:`tests.model.test_reporting.mnar_spec` (one trait; staff, seizures and audits report informatively,
    logit P(reported) = 0.5 + 2 capability), with ``comparable = false`` on staff and seizures so that their
    per-country reporting offsets (simulated with scale ``priors.country_offset``) are estimated. Checked: the
    reporting intercepts, loadings and the offsets of the non-comparable indicators (indicator x country). The
    non-reports are part of the model's structure (:func:`nexusbayes.inference.compile_cache.structure_key`) and
    they differ by seed, so each seed compiles its own model.
``heaping``
    :func:`tests.model.test_heaping.recovery_spec` with heaps at quotas (seizures, arrests, audits; logit
    ``HEAP``) and structural zeros (arrests; logit ``ZERO``). Checked: the heap and zero intercepts and loadings.
    Every seed has the same structure: one compiled model, each later seed's data swapped in.

Per seed it prints one JSON line (inside / n per parameter group, theta's coverage and r, divergences, CPU
seconds), then the coverage pooled over the seeds so far, n, mean error (posterior mean minus truth) and mean
posterior SD per group.
Run::

    python -m benchmarks.parameter_coverage reporting [--seeds 1,2,3] [--countries 3] [--regions 3] [--periods 8]
    python -m benchmarks.parameter_coverage heaping [--seeds 3,4,5] [--regions 10] [--periods 8]
    python -m benchmarks.parameter_coverage pool RUN_1.jsonl RUN_2.jsonl ...   # runs over other seeds, pooled

Figures of a run are in ``benchmarks/HISTORY.md`` and ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings

import numpy as np
import xarray as xr

from nexusbayes.analysis.recovery import correlation, interval_covers

SAMPLE = ("chain", "draw")


def interval_check(draws: xr.DataArray, truth: xr.DataArray) -> dict[str, np.ndarray]:
    """Per element: inside its central 90% interval, error (posterior mean minus truth) and posterior SD.

    Parameters
    ----------
    draws : xarray.DataArray
        Posterior draws (chain, draw, ...).
    truth : xarray.DataArray
        The true values, with the same non-sample dims (and labels at least those of ``draws``).
    """
    truth = truth.sel({d: draws[d].values for d in truth.dims})
    return {"inside": interval_covers(draws, truth, 0.9).values.ravel(),
            "error": (draws.mean(SAMPLE) - truth).values.ravel(), "sd": draws.std(SAMPLE).values.ravel()}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def reporting_case(args, seed: int):
    """The reporting part's spec, simulation and checked groups (name -> (draws selector, truth name))."""
    from nexusbayes.model.simulate import simulate
    from nexusbayes.spec.document import Spec
    from tests.model.test_reporting import PLANTED, mnar_spec

    data = mnar_spec("informative").to_dict()
    for name in ("staff", "seizures"):
        data["indicators"][name]["comparable"] = False
    spec = Spec.from_dict(data)
    sim = simulate(spec, n_countries=args.countries, n_regions=args.regions, n_periods=args.periods,
                   reporting=PLANTED, seed=seed)

    def groups(post):
        local = {"indicator_informative": ["staff", "seizures"]}
        return {"intercept": (post["reporting_intercept"], sim.truth["reporting_intercept"]),
                "loading": (post["reporting_loading"], sim.truth["reporting_loading"]),
                "offset": (post["reporting_offset"].sel(local), sim.truth["reporting_offset"].sel(local))}
    return spec, sim, groups


def heaping_case(args, seed: int):
    """The heaping part's spec, simulation and checked groups."""
    from nexusbayes.model.simulate import simulate
    from tests.model.test_heaping import HEAP, ZERO, recovery_spec

    spec = recovery_spec(True)
    sim = simulate(spec, n_regions=args.regions, n_periods=args.periods, heap=HEAP, zero=ZERO, seed=seed)

    def groups(post):
        return {name: (post[name], sim.truth[name])
                for name in ("heap_intercept", "heap_loading", "zero_intercept", "zero_loading")}
    return spec, sim, groups


def pooled_summary(pooled: dict[str, list[dict]]) -> dict:
    """Per parameter group and over all: 90% coverage, n, mean error, mean |error| and mean posterior SD."""
    summary = {}
    for name, cells in [*pooled.items(), ("all", [c for group in pooled.values() for c in group])]:
        inside, error = (np.concatenate([c[k] for c in cells]) for k in ("inside", "error"))
        summary[name] = {"coverage": round(float(inside.mean()), 3), "n": int(inside.size),
                         "mean_error": round(float(error.mean()), 3),
                         "mean_abs_error": round(float(np.abs(error).mean()), 3),
                         "mean_sd": round(float(np.concatenate([c["sd"] for c in cells]).mean()), 3)}
    return summary


def read_runs(paths: list[str]) -> dict[str, list[dict]]:
    """The per-seed cells of the runs' outputs ``paths`` (their seed lines), by parameter group."""
    pooled: dict[str, list[dict]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                for name, cells in json.loads(line).get("cells", {}).items():
                    pooled.setdefault(name, []).append({k: np.asarray(v, dtype=float) for k, v in cells.items()})
    for cells in (c for group in pooled.values() for c in group):
        cells["inside"] = cells["inside"].astype(bool)
    return pooled


def main() -> None:
    """Fit each seed, print one JSON line per seed and the pooled coverage per parameter group."""
    from nexusbayes.data.panel import validate
    from nexusbayes.fit import fit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["reporting", "heaping", "pool"])
    parser.add_argument("files", nargs="*", help="pool: outputs of runs over other seeds, to pool")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--countries", type=int, default=3, help="reporting part only")
    parser.add_argument("--regions", type=int, default=None, help="per country (default 3 reporting, 10 heaping)")
    parser.add_argument("--periods", type=int, default=8)
    parser.add_argument("--draws", type=int, default=300, help="draws and tuning steps per chain (2 chains)")
    args = parser.parse_args()
    if args.part == "pool":
        print(json.dumps({"pooled": pooled_summary(read_runs(args.files))}))
        return
    if args.regions is None:
        args.regions = 3 if args.part == "reporting" else 10
    case = reporting_case if args.part == "reporting" else heaping_case
    pooled: dict[str, list[dict]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        spec, sim, groups = case(args, seed)
        cpu, wall = _cpu(), time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(spec, validate(sim.frame, spec, "<simulated>"), draws=args.draws, tune=args.draws,
                         chains=2, seed=1, progress=False, check=False)
        cpu, wall = _cpu() - cpu, time.time() - wall
        post = result.tree["posterior"]
        line = {"seed": seed}
        for name, (draws, truth) in groups(post).items():
            cells = interval_check(draws, truth)
            pooled.setdefault(name, []).append(cells)
            line[name] = f"{int(cells['inside'].sum())}/{cells['inside'].size}"
            line.setdefault("cells", {})[name] = {k: np.round(v.astype(float), 4).tolist() for k, v in cells.items()}
        theta = interval_check(post["theta"], sim.truth["theta"])
        line |= {"theta_coverage": round(float(theta["inside"].mean()), 3),
                 "theta_r": round(correlation(post["theta"].mean(SAMPLE), sim.truth["theta"]), 3),
                 "divergences": int(result.tree["sample_stats"]["diverging"].sum()),
                 "max_rhat": round(float(result.diagnostics.table["max_rhat"].max()), 3),
                 "compile": result.tree.attrs["compile_source"],
                 "compile_s": round(float(result.tree.attrs["seconds_compile"]), 1),
                 "cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "load": open("/proc/loadavg").read().split()[0]}
        print(json.dumps(line, default=str), flush=True)
        print(json.dumps({"pooled": pooled_summary(pooled)}), flush=True)   # so far: a run stopped early keeps it


if __name__ == "__main__":
    main()
