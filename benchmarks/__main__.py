"""Benchmark fit cost and mixing at three sizes for every available sampler; compare against a stored run.

Usage::

    python -m benchmarks                               # every size x every sampler; writes results/latest.json
    python -m benchmarks --sizes small,medium --samplers nutpie,pymc
    python -m benchmarks --compare                     # small + medium with nutpie, as ratios to latest.json
    python -m benchmarks --sizes medium --samplers nutpie,pymc --repeats 3   # medians over 3 seeds

Each case (size x sampler) runs in a fresh process (:mod:`benchmarks.measure`), so compile times are a
new process's (nutpie's compiled model comes from the on-disk cache once the machine has compiled its
structure: ``compile_source``) and peak memory is the case's own. The large size runs nutpie only
unless ``--large-samplers`` says otherwise (PyMC's NUTS would take hours there). With ``--repeats N``
(``--large-repeats`` for the large size and the item panel)
every case runs N times (sampler seeds: the spec's plus 0..N-1) and its record holds the median of each
figure, the runs themselves under ``runs``: the issue's targets are medians, and single runs of one case
vary by up to about 1.3x.

The sampler ``straightforward`` is nutpie on the model a newcomer would hand-write in PyMC
(:mod:`benchmarks.straightforward`), run on the medium size only, beside the package's model in the same run.
After the table, :func:`benchmarks.targets.targets` checks issue 24's targets against the run (the large
and item panel sizes' time and memory, the example's command and saved fit, medium against the
straightforward model), each met, not met or not measured, and why.

``--compare`` is a timing regression check that works on any machine: every time is divided by the time
of a fixed workload measured in the same run (``machine_seconds``), and the new run's normalised
times are compared with the stored run's as ratios. It exits 1 when a time grew (or ESS per second fell)
by more than ``--tolerance`` (default 1.5x).
"""

from __future__ import annotations

import argparse
import json
import math
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
from benchmarks.straightforward import SIZES as STRAIGHTFORWARD_SIZES
from benchmarks.targets import targets

RESULTS = ROOT / "benchmarks" / "results"
#: Per-case time limit (seconds) of the subprocess (``--case-timeout``), and how often a running case reports.
CASE_TIMEOUT = 3 * 3600
HEARTBEAT_S = 60.0
#: Version of :func:`machine_seconds`' workload: runs measured with different ones cannot be compared.
MACHINE_WORKLOAD = 2
#: Times compared by ``--compare`` (normalised by machine_seconds) and the rate compared the other way.
COMPARED_TIMES = ("compile_s", "sampling_s", "gradient_us")
COMPARED_RATES = ("ess_bulk_per_s_sampling",)
SHOWN = ("shape", "observations", "parameters", "repeats", "compile_source", "compile_s", "sampling_s",
         "postprocess_s", "diagnostics_s", "end_to_end_s", "cached_end_to_end_s", "command_cold_s",
         "command_cold_compile_s", "command_cached_s", "command_cached_compile_s", "command_rest_s", "fit_file_mb",
         "fit_file_lazy", "fit_load_s", "fit_first_read_s", "min_ess_bulk",
         "min_ess_tail", "ess_bulk_per_s_sampling", "ess_bulk_per_s_end_to_end", "max_rhat", "divergences",
         "grad_evals_per_draw", "gradient_us", "gradient_ns_per_observation", "peak_memory_mb", "recovery_r",
         "worst_variable", "advi_s", "advi_theta_mean_error_sd", "advi_theta_sd_ratio", "advi_modal_type_agreement",
         "error")


def machine_seconds(repeats: int = 5) -> float:
    """Seconds for a fixed workload like the benchmarked code's, best of ``repeats``.

    Scalar special functions in interpreted Python (the samplers' generated code calls libm element by
    element, and PyMC's NUTS runs in Python) and a random scatter-add (the gradients' gathers). No
    sorting or vectorised NumPy math: NumPy dispatches those to AVX-512 where the CPU has it, which made
    the first workload (a sort, a solve and ``np.exp``) 9.6x faster on one 2-core machine than on
    another whose benchmark times differed 1.6-2.6x.
    """
    rng = np.random.default_rng(0)
    values = rng.standard_normal(1_000_000).tolist()
    index = rng.integers(0, 10_000, 1_000_000)
    weights = rng.standard_normal(1_000_000)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        total = 0.0
        for x in values:
            total += math.exp(-abs(x)) + math.log1p(abs(x))
        np.add.at(np.zeros(10_000), index, weights)
        best = min(best, time.perf_counter() - start)
    return best


def run_case(size: str, sampler: str, args: argparse.Namespace, seed_offset: int = 0) -> dict:
    """Run one case in a fresh Python process; return its record (or the error)."""
    command = [sys.executable, "-m", "benchmarks.measure", size, sampler, "--seed-offset", str(seed_offset)]
    for option in ("draws", "tune", "chains"):
        value = getattr(args, f"large_{option}", None) if size == "large" else None
        value = value if value is not None else getattr(args, option)
        if value is not None:
            command += [f"--{option}", str(value)]
    if sampler == "nutpie" and size == "small":
        command += ["--cached-refit", "--command"]
    if sampler == "nutpie" and not args.no_approx:
        command.append("--approx")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print(f"[{time.strftime('%H:%M:%S')}] {size} x {sampler} (seed offset {seed_offset}) ...", file=sys.stderr,
          flush=True)
    done = run_reporting(command, env, args.case_timeout, f"{size} x {sampler}")
    if isinstance(done, str):
        return {"size": size, "sampler": sampler, "error": done}
    returncode, stdout, stderr = done
    lines = stdout.strip().splitlines()
    if returncode != 0 or not lines:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        return {"size": size, "sampler": sampler, "error": f"exit {returncode}: {tail}"}
    record = json.loads(lines[-1])
    print(json.dumps(record), file=sys.stderr, flush=True)   # kept in the log should a later case fail
    return record


def run_reporting(command: list[str], env: dict, timeout: float, label: str,
                  every: float = HEARTBEAT_S) -> tuple[int, str, str] | str:
    """Run ``command``; every ``every`` seconds print how long it has run and its resident memory.

    Returns ``(returncode, stdout, stderr)``, or the error text when it ran past ``timeout`` seconds (it
    is then killed; the text holds its last resident memory).
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=ROOT)
    start = time.monotonic()
    while True:
        try:
            stdout, stderr = process.communicate(timeout=min(every, max(timeout - (time.monotonic() - start), 0.01)))
            return process.returncode, stdout, stderr
        except subprocess.TimeoutExpired:
            elapsed, memory = time.monotonic() - start, _resident_mb(process.pid)
            if elapsed >= timeout:
                process.kill()
                process.communicate()
                return f"timed out after {timeout:g} s (resident memory {memory} MB then)"
            print(f"[{time.strftime('%H:%M:%S')}] {label}: running for {elapsed / 60:.1f} min, resident memory "
                  f"{memory} MB", file=sys.stderr, flush=True)


def _resident_mb(pid: int) -> int | None:
    """Resident memory of process ``pid`` in MB (Linux ``/proc``; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        return int(line.split()[1]) // 1024
    except (OSError, StopIteration):
        return None


def median_record(runs: list[dict]) -> dict:
    """One case's record from repeated runs: the median of every number, the runs under ``runs``.

    Other fields (shape, worst variable) take their most common value; failed runs are left out of the
    medians and named under ``error``.

    Examples
    --------
    >>> r = median_record([{"size": "small", "sampler": "nutpie", "sampling_s": s, "worst_variable": w}
    ...                    for s, w in ((30.0, "a"), (20.0, "b"), (40.0, "a"))])
    >>> r["sampling_s"], r["worst_variable"], r["repeats"]
    (30.0, 'a', 3)
    """
    ok = [r for r in runs if "error" not in r]
    failed = [r for r in runs if "error" in r]
    record = {"size": runs[0]["size"], "sampler": runs[0]["sampler"], "repeats": len(runs)}
    for key in dict.fromkeys(k for r in ok for k in r):
        values = [r[key] for r in ok if r.get(key) is not None]
        if key in record or key == "seed" or not values:
            continue
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            record[key] = round(float(np.median(values)), 4)
        else:   # the most common value; lists (a run's check counts) compared by their JSON text
            texts = [json.dumps(v, sort_keys=True) for v in values]
            record[key] = values[max(range(len(values)), key=lambda i: texts.count(texts[i]))]
    if failed:
        record["error"] = f"{len(failed)} of {len(runs)} runs failed: " + "; ".join(r["error"] for r in failed)
    record["runs"] = runs
    return record


def table(cases: list[dict]) -> pd.DataFrame:
    """Metrics as rows, cases (size / sampler) as columns."""
    frame = pd.DataFrame(cases)
    frame.index = [f"{c['size']} / {c['sampler']}" for c in cases]
    return frame[[c for c in SHOWN if c in frame]].T


def markdown(cases: list[dict], goals: pd.DataFrame | None = None) -> str:
    """The table as Markdown (for the README), and the targets (``targets(cases)`` unless given) when measured."""
    text = _markdown(table(cases).rename_axis("metric").reset_index(), blank="")
    goals = targets(cases) if goals is None else goals
    if goals["met"].notna().any():
        text += "\n\n" + _markdown(goals.drop(columns="met"), blank="")
    return text


def _markdown(frame: pd.DataFrame, blank: str) -> str:
    shown = frame.astype(object).where(frame.notna(), blank)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def compare(new: dict, old: dict, tolerance: float) -> tuple[pd.DataFrame, bool]:
    """Normalised ratios new/old for every case in both runs; whether all are within ``tolerance``.

    Raises
    ------
    ValueError
        When the two runs measured the machine with different workloads (``machine_workload``).
    """
    versions = new.get("machine_workload", 1), old.get("machine_workload", 1)
    if versions[0] != versions[1]:
        raise ValueError(f"the stored run measured the machine with workload {versions[1]} and this run with "
                         f"{versions[0]}, so their normalised times are not comparable; store a new reference "
                         "with `python -m benchmarks` (it writes results/latest.json) and compare against that")
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
    parser.add_argument("--large-samplers", default="nutpie",
                        help="samplers for the large size and the item panel (default nutpie)")
    parser.add_argument("--draws", type=int, help="draws per chain (default the spec's: 1000)")
    parser.add_argument("--tune", type=int, help="tuning steps per chain (default the spec's: 300)")
    parser.add_argument("--chains", type=int, help="chains (default the spec's: 4)")
    parser.add_argument("--large-draws", type=int, help="draws per chain for the large size (default --draws)")
    parser.add_argument("--large-tune", type=int, help="tuning steps for the large size (default --tune)")
    parser.add_argument("--no-approx", action="store_true", help="skip the ADVI fast path")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case (other seeds); records medians")
    parser.add_argument("--large-repeats", type=int,
                        help="runs per case for the large size and the item panel (default --repeats)")
    parser.add_argument("--case-timeout", type=float, default=CASE_TIMEOUT,
                        help=f"seconds before a case is stopped and recorded as timed out (default {CASE_TIMEOUT})")
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
              "machine_workload": MACHINE_WORKLOAD,
              "settings": {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                           "large_draws": args.large_draws, "large_tune": args.large_tune,
                           "repeats": args.repeats, "large_repeats": args.large_repeats}, "cases": []}
    for size in sizes:
        for sampler in samplers:
            if size in ("large", "item_panel") and sampler not in args.large_samplers.split(","):
                continue
            if sampler == "straightforward" and size not in STRAIGHTFORWARD_SIZES:
                continue
            if not available(sampler):
                record["cases"].append({"size": size, "sampler": sampler, "error": "not installed"})
                continue
            repeats = args.repeats
            if size in ("large", "item_panel") and args.large_repeats is not None:
                repeats = args.large_repeats
            if repeats > 1:
                record["cases"].append(median_record([run_case(size, sampler, args, i) for i in range(repeats)]))
            else:
                record["cases"].append(run_case(size, sampler, args))
            print(table(record["cases"][-1:]).to_string(), file=sys.stderr, flush=True)
    print(table(record["cases"]).to_string())
    goals = targets(record["cases"])
    record["targets"] = goals.to_dict(orient="records")
    print("\nissue 24's targets in this run:\n" + goals.drop(columns="met").to_string(index=False))
    out = args.out or (None if args.compare else RESULTS / "latest.json")
    if out is not None:
        from nexusbayes.files import atomic_write

        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
        atomic_write(out.with_suffix(".md"), lambda tmp: Path(tmp).write_text(markdown(record["cases"], goals) + "\n"))
        print(f"\nwrote {out} and {out.with_suffix('.md')}")
    if args.compare:
        stored = json.loads(args.compare.read_text())
        try:
            ratios, ok = compare(record, stored, args.tolerance)
        except ValueError as exc:
            print(f"\n{args.compare}: {exc}", file=sys.stderr)
            return 2
        print(f"\nagainst {args.compare} ({stored['when']}), machine-normalised, tolerance {args.tolerance}x:")
        print(ratios.to_string(index=False) if len(ratios) else "no case in common")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
