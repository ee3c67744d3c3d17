"""A newcomer's first hour: the README's commands as CI runs them, the set-up script, the bundled examples'
verdicts at their defaults, the command line's help, its progress lines without a terminal, and no BLAS noise.

The bundled examples' fits at their defaults, and where they are checked:
kyrgyzstan (``kyrgyzstan`` fixture, here), central_asia (``central_asia_run`` fixture) and tip_central_asia
(tests/analysis/test_compare.py, ``test_tip_central_asia_fit_is_sane``) and sbc_small (here) pass.
martin_quinn passes at its defaults (4 x 1,000 draws: max R-hat 1.008, min ESS 1,229; benchmarks/HISTORY.md,
2026-12-06) but takes ~20 minutes of sampling on 2 shared cores, too long for this suite: its fit is checked
against the published scores at 2 x 200 draws in tests/test_martin_quinn.py.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nexusbayes.cli import _parser, verdict_line
from nexusbayes.fit import fit
from nexusbayes.inference import compile_cache
from nexusbayes.model.build import build_model
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import load_spec
from tests.conftest import FRESH_PROCESS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


# ---- the README's commands and the set-up script -------------------------------------------------------------
def test_ci_runs_the_readmes_first_command_then_its_test_command():
    first, tests = (block.strip() for block in _bash_blocks(README)[:2])
    assert first == "./setup.sh && .venv/bin/nexusbayes fit models/kyrgyzstan.toml"
    assert tests == ".venv/bin/python -m pytest"
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert lines.index(first) < lines.index(tests)
    assert os.access(ROOT / "setup.sh", os.X_OK)


def _fake_exe(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_setup_finds_pyenvs_python_when_the_python312_shim_fails(tmp_path):
    """As on a machine with pyenv whose global version is older: the shims exist but do not run."""
    shims, root = tmp_path / "shims", tmp_path / "pyenv-root"
    shims.mkdir()
    failing = 'echo "pyenv: $(basename "$0"): command not found" >&2; exit 127'
    for name in ("python3.12", "python3.13", "python3"):
        _fake_exe(shims, name, failing)
    _fake_exe(shims, "pyenv", f'[ "$1" = root ] && echo {root}')
    (root / "versions" / "3.11.7" / "bin").mkdir(parents=True)
    python = root / "versions" / "3.12.9" / "bin" / "python3"
    python.parent.mkdir(parents=True)
    python.symlink_to(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")
    env = {"PATH": f"{shims}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "setup.sh"), "--find-python"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(python)
    python.unlink()   # and without any: a clear message, no environment made
    done = subprocess.run(["bash", str(ROOT / "setup.sh"), str(tmp_path / "venv")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 1 and "no Python >= 3.12 found" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_setup_refuses_a_folder_that_is_not_a_virtual_environment(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    done = subprocess.run(["bash", str(ROOT / "setup.sh"), str(tmp_path / "notes")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "is not a virtual environment" in done.stderr
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


# ---- every bundled example passes its verdict at its defaults ----------------------------------------------------
def test_kyrgyzstan_passes_its_verdict_at_its_defaults(kyrgyzstan):
    assert kyrgyzstan.tree.attrs["draws"] == 1000 and kyrgyzstan.tree.attrs["seed"] == 20161
    assert kyrgyzstan.diagnostics.passed, kyrgyzstan.diagnostics.text()
    assert verdict_line(kyrgyzstan.diagnostics) == "VERDICT: passed"   # what `fit` prints last


def test_fit_ends_with_its_verdict_line(central_asia_run):
    status, _, printed = central_asia_run
    assert status == 0
    last = printed.rstrip().splitlines()[-1]
    assert last == "VERDICT: passed" or last.startswith("VERDICT: FAILED ("), printed[-2000:]


# Two countries' centred starts made a funnel in country_initial_sd under its half-normal prior (1 divergence
# of 4000 draws at seed 20161; 1-4 at target_accept 0.9/0.95 or 1000 tuning steps; 3 with the half-normal's
# scale 3). Its gamma prior for two or three countries (nexusbayes.model.latent.FEW_CONTRASTS) passes: 0 divergences.
def test_central_asia_passes_its_verdict_at_its_defaults(central_asia_run):
    status, out, printed = central_asia_run
    assert printed.rstrip().splitlines()[-1] == "VERDICT: passed", printed[-2000:]


# sbc_small's [sampler] was SBC's budget per simulation (2 chains x 200 draws: R-hat 1.05, bulk ESS 62, 1 divergence),
# which `nexusbayes sbc` never read (it has its own --draws/--tune/--chains). At the package defaults it had 10
# divergences (seizures' inverse dispersion near 0), at target_accept 0.9/0.95 one (the neck of sigma_normal near 0);
# at 0.99 and 4 x 2000 draws: 0 divergences, max R-hat 1.009, min ESS 1342 bulk / 1091 tail (sigma_normal), ~40 s.
def test_sbc_small_passes_its_verdict_at_its_defaults():
    spec, data = load_spec(ROOT / "models" / "sbc_small.toml")
    result = fit(spec, data, progress=False, check=False)
    assert result.diagnostics.passed, result.diagnostics.text()


# ---- the command line -------------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_every_argument_of_every_command_has_help():
    parser = _parser()
    assert "thin" not in parser.description and "nexusbayes fit models/kyrgyzstan.toml" in parser.epilog
    commands = _subparsers(parser)
    assert set(commands) >= {"fit", "check", "summary", "compare", "sweep", "report", "quick", "sbc"}
    missing = [f"{name} {action.dest}" for name, sub in commands.items() for action in sub._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not missing
    assert "quick" in README and "nexusbayes quick" in README


def test_fit_without_a_terminal_prints_progress_lines_and_ends_with_the_verdict(hostile_cli):
    """The session's `nexusbayes fit` of a tiny panel (tests/conftest.py ``hostile_cli``: 2 chains x 100 tuning
    steps + 60 draws, progress lines every 0.2 s, its standard output kept) printed progress lines, said whether it
    compiled or loaded the model as the on-disk cache had it, and ended with the verdict."""
    status, _, _, _, printed, compiled_before, _ = hostile_cli
    assert not sys.stderr.isatty()   # pytest captures it: no progress bar, progress lines
    assert status == 0    # the diagnostics fail (120 draws for ESS >= 400), but only --strict makes that an error
    progress = re.findall(r"sampling: \d+ of 320 draws \(\d+%.*elapsed, (?:about .* left|time left not known yet)",
                          printed)
    assert progress, printed
    assert printed.rstrip().splitlines()[-1].startswith("VERDICT: FAILED ("), printed[-1500:]
    said = re.search(r"\n  (loading the compiled model|compiling the model) \(nutpie", printed)
    assert said is not None, printed[:1500]
    assert said.group(1) == ("loading the compiled model" if compiled_before else "compiling the model"), printed[:1500]


def test_compiled_before_tells_a_new_structure_from_one_compiled(tmp_path, monkeypatch):
    monkeypatch.setattr(compile_cache, "MARKER_DIR", tmp_path / "markers")
    monkeypatch.setattr(compile_cache, "_CACHE", collections.OrderedDict())   # leave the session's cache alone
    sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
    other = simulate(n_regions=4, n_periods=3, missing=0.1, seed=1)
    compile_cache.compile_nutpie(build_model(sim.panel, sim.spec), sim.panel, sim.spec)
    assert compile_cache.compiled_before(sim.panel, sim.spec)
    assert not compile_cache.compiled_before(other.panel, other.spec)
    compile_cache.clear()   # a new process: only the marker on disk remains
    assert compile_cache.compiled_before(sim.panel, sim.spec)
    assert len(list((tmp_path / "markers").iterdir())) == 1


# ---- no BLAS warning from Python ---------------------------------------------------------------------------------
BLAS = "could not link to a BLAS"


def test_fit_from_python_prints_no_blas_warning(fresh_process):
    """A new Python (``-W default``) that imports nexusbayes, fits the small panel and then reads what PyTensor's
    C backend reads (:data:`tests.conftest.FRESH_PROCESS`, shared with test_nutpie_callbacks.py) hears no BLAS."""
    trigger = "import pytensor; pytensor.config.blas__ldflags"   # what PyTensor's C backend reads, warning once
    control = subprocess.run([sys.executable, "-W", "default", "-c", trigger], capture_output=True, text=True,
                             timeout=120)
    if BLAS not in control.stderr:
        pytest.skip("PyTensor found a BLAS library here: no warning to silence")
    _, done = fresh_process
    assert "nb.fit(sim.spec, sim.panel" in FRESH_PROCESS and FRESH_PROCESS.rstrip().endswith(trigger.split("; ")[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert BLAS not in done.stderr
