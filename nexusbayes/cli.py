"""The ``nexusbayes`` command: thin; parses, calls the API, prints.

Commands
--------
``nexusbayes fit SPEC``      fit a spec, print the summary, write ``reports/<name>/``
``nexusbayes check SPEC``    validate the spec and its data without fitting
``nexusbayes summary FIT``   print the summary of a saved fit
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings
from pathlib import Path

from nexusbayes.errors import Interrupted, NexusBayesError

#: Exit status for each signal that stops a run: 128 + the signal number, as shells report it.
SIGNAL_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexusbayes", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="fit a model specification (TOML) and write its outputs")
    p.add_argument("spec", type=Path, help="model specification, e.g. models/kyrgyzstan.toml")
    p.add_argument("--out", type=Path, help="output folder (default reports/<name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in the output folder")
    p.add_argument("--backend", choices=["nutpie", "pymc"], help="sampler (default from the spec: nutpie)")
    p.add_argument("--draws", type=int)
    p.add_argument("--tune", type=int)
    p.add_argument("--chains", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true", help="exit with status 3 when a diagnostic fails")
    p = sub.add_parser("check", help="validate a spec and its data without fitting")
    p.add_argument("spec", type=Path)
    p = sub.add_parser("summary", help="print the summary of a saved fit (.nc)")
    p.add_argument("fit", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nexusbayes`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    received: list[int] = []
    try:
        with _signals_interrupt(received):
            return {"fit": _fit, "check": _check, "summary": _summary}[args.command](args)
    except NexusBayesError as exc:
        print(f"nexusbayes: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", None) or (received[-1] if received else signal.SIGINT)
        name = signal.Signals(signum).name
        print(f"nexusbayes: interrupted by {name}; nothing was written (earlier outputs are untouched, "
              "temporary files removed)", file=sys.stderr, flush=True)
        return SIGNAL_STATUS.get(signum, 128 + int(signum))


@contextlib.contextmanager
def _signals_interrupt(received: list[int]):
    """Turn SIGTERM (and SIGINT) into :class:`Interrupted`, so clean-up runs as for Ctrl-C.

    Python's default SIGTERM ends the process at once, leaving temporary files behind; raising an
    exception instead runs every ``finally`` (temporary folders removed, earlier outputs restored).
    Handlers are only installed in the main thread and are restored on exit.
    """
    def handler(signum, frame):
        received.append(signum)
        raise Interrupted(f"received {signal.Signals(signum).name}", signum=signum)

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
    from nexusbayes.diagnostics import SamplingWarning
    from nexusbayes.fit import fit
    from nexusbayes.outputs import check_writable, default_out_dir, summary_text, write_run
    from nexusbayes.spec import load_spec

    spec, _ = load_spec(args.spec)
    out = args.out or default_out_dir(spec.name)
    check_writable(out, args.overwrite)
    print(f"Fitting {args.spec} (compiling the model first; this takes a minute) ...", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        result = fit(args.spec, backend=args.backend, draws=args.draws, tune=args.tune, chains=args.chains,
                     seed=args.seed, progress=not args.no_progress,
                     status=lambda message: print(f"  {message}", flush=True))
    print(summary_text(result))
    write_run(result, out, overwrite=args.overwrite)
    print(f"\nWrote {out}/ (fit.nc and CSV tables)")
    if any(issubclass(w.category, SamplingWarning) for w in caught):
        print("\nWARNING: sampling diagnostics failed (see above); do not trust these results yet.", file=sys.stderr)
        if args.strict:
            return 3
    return 0


def _check(args) -> int:
    from nexusbayes.data import load_panel
    from nexusbayes.errors import SpecError
    from nexusbayes.spec import load_spec

    spec, data_path = load_spec(args.spec)
    if data_path is None:
        raise SpecError(f"{args.spec}: names no data file (`data = ...`)")
    panel = load_panel(data_path, spec)
    print(f"{args.spec}: valid. {panel.n_obs} observations of {len(panel.indicators)} indicators, "
          f"{len(panel.regions)} regions in {len(panel.countries)} country(ies), {len(panel.periods)} periods.")
    if panel.empty_cells:
        print(f"{len(panel.empty_cells)} region-period(s) have no observation (allowed: traits from the dynamics): "
              + ", ".join(f"{r} {p}" for r, p in panel.empty_cells[:10]))
    return 0


def _summary(args) -> int:
    from nexusbayes.fit import load
    from nexusbayes.outputs import summary_text

    print(summary_text(load(args.fit)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
