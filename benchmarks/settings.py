"""Compare nutpie's settings on one compiled model: ``python -m benchmarks.settings SIZE SETTING [SETTING ...]``.

Each SETTING is ``TARGET_ACCEPT:ADAPTATION`` (e.g. ``0.8:draw_diag``, ``0.9:diag``). The model of
SIZE (see :mod:`benchmarks.cases`) is compiled once and sampled once per setting with the same seed,
so the runs differ only in the setting; one JSON line per setting: sampling seconds, min bulk ESS
over every posterior element, ESS per second, max R-hat, divergences, leapfrog steps per draw, the
leapfrog steps of the warm-up and their share of all steps, the mean step size and the five slowest
variables. This is how the defaults (``[sampler]``) were chosen; the model's own changes are compared
by running it before and after them.

Examples
--------
``python -m benchmarks.settings medium 0.8:draw_diag 0.8:diag --seed 2``

``python -m benchmarks.settings small 0.8:draw_diag --tune 1000`` (the warm-up's share of the steps)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks.cases import make_case
from benchmarks.measure import convergence
from nexusbayes.analysis.diagnostics import diagnose
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model
from nexusbayes.spec.sections import SamplerSpec

DEFAULTS = SamplerSpec()   # the spec's [sampler] defaults


def parse_setting(text: str) -> tuple[float, str]:
    """``"0.8:draw_diag"`` -> ``(0.8, "draw_diag")``."""
    target, _, adaptation = text.partition(":")
    if not adaptation:
        raise argparse.ArgumentTypeError(f"setting {text!r}: expected TARGET_ACCEPT:ADAPTATION, e.g. 0.8:draw_diag")
    return float(target), adaptation


def compare(size: str, settings: list[tuple[float, str]], draws: int = DEFAULTS.draws, tune: int = DEFAULTS.tune,
            chains: int = DEFAULTS.chains, seed: int = 1):
    """Yield one record per setting (dict), sampling ``size``'s model compiled once."""
    case = make_case(size)
    model = Model(case.spec, case.panel)
    compile_s = None
    for target, adaptation in settings:
        start = time.perf_counter()
        run = case.spec.sampler.model_copy(update={"draws": draws, "tune": tune, "chains": chains, "seed": seed,
                                                    "target_accept": target, "adaptation": adaptation,
                                                    "backend": "nutpie"})
        tree = sample(model, run, progress=False, predictions=False, sampler_options={"save_warmup": tune > 0})
        compile_s = float(tree.attrs["seconds_compile"]) if compile_s is None else compile_s   # once: then cached
        start += float(tree.attrs["seconds_compile"])
        seconds = time.perf_counter() - start
        diag = diagnose(tree)
        slowest = diag.table["min_ess_bulk"].sort_values().iloc[:5]
        steps = int(tree["sample_stats"]["n_steps"].sum())
        warmup = int(tree["warmup_sample_stats"]["n_steps"].sum()) if tune > 0 else 0
        yield {"size": size, "target_accept": target, "adaptation": adaptation, "seed": seed,
               "draws": draws, "tune": tune, "chains": chains, "compile_s": round(compile_s, 1),
               "sampling_s": round(seconds, 1), **convergence(tree, seconds, seconds, diag),
               "warmup_steps": warmup, "warmup_share": round(warmup / (warmup + steps), 3),
               "step_size": round(float(tree["sample_stats"]["step_size"].mean()), 4),
               "slowest": {name: round(float(v), 1) for name, v in slowest.items()}}


def main(argv: list[str] | None = None) -> None:
    """Command line: print one JSON line per setting."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("size")
    parser.add_argument("settings", nargs="+", type=parse_setting, metavar="TARGET_ACCEPT:ADAPTATION")
    parser.add_argument("--draws", type=int, default=DEFAULTS.draws)
    parser.add_argument("--tune", type=int, default=DEFAULTS.tune)
    parser.add_argument("--chains", type=int, default=DEFAULTS.chains)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for record in compare(args.size, args.settings, args.draws, args.tune, args.chains, args.seed):
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    sys.exit(main())
