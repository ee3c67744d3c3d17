"""Benchmark fit cost and mixing at three sizes for every available sampler; compare against a stored run.

Usage::

    python -m benchmarks                               # every size x every sampler; writes results/latest.json
    python -m benchmarks --sizes small,medium --samplers nutpie,pymc
    python -m benchmarks --compare                     # small + medium with nutpie, as ratios to latest.json

Each case (size x sampler) runs in a fresh process (:mod:`benchmarks.measure`), so compile times are cold
and peak memory is the case's own. The large size runs nutpie only unless ``--large-samplers`` says
otherwise (PyMC's NUTS would take hours there).

``--compare`` is a timing regression check that works on any machine: every time is divided by the time
of a fixed NumPy workload measured in the same run (``machine_seconds``), and the new run's normalised
times are compared with the stored run's as ratios. It exits 1 when a time grew (or ESS per second fell)
by more than ``--tolerance`` (default 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.cases import ROOT, SIZES
from benchmarks.measure import SAMPLERS, available

RESULTS = ROOT / "benchmarks" / "results"
#: Per-case time limit (seconds) of the subprocess.
CASE_TIMEOUT = 3 * 3600
#: Times compared by ``--compare`` (normalised by machine_seconds) and the rate compared the other way.
COMPARED_TIMES = ("compile_s", "sampling_s", "gradient_us")
COMPARED_RATES = ("ess_bulk_per_s_sampling",)
SHOWN = ("shape", "observations", "parameters", "compile_s", "sampling_s", "end_to_end_s", "cached_end_to_end_s",
         "min_ess_bulk", "min_ess_tail", "ess_bulk_per_s_sampling", "ess_bulk_per_s_end_to_end", "max_rhat",
         "divergences", "grad_evals_per_draw", "gradient_us", "gradient_ns_per_observation", "peak_memory_mb",
         "recovery_r", "worst_variable", "advi_s", "advi_theta_mean_error_sd", "advi_theta_sd_ratio",
         "advi_modal_type_agreement", "error")


def machine_seconds(repeats: int = 5) -> float:
    """Seconds for a fixed NumPy workload (sorting and a small dense solve), best of ``repeats``."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal(1_000_000)
    matrix = rng.standard_normal((300, 300)) + 300 * np.eye(300)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(5):
            np.sort(data)
            np.linalg.solve(matrix, data[:300])
            np.exp(data).sum()
        best = min(best, time.perf_counter() - start)
    return best


def run_case(size: str, sampler: str, args: argparse.Namespace) -> dict:
    """Run one case in a fresh Python process; return its record (or the error)."""
    command = [sys.executable, "-m", "benchmarks.measure", size, sampler]
    for option in ("draws", "tune", "chains"):
        value = getattr(args, f"large_{option}", None) if size == "large" else None
        value = value if value is not None else getattr(args, option)
        if value is not None:
            command += [f"--{option}", str(value)]
    if sampler == "nutpie" and size == "small":
        command.append("--cached-refit")
    if sampler == "nutpie" and not args.no_approx:
        command.append("--approx")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print(f"[{time.strftime('%H:%M:%S')}] {size} x {sampler} ...", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CASE_TIMEOUT, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"size": size, "sampler": sampler, "error": f"timed out after {CASE_TIMEOUT} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"size": size, "sampler": sampler, "error": f"exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def table(cases: list[dict]) -> pd.DataFrame:
    """Metrics as rows, cases (size / sampler) as columns."""
    frame = pd.DataFrame(cases)
    frame.index = [f"{c['size']} / {c['sampler']}" for c in cases]
    return frame[[c for c in SHOWN if c in frame]].T


def markdown(cases: list[dict]) -> str:
    """The table as Markdown (for the README)."""
    shown = table(cases).astype(object).where(lambda f: f.notna(), "")
    header = "| metric | " + " | ".join(shown.columns) + " |"
    rule = "|---|" + "---|" * len(shown.columns)
    rows = [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in shown.iterrows()]
    return "\n".join([header, rule, *rows])


def compare(new: dict, old: dict, tolerance: float) -> tuple[pd.DataFrame, bool]:
    """Normalised ratios new/old for every case in both runs; whether all are within ``tolerance``."""
    index = {(c["size"], c["sampler"]): c for c in old["cases"] if "error" not in c}
    rows, ok = [], True
    for case in new["cases"]:
        before = index.get((case["size"], case["sampler"]))
        if before is None or "error" in case:
            continue
        for key in (*COMPARED_TIMES, *COMPARED_RATES):
            if case.get(key) is None or before.get(key) is None:
                continue
            ratio = (case[key] / new["machine_seconds"]) / (before[key] / old["machine_seconds"])
            if key in COMPARED_RATES:   # a rate per second: normalise the other way
                ratio = (case[key] * new["machine_seconds"]) / (before[key] * old["machine_seconds"])
                worse = ratio < 1 / tolerance
            else:
                worse = ratio > tolerance
            ok &= not worse
            rows.append({"case": f"{case['size']} / {case['sampler']}", "metric": key, "stored": before[key],
                         "now": case[key], "normalised ratio": round(ratio, 3),
                         "verdict": "REGRESSION" if worse else "ok"})
    return pd.DataFrame(rows), ok


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=None, help=f"comma-separated, from {', '.join(SIZES)} (default all)")
    parser.add_argument("--samplers", default=None, help=f"comma-separated, from {', '.join(SAMPLERS)} "
                                                         "(default every one installed)")
    parser.add_argument("--large-samplers", default="nutpie", help="samplers for the large size (default nutpie)")
    parser.add_argument("--draws", type=int, help="draws per chain (default the spec's: 1000)")
    parser.add_argument("--tune", type=int, help="tuning steps per chain (default the spec's: 1000)")
    parser.add_argument("--chains", type=int, help="chains (default the spec's: 4)")
    parser.add_argument("--large-draws", type=int, help="draws per chain for the large size (default --draws)")
    parser.add_argument("--large-tune", type=int, help="tuning steps for the large size (default --tune)")
    parser.add_argument("--no-approx", action="store_true", help="skip the ADVI fast path")
    parser.add_argument("--out", type=Path, help="JSON file (default results/latest.json; with --compare none)")
    parser.add_argument("--compare", nargs="?", const=RESULTS / "latest.json", type=Path, metavar="STORED",
                        help="compare with a stored run (default results/latest.json) as normalised ratios")
    parser.add_argument("--tolerance", type=float, default=1.5, help="--compare: allowed ratio (default 1.5)")
    args = parser.parse_args(argv)

    default_sizes = "small,medium" if args.compare else ",".join(SIZES)
    sizes = (args.sizes or default_sizes).split(",")
    samplers = (args.samplers or ("nutpie" if args.compare else ",".join(SAMPLERS))).split(",")
    for name in [*sizes, *samplers]:
        if name not in (*SIZES, *SAMPLERS):
            parser.error(f"unknown size or sampler {name!r}")
    record = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "when": time.strftime("%Y-%m-%d %H:%M"), "machine_seconds": round(machine_seconds(), 4),
              "settings": {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                           "large_draws": args.large_draws, "large_tune": args.large_tune}, "cases": []}
    for size in sizes:
        for sampler in samplers:
            if size == "large" and sampler not in args.large_samplers.split(","):
                continue
            if not available(sampler):
                record["cases"].append({"size": size, "sampler": sampler, "error": "not installed"})
                continue
            record["cases"].append(run_case(size, sampler, args))
            print(table(record["cases"][-1:]).to_string(), file=sys.stderr, flush=True)
    print(table(record["cases"]).to_string())
    out = args.out or (None if args.compare else RESULTS / "latest.json")
    if out is not None:
        from nexusbayes.fit import atomic_write

        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
        atomic_write(out.with_suffix(".md"), lambda tmp: Path(tmp).write_text(markdown(record["cases"]) + "\n"))
        print(f"\nwrote {out} and {out.with_suffix('.md')}")
    if args.compare:
        stored = json.loads(args.compare.read_text())
        ratios, ok = compare(record, stored, args.tolerance)
        print(f"\nagainst {args.compare} ({stored['when']}), machine-normalised, tolerance {args.tolerance}x:")
        print(ratios.to_string(index=False) if len(ratios) else "no case in common")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
