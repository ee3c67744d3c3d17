"""Where the example's command spends its time: wall and CPU seconds per phase of ``nexusbayes fit SPEC``.

``python -m benchmarks.phases [SPEC] [--out DIR] [--cold] [-- FIT OPTIONS]`` runs the command in this process (as
``nexusbayes fit SPEC --out DIR --overwrite --no-progress``), wrapping the package's functions, and prints one
row per phase: wall seconds, CPU seconds of the whole process (every thread: nutpie's, the post-processing
pool's) and the load average at its end. CPU seconds hardly depend on the machine's load; wall seconds do.
Phases nest (``report`` holds its figures, LOO and rendering), so the rows do not add up; ``other`` is the
command's time outside every top-level phase.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import resource
import time

START_WALL = time.perf_counter()


def cpu() -> float:
    """CPU seconds of this process so far (user + system, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: (module, attribute, phase, top level): the functions timed. ``Class.method`` wraps a method.
TIMED = (
    ("nexusbayes.inference.compile_cache", "compile_nutpie", "compiled model (disk cache or compile)", True),
    ("nexusbayes.inference.sample", "_nutpie", "sampling", True),
    ("nexusbayes.inference.lean_trace", "to_tree", "  lean trace expanded (a first run compiles the callback)", False),
    ("nexusbayes.inference.sample", "_tidy", "tidy + orient + single precision", False),
    ("nexusbayes.model.build", "Model.add_predictions", "predictions + log-likelihood", True),
    ("nexusbayes.model.build", "Model.prior_predictive", "prior predictive", True),
    ("nexusbayes.fit", "diagnose", "diagnostics", True),
    ("nexusbayes.fit", "Fit.save", "Fit.save (fit.nc)", True),
    ("nexusbayes.report.run", "result_tables", "result tables", True),
    ("nexusbayes.report.run", "summary_text", "summary text", True),
    ("nexusbayes.report.run", "build_report", "report (all of it)", True),
    ("nexusbayes.report.checks", "rank_tests", "  rank tests", False),
    ("nexusbayes.report.checks", "sampling_figures", "  sampling figures (built)", False),
    ("nexusbayes.report.checks", "predictive_figures", "  predictive figures (built)", False),
    ("nexusbayes.report.checks", "loo", "  PSIS-LOO and its figures (built)", False),
    ("nexusbayes.report.figures", "render", "  rendering every PNG", False),
    ("nexusbayes.report", "render_html", "  HTML page", False),
    ("nexusbayes.report", "Report.write", "report files written", True),
)


def cold_compiledir() -> str:
    """Point PyTensor at a new, empty ``base_compiledir`` (before anything imports it); return the folder."""
    import sys
    import tempfile

    if "pytensor" in sys.modules:
        raise RuntimeError("--cold: PyTensor was imported already; its compile directory is fixed")
    folder = tempfile.mkdtemp(prefix="nexusbayes_cold_")
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    os.environ["PYTENSOR_FLAGS"] = f"{flags},base_compiledir={folder}" if flags else f"base_compiledir={folder}"
    print(f"compiling into the empty {folder} (delete it afterwards)", flush=True)
    return folder


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    """Run the command with every phase of :data:`TIMED` timed; print and return ``{phase: (wall, cpu)}``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.phases", description=__doc__)
    parser.add_argument("spec", nargs="?", default="models/kyrgyzstan.toml")
    parser.add_argument("--out", default="/tmp/nexusbayes_phases")
    parser.add_argument("--cold", action="store_true",
                        help="compile into a new, empty PyTensor base_compiledir (a first run on a new machine)")
    args, rest = parser.parse_known_args(argv)
    if args.cold:
        cold_compiledir()
    totals: dict[str, list[float]] = {}
    depth = [0]
    top = [0.0, 0.0]
    cpu0 = cpu()
    from nexusbayes import cli
    modules = {name: importlib.import_module(name) for name, *_ in TIMED}   # what the command's _fit imports
    imported = (time.perf_counter() - START_WALL, cpu() - cpu0)
    for module_name, attribute, phase, is_top in TIMED:
        module = modules[module_name]
        owner, name = (getattr(module, attribute.split(".")[0]), attribute.split(".")[1]) if "." in attribute \
            else (module, attribute)
        original = getattr(owner, name)

        def timed(*a, _original=original, _phase=phase, _top=is_top, **k):
            wall, used = time.perf_counter(), cpu()
            outer = _top and depth[0] == 0
            depth[0] += outer
            try:
                return _original(*a, **k)
            finally:
                depth[0] -= outer
                entry = totals.setdefault(_phase, [0.0, 0.0, 0.0])
                dw, dc = time.perf_counter() - wall, cpu() - used
                entry[0] += dw
                entry[1] += dc
                entry[2] = os.getloadavg()[0]
                if outer:
                    top[0] += dw
                    top[1] += dc

        setattr(owner, name, functools.wraps(original)(timed))
    status = cli.main(["fit", args.spec, "--out", args.out, "--overwrite", "--no-progress", *rest])
    wall, used = time.perf_counter() - START_WALL, cpu() - cpu0
    rows = {"imports (nexusbayes.cli and what _fit imports)": (*imported, os.getloadavg()[0])}
    rows.update({phase: tuple(v) for phase, v in totals.items()})
    rows["other (outside the phases above, after the imports)"] = (wall - imported[0] - top[0],
                                                                   used - imported[1] - top[1], os.getloadavg()[0])
    rows["the command, start to end"] = (wall, used, os.getloadavg()[0])
    print(f"\n{'phase':<56} {'wall s':>8} {'CPU s':>8} {'load':>6}")
    for phase, (w, c, load) in rows.items():
        print(f"{phase:<56} {w:8.2f} {c:8.2f} {load:6.1f}")
    print(f"exit status {status}")
    return {phase: (w, c) for phase, (w, c, _) in rows.items()}


if __name__ == "__main__":
    main()
