"""The ``nexusbayes`` command: thin; parses, calls the API, prints.

Commands
--------
``nexusbayes fit SPEC``      fit a spec, print the summary, write ``reports/<name>/`` (with ``report/report.html``)
``nexusbayes check SPEC``    validate the spec and its data without fitting
``nexusbayes summary FIT``   print the summary of a saved fit
``nexusbayes compare FIT``   compare countries (or regions) of a saved fit
``nexusbayes compare-models A B``   compare two fits of the same data (trait and regime kinds) by PSIS-LOO
``nexusbayes sweep SPEC --kind KIND``   fit variants of a spec on a Dask cluster, print them side by side
``nexusbayes report FIT``    write the diagnostics report of a saved fit (``report.html``, PNG figures, CSV tables)
``nexusbayes sbc SPEC``      simulation-based calibration on the shape of the spec's data, on a Dask cluster; resumable
``nexusbayes quick SPEC``    an approximate first look (ADVI): types by group and era, labelled APPROXIMATE
``nexusbayes forecast FIT``  the traits and types of the next periods under the fitted dynamics
``nexusbayes export FIT --draws N --out FILE``  plausible values (draws of the traits and types) as CSV or Parquet
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings
from pathlib import Path

from nexusbayes import cli_batch, cli_choice, cli_draws, interrupts
from nexusbayes.constants import FORECAST_PERIODS
from nexusbayes.errors import Interrupted, NexusBayesError, ReportWarning, count_range
from nexusbayes.spec.limits import MAX_CHAINS, MAX_DRAWS


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (e.g. ``--workers``, ``--n-sims``).

    Examples
    --------
    >>> positive_int("3")
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number >= 1, got '0'
    """
    return bounded_int(1)(text)


def bounded_int(low: int, high: int | None = None):
    """An argparse type: a whole number in ``low..high`` (a clear message instead of "invalid int value")."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {count_range(low, high)}, got {text!r}")
        return value
    parse.__name__ = "whole number"
    return parse


#: Exit status for each signal that stops a run: 128 + the signal number, as shells report it.
SIGNAL_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}

#: argparse types of the sampler settings, bounded as the spec's [sampler] is (fit also checks memory).
DRAWS, TUNE, CHAINS, SEED = (bounded_int(1, MAX_DRAWS), bounded_int(0, MAX_DRAWS), bounded_int(1, MAX_CHAINS),
                             bounded_int(0, 2**63 - 1))

#: ``--data PATH`` of ``fit`` and ``check``.
DATA_HELP = ("fit (check) this data file instead of the spec's `data`: relative to the spec file's folder, as the "
             "spec's own `data`; read and validated as that would be, in the spec's data format")
#: ``--forecast K`` of ``fit`` and ``report``: the periods ahead in the tables and the report's fan chart.
FORECAST = bounded_int(0, 100)
FORECAST_HELP = (f"forecast K periods ahead in the CSV tables and the report (default {FORECAST_PERIODS}; 0 for none; "
                 "named eras and [covariates] get none, with a note)")

#: What ``nexusbayes --help`` says about the program, above the list of commands.
DESCRIPTION = """\
Bayesian measurement of state capability and willingness: fit a model specification (TOML) to a panel of
indicators, and get each region's latent traits per period, the posterior probability of the four capacity
types (hegemonic, captured, degraded, failed), the transitions between them, and a diagnostics report that
says whether the sampler can be trusted."""

#: Below the list of commands: how to start.
EPILOG = """\
examples:
  nexusbayes fit models/kyrgyzstan.toml          # fit, print the summary, write reports/kyrgyzstan/
  nexusbayes quick models/kyrgyzstan.toml        # a fast approximate look (ADVI, labelled APPROXIMATE)
  nexusbayes summary reports/kyrgyzstan/fit.nc   # the summary of a saved fit again
  nexusbayes compare reports/central_asia/fit.nc # countries side by side, first and last period

`nexusbayes COMMAND --help` describes a command's options."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexusbayes", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="fit a model specification (TOML) and write its outputs")
    p.add_argument("spec", type=Path, help="model specification, e.g. models/kyrgyzstan.toml")
    p.add_argument("--out", type=Path, help="output folder (default reports/<name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in the output folder")
    p.add_argument("--backend", choices=["nutpie", "pymc"], help="sampler (default from the spec: nutpie)")
    p.add_argument("--draws", type=DRAWS, help="draws per chain kept after tuning (default from the spec's "
                                             "[sampler]: 1000)")
    p.add_argument("--tune", type=TUNE, help="tuning (warm-up) steps per chain (default from the spec: 300)")
    p.add_argument("--chains", type=CHAINS, help="number of chains (default from the spec: 4)")
    p.add_argument("--seed", type=SEED, help="random seed (default from the spec's [sampler])")
    p.add_argument("--until-converged", action="store_true", default=None,
                   help="sample until R-hat and ESS pass, checked every [sampler] check_every draws; --draws is "
                        "then the most per chain (default from the spec: off)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run each chain as a task on the Dask scheduler at ADDRESS, e.g. tcp://10.0.0.5:8786 "
                        "(each chain with a seed of its own; default: every chain on this machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or progress lines in logs)")
    p.add_argument("--strict", action="store_true", help="exit with status 3 when a diagnostic fails")
    p.add_argument("--forecast", type=FORECAST, default=FORECAST_PERIODS, metavar="K", help=FORECAST_HELP)
    p.add_argument("--data", type=Path, metavar="PATH", help=DATA_HELP)
    p.add_argument("--forecast-check", type=bounded_int(1, 100), metavar="K",
                   help="also refit without the last K periods (at least two must remain), forecast them and score "
                        "the forecast on their indicators against a no-change baseline (forecast_check.csv and the "
                        "report; costs a second fit; default: no check)")
    p = sub.add_parser("check", help="validate a spec and its data without fitting")
    p.add_argument("spec", type=Path, help="model specification, e.g. models/kyrgyzstan.toml")
    p.add_argument("--data", type=Path, metavar="PATH", help=DATA_HELP)
    p = sub.add_parser("summary", help="print the summary of a saved fit (.nc)")
    p.add_argument("fit", type=Path, help="saved fit, e.g. reports/kyrgyzstan/fit.nc")
    p = sub.add_parser("compare", help="compare countries or regions of a saved fit (.nc)")
    p.add_argument("fit", type=Path, help="saved fit of several countries, e.g. reports/central_asia/fit.nc")
    p.add_argument("units", nargs="*", metavar="UNIT",
                   help="two countries or regions to compare (default: every pair of countries)")
    p.add_argument("--period", action="append", dest="periods", metavar="PERIOD",
                   help="period to report (repeatable; default: the first and last periods)")
    p.add_argument("--all-periods", action="store_true", help="report every period")
    p.add_argument("--out", type=Path, help="also write the tables as CSV into this folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing CSV files in --out")
    cli_choice.add_parser(sub, bounded_int(50, 1200))
    cli_draws.add_parsers(sub, positive_int, SEED)
    cli_batch.add_parsers(sub, positive_int, (DRAWS, TUNE, CHAINS, SEED))
    p = sub.add_parser("report", help="write the diagnostics report (report.html) of a saved fit (.nc)")
    p.add_argument("fit", type=Path, help="saved fit, e.g. reports/kyrgyzstan/fit.nc")
    p.add_argument("--out", type=Path, help="report folder (default: report/ beside the fit file)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report in the folder")
    p.add_argument("--strict", action="store_true", help="exit with status 3 when a diagnostic fails")
    p.add_argument("--dpi", type=bounded_int(50, 1200), default=120,
                   help="resolution of the PNG figures (default 120; 300 for print)")
    p.add_argument("--svg", action="store_true", help="also write every figure as SVG (for papers)")
    p.add_argument("--forecast", type=FORECAST, default=FORECAST_PERIODS, metavar="K", help=FORECAST_HELP)
    p.add_argument("--compare-with", type=Path, metavar="FIT", help="another saved fit of the same data (e.g. the "
                   "other model kind): adds the model choice by PSIS-LOO to the report")
    p = sub.add_parser("quick", help="approximate first look (variational inference, no diagnostics): types by "
                                     "group and era, labelled APPROXIMATE")
    p.add_argument("spec", type=Path, help="model specification, e.g. models/kyrgyzstan.toml")
    p.add_argument("--method", choices=["advi", "fullrank_advi"], default="advi",
                   help="mean-field (default) or full-rank ADVI")
    p.add_argument("--iterations", type=positive_int, default=20_000, help="optimisation steps (default 20000)")
    p.add_argument("--seed", type=SEED, help="random seed (default from the spec's [sampler])")
    p.add_argument("--out", type=Path, help="also write quick_types.csv and quick_traits.csv into this folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing CSV files in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nexusbayes`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        with _signals_interrupt(), _report_warnings_printed():
            status = {"fit": _fit, "check": _check, "summary": _summary, "compare": _compare,
                      "sweep": cli_batch.sweep, "report": _report, "sbc": cli_batch.sbc, "quick": _quick,
                      "forecast": cli_draws.forecast, "export": cli_draws.export,
                      "update": cli_draws.update,
                      "compare-models": cli_choice.compare_models_command}[args.command](args)
        if interrupts.received():    # a signal held back (during a folder's swap) or swallowed: honoured now
            return _interrupted(args.command, None)
        return status
    except NexusBayesError as exc:
        print(f"nexusbayes: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(args.command, getattr(exc, "signum", None))
    finally:
        interrupts.reset()      # after the message: a later command (or API call) starts afresh


@contextlib.contextmanager
def _report_warnings_printed():
    """Print each :class:`~nexusbayes.errors.ReportWarning` as a ``WARNING:`` line on standard error.

    It names a part the report leaves out, and why; other warnings are shown as Python shows them.
    """
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, ReportWarning):
                print(f"WARNING: {message}", file=sys.stderr, flush=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        warnings.simplefilter("always", ReportWarning)
        yield


def _interrupted(command: str, signum: int | None) -> int:
    """Say truly what an interrupted command left behind; return the exit status of the signal."""
    received = interrupts.received()
    signum = signum or (received[-1] if received else signal.SIGINT)
    name = signal.Signals(signum).name
    written = interrupts.written_folders()
    if command in ("sweep", "sbc"):
        print(f"nexusbayes: interrupted by {name}; finished fits are kept: run the same command again to "
              "resume", file=sys.stderr, flush=True)
    elif written:
        print(f"nexusbayes: interrupted by {name} after {', '.join(map(str, written))} had been written in full; "
              "nothing else was changed (temporary files removed)", file=sys.stderr, flush=True)
    else:
        print(f"nexusbayes: interrupted by {name}; nothing was written (earlier outputs are untouched, "
              "temporary files removed)", file=sys.stderr, flush=True)
    return SIGNAL_STATUS.get(signum, 128 + int(signum))


@contextlib.contextmanager
def _signals_interrupt():
    """Turn SIGTERM (and SIGINT) into :class:`Interrupted`, so clean-up runs as for Ctrl-C.

    Python's default SIGTERM ends the process at once, leaving temporary files behind; raising an
    exception instead runs every ``finally`` (temporary folders removed, earlier outputs restored).
    Each signal is also recorded (:mod:`nexusbayes.interrupts`), so that one whose exception was
    swallowed is still honoured at the next safe point, and one that arrives while an output folder
    is swapped in is only recorded. Handlers are only installed in the main thread and are restored
    on exit.
    """
    def handler(signum, frame):
        interrupts.record(signum)
        if not interrupts.is_deferred():
            raise Interrupted(f"received {signal.Signals(signum).name}", signum=signum)

    interrupts.reset()
    previous = {}
    try:
        for sig in SIGNAL_STATUS:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signal handling alone
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _fit(args) -> int:
    from nexusbayes.analysis.diagnostics import SamplingWarning
    from nexusbayes.fit import DATA_GIVEN_ATTR, data_given, fit
    from nexusbayes.outputs import RUN, OutputFolder, default_out_dir
    from nexusbayes.report import REPORT_DIR, REPORT_FILE
    from nexusbayes.report.run import summary_text, write_run

    spec, data_path = _spec_and_data(args)
    out = args.out or default_out_dir(spec.name)
    # read and validated once, before the output folder (its errors name the file): the fit and the forecast check
    # get this panel
    panel, covariates = _panel(args, spec, data_path)
    if args.forecast_check:     # refused before the fit, not after it
        from nexusbayes.workflows.forecast_check import check_held_out

        check_held_out(len(panel.periods), args.forecast_check, "--forecast-check")
    inputs = [args.spec, *(data_path if isinstance(data_path, list) else [data_path]),
              *([covariates] if covariates is not None else [])]
    with OutputFolder(out, RUN, overwrite=args.overwrite, inputs=inputs) as folder:   # checked before compiling
        print(f"Fitting {args.spec}" + (f" to {data_path} (--data)" if args.data else "") + " ...", flush=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SamplingWarning)
            result = fit(spec, panel, backend=args.backend, draws=args.draws,
                         tune=args.tune, chains=args.chains, seed=args.seed, until_converged=args.until_converged,
                         progress=not args.no_progress, scheduler=args.scheduler,
                         status=lambda message: print(f"  {message}", flush=True))
        if args.data:
            result.tree.attrs[DATA_GIVEN_ATTR] = data_given(spec, panel)
        print(summary_text(result))
        check = _forecast_check(args, spec, panel) if args.forecast_check else None
        print(f"\nBuilding the report; {out}/ is replaced only when everything is written ...", flush=True)
        write_run(result, folder, report=True, forecast=args.forecast, forecast_check=check)
    print(f"Wrote {out}/ (fit.nc, CSV tables, summary.txt) and {out / REPORT_DIR / REPORT_FILE} (open it in a "
          "browser: the verdict, sampling checks, fit to data and results)")
    if any(issubclass(w.category, SamplingWarning) for w in caught):
        print("\nWARNING: sampling diagnostics failed (see above); do not trust these results yet.", file=sys.stderr)
    print(f"\n{verdict_line(result.diagnostics)}", flush=True)
    if args.strict and not result.diagnostics.passed:
        return 3
    return 0


def _forecast_check(args, spec, panel):
    """``fit --forecast-check K``: the refit of ``panel`` without the last K periods and its scores.

    None (and said) when the forecast is refused.
    """
    from nexusbayes.analysis.forecast import ForecastError
    from nexusbayes.workflows.forecast_check import forecast_check

    print(f"\nChecking the forecast: refitting without the last {args.forecast_check} period(s) ...", flush=True)
    try:
        _, check = forecast_check(spec, panel, periods=args.forecast_check, backend=args.backend, draws=args.draws,
                                  tune=args.tune, chains=args.chains, seed=args.seed)
    except ForecastError as exc:
        print(f"No forecast check: {exc}", file=sys.stderr, flush=True)
        return None
    print(f"Forecast check: {check.summary()}", flush=True)
    return check


def _spec_and_data(args):
    """The spec of ``args.spec`` and its data path(s): ``--data``'s when given, else the spec's ``data``.

    ``--data`` is relative to the spec file's folder, as the spec's own ``data`` is.
    """
    from nexusbayes.spec.document import load_spec

    spec, data_path = load_spec(args.spec)
    return (spec, (args.spec.parent / args.data).resolve()) if args.data else (spec, data_path)


def verdict_line(diagnostics) -> str:
    """The last line ``nexusbayes fit`` prints: ``VERDICT: passed`` or ``VERDICT: FAILED (the failed checks)``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> import pandas as pd
    >>> checks = pd.DataFrame({"label": ["max R-hat", "divergences"], "passed": [True, False]})
    >>> print(verdict_line(SimpleNamespace(passed=False, checks=checks)))
    VERDICT: FAILED (divergences; do not trust these results yet, see the report's verdict)
    """
    if diagnostics.passed:
        return "VERDICT: passed"
    failed = diagnostics.checks.loc[~diagnostics.checks["passed"], "label"]
    return f"VERDICT: FAILED ({', '.join(failed)}; do not trust these results yet, see the report's verdict)"


def _panel(args, spec, data_path):
    """The panel ``fit`` and ``check`` read, and the covariate table's path (None without ``[covariates]``).

    ``--data``'s file or the spec's own, with the covariates attached; refused when the spec names none.
    """
    from nexusbayes.data.resolve import resolve_covariates, resolve_panel
    from nexusbayes.errors import SpecError

    if data_path is None:
        raise SpecError(f"{args.spec}: names no data file (`data = ...`); or give one with --data PATH")
    covariates = resolve_covariates(args.spec, spec)
    return resolve_panel(spec, None, data_path, covariates=covariates), covariates


def _check(args) -> int:
    spec, data_path = _spec_and_data(args)
    panel, _ = _panel(args, spec, data_path)
    given = f" with --data {panel.source}" if args.data else ""
    print(f"{args.spec}{given}: valid. {panel.n_obs} observations of {len(panel.indicators)} indicators, "
          f"{len(panel.regions)} regions in {len(panel.countries)} country(ies), {len(panel.periods)} periods.")
    if panel.empty_cells:
        from nexusbayes.data.reporting import empty_with_non_reports

        gaps = empty_with_non_reports(panel)
        print(f"{len(panel.empty_cells)} region-period(s) have no observation (allowed: traits from the dynamics"
              + (f"; {gaps} of them have informative non-reports, which inform the traits" if gaps else "") + "): "
              + ", ".join(f"{r} {p}" for r, p in panel.empty_cells[:10])
              + (f" ... ({len(panel.empty_cells) - 10} more)" if len(panel.empty_cells) > 10 else ""))
    if len(panel.not_reported):
        print(f"{len(panel.not_reported)} non-report(s) of indicators with missing = \"informative\": "
              + ", ".join(f"{n} {c}" for n, c in panel.not_reported["indicator"].value_counts(sort=False).items()))
    for message in panel.warnings:
        print(f"WARNING: {message}")
    return 0


def _report(args) -> int:
    from nexusbayes.fit import load
    from nexusbayes.report import REPORT_DIR, write_report

    result = load(args.fit)
    out = args.out or args.fit.parent / REPORT_DIR
    other = load(args.compare_with) if args.compare_with else None
    inputs = [args.fit] + ([args.compare_with] if other is not None else [])
    page = write_report(result, out, overwrite=args.overwrite, inputs=inputs, dpi=args.dpi, svg=args.svg,
                        forecast=args.forecast, compare_with=other)
    print(result.diagnostics.text())
    print(f"Wrote {page}")
    if not result.diagnostics.passed:
        print("\nWARNING: sampling diagnostics failed (see the report's verdict); do not trust these results yet.",
              file=sys.stderr)
        if args.strict:
            return 3
    return 0


def _summary(args) -> int:
    from nexusbayes.fit import load
    from nexusbayes.report.run import summary_text

    print(summary_text(load(args.fit)))
    return 0


def _compare(args) -> int:
    from nexusbayes.analysis.compare import CompareError, comparison_tables
    from nexusbayes.fit import load
    from nexusbayes.report.run import write_tables

    if args.all_periods and args.periods:
        raise CompareError("give --period (repeatable) or --all-periods, not both")
    if len(args.units) not in (0, 2):
        raise CompareError(f"give two countries or regions to compare, or none for every pair (got {args.units})")
    result = load(args.fit)
    periods = None if args.all_periods else (args.periods or ())   # () = the first and last periods
    tables = comparison_tables(result, pair=tuple(args.units) or None, periods=periods)
    for title, table in tables.items():
        print(f"\n== {title.replace('_', ' ')} ==")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        write_tables(tables, args.out, overwrite=args.overwrite)
        print(f"\nWrote {len(tables)} CSV tables to {args.out}/")
    return 0


def _quick(args) -> int:
    from nexusbayes.errors import OutputExistsError
    from nexusbayes.inference.approximate import approximate
    from nexusbayes.report.run import write_tables

    names = ("quick_types.csv", "quick_traits.csv")
    existing = [str(args.out / n) for n in names if args.out is not None and (args.out / n).exists()]
    if existing and not args.overwrite:   # refused before fitting
        raise OutputExistsError(f"{', '.join(existing)} exist(s); pass --overwrite to replace, or --out DIR")
    result = approximate(args.spec, method=args.method, n=args.iterations, seed=args.seed,
                         progress=not args.no_progress)
    print(result.text())
    if args.out is not None:
        write_tables({"quick_types": result.types_table(), "quick_traits": result.trait_summary()}, args.out,
                     overwrite=args.overwrite)
        print(f"Wrote {args.out}/quick_types.csv and quick_traits.csv (APPROXIMATE)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
