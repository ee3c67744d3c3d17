"""Output folders never lose a user's files, and what is printed after an interrupt is true.

`fit` and `report` refuse a folder holding the input or files nexusbayes did not write (with or without
--overwrite), replace an earlier run only by what its manifest lists, in one swap at the very end, lock
the folder against a second run, and check it before compiling. An interrupt in any phase (compile,
sampling, writing, report) leaves every file byte for byte; one during the final swap is held back and
reported as such. Every CSV has its formula-like text neutralised.

One tiny fit (3 regions x 3 periods, 2 chains x 50 draws) serves the tests that write; its regions are
named like spreadsheet formulas. Phases are interrupted by a real SIGINT sent to this process from inside
a function of that phase (the CLI's own handler runs); the compile phase's signal is swallowed, as
llvmlite's ctypes callbacks do, and must still stop the run.
"""

from __future__ import annotations

import csv
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nexusbayes import files, outputs
from nexusbayes.cli import main
from nexusbayes.files import write_csv
from nexusbayes.fit import Fit, fit
from nexusbayes.model.simulate import simulate
from nexusbayes.outputs import MANIFEST, REPORT, RUN, OutputFolder, read_manifest
from nexusbayes.report import REPORT_DIR, REPORT_FILE, build_report, write_report
from nexusbayes.report.run import write_run
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nexusbayes"
SPEC = Spec(name="tiny", traits=["capability"], data="panel.csv",
            indicators={"staff": Indicator(family="normal", loads={"capability": "positive"})},
            sampler={"chains": 2, "tune": 50, "draws": 50, "seed": 1})
FORMULAS = {"C1-R01": '=HYPERLINK("http://evil.example","click")', "C1-R02": "@SUM(A1:A9)", "C1-R03": "+1-1"}
USER_FILES = {"notes.txt": b"my notes, not to be lost\n", "keep/raw.csv": b"a,b\n=1+1,2\n"}
NOTHING_WRITTEN = ("nexusbayes: interrupted by SIGINT; nothing was written (earlier outputs are untouched, temporary "
                   "files removed)")


def _project(folder: Path) -> Path:
    """A spec and its data (regions named like formulas) in ``folder``; returns the spec's path."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = simulate(SPEC, n_regions=3, n_periods=3, seed=1).frame
    frame.assign(region=frame["region"].replace(FORMULAS)).to_csv(folder / "panel.csv", index=False)
    (folder / "tiny.toml").write_text(SPEC.to_toml(), encoding="utf-8")
    return folder / "tiny.toml"


def _user_files(folder: Path) -> None:
    for name, content in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under ``root``, hidden ones included."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny fit and its report, computed once."""
    result = fit(_project(tmp_path_factory.mktemp("tiny")), progress=False, check=False)
    return result, build_report(result)


@pytest.fixture(scope="module")
def earlier_run(tiny, tmp_path_factory):
    """A run folder as `nexusbayes fit` writes it (fit.nc, tables, summary, report/), to copy into each test."""
    out = tmp_path_factory.mktemp("earlier") / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules["nexusbayes.report.run"], "build_report", lambda fit, **options: tiny[1])
        write_run(tiny[0], out, report=True)
    return out


@pytest.fixture
def fast(monkeypatch, tiny):
    """`nexusbayes fit` returns the tiny fit without sampling, and its report without rebuilding it."""
    monkeypatch.setattr(sys.modules["nexusbayes.fit"], "fit", lambda *args, **kwargs: tiny[0])
    for where in ("nexusbayes.report.run", "nexusbayes.report"):    # `fit` builds it in run, `report` in report
        monkeypatch.setattr(sys.modules[where], "build_report", lambda fit, **options: tiny[1])


@pytest.fixture
def world(tmp_path, earlier_run):
    """A project folder, an earlier run in runs/tiny (its summary marked), and the user's files beside it."""
    spec = _project(tmp_path / "proj")
    _user_files(tmp_path / "proj")
    out = tmp_path / "runs" / "tiny"
    shutil.copytree(earlier_run, out)
    (out / "summary.txt").write_bytes(b"the earlier run's summary\n")
    _user_files(tmp_path / "runs")
    return spec, out


def _sigint_from(monkeypatch, target: str, swallow: bool = False) -> None:
    """Make the function ``target`` (``module.attr`` or ``module.Class.attr``) raise a real SIGINT first.

    ``signal.raise_signal`` runs the CLI's handler at once; with ``swallow`` its exception is lost,
    as in llvmlite's ctypes callbacks.
    """
    module, _, attr = target.rpartition(".")
    owner = sys.modules.get(module) or importlib.import_module(module.rpartition(".")[0])
    if owner.__name__ != module:
        owner = getattr(owner, module.rpartition(".")[2])
    real = getattr(owner, attr)

    def signalled(*args, **kwargs):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            if not swallow:
                raise
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, signalled)


# ---- --overwrite never deletes what nexusbayes did not write ------------------------------------------------
def test_fit_into_the_spec_folder_is_refused_with_overwrite(tmp_path, capsys):
    spec = _project(tmp_path / "proj")
    _user_files(tmp_path / "proj")
    before = _snapshot(tmp_path)
    assert main(["fit", str(spec), "--out", str(tmp_path / "proj"), "--overwrite", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'proj'} holds" in err and "an input of this run; nothing in it is replaced" in err
    assert _snapshot(tmp_path) == before


def test_fit_overwrite_refuses_a_run_folder_holding_user_files(world, tmp_path, capsys):
    spec, out = world
    _user_files(out)
    before = _snapshot(tmp_path)
    assert main(["fit", str(spec), "--out", str(out), "--overwrite", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert ("holds files nexusbayes did not write (keep, notes.txt); nothing in it is replaced (even with "
            "--overwrite)") in err
    assert _snapshot(tmp_path) == before


def test_a_run_without_a_manifest_is_refused_with_a_hint(world, tmp_path, capsys):
    spec, out = world
    (out / MANIFEST).unlink()                # as an older nexusbayes left it: nothing says what it wrote
    before = _snapshot(tmp_path)
    assert main(["fit", str(spec), "--out", str(out), "--overwrite", "--no-progress"]) == 2
    assert ("holds files nexusbayes did not write (diagnostics.csv, diagnostics_by_variable.csv, fit.nc, "
            "forecast_traits.csv, report and 2 more); nothing in it is replaced (even with --overwrite): pass --out a "
            "new or empty folder (a run of an older nexusbayes") in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_report_into_the_run_folder_is_refused_with_overwrite(world, tmp_path, capsys):
    _, out = world
    before = _snapshot(tmp_path)
    assert main(["report", str(out / "fit.nc"), "--out", str(out), "--overwrite"]) == 2
    assert f"{out} holds {out / 'fit.nc'}, an input of this run" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_a_folder_of_the_other_kind_or_without_overwrite_is_refused(world, tmp_path, capsys):
    spec, out = world
    before = _snapshot(tmp_path)
    assert main(["fit", str(spec), "--out", str(out / REPORT_DIR), "--overwrite", "--no-progress"]) == 2
    assert (f"{out / REPORT_DIR} holds a report written by nexusbayes, not a run (fit.nc, CSV tables, report/); "
            "nothing in it is replaced") in capsys.readouterr().err
    assert main(["fit", str(spec), "--out", str(out), "--no-progress"]) == 2
    assert f"{out} already holds an earlier run; pass --overwrite" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_fit_overwrite_replaces_only_what_the_earlier_run_wrote(world, tmp_path, fast, capsys):
    spec, out = world
    user = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("runs/tiny")}
    assert main(["fit", str(spec), "--out", str(out), "--overwrite", "--no-progress"]) == 0
    assert f"Wrote {out}/ (fit.nc, CSV tables, summary.txt) and {out / REPORT_DIR / REPORT_FILE}" in \
        capsys.readouterr().out
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("runs/tiny")} == user     # byte for byte
    assert (out / "summary.txt").read_bytes() != b"the earlier run's summary\n"            # replaced
    assert sorted(read_manifest(out)["entries"]) == sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    assert read_manifest(out / REPORT_DIR)["kind"] == REPORT
    assert sorted(p.name for p in out.parent.iterdir()) == ["keep", "notes.txt", "tiny"]   # no lock, no temp


def test_report_overwrite_keeps_the_users_files_in_the_run_folder(world, tmp_path, fast, capsys):
    _, out = world
    _user_files(out)                         # beside the report folder, inside the run folder
    (out / REPORT_DIR / REPORT_FILE).write_bytes(b"the earlier report\n")
    kept = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith(f"runs/tiny/{REPORT_DIR}")}
    assert main(["report", str(out / "fit.nc"), "--overwrite"]) == 0
    assert {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith(f"runs/tiny/{REPORT_DIR}")} == kept
    assert (out / REPORT_DIR / REPORT_FILE).read_bytes() != b"the earlier report\n"
    assert not list(out.glob(".report*"))


# ---- interrupts: the earlier run intact, the message true -------------------------------------------------
def _interrupted_fit(spec, out, capsys) -> tuple[str, str]:
    assert main(["fit", str(spec), "--out", str(out), "--overwrite", "--no-progress"]) == 130
    printed = capsys.readouterr()
    assert NOTHING_WRITTEN in printed.err and "Traceback" not in printed.err
    return printed.out, printed.err


def test_a_swallowed_interrupt_while_compiling_still_stops_the_run(world, tmp_path, monkeypatch, capsys):
    spec, out = world
    before = _snapshot(tmp_path)
    _sigint_from(monkeypatch, "nexusbayes.inference.compile_cache.compile_nutpie", swallow=True)
    printed, _ = _interrupted_fit(spec, out, capsys)
    assert "compiling the model" in printed or "loading the compiled model" in printed
    assert "sampling 2 chain(s)" not in printed
    assert _snapshot(tmp_path) == before


def test_an_interrupt_while_sampling_leaves_everything(world, tmp_path, monkeypatch, capsys):
    import nutpie

    spec, out = world
    before = _snapshot(tmp_path)
    real_sample, cancelled = nutpie.sample, []

    class Sampler:                            # nutpie's sampler, signalled as it waits for the draws
        def __init__(self, sampler):
            self.sampler = sampler

        def wait(self):
            os.kill(os.getpid(), signal.SIGINT)
            return self.sampler.wait()

        def cancel(self):
            cancelled.append(True)
            self.sampler.cancel()

    monkeypatch.setattr(nutpie, "sample", lambda *args, **kwargs: Sampler(real_sample(*args, **kwargs)))
    printed, _ = _interrupted_fit(spec, out, capsys)
    assert "sampling 2 chain(s)" in printed and cancelled == [True]
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("target", ["nexusbayes.fit.Fit.save", "nexusbayes.report.run.result_tables",
                                    "nexusbayes.report.run.build_report"], ids=["fit.nc", "tables", "report"])
def test_an_interrupt_while_writing_or_building_the_report_leaves_everything(world, tmp_path, fast, monkeypatch,
                                                                              capsys, target):
    spec, out = world
    before = _snapshot(tmp_path)
    _sigint_from(monkeypatch, target)
    _interrupted_fit(spec, out, capsys)
    assert _snapshot(tmp_path) == before


def test_an_interrupt_leaves_no_folder_it_created(world, tmp_path, fast, monkeypatch, capsys):
    spec, _ = world
    before = _snapshot(tmp_path)
    _sigint_from(monkeypatch, "nexusbayes.report.run.build_report")
    _interrupted_fit(spec, tmp_path / "new" / "deeper" / "tiny", capsys)
    assert _snapshot(tmp_path) == before                  # no empty new/deeper/ either


def test_an_interrupt_while_the_report_command_builds_leaves_everything(world, tmp_path, fast, monkeypatch, capsys):
    _, out = world
    _user_files(out)
    before = _snapshot(tmp_path)
    _sigint_from(monkeypatch, "nexusbayes.report.build_report")
    assert main(["report", str(out / "fit.nc"), "--overwrite"]) == 130
    assert NOTHING_WRITTEN in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_an_interrupt_during_the_final_swap_is_held_back_and_reported_truly(world, tmp_path, fast, monkeypatch,
                                                                             capsys):
    spec, out = world
    user = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("runs/tiny")}
    _sigint_from(monkeypatch, "nexusbayes.outputs._swap_in")
    assert main(["fit", str(spec), "--out", str(out), "--overwrite", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert (f"nexusbayes: interrupted by SIGINT after {out} had been written in full; nothing else was changed"
            in err)
    assert (out / "summary.txt").read_bytes() != b"the earlier run's summary\n"
    assert (out / REPORT_DIR / REPORT_FILE).is_file() and not outputs.foreign_files(out)
    assert {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("runs/tiny")} == user


# ---- one run at a time; the folder checked before compiling --------------------------------------------
def test_a_second_run_into_a_locked_folder_is_refused(world, tmp_path, fast, capsys):
    spec, out = world
    before = _snapshot(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from nexusbayes.outputs import OutputFolder, RUN\n"
         f"with OutputFolder({str(out)!r}, RUN, overwrite=True):\n print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline() == "locked\n"
        assert main(["fit", str(spec), "--out", str(out), "--overwrite", "--no-progress"]) == 2
        assert (f"another nexusbayes run (process {holder.pid}) is writing {out} (it holds "
                f"{out.parent / '.tiny.lock'}); wait for it to finish" in capsys.readouterr().err)
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    assert _snapshot(tmp_path) == before                  # the lock file went with its holder
    assert main(["fit", str(spec), "--out", str(out), "--overwrite", "--no-progress"]) == 0


def test_the_swap_refuses_files_that_appeared_during_the_run_and_keeps_the_new_outputs(world, tiny):
    _, out = world
    with OutputFolder(out, RUN, overwrite=True) as folder:
        def fill(tmp):
            (tmp / "fit.nc").write_bytes(b"new")
            (out / "added meanwhile.txt").write_bytes(b"the user's")
        with pytest.raises(outputs.OutputExistsError, match=r"added meanwhile\.txt.*the new outputs are kept in"):
            folder.replace_with(fill)
    assert (out / "added meanwhile.txt").read_bytes() == b"the user's"
    kept = list(out.parent.glob(".tiny.*.tmp"))
    assert len(kept) == 1 and (kept[0] / "fit.nc").read_bytes() == b"new"


@pytest.fixture
def no_fit(monkeypatch):
    """Fail if the fit starts: these folders must be refused before compiling."""
    monkeypatch.setattr(sys.modules["nexusbayes.fit"], "fit", lambda *a, **k: pytest.fail("fitted before checking"))


@pytest.mark.parametrize(("out", "message"), [
    ("/sys/nexusbayes-out", "cannot write the output folder /sys/nexusbayes-out: /sys is not writable"),
    ("a-file", "a-file is a file, not a folder"),
    (".", ". holds files nexusbayes did not write (a-file, keep, notes.txt); nothing in it is replaced"),
    ("keep/..", "keep/.. holds files nexusbayes did not write (a-file, keep, notes.txt)"),
])
def test_unusable_out_is_refused_before_compiling(tmp_path, monkeypatch, no_fit, capsys, out, message):
    spec = _project(tmp_path / "proj")
    work = tmp_path / "work"                       # the user's working folder
    _user_files(work)
    (work / "a-file").write_bytes(b"mine")
    monkeypatch.chdir(work)
    before = _snapshot(tmp_path)
    assert main(["fit", str(spec), "--out", out, "--overwrite", "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_an_empty_current_folder_is_refused(tmp_path, monkeypatch, no_fit, capsys):
    spec = _project(tmp_path / "proj")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    assert main(["fit", str(spec), "--out", ".", "--no-progress"]) == 2
    assert ". is the current folder (or holds it), which a run replaces as a whole" in capsys.readouterr().err


def test_a_symlinked_out_is_refused_naming_its_target(tmp_path, no_fit, capsys):
    spec = _project(tmp_path / "proj")
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target", target_is_directory=True)
    assert main(["fit", str(spec), "--out", str(tmp_path / "link"), "--no-progress"]) == 2
    assert (f"{tmp_path / 'link'} is a symlink (to {tmp_path / 'target'}); an output folder is replaced as a whole, "
            f"which would replace the link, not the folder it points to: pass --out {tmp_path / 'target'} directly"
            in capsys.readouterr().err)
    assert (tmp_path / "link").is_symlink() and not any((tmp_path / "target").iterdir())


# ---- CSV files safe in a spreadsheet ---------------------------------------------------------------------
def test_write_csv_neutralises_formulas_and_keeps_numbers(tmp_path):
    table = pd.DataFrame({"=cmd|' /C calc'!A0": ["=1+1", "+1-1", "-x", "@SUM(A1)", "\tTAB", "plain", "-1.5",
                                                "'=already"],
                          "value": [-1.5, -2.0, 3.0, -4e-9, 0.0, -7.0, 8.0, 9.0],
                          "mixed": ["=a", -1, 2.5, None, "@b", "-3", "+x", "="]})
    write_csv(table, tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["'=cmd|' /C calc'!A0", "value", "mixed"]
    assert [r[0] for r in rows[1:]] == ["'=1+1", "'+1-1", "'-x", "'@SUM(A1)", "'\tTAB", "plain", "-1.5",
                                        "'=already"]
    assert [float(r[1]) for r in rows[1:]] == table["value"].tolist()     # numbers stay numbers
    assert [r[2] for r in rows[1:]] == ["'=a", "-1", "2.5", "", "'@b", "-3", "'+x", "'="]
    # a leading carriage return too (pandas does not quote a cell holding one, so it is checked on the cell)
    assert files.spreadsheet_safe("\rCR") == "'\rCR"


def _text_cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def test_every_csv_of_a_run_is_spreadsheet_safe(earlier_run):
    paths = sorted(earlier_run.rglob("*.csv"))
    assert len(paths) > 10 and (earlier_run / REPORT_DIR / "traits.csv") in paths
    dangerous = [(p.name, c) for p in paths for c in _text_cells(p)
                 if c.startswith(files.FORMULA_START) and not files._NUMBER.fullmatch(c)]
    assert dangerous == []
    assert f"'{FORMULAS['C1-R01']}" in _text_cells(earlier_run / "traits.csv")   # the region, kept readable


def test_every_csv_writer_goes_through_write_csv():
    """Package code calls ``.to_csv(`` only in write_csv, or into memory (a digest), never to a file directly."""
    calls = [(path.name, line.strip()) for path in sorted(PACKAGE.rglob("*.py"))
             for line in path.read_text(encoding="utf-8").splitlines()
             if ".to_csv(" in line and not line.lstrip().startswith((">>>", "#"))]
    allowed = re.compile(r"spreadsheet_safe_table\(table\)\.to_csv\(path|\.to_csv\(buffer|\.to_csv\(index=False")
    assert calls and [c for c in calls if not allowed.search(c[1])] == []


def test_fit_api_report_uses_the_same_folder_rules(tiny, tmp_path):
    result: Fit = tiny[0]
    folder = tmp_path / "mine"
    _user_files(folder)
    with pytest.raises(outputs.OutputExistsError, match="holds files nexusbayes did not write"):
        write_report(result, folder, overwrite=True)
    assert _snapshot(folder) == {"keep": None, "keep/raw.csv": USER_FILES["keep/raw.csv"],
                                 "notes.txt": USER_FILES["notes.txt"]}
