"""``nexusbayes compare-models A.nc B.nc``: two fits of the same observations compared by PSIS-LOO and by their types.

Prints the LOO table (elpd difference, its SE, Pareto k) and the modal types' agreement; with ``--out`` writes
``model_comparison.csv``, ``type_disagreements.csv`` and the figure ``model_agreement.png``
(:mod:`nexusbayes.report.model_choice`), each file atomically, refusing to replace any without ``--overwrite``
(checked before anything is written). ``nexusbayes report A.nc --compare-with B.nc`` adds the same section to
A's HTML report.
"""

from __future__ import annotations

from pathlib import Path

#: The figure's file name in ``--out`` (the tables are ``<stem>.csv``).
FIGURE = "model_agreement.png"


def add_parser(sub, dpi) -> None:
    """Add the ``compare-models`` subcommand (``dpi``: the argparse type of the figure's resolution)."""
    p = sub.add_parser("compare-models", help="compare two saved fits of the same data (e.g. trait and regime "
                                              "kinds) by PSIS-LOO and by their modal types")
    p.add_argument("fits", type=Path, nargs=2, metavar="FIT",
                   help="two saved fits of the same observations, e.g. reports/kyrgyzstan/fit.nc "
                        "reports/kyrgyzstan_regime/fit.nc")
    p.add_argument("--names", nargs=2, metavar="NAME", help="the fits' names in the tables (default: their kinds)")
    p.add_argument("--out", type=Path, help="also write the tables (CSV) and the agreement figure (PNG) here")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in --out")
    p.add_argument("--dpi", type=dpi, default=120, help="resolution of the figure (default 120; 300 for print)")


def compare_models_command(args) -> int:
    """Run ``compare-models``: print the comparison, optionally write it (see the module docstring)."""
    from nexusbayes import interrupts
    from nexusbayes.errors import OutputExistsError
    from nexusbayes.files import atomic_write
    from nexusbayes.fit import load
    from nexusbayes.report.figures import png
    from nexusbayes.report.model_choice import STEMS, section
    from nexusbayes.report.run import write_tables

    if args.out is not None:     # refuse before the (slow) loading and LOO
        existing = [p for p in [args.out / f"{s}.csv" for s in STEMS] + [args.out / FIGURE] if p.exists()]
        if existing and not args.overwrite:
            raise OutputExistsError(f"{', '.join(map(str, existing))} exist(s); pass --overwrite to replace")
    first, second = (load(path) for path in args.fits)
    tables, figures = section(first, second, tuple(args.names) if args.names else None)
    caption, figure = figures["model_agreement"]
    print(tables["model_comparison"].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\n{caption}")
    disagreements = tables["type_disagreements"]
    if len(disagreements):
        print(f"\n== region-periods whose modal types differ ({len(disagreements)}) ==")
        print(disagreements.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out is not None:
        data = png(figure, dpi=args.dpi)
        write_tables(tables, args.out, overwrite=True)
        with interrupts.deferred():
            atomic_write(args.out / FIGURE, lambda tmp: Path(tmp).write_bytes(data))
        print(f"\nWrote {', '.join(f'{s}.csv' for s in STEMS)} and {FIGURE} to {args.out}/")
    return 0
