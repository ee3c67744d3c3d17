"""The particle update of the bundled example (drift, informative gaps, quota heaping) against a refit (issue 25).

``python -m benchmarks.update_features --base BASE.nc --refit REFIT.nc --particles 16 --lag 0,1,2``

``models/kyrgyzstan.toml`` fitted on 1991-2015 (``--base``; fitted here with the spec's sampler settings and
seed 3 when the file does not exist) is updated with 2016 from ``data/kyrgyzstan.csv`` by particles
(``Fit.update(method="particles")``, with ``--proposal``: the Laplace one by default, or ``prior``, the new
traits drawn from the fitted dynamics; re-proposing the last ``--lag`` fitted years), and compared with a refit
on all years (``--refit``; seed 1 when fitted here). Per variant (``--particles``, ``--lag``, and 2016's rows
of all regions or, with ``--one-region``, of one region only too): Pareto k, the ESS after weighting, the
particle ESS per draw (minimum, median), the distinct draws kept, the CPU seconds of the update (all threads)
and, for the whole year, the trait means' gaps from the refit in the refit's posterior SDs (on the base fit's
scale, see :func:`benchmarks.update_vs_refit.rescaled`) and the type probabilities' differences at 2016. Prints
a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import pandas as pd

from benchmarks.update_vs_refit import floor, gaps, rescaled, timed
from nexusbayes.fit import fit, load

ROOT = Path(__file__).resolve().parents[1]
SPEC, DATA = ROOT / "models" / "kyrgyzstan.toml", ROOT / "data" / "kyrgyzstan.csv"
LAST = 2016


def fitted(path: Path, frame: pd.DataFrame, seed: int):
    """The fit saved at ``path``, or a fit of ``frame`` with the example's settings saved there."""
    if path.exists():
        return load(path)
    result = fit(SPEC, frame, seed=seed, progress=False, check=False)
    result.save(path)
    return result


def main(argv=None) -> int:
    """Run the comparison (see the module docstring); returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=Path("benchmarks/results/kyrgyzstan_1991_2015.nc"))
    parser.add_argument("--refit", type=Path, default=Path("benchmarks/results/kyrgyzstan_1991_2016.nc"))
    parser.add_argument("--particles", default="256,1024", help="comma-separated particles per draw and country")
    parser.add_argument("--proposal", choices=("laplace", "prior"), default="laplace")
    parser.add_argument("--lag", default="0", help="comma-separated numbers of re-proposed fitted years")
    parser.add_argument("--one-region", action="store_true", help="also update with one region's 2016 rows alone")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/update_features.json"))
    args = parser.parse_args(argv)
    frame = pd.read_csv(DATA)
    base = fitted(args.base, frame[frame["period"] < LAST], seed=3)
    refit = fitted(args.refit, frame, seed=1)
    n_old = base.tree["posterior"].sizes["period"]
    new, fitted_rows = frame[frame["period"] == LAST], frame[frame["period"] < LAST]
    one = new[new["region"] == new["region"].iloc[0]]
    reference = rescaled(refit, n_old)
    keys = ("rows", "pareto_k", "ess", "particle_ess_min", "particle_ess_median", "distinct", "cpu", "wall", "load",
            "gap_added_mean", "gap_added_max", "gap_earlier_mean", "sd_ratio_added", "mc_floor", "types_mean",
            "types_max")
    rows = {}
    print("| variant | " + " | ".join(keys) + " |", flush=True)
    variants = [(f"{LAST}, all regions", new)] + ([(f"{LAST}, {one['region'].iloc[0]} only", one)]
                                                  if args.one_region else [])
    for m, lag, (label, rows_new) in ((m, lag, v) for m in map(int, args.particles.split(","))
                                      for lag in map(int, args.lag.split(",")) for v in variants):
        with warnings.catch_warnings(record=True):   # k > 0.7 is a result here, recorded below
            warnings.simplefilter("always")
            # with the fitted rows (unchanged): the new year's rows alone hold no non-report of the
            # informative indicators, which a panel of them needs
            result, cpu, wall = timed(lambda rows_new=rows_new, m=m, lag=lag: base.update(
                pd.concat([fitted_rows, rows_new]), method="particles", particles=m, seed=4, predictions=False,
                proposal=args.proposal, lag=lag))
        attrs = result.tree.attrs
        row = dict(rows=len(rows_new), pareto_k=attrs["update_pareto_k"], ess=attrs["update_ess"],
                   particle_ess_min=attrs["update_particle_ess_min"],
                   particle_ess_median=attrs["update_particle_ess_median"],
                   distinct=attrs["update_distinct_draws"], cpu=cpu, wall=wall, load=os.getloadavg()[0])
        if len(rows_new) == len(new):
            other = rescaled(result, n_old)
            row.update(gaps(reference, other, n_old), mc_floor=floor(reference, other, n_old))
            types = abs(refit.type_probabilities().isel(period=-1) - result.type_probabilities().isel(period=-1))
            row.update(types_mean=float(types.mean()), types_max=float(types.max()))
        name = f"{label}, {args.proposal}, lag {lag}, M={m}"
        rows[name] = row
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" if isinstance(row.get(k), float) else
                                          str(row.get(k, "")) for k in keys) + " |", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"base": str(args.base), "refit": str(args.refit), "rows": rows,
                                        "time": time.strftime("%Y-%m-%d %H:%M")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
