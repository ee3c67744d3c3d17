"""A real `nexusbayes fit` stopped by SIGINT (Ctrl-C) or SIGTERM while sampling: it exits non-zero with
a clear message, leaves no temporary files, and the previous run in the output folder is untouched.

Before the fix nutpie turned Ctrl-C into a silently truncated trace that was then written over the
previous run, and SIGTERM killed the process without any clean-up.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nexusbayes.model.simulate import simulate
from nexusbayes.outputs import MANIFEST, RUN, write_manifest
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator

ROOT = Path(__file__).resolve().parents[1]
SPEC = Spec(name="tiny", traits=["capability"], data="panel.csv",
            indicators={"staff": Indicator(family="normal", loads={"capability": "positive"})},
            sampler={"chains": 1, "tune": 100, "draws": 1_000_000, "seed": 1})  # far longer than the test waits


@pytest.fixture
def run_setup(tmp_path):
    simulate(SPEC, n_regions=3, n_periods=3, seed=1).frame.to_csv(tmp_path / "panel.csv", index=False)
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC.to_toml(), encoding="utf-8")
    out = tmp_path / "runs" / "tiny"
    out.mkdir(parents=True)
    previous = {"fit.nc": b"\x89HDF previous run, not to be touched\x00\xff", "summary.txt": b"earlier summary\n"}
    for name, content in previous.items():
        (out / name).write_bytes(content)
    write_manifest(out, RUN)                 # an earlier nexusbayes run: --overwrite may replace it
    previous[MANIFEST] = (out / MANIFEST).read_bytes()
    return spec, out, previous


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_during_sampling_leaves_the_previous_run_untouched(run_setup, sig, status, name):
    spec, out, previous = run_setup
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-m", "nexusbayes", "fit", str(spec), "--out", str(out), "--overwrite",
                           "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as proc:
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
        reader.start()
        seen = []
        try:
            deadline = time.monotonic() + 600  # compiling takes a while on a busy machine
            while not any("sampling 1 chain(s)" in line for line in seen):
                assert proc.poll() is None, f"exited early ({proc.returncode}): {seen}"
                assert time.monotonic() < deadline, f"sampling never started: {seen}"
                try:
                    seen.append(lines.get(timeout=1))
                except queue.Empty:
                    pass
            time.sleep(2.0)  # well inside sampling (a million draws)
            assert proc.poll() is None, "the run finished before the signal: make it longer"
            proc.send_signal(sig)
            returncode = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read()
        reader.join(timeout=10)
    assert returncode == status, stderr
    assert (f"nexusbayes: interrupted by {name}; nothing was written (earlier outputs are untouched, temporary "
            "files removed)") in stderr
    assert "Traceback" not in stderr
    # the previous run byte for byte, and nothing else anywhere near it
    assert {p.name: p.read_bytes() for p in out.iterdir()} == previous
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]
