"""Shared fits: each compiled and sampled once per session, then inspected by many tests.

Memory (issue 27): a session fixture is released right after the last test that uses it (see
``pytest_runtest_teardown``), and after each test module the garbage collector runs, matplotlib's figures
are closed and glibc returns the freed heap to the system (``_release_memory_after_each_module``).

Also the hypothesis profiles: ``ci`` (default) is derandomized, so every run tries the same examples
and a failure in CI reproduces locally; ``dev`` (``HYPOTHESIS_PROFILE=dev``) draws new random
examples each run and tries more of them, for hunting.
"""

import contextlib
import ctypes
import ctypes.util
import gc
import io
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, settings

from nexusbayes.cli import main
from nexusbayes.fit import fit, load
from nexusbayes.model.simulate import simulate
from nexusbayes.report import REPORT_DIR

settings.register_profile(
    "ci", deadline=None, derandomize=True, database=None, max_examples=200, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", deadline=None, max_examples=1000, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
RECOVERY_SEEDS = (11, 22, 33)


@pytest.fixture(scope="session", params=RECOVERY_SEEDS, ids=lambda s: f"seed{s}")
def recovery(request):
    """A simulated 9-region x 10-period panel with mixed families and raters, fitted with nutpie."""
    sim = simulate(n_regions=9, n_periods=10, missing=0.1, n_raters=2, seed=request.param)
    # the default 300 tuning steps and 1000 draws: a longer warm-up is not always a better one (benchmarks/HISTORY.md,
    # 2026-12-01 03:39); seed 33 once failed on a funnel of the negative binomial's dispersion (2026-12-06 20:22)
    result = fit(sim.spec, sim.panel, chains=4, seed=request.param, progress=False, check=False)
    return sim, result


#: Seeds of the covariate recovery replicates (tests/model/test_covariates.py), one structure, compiled once.
COVARIATE_SEEDS = (101, 102, 103, 104)


@pytest.fixture(scope="session")
def covariate_fits():
    """Fits of simulated 8-region x 8-period panels with six covariates (12 planted effects): [(sim, fit, s)]."""
    from nexusbayes.model.simulate import default_spec
    from nexusbayes.spec.sections import CovariateEffect, CovariatesSpec

    both = ["capability", "willingness"]
    spec = default_spec(covariates=CovariatesSpec(columns={
        **{f"level{i}": CovariateEffect(on="level", traits=both) for i in range(3)},
        **{f"step{i}": CovariateEffect(on="step", traits=both) for i in range(3)}}))
    out = []
    for seed in COVARIATE_SEEDS:
        start = time.perf_counter()
        sim = simulate(spec, n_regions=8, n_periods=8, seed=seed)
        result = fit(sim.spec, sim.panel, chains=2, draws=500, seed=seed, progress=False, check=False)
        out.append((sim, result, time.perf_counter() - start))
    return out


#: Set by .ci/run to the folder its README command (``nexusbayes fit models/kyrgyzstan.toml``, the very run
#: :func:`kyrgyzstan_run` makes, with progress lines) has just written from this checkout: then the session's
#: Kyrgyzstan run is a copy of it instead of a second identical fit (about 60 s of CI).
CI_KYRGYZSTAN_RUN = "NEXUSBAYES_CI_KYRGYZSTAN_RUN"


def _fresh_ci_run(folder: str | None) -> Path | None:
    """The folder CI's README command wrote, if it is newer than the package, the spec and the data it fitted."""
    if not folder or not (Path(folder) / "fit.nc").is_file():
        return None
    written = (Path(folder) / "fit.nc").stat().st_mtime
    sources = [*(ROOT / "nexusbayes").rglob("*.py"), ROOT / "models" / "kyrgyzstan.toml", *(ROOT / "data").glob("*")]
    return Path(folder) if all(path.stat().st_mtime < written for path in sources) else None


@pytest.fixture(scope="session")
def kyrgyzstan_run(tmp_path_factory):
    """The main job, run through the command line with default settings: (exit status, output folder).

    In CI a copy of the run the README's command made just before the tests (see :data:`CI_KYRGYZSTAN_RUN`);
    that command's exit status is 0, or CI (``set -e``) stopped before the tests.
    """
    out = tmp_path_factory.mktemp("runs") / "kyrgyzstan"
    ci_run = _fresh_ci_run(os.environ.get(CI_KYRGYZSTAN_RUN))
    if ci_run is not None:
        shutil.copytree(ci_run, out)
        return 0, out
    status = main(["fit", str(ROOT / "models" / "kyrgyzstan.toml"), "--out", str(out), "--no-progress"])
    return status, out


@pytest.fixture(scope="session")
def kyrgyzstan(kyrgyzstan_run):
    """The Kyrgyzstan fit, loaded back from the run folder's fit.nc."""
    status, out = kyrgyzstan_run
    assert status == 0
    return load(out / "fit.nc")


HOSTILE = "<script>alert(1)</script>"
HOSTILE_LABEL = "<b>staff</b> & co"


@pytest.fixture(scope="session")
def hostile_cli(tmp_path_factory):
    """`nexusbayes fit` on a tiny simulated panel with a hostile region name: (exit status, run folder, report,
    {figure index: overlapping text pairs}, what it printed, whether its structure was compiled before it ran, the
    label of each table the data reader validated while it ran).

    The report the command writes is kept, with each of its figures' overlapping texts recorded just before the
    figure is rendered (tests/report/test_figures.py checks them), so that no test renders this fit's report
    again. Run with ``--forecast-check 1`` (a second tiny fit of the first three periods), so that the command's
    forecast check is tested on the same run (tests/report/test_forecasts.py). Run with progress (a line every
    0.2 s, where no terminal shows a bar) and its standard output kept, for tests/test_examples.py's progress test.
    """
    from nexusbayes.data import read
    from nexusbayes.data.read import load_panel
    from nexusbayes.inference import compile_cache
    from nexusbayes.inference import progress as progress_module
    from nexusbayes.report import figures
    from nexusbayes.report import run as report_run
    from nexusbayes.spec.document import load_spec
    from tests.report.test_figures import overlapping_text

    sim = simulate(n_regions=3, n_periods=4, n_raters=2, seed=5)
    folder = tmp_path_factory.mktemp("hostile")
    sim.frame.replace({"region": {"C1-R02": HOSTILE}}).to_csv(folder / "sim.csv", index=False)
    indicators = dict(sim.spec.indicators)
    indicators["staff"] = indicators["staff"].model_copy(update={"label": HOSTILE_LABEL})
    spec = sim.spec.model_copy(update={"name": "hostile", "data": "sim.csv", "indicators": indicators})
    (folder / "hostile.toml").write_text(spec.to_toml())
    out = folder / "run"
    found, built, validated = {}, [], []
    render, build = figures.render, report_run.build_report

    def checking(fig, *formats, dpi=figures.DPI):
        found[len(found)] = overlapping_text(fig)
        return render(fig, *formats, dpi=dpi)

    def building(*args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(figures, "render", checking)
            built.append(build(*args, **kwargs))
        return built[-1]

    def validating(frame, spec, label, **kwargs):     # the reader's one validation of a table, counted
        validated.append(label)
        return validate(frame, spec, label, **kwargs)

    validate = read.validate
    as_read, data = load_spec(folder / "hostile.toml")     # as the command reads them
    # the command's fixed-length nutpie run compiles the lean model (inference/lean_trace.py): its own marker
    compiled_before = compile_cache.compiled_before(load_panel(data, as_read), as_read, lean=True)
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(report_run, "build_report", building)
        patch.setattr(progress_module, "PROGRESS_SECONDS", 0.2)
        patch.setattr(read, "validate", validating)
        status = main(["fit", str(folder / "hostile.toml"), "--out", str(out), "--draws", "60",
                       "--tune", "100", "--chains", "2", "--seed", "3", "--forecast-check", "1"])
    return (status, out, (built[0] if len(built) == 1 else None), found, printed.getvalue(), compiled_before,
            validated)


@pytest.fixture(scope="session")
def hostile_run(hostile_cli):
    """`nexusbayes fit` on a tiny simulated panel with a hostile region name: (exit status, run folder)."""
    return hostile_cli[:2]


@pytest.fixture(scope="session")
def hostile(hostile_run):
    status, out = hostile_run
    assert status == 0
    return load(out / "fit.nc"), out / REPORT_DIR


@pytest.fixture(scope="session")
def hostile_report(hostile_cli):
    """The report `nexusbayes fit` wrote for the hostile fit, with each figure's overlapping texts recorded before it
    was rendered: (report, {figure index: overlapping text pairs})."""
    status, _, report, found, *_ = hostile_cli
    assert status == 0 and report is not None, "the hostile fit's report was not built exactly once"
    return report, found


@pytest.fixture(scope="session")
def central_asia_run(tmp_path_factory):
    """The Central Asia example through the command line at its defaults: (exit status, output folder, stdout)."""
    out = tmp_path_factory.mktemp("runs") / "central_asia"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["fit", str(ROOT / "models" / "central_asia.toml"), "--out", str(out), "--no-progress"])
    return status, out, printed.getvalue()


#: The small panel the doctests, tests/inference and tests/test_examples compile: one structure for them all.
SMALL = {"n_regions": 3, "n_periods": 4, "missing": 0.1, "seed": 1}


@pytest.fixture(scope="session")
def small_compiled():
    """The model of :data:`SMALL`, compiled with nutpie's callbacks cached on disk (for a new process to load)."""
    from nexusbayes.inference.nutpie_callbacks import compile_model
    from nexusbayes.model.build import build_model

    sim = simulate(**SMALL)
    return compile_model(build_model(sim.panel, sim.spec))


#: Run by :func:`fresh_process` in a new Python: the compiled model of :data:`SMALL` loaded from disk (its cache hits,
#: log density and expanded draw at the point ``X``), then a fit of it from Python, then what makes PyTensor warn
#: that it found no BLAS.
FRESH_PROCESS = """
import json
import numpy as np
import nexusbayes as nb
from nexusbayes.inference import compile_cache
from nexusbayes.inference.nutpie_callbacks import call_expand, call_logp
from nexusbayes.model.build import build_model

sim = nb.simulate(**{small!r})
compiled, _ = compile_cache.compile_nutpie(build_model(sim.panel, sim.spec), sim.panel, sim.spec)
x = np.array({x!r})
print(json.dumps({{"hits": [compiled.compiled_logp_func.cache_hits, compiled.compiled_expand_func.cache_hits],
                   "logp": call_logp(compiled, x)[1], "expand": call_expand(compiled, x)[1].tolist()}}), flush=True)
nb.fit(sim.spec, sim.panel, draws=50, tune=50, chains=1, progress=False, check=False)
import pytensor
pytensor.config.blas__ldflags
"""


@pytest.fixture(scope="session")
def fresh_process(small_compiled):
    """One new Python process (``-W default``) running :data:`FRESH_PROCESS` at the point ``x`` (the first of
    tests/inference/test_nutpie_callbacks.py's points), after this one compiled :data:`SMALL`: (x, its run).

    tests/inference/test_nutpie_callbacks.py reads its callbacks' cache hits and values, tests/test_examples.py
    that its stderr holds no BLAS warning: one start of Python and one compile for both.
    """
    import subprocess

    import numpy as np

    x = np.random.default_rng(11).normal(scale=0.5, size=small_compiled.n_dim)
    script = FRESH_PROCESS.format(small=SMALL, x=x.tolist())
    done = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True,
                          timeout=900, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return x, done


# ---- memory (issue 27) -------------------------------------------------------------------------------------------
# A session-scoped fixture stays alive until the session ends, long after the last test that needs it. These are
# released (their cached value dropped) as soon as the last test using them, directly or through another fixture,
# has been torn down; pytest recomputes one if a later test asks for it again (e.g. in another test order).
RELEASE_AFTER_LAST_USE = ("recovery", "kyrgyzstan_run", "kyrgyzstan", "hostile_cli", "hostile_run", "hostile",
                          "hostile_report", "central_asia_run", "two_country", "page", "small_compiled",
                          "fresh_process")
_last_use: dict[str, str] = {}   # fixture name -> nodeid of the last test that uses it


def pytest_collection_finish(session):
    """Record the last test (in run order, after pytest's own reordering) that uses each released fixture."""
    _last_use.clear()
    for item in session.items:
        for name in RELEASE_AFTER_LAST_USE:
            if name in getattr(item, "fixturenames", ()):
                _last_use[name] = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    names = [n for n, last in _last_use.items() if last == item.nodeid]
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for name in names:
        for fixturedef in defs.get(name, ()):
            if fixturedef.scope == "session":
                fixturedef.finish(SimpleNamespace(node=item))   # finish() reads only request.node
    if names:
        gc.collect()
        _malloc_trim()
    return result


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


def _malloc_trim() -> None:
    """Hand the free pages of glibc's heaps back to the system (numba, nutpie and NumPy leave many behind)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


@pytest.fixture(scope="module", autouse=True)
def _release_memory_after_each_module():
    """After each test module: close its figures, collect reference cycles (PyTensor graphs), trim the heap."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    gc.collect()
    _malloc_trim()
