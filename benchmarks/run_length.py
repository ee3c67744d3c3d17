"""Fixed length against run length by need: ``python -m benchmarks.run_length SIZE RUN [RUN ...] --seeds 0,1,2``.

Each RUN is ``fixed`` (the spec's ``draws``) or ``need`` (``until_converged``, cap ``--cap``), with options
after a colon: ``need:tune=150,every=50``, ``fixed:draws=800``. The model of SIZE (:mod:`benchmarks.cases`)
is compiled (or loaded) once; every run samples it with nutpie at the spec's other defaults, seed = the
spec's + each of ``--seeds``, in turn (never two at once), and prints one JSON line: wall and CPU seconds of
sampling (checks included) and of the fit's diagnosis after it, the load average before and after, the
draws kept, how the run stopped, the checks made (cheap and full) and their seconds, the gradient
evaluations of the warm-up and of the kept draws (a run by need also spent some on draws past its last
check point before it was cancelled: in its CPU seconds, not in this count), min bulk and tail ESS, bulk
ESS per 1,000 gradient evaluations, max R-hat, divergences, converged (max R-hat <= 1.01, bulk and tail
ESS >= 400, no divergences), and each chain's mean step size and leapfrog steps per draw (a chain whose step
size is under half the others' median is counted an adaptation failure).

Examples
--------
``python -m benchmarks.run_length small fixed need need:tune=150 --seeds 0,1,2``

``python -m benchmarks.run_length small --check-cost 700`` (CPU seconds of a full and a cheap check)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from benchmarks.cases import make_case
from benchmarks.settings import parse_setting
from nexusbayes.analysis.diagnostics import diagnose
from nexusbayes.constants import ESS_MIN, RHAT_MAX
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def parse_run(text: str) -> tuple[str, dict]:
    """``"need:tune=150,every=50"`` -> ``("need", {"tune": 150, "every": 50})``."""
    kind, _, options = text.partition(":")
    if kind not in ("fixed", "need"):
        raise argparse.ArgumentTypeError(f"run {text!r}: expected fixed or need, with options after a colon")
    return kind, parse_setting(f"0:x:{options}")[2] if options else {}


def measure(model: Model, base, kind: str, options: dict, seed: int, cap: int) -> dict:
    """One run of ``model``: its figures as a flat dict (see the module docstring)."""
    update = {"seed": base.seed + seed, "backend": "nutpie", "tune": int(options.get("tune", base.tune))}
    if kind == "need":
        update.update(until_converged=True, draws=int(options.get("draws", cap)),
                      check_every=int(options.get("every", base.check_every)))
    else:
        update["draws"] = int(options.get("draws", base.draws))
    settings = base.model_copy(update=update)
    load0, cpu0, wall0 = _load(), time.process_time(), time.perf_counter()
    tree = sample(model, settings, progress=False, predictions=False, sampler_options={"save_warmup": True})
    sampled_wall, sampled_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    compile_s = float(tree.attrs["seconds_compile"])
    diag = diagnose(tree)
    wall, cpu = time.perf_counter() - wall0 - compile_s, time.process_time() - cpu0
    stats, warm = tree["sample_stats"], tree["warmup_sample_stats"]
    steps, warm_steps = int(stats["n_steps"].sum()), int(warm["n_steps"].sum())
    bulk, tail = float(diag.table["min_ess_bulk"].min()), float(diag.table["min_ess_tail"].min())
    rhat = float(diag.table["max_rhat"].max())
    step_size = stats["step_size"].mean("draw").values
    failures = int((step_size < 0.5 * np.median(step_size)).sum())
    return {"size": model.spec.name, "run": kind, "options": options, "seed": settings.seed,
            "tune": settings.tune, "draws": int(tree.attrs["draws"]), "stopped_by": tree.attrs.get("stopped_by"),
            "checks_cheap": tree.attrs.get("checks_cheap"), "checks_full": tree.attrs.get("checks_full"),
            "seconds_checks": round(float(tree.attrs.get("seconds_checks", 0.0)), 2),
            "seconds_checks_full": round(float(tree.attrs.get("seconds_checks_full", 0.0)), 2),
            "compile_s": round(compile_s, 1), "sampling_wall_s": round(sampled_wall - compile_s, 1),
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cpu_sampling_s": round(sampled_cpu, 1),
            "load": [load0, _load()], "grad_evals_warmup": warm_steps, "grad_evals_kept": steps,
            "min_ess_bulk": round(bulk, 1), "min_ess_tail": round(tail, 1), "max_rhat": round(rhat, 4),
            "divergences": int(diag.divergences),
            "ess_per_1000_grad": round(1000 * bulk / (steps + warm_steps), 3),
            "converged": bool(rhat <= RHAT_MAX and min(bulk, tail) >= ESS_MIN and diag.divergences == 0),
            "step_size_per_chain": [round(float(s), 4) for s in step_size],
            "steps_per_draw_per_chain": [round(float(s), 1) for s in stats["n_steps"].mean("draw").values],
            "adaptation_failures": failures}


def check_cost(model: Model, draws: int, seed: int, repeats: int = 3) -> dict:
    """CPU seconds of one full check against one cheap check, on the same finished nutpie run of ``draws`` draws.

    The full check is what every check was before 2026-12-06: a copy of the trace (nutpie's ``inspect``),
    cut to ``draws``, oriented, judged over every posterior element. The cheap one reads the free variables
    from the raw Arrow trace and judges them. Best of ``repeats``; nothing else runs in the process. The run
    goes through :func:`~nexusbayes.inference.sample.sample` by need, its follower replaced by this timing.
    """
    from unittest import mock

    from nexusbayes.inference import run_length
    from nexusbayes.inference import sample as sample_module
    from nexusbayes.inference.progress import sampler_finished

    out = {"size": model.spec.name, "draws": draws, "chains": model.spec.sampler.chains, "load": [_load()]}

    def timed(sampler, cap, every, tune, watch, *, gates=None, prepare, quick, **_):
        while not sampler_finished(sampler):
            time.sleep(0.5)
        gates = run_length.Gates()

        def full():
            return gates.judge(prepare(run_length.truncate(sampler.inspect(), draws))["posterior"].to_dataset())

        def cheap():
            return gates.judge(quick(draws, None))

        for name, check in (("full", full), ("cheap", cheap)):
            check()     # first call: numba's compile of the diagnostics, imports
            best = []
            for _ in range(repeats):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                verdict = check()
                best.append((time.process_time() - cpu0, time.perf_counter() - wall0))
            out[f"{name}_cpu_s"], out[f"{name}_wall_s"] = (round(min(b[i] for b in best), 3) for i in (0, 1))
            out[f"{name}_verdict"] = verdict.text()
        return run_length.Outcome(sampler.wait(), cap, "cap")

    base = model.spec.sampler
    settings = base.model_copy(update={"seed": base.seed + seed, "backend": "nutpie", "draws": draws,
                                       "until_converged": True, "check_every": 10})
    with mock.patch.object(sample_module.run_length, "until_converged", timed):
        sample(model, settings, progress=False, predictions=False)
    out["load"].append(_load())
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: one JSON line per run and seed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_length", description=__doc__.split("\n\n")[0])
    parser.add_argument("size")
    parser.add_argument("runs", nargs="*", type=parse_run, metavar="fixed|need[:KEY=VALUE,...]")
    parser.add_argument("--check-cost", type=int, metavar="DRAWS", help="time one full and one cheap check instead")
    parser.add_argument("--seeds", default="0", help="comma-separated offsets added to the spec's seed")
    parser.add_argument("--cap", type=int, default=4000, help="draws per chain at most, by need (default 4000)")
    args = parser.parse_args(argv)
    case = make_case(args.size)
    model = Model(case.spec, case.panel)
    if args.check_cost:
        print(json.dumps({"case": args.size, **check_cost(model, args.check_cost, 0)}), flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        for kind, options in args.runs:
            record = measure(model, case.spec.sampler, kind, options, seed, args.cap)
            print(json.dumps({"case": args.size, **record}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
