"""The commands that carry a saved fit's draws forward: ``nexusbayes forecast``, ``export`` and ``update``.

Parsers are added by :func:`add_parsers` (from :mod:`nexusbayes.cli`); the commands import the package's
heavy parts (PyMC, ArviZ) only when run, so ``nexusbayes --help`` stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: What ``nexusbayes export --help`` says below its options.
EXPORT_EPILOG = """\
Each plausible value is one whole posterior draw of every region-period's traits (and type). Run your
analysis once per value of `pv` and combine the results by Rubin's rules: the estimate is the mean of the
estimates; its variance is the mean squared standard error plus (1 + 1/N) times the variance between the
estimates (nexusbayes.regress does this for regressions; see its documentation for when the plausible
values, rather than the posterior means, estimate a slope without bias).

example:
  nexusbayes export reports/kyrgyzstan/fit.nc --draws 20 --out kyrgyzstan_pv.parquet"""


def add_parsers(sub, positive_int, seed) -> None:
    """Add the ``forecast`` and ``export`` subcommands (``positive_int`` and ``seed``: argparse types)."""
    p = sub.add_parser("forecast", help="forecast the traits and types of the next periods from a saved fit (.nc)")
    p.add_argument("fit", type=Path, help="saved fit, e.g. reports/kyrgyzstan/fit.nc")
    p.add_argument("--periods", type=positive_int, metavar="K",
                   help="how many periods ahead (default 1, or one per --times; years continue with the panel's "
                        "typical gap)")
    p.add_argument("--times", type=float, nargs="+", metavar="YEAR",
                   help="the future periods' times in years, one per period (needed for named eras)")
    p.add_argument("--labels", nargs="+", metavar="LABEL",
                   help="the future periods' labels, one per period (default: their years)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the simulated innovations (default 0)")
    p.add_argument("--covariates", type=Path, metavar="FILE",
                   help="a fit with [covariates]: their values in the forecast periods (columns region, period and "
                        "the covariates; one row per region and forecast period)")
    p.add_argument("--hold-covariates", action="store_true",
                   help="a fit with [covariates]: hold each region's at its values in the last fitted period")
    p.add_argument("--out", type=Path, help="also write forecast_traits.csv and forecast_types.csv into this folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing CSV files in --out")
    p = sub.add_parser("export", help="write plausible values (posterior draws of the traits and types per "
                                      "region-period) of a saved fit as CSV or Parquet, for second-stage analyses",
                       epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fit", type=Path, help="saved fit, e.g. reports/kyrgyzstan/fit.nc")
    p.add_argument("--draws", type=positive_int, required=True, metavar="N",
                   help="how many plausible values (posterior draws, spread evenly over the chains; 5 to 20 is "
                        "usual)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="the table to write: FILE.csv or FILE.parquet (columns pv, country, region, period, one "
                        "per trait and type)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the choice of draws (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p = sub.add_parser("update", help="add new periods to a saved fit without a full refit: their traits sampled "
                                      "with the fit's measurement parameters and process scales held",
                       epilog=UPDATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fit", type=Path, help="saved fit, e.g. reports/kyrgyzstan/fit.nc")
    p.add_argument("data", type=Path, help="the new rows (CSV or Parquet, the main data's columns): periods after "
                                           "the last fitted one; rows at fitted periods must repeat the fitted rows")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="output folder (fit.nc, CSV tables, summary.txt, report/), replaced only when all is written")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in DIR")
    p.add_argument("--covariates", type=Path, metavar="FILE",
                   help="a fit with [covariates]: their values at the new periods (columns region, period and the "
                        "covariates; a row per fitted region and new period; fitted rows may repeat the fit's)")
    p.add_argument("--method", choices=["filter", "particles"], default="filter",
                   help="filter (default): a NUTS run of the new traits given held draws; particles: the fit's draws "
                        "reweighted by the new rows (PSIS) and the new traits drawn by particles from a Laplace "
                        "proposal given each draw, in NumPy, nothing compiled (reliable for a few new rows, not yet "
                        "for a whole new period: it warns when Pareto k > 0.7, refit then)")
    p.add_argument("--particles", type=positive_int, metavar="M",
                   help="particles per draw and country with --method particles (default 64)")
    p.add_argument("--lag", type=int, default=0, metavar="L",
                   help="with --method particles, re-propose the last L fitted periods' traits too (default 0)")
    p.add_argument("--hold", choices=["draws", "means"], default="draws",
                   help="hold the parameters at posterior draws, draw by draw (default; carries their uncertainty), "
                        "or at their posterior means (faster, narrower)")
    p.add_argument("--held", type=positive_int, default=100, metavar="K",
                   help="how many posterior draws to hold with --hold draws (default 100)")
    p.add_argument("--draws", type=positive_int, help="the filter's draws per chain (default 10, each giving one "
                                                      "draw per held copy; 1000 with --hold means)")
    p.add_argument("--tune", type=positive_int, help="the filter's tuning steps per chain (default 200)")
    p.add_argument("--chains", type=positive_int, help="chains (default from the fit's spec)")
    p.add_argument("--seed", type=seed, help="random seed (default from the fit's spec)")
    p.add_argument("--no-report", action="store_true", help="write fit.nc and the tables only")


#: What ``nexusbayes update --help`` says below its options.
UPDATE_EPILOG = """\
The update filters: the new periods' traits are sampled given the fit's loadings, intercepts, cut-points,
rater shifts, noise, country offsets, process scales and trait correlation, held fixed (and the last fitted
period's traits, from a normal approximation of their posterior); earlier periods keep the fit's posterior.
It covers new periods for the fit's countries, regions, indicators and raters; anything else needs a full
refit (nexusbayes fit), as do fits with centred dynamics or the regime model. A fit with covariates needs
their new periods' values (--covariates FILE; the default method). Fits with drift, informative missingness
or inflated counts are updated with --method particles only. The data file may hold the new periods alone.

example:
  nexusbayes update reports/kyrgyzstan/fit.nc data/kyrgyzstan_2024.csv --out reports/kyrgyzstan_2024"""


def update(args) -> int:
    """``nexusbayes update FIT NEW --out DIR``: the fit with the new periods, written as ``nexusbayes fit`` writes."""
    from nexusbayes.fit import load
    from nexusbayes.outputs import RUN, OutputFolder
    from nexusbayes.report.run import summary_text, write_run

    inputs = [args.fit, args.data, *([args.covariates] if args.covariates else [])]
    with OutputFolder(args.out, RUN, overwrite=args.overwrite, inputs=inputs) as folder:
        base = load(args.fit)
        print(f"Updating {args.fit} with {args.data} ...", flush=True)
        result = base.update(args.data, method=args.method, particles=args.particles, lag=args.lag, hold=args.hold,
                             n_held=args.held, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                             covariates=args.covariates, progress=False,
                             status=lambda message: print(f"  {message}", flush=True))
        attrs = result.tree.attrs
        if args.method == "particles":
            print(f"Added period(s) {attrs['update_added_periods']} ({attrs['update_added_rows']} rows) by "
                  f"particles: {attrs['update_seconds']:.1f} s, Pareto k {attrs['update_pareto_k']:.2f}, ESS after "
                  f"weighting {attrs['update_ess']:.0f} ({attrs['update_particles']} particles per draw and country)")
            print(f"Diagnostics that apply: {attrs['update_diagnostics']}.")
            if not attrs["update_pareto_k"] <= 0.7:
                print("WARNING: Pareto k > 0.7: the fit's draws do not cover the posterior given the new rows; the "
                      "updated draws are unreliable. Refit on all the data (nexusbayes fit)", flush=True)
        else:
            regions = f" and new region(s) {attrs['update_added_regions']}" if attrs.get("update_added_regions") else ""
            print(f"Added period(s) {attrs['update_added_periods']}{regions} ({attrs['update_added_rows']} rows): "
                  f"filter compile {attrs['update_seconds_compile']:.1f} s, sampling "
                  f"{attrs['update_seconds_sampling']:.1f} s")
        print(f"What was held: {attrs['update_held']}.")
        print(summary_text(result))
        write_run(result, folder, report=not args.no_report)
    print(f"Wrote {args.out}/ (fit.nc, CSV tables, summary.txt{'' if args.no_report else ', report/'})")
    return 0


def forecast(args) -> int:
    """``nexusbayes forecast FIT``: print the forecast types (or traits), optionally write the CSV tables."""
    import pandas as pd

    from nexusbayes.analysis.forecast import forecast_table, forecast_types_table
    from nexusbayes.analysis.regime_forecast import forecast_type_intervals
    from nexusbayes.errors import OutputExistsError
    from nexusbayes.fit import load
    from nexusbayes.report.run import write_tables

    names = ("forecast_traits.csv", "forecast_types.csv", "forecast_type_intervals.csv")
    existing = [str(args.out / n) for n in names if args.out is not None and (args.out / n).exists()]
    if existing and not args.overwrite:   # refused before loading
        raise OutputExistsError(f"{', '.join(existing)} exist(s); pass --overwrite to replace, or --out DIR")
    result = load(args.fit)
    periods = args.periods if args.periods is not None else (None if args.times else 1)
    fc = result.forecast(periods, times=args.times, labels=args.labels, seed=args.seed, covariates=args.covariates,
                         hold_covariates=args.hold_covariates)
    tables = {"forecast_traits": forecast_table(fc)}
    if "types" in fc.children:
        tables["forecast_types"] = forecast_types_table(fc)
    if "type_probability" in fc["forecast"]:      # a regime fit's: each P(type)'s interval over the draws
        tables["forecast_type_intervals"] = forecast_type_intervals(fc)
    shown = tables.get("forecast_types", tables["forecast_traits"])
    draws = fc["forecast"]
    print(f"Forecast of {result.spec.name!r} from {fc.attrs['last_period']}, {draws.sizes['horizon']} period(s) "
          f"ahead, {draws.sizes['chain'] * draws.sizes['draw']} draws"
          + (f" ({fc.attrs['covariates']})" if "covariates" in fc.attrs else "") + ":")
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_rows", None):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out is not None:
        write_tables(tables, args.out, overwrite=args.overwrite)
        print(f"Wrote {', '.join(f'{name}.csv' for name in tables)} to {args.out}/")
    return 0


def export(args) -> int:
    """``nexusbayes export FIT --draws N --out FILE``: write plausible values, atomically."""
    from nexusbayes.analysis.plausible import check_target
    from nexusbayes.fit import load

    check_target(args.out, args.overwrite)      # refused before loading
    result = load(args.fit)
    values = result.plausible_values(args.draws, seed=args.seed)
    path = values.write(args.out, overwrite=args.overwrite)
    table_rows = values.dataset.sizes["region"] * values.dataset.sizes["period"] * values.n
    print(f"Wrote {values.n} plausible values of {result.spec.name!r} ({table_rows} rows: pv x region x period) "
          f"to {path}; combine analyses over `pv` by Rubin's rules (see `nexusbayes export --help`)")
    return 0
