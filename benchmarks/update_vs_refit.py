"""An update with one new period against full refits on the same data (issue 25, part 1's targets).

``python -m benchmarks.update_vs_refit medium --chains 4 --draws 1000 --held 100,25 --means``

The panel's last period is held back; a base fit on the others is updated with it (``Fit.update``, the
filter, for each ``--held`` K and, with ``--means``, held at the means) and compared with two full refits on
all periods (seeds 1 and 2: their difference is the Monte Carlo floor of a comparison at these run lengths).
All traits are put on the base fit's scale (each draw re-standardised over the fitted periods' region-periods:
the update keeps that scale, a refit re-standardises over all periods). Per method: the trait means' mean and
max absolute difference from refit 1 in refit 1's posterior SDs, for the added period and the earlier ones
separately; the type probabilities' mean and max absolute difference (added period); the CPU seconds of the
process (all threads) and the wall seconds of compiling and sampling. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.cases import make_case
from nexusbayes.fit import fit

SAMPLE = ("chain", "draw")
#: The cases besides the benchmark sizes: the small simulated panel of HISTORY 05:40 and the example's last year.
CASES = ("sim_small", "central_asia")


def case_frames(name: str):
    """(spec, all rows, the rows before the last period, the last period's rows) of a case."""
    if name == "sim_small":
        from nexusbayes.model.simulate import simulate

        sim = simulate(n_countries=2, n_regions=3, n_periods=6, seed=3)
        spec, frame = sim.spec, sim.frame
    elif name == "central_asia":
        from nexusbayes.data.read import load_panel
        from nexusbayes.spec.document import load_spec

        spec, path = load_spec(Path(__file__).resolve().parents[1] / "models" / "central_asia.toml")
        frame = load_panel(path, spec).data_table()
    else:
        case = make_case(name)
        spec, frame = case.spec, case.panel.data_table()
    last = frame["period"].max()
    return spec, frame, frame[frame["period"] < last], frame[frame["period"] == last]


def rescaled(result, n_old: int):
    """Each draw's traits standardised over the first ``n_old`` periods' region-periods (the base fit's scale)."""
    theta = result.tree["posterior"]["theta"]
    ref = theta.isel(period=slice(0, n_old))
    return (theta - ref.mean(("region", "period"))) / ref.std(("region", "period"))


def gaps(a, b, n_old: int) -> dict:
    """Trait mean differences of ``b`` from ``a`` in ``a``'s posterior SDs, added and earlier periods."""
    out = {}
    for name, sel in (("added", slice(n_old, None)), ("earlier", slice(0, n_old))):
        x, y = a.isel(period=sel), b.isel(period=sel)
        gap = np.abs(x.mean(SAMPLE) - y.mean(SAMPLE)) / x.std(SAMPLE)
        out[f"gap_{name}_mean"], out[f"gap_{name}_max"] = float(gap.mean()), float(gap.max())
        out[f"sd_ratio_{name}"] = float((y.std(SAMPLE) / x.std(SAMPLE)).mean())
    return out


def floor(a, b, n_old: int) -> float:
    """The Monte Carlo SD of a difference of the added period's means, in posterior SDs, from both runs' ESS."""
    from arviz_stats import ess

    x, y = a.isel(period=slice(n_old, None)), b.isel(period=slice(n_old, None))
    return float(np.sqrt(1.0 / ess(x) + 1.0 / ess(y)).mean())


def timed(run):
    """(result, CPU seconds of the process, wall seconds) of ``run()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = run()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def settings_of(args) -> dict:
    """The fits' sampler settings."""
    return dict(chains=args.chains, draws=args.draws, tune=args.tune, progress=False, check=False)


def saved_fit(path: Path, spec, frame, seed: int, settings: dict):
    """The fit saved at ``path``, else fitted (seed ``seed``) and saved there; and its CPU seconds (None if read)."""
    from nexusbayes.fit import load

    if path.exists():
        return load(path), None
    result, cpu, _ = timed(lambda: fit(spec, frame, seed=seed, **settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    result.save(path)
    return result, cpu


def by_particles(args, settings: dict) -> int:
    """``--method particles``: the particle update per proposal and lag against the refit (see the README)."""
    import warnings

    from arviz_stats import ess

    spec, frame, old, new = case_frames(args.size)
    folder = args.fits or Path("benchmarks/results/update_fits")
    base, _ = saved_fit(folder / f"{args.size}_base.nc", spec, old, 3, settings)
    refit, refit_cpu = saved_fit(folder / f"{args.size}_refit.nc", spec, frame, 1, settings)
    n_old = len(base.panel.periods)
    reference = rescaled(refit, n_old)
    ess_refit = ess(reference.isel(period=slice(n_old, None)))
    rows = {}
    print(f"{args.size}: {len(old)} + {len(new)} rows; refit CPU s {refit_cpu} (None: read from {folder})")
    print("| proposal | lag | M | Pareto k | ESS | particle ESS median (min) | gap added mean (max) | floor | "
          "gap earlier mean | SD ratio | types mean (max) | CPU s |", flush=True)
    for proposal in args.proposal.split(","):
        for lag in map(int, args.lag.split(",")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result, cpu, wall = timed(lambda proposal=proposal, lag=lag: base.update(
                    new, method="particles", particles=args.particles, seed=4, predictions=False,
                    proposal=proposal, lag=lag))
            attrs = result.tree.attrs
            row = dict(gaps(reference, rescaled(result, n_old), n_old), cpu=cpu, wall=wall,
                       load=os.getloadavg()[0], k=attrs["update_pareto_k"], ess=attrs["update_ess"],
                       particle_ess_median=attrs["update_particle_ess_median"],
                       particle_ess_min=attrs["update_particle_ess_min"], particles=attrs["update_particles"],
                       mc_floor=float(np.sqrt(1.0 / attrs["update_ess"] + 1.0 / ess_refit).mean()))
            types = np.abs(refit.type_probabilities().isel(period=-1) - result.type_probabilities().isel(period=-1))
            row.update(types_mean=float(types.mean()), types_max=float(types.max()))
            rows[f"{proposal} lag {lag}"] = row
            print(f"| {proposal} | {lag} | {row['particles']} | {row['k']:.2f} | {row['ess']:.0f} | "
                  f"{row['particle_ess_median']:.1f} ({row['particle_ess_min']:.1f}) | {row['gap_added_mean']:.3f} "
                  f"({row['gap_added_max']:.3f}) | {row['mc_floor']:.3f} | {row['gap_earlier_mean']:.3f} | "
                  f"{row['sd_ratio_added']:.2f} | {row['types_mean']:.3f} ({row['types_max']:.3f}) | {cpu:.1f} |",
                  flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"size": args.size, "rows": rows}, indent=1, default=str))
    return 0


def main(argv=None) -> int:
    """Run the comparison (see the module docstring); returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", default="medium", nargs="?")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=None)
    parser.add_argument("--held", default="100", help="comma-separated numbers of held draws K")
    parser.add_argument("--filter-draws", type=int, default=None, help="the filter's draws per chain")
    parser.add_argument("--means", action="store_true", help="also update with hold='means'")
    parser.add_argument("--keep", type=Path, default=None, help="a folder to save every run's fit in")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/update_vs_refit.json"))
    parser.add_argument("--method", choices=("filter", "particles"), default="filter")
    parser.add_argument("--lag", default="0", help="particles: comma-separated numbers of re-proposed periods")
    parser.add_argument("--proposal", default="laplace", help="particles: comma-separated proposals")
    parser.add_argument("--particles", type=int, default=None, help="particles per draw and country")
    parser.add_argument("--fits", type=Path, default=None,
                        help="particles: a folder with SIZE_base.nc and SIZE_refit.nc (read, or fitted and saved)")
    args = parser.parse_args(argv)
    if args.method == "particles":
        return by_particles(args, settings_of(args))
    _, frame, old, new = case_frames(args.size)
    case = make_case(args.size)
    n_old = frame["period"].nunique() - 1
    settings = settings_of(args)
    rows, runs = {}, {}
    keys = ("gap_added_mean", "gap_added_max", "gap_earlier_mean", "sd_ratio_added", "types_mean", "types_max",
            "mc_floor", "cpu", "wall", "compile", "sampling", "compile_source", "load")

    def record(name, result, cpu, wall, prefix=""):   # compared with refit 1, printed and written at once
        attrs = result.tree.attrs
        row = dict(cpu=cpu, wall=wall, load=os.getloadavg()[0],
                   compile=attrs.get(f"{prefix}seconds_compile"), sampling=attrs.get(f"{prefix}seconds_sampling"),
                   compile_source=attrs.get(f"{prefix}compile_source"))
        if "refit 1" in runs and name != "refit 1" and name != "base fit":
            reference = rescaled(runs["refit 1"], n_old)
            other = rescaled(result, n_old)
            row.update(gaps(reference, other, n_old), mc_floor=floor(reference, other, n_old))
            types = np.abs(runs["refit 1"].type_probabilities().isel(period=-1)
                           - result.type_probabilities().isel(period=-1))
            row.update(types_mean=float(types.mean()), types_max=float(types.max()))
        rows[name] = row
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, ""))
                                          for k in keys) + " |", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"size": args.size, "chains": args.chains, "draws": args.draws,
                                        "rows": rows}, indent=1, default=str))
        if args.keep is not None:   # the runs, to recompute the comparison from
            args.keep.mkdir(parents=True, exist_ok=True)
            path = args.keep / (name.replace(" ", "_").replace(",", "").replace("=", "").replace("(", "")
                                .replace(")", "") + ".nc")
            result.save(path, overwrite=True)

    print(f"{args.size}: {len(old)} + {len(new)} rows, {args.chains} chains x {args.draws} draws")
    print("| run | " + " | ".join(keys) + " |", flush=True)
    base, cpu, wall = timed(lambda: fit(case.spec, old, seed=3, **settings))
    record("base fit", base, cpu, wall)
    refit, cpu, wall = timed(lambda: fit(case.spec, frame, seed=1, **settings))
    runs["refit 1"] = refit
    record("refit 1", refit, cpu, wall)
    variants = [("draws", int(k)) for k in args.held.split(",")]
    for i, (hold, k) in enumerate(variants):
        # the first variant twice: the second run of a structure reads the compiled model from disk
        for attempt in ("cold", "cached") if i == 0 else ("cold",):
            result, cpu, wall = timed(lambda hold=hold, k=k: base.update(
                new, hold=hold, n_held=k, chains=args.chains, seed=4, draws=args.filter_draws, predictions=False))
            record(f"update K={k} ({attempt})", result, cpu, wall, "update_")
    refit, cpu, wall = timed(lambda: fit(case.spec, frame, seed=2, **settings))
    record("refit 2", refit, cpu, wall)
    if args.means:
        result, cpu, wall = timed(lambda: base.update(new, hold="means", chains=args.chains, seed=4,
                                                      predictions=False))
        record("update, means", result, cpu, wall, "update_")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
