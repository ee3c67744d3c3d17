"""Shared fits: each compiled and sampled once per session, then inspected by many tests.

Also the hypothesis profiles: ``ci`` (default) is derandomized, so every run tries the same examples
and a failure in CI reproduces locally; ``dev`` (``HYPOTHESIS_PROFILE=dev``) draws new random
examples each run and tries more of them, for hunting.
"""

import contextlib
import io
import os
from pathlib import Path

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
    # the default 300 tuning steps and 1000 draws. At seed 11 theta's min bulk ESS is 2400 of 4000 draws
    # (max R-hat 1.0035); 1000 tuning steps gave 2323 (1.0034), while 500 left the mass matrix poorly
    # adapted (528, 1.0111): a longer warm-up is not always a better one
    result = fit(sim.spec, sim.panel, chains=4, seed=request.param, progress=False, check=False)
    return sim, result


@pytest.fixture(scope="session")
def kyrgyzstan_run(tmp_path_factory):
    """The main job, run through the command line with default settings: (exit status, output folder)."""
    out = tmp_path_factory.mktemp("runs") / "kyrgyzstan"
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
def hostile_run(tmp_path_factory):
    """`nexusbayes fit` on a tiny simulated panel with a hostile region name: (exit status, run folder)."""
    sim = simulate(n_regions=3, n_periods=4, n_raters=2, seed=5)
    folder = tmp_path_factory.mktemp("hostile")
    sim.frame.replace({"region": {"C1-R02": HOSTILE}}).to_csv(folder / "sim.csv", index=False)
    indicators = dict(sim.spec.indicators)
    indicators["staff"] = indicators["staff"].model_copy(update={"label": HOSTILE_LABEL})
    spec = sim.spec.model_copy(update={"name": "hostile", "data": "sim.csv", "indicators": indicators})
    (folder / "hostile.toml").write_text(spec.to_toml())
    out = folder / "run"
    status = main(["fit", str(folder / "hostile.toml"), "--out", str(out), "--no-progress", "--draws", "60",
                   "--tune", "100", "--chains", "2", "--seed", "3"])
    return status, out


@pytest.fixture(scope="session")
def hostile(hostile_run):
    status, out = hostile_run
    assert status == 0
    return load(out / "fit.nc"), out / REPORT_DIR


@pytest.fixture(scope="session")
def central_asia_run(tmp_path_factory):
    """The Central Asia example through the command line at its defaults: (exit status, output folder, stdout)."""
    out = tmp_path_factory.mktemp("runs") / "central_asia"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["fit", str(ROOT / "models" / "central_asia.toml"), "--out", str(out), "--no-progress"])
    return status, out, printed.getvalue()
