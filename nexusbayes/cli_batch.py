"""``nexusbayes sweep`` and ``nexusbayes sbc``: the commands that run batches of fits on a Dask cluster.

Both take ``--scheduler ADDRESS`` and ``--workers N`` (:func:`add_cluster_arguments`) and resume when rerun.
Parsers are added by :func:`add_parsers` (from :mod:`nexusbayes.cli`); the commands import the package's
workflows only when run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nexusbayes.constants import SWEEP_KINDS


def add_cluster_arguments(parser: argparse.ArgumentParser, positive_int=int) -> None:
    """Add ``--scheduler ADDRESS`` and ``--workers N`` to a subcommand (batch-running commands share them).

    ``positive_int`` is the argparse type of ``--workers`` (:func:`nexusbayes.cli.positive_int` from the command).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_cluster_arguments(parser)
    >>> cluster_options(parser.parse_args(["--scheduler", "tcp://10.0.0.5:8786"]))
    {'scheduler': 'tcp://10.0.0.5:8786', 'n_workers': 2}
    """
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: start a "
                             "local cluster)")
    parser.add_argument("--workers", type=positive_int, default=2, metavar="N",
                        help="worker processes of the local cluster (default 2; ignored with --scheduler)")


def cluster_options(args: argparse.Namespace) -> dict:
    """The :func:`run_batch` keyword arguments set by :func:`add_cluster_arguments`."""
    return {"scheduler": args.scheduler, "n_workers": args.workers}


def add_parsers(sub, positive_int, sampler) -> None:
    """Add ``sweep`` and ``sbc`` (``positive_int``; ``sampler``: the argparse types of draws, tune, chains, seed)."""
    draws, tune, chains, seed = sampler
    p = sub.add_parser("sweep", help="fit variants of a spec (prior scales, indicators left out, countries) on a "
                                     "Dask cluster and print them side by side; rerun to resume")
    p.add_argument("spec", type=Path, help="model specification, e.g. models/kyrgyzstan.toml")
    p.add_argument("--kind", required=True, choices=SWEEP_KINDS,
                   help="which variants: prior scales x1/2 and x2, each indicator left out, or each country alone")
    p.add_argument("--out", type=Path, help="output folder (default reports/<name>/sweep-<kind>)")
    add_cluster_arguments(p, positive_int)
    p.add_argument("--draws", type=draws, help="draws per chain of each variant (default from the spec)")
    p.add_argument("--tune", type=tune, help="tuning steps per chain of each variant (default from the spec)")
    p.add_argument("--chains", type=chains, help="chains per variant (default from the spec)")
    p.add_argument("--seed", type=seed, help="batch seed (default the spec's sampler seed)")
    p.add_argument("--save-fits", action="store_true", help="also write each variant's fit.nc")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("sbc", help="simulation-based calibration: refit prior simulations on a Dask cluster, test "
                                   "rank uniformity; rerun to resume")
    p.add_argument("spec", type=Path, help="model specification; its data file gives the shape")
    p.add_argument("--n-sims", type=positive_int, default=100, help="number of simulations (default 100)")
    p.add_argument("--draws", type=draws, default=200, help="draws per chain per fit (default 200)")
    p.add_argument("--tune", type=tune, default=200, help="tuning draws per chain per fit (default 200)")
    p.add_argument("--chains", type=chains, default=2, help="chains per fit (default 2)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the simulations and fits (default 0)")
    p.add_argument("--out", type=Path, help="output folder (default reports/<name>_sbc); rerun to resume")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run of other settings in the output folder (one of the same settings "
                        "is resumed)")
    add_cluster_arguments(p, positive_int)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def sweep(args) -> int:
    """Run ``sweep``: fit the variants on a Dask cluster, print them side by side; 1 if any failed."""
    import pandas as pd

    from nexusbayes.data.resolve import resolve_covariates
    from nexusbayes.errors import SpecError
    from nexusbayes.outputs import default_out_dir
    from nexusbayes.spec.document import load_spec
    from nexusbayes.workflows import batch, jobs, sweeps

    spec, data_path = load_spec(args.spec)
    if data_path is None:
        raise SpecError(f"{args.spec}: names no data file (`data = ...`)")
    options = {k: v for k in ("draws", "tune", "chains") if (v := getattr(args, k)) is not None}
    sweep = sweeps.sweep_tasks(spec, data_path, args.kind, options=options,
                               covariates=resolve_covariates(args.spec, spec))
    out = args.out or default_out_dir(spec.name) / f"sweep-{args.kind}"
    for name, reason in sweep.refused.items():
        print(f"not fitted: {name}: {reason}")
    print(f"Fitting {len(sweep.tasks)} variant(s) of {args.spec} into {out}/ ...", flush=True)
    table = batch.run_batch(sweep.tasks, out, **cluster_options(args),
                            seed=spec.sampler.seed if args.seed is None else args.seed,
                            progress=not args.no_progress, summarise=batch.sweep_summary, save_fits=args.save_fits)
    keys = [c for c in table.columns if c.startswith(("theta.", "share."))]
    shown = table[["task", "status", *keys, *[c for c in ("max_rhat", "min_ess_bulk", "divergences", "seconds")
                                               if c in table]]]
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(shown.round(3).to_string(index=False))
    failed = table[table["status"] == "failed"]
    for _, row in failed.iterrows():
        print(f"FAILED {row['task']}: {row['error_type']}: {row['error_message']} "
              f"(traceback in {out / row['task'] / jobs.ERROR_FILE})", file=sys.stderr)
    return 1 if len(failed) else 0


def sbc(args) -> int:
    """Run ``sbc``: simulation-based calibration on a Dask cluster, print and save the tests; 1 if any fit failed."""
    from nexusbayes.outputs import default_out_dir
    from nexusbayes.spec.document import load_spec
    from nexusbayes.workflows.sbc import SIMS_DIR, run_sbc

    spec, _ = load_spec(args.spec)
    out = args.out or default_out_dir(f"{spec.name}_sbc")
    print(f"SBC of {args.spec}: {args.n_sims} simulations into {out}/ (each worker compiles the model once) ...",
          flush=True)
    result = run_sbc(args.spec, n_sims=args.n_sims, draws=args.draws, tune=args.tune, chains=args.chains,
                     seed=args.seed, out_dir=out, overwrite=args.overwrite, **cluster_options(args),
                     progress=not args.no_progress, status=lambda message: print(f"  {message}", flush=True))
    print(result.text())
    result.save(out)
    print(f"\nWrote {out}/ (ranks.csv, tests.csv, fits.csv, summary.json, ecdf_hyper.png, ecdf_theta.png; "
          f"one record per simulation in {SIMS_DIR}/)")
    failed = result.fits[~result.fits["ok"]]
    for _, row in failed.iterrows():
        print(f"FAILED simulation {row['sim']}: {row['error']}", file=sys.stderr)
    if len(failed):
        print(f"(tracebacks in {out / SIMS_DIR}/*/error.json; a rerun tries the failed simulations again)",
              file=sys.stderr)
    return 1 if len(failed) else 0   # like sweep: the tables are written, but the run is not complete


