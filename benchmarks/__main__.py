"""Measure fit cost and recovery: ``python -m benchmarks [--quick] [--out FILE]``.

Cases: the bundled Kyrgyzstan example (default settings) and simulated 9-region x 10-period panels
(three seeds, mixed families) with known truth. For each: compile and sampling time apart, min bulk
and tail ESS over all posterior variables, ESS per second of sampling and end to end, max R-hat,
divergences, and (simulated cases) recovery correlation, 90% coverage and modal-type accuracy.
Results go to ``benchmarks/results/latest.json`` and a printed table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nexusbayes.constants import TYPES
from nexusbayes.fit import atomic_write, fit
from nexusbayes.simulate import simulate
from nexusbayes.typology import classify

ROOT = Path(__file__).resolve().parents[1]


def measure(result, wall: float) -> dict:
    """Cost and convergence figures of one fit."""
    diag = result.diagnostics
    t = result.timings
    min_bulk = float(diag.table["min_ess_bulk"].min())
    return {
        "observations": result.panel.n_obs,
        "compile_s": round(t["compile"], 2), "sampling_s": round(t["sampling"], 2),
        "postprocess_s": round(t["postprocess"], 2), "end_to_end_s": round(wall, 2),
        "min_ess_bulk": round(min_bulk, 1), "min_ess_tail": round(float(diag.table["min_ess_tail"].min()), 1),
        "ess_bulk_per_s_sampling": round(min_bulk / t["sampling"], 2),
        "ess_bulk_per_s_end_to_end": round(min_bulk / wall, 2),
        "max_rhat": round(float(diag.table["max_rhat"].max()), 4), "divergences": diag.divergences,
        "worst_variable": str(diag.table["min_ess_bulk"].idxmin()),
    }


def recovery(sim, result) -> dict:
    """Correlation, 90% coverage and modal-type accuracy against the simulated truth."""
    theta = result.tree["posterior"]["theta"]
    truth = sim.truth["theta"]
    mean = theta.mean(("chain", "draw"))
    lo, hi = theta.quantile(0.05, ("chain", "draw")), theta.quantile(0.95, ("chain", "draw"))
    cap, will = truth.sel(trait="capability").values, truth.sel(trait="willingness").values
    clear = (np.abs(cap) > 0.5) & (np.abs(will) > 0.5)
    modal = result.type_probabilities().idxmax("type").values
    true_type = np.array(TYPES)[classify(cap, will, 0.0, 0.0)]
    return {
        **{f"r_{k}": round(float(np.corrcoef(mean.sel(trait=k).values.ravel(),
                                              truth.sel(trait=k).values.ravel())[0, 1]), 3)
           for k in sim.spec.traits},
        "coverage_90": round(float(((lo <= truth) & (truth <= hi)).mean()), 3),
        "modal_type_accuracy_clear": round(float((modal[clear] == true_type[clear]).mean()), 3),
    }


def main() -> None:
    """Run the cases and write the JSON file."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="one simulated seed only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args()
    rows = []
    start = time.perf_counter()
    result = fit(ROOT / "models" / "kyrgyzstan.toml", progress=False, check=False)
    rows.append({"case": "kyrgyzstan (default settings)", **measure(result, time.perf_counter() - start)})
    for seed in (11,) if args.quick else (11, 22, 33):
        sim = simulate(n_regions=9, n_periods=10, missing=0.1, n_raters=2, seed=seed)
        start = time.perf_counter()
        result = fit(sim.spec, sim.panel, draws=500, tune=500, chains=4, seed=seed, progress=False, check=False)
        rows.append({"case": f"simulated 9x10 seed {seed}", **measure(result, time.perf_counter() - start),
                     **recovery(sim, result)})
    record = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}, "when": time.strftime("%Y-%m-%d %H:%M"), "cases": rows}
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
    print(pd.DataFrame(rows).set_index("case").T.to_string())
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
