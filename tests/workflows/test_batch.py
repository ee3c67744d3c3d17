"""Batches on Dask distributed: results on disk, dying workers, failures, interruption and resume, seeds.

The fits are tiny (one trait, one indicator, 2 regions x 3 periods, 1 chain of 50 draws) but each still
compiles for 20-60 s, so one module-scoped batch on a 2-worker LocalCluster serves several tests.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import cloudpickle
import pandas as pd
import psutil
import pytest

import nexusbayes
from nexusbayes.cli import main
from nexusbayes.errors import OutputExistsError, SpecError
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator
from nexusbayes.workflows import batch, jobs
from nexusbayes.workflows.batch import Simulate, Task, run_batch, task_seeds
from nexusbayes.workflows.sweeps import sweep_tasks

# the helpers below run on the workers, which cannot import this test module: ship them by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SPEC = Spec(name="tiny", traits=["willingness"],
            indicators={"staff": Indicator(family="normal", loads={"willingness": "positive"})})
FAST = {"draws": 50, "tune": 50, "chains": 1}
SHAPE = {"n_regions": 2, "n_periods": 3}
SEED = 20240611


def fingerprint(fit, truth):
    """A deterministic summary: the hash of the fitted data and posterior means."""
    data = fit.panel.data_table().to_csv(index=False, float_format="%.17g")
    post = fit.tree["posterior"]
    return {"data_sha256": hashlib.sha256(data.encode()).hexdigest(),
            "loading_mean": float(post["loading"].mean()), "intercept_mean": float(post["intercept"].mean()),
            "sampler_seed": int(fit.tree.attrs["seed"]), "has_truth": truth is not None,
            "nexusbayes_file": nexusbayes.__file__}


def dies_once(marker, seed):
    """Kill the worker on the first call (leaving a marker), simulate on the next."""
    marker = Path(marker)
    if not marker.exists():
        marker.touch()
        os._exit(1)
    return simulate(SPEC, **SHAPE, seed=seed)


def always_dies(seed):
    os._exit(1)


def raises(seed):
    raise ValueError("bad data on purpose")


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    """Two good fits, a task that kills its worker once, and one that raises."""
    out = tmp_path_factory.mktemp("batch")
    marker = out.parent / "dies-once.marker"
    tasks = [Task("sim-a", SPEC, Simulate(**SHAPE), FAST),
             Task("sim-b", SPEC, Simulate(**SHAPE), FAST),
             Task("dies-once", SPEC, partial(dies_once, str(marker)), FAST),
             Task("raises", SPEC.to_dict(), raises, FAST)]
    start = time.perf_counter()
    table = run_batch(tasks, out, n_workers=2, seed=SEED, progress=False, summarise=fingerprint)
    return tasks, out, table.set_index("task"), time.perf_counter() - start


def test_batch_writes_every_result_and_a_tidy_table(batch_run):
    tasks, out, table, seconds = batch_run
    assert list(table.index) == [t.name for t in tasks]
    assert table.loc[["sim-a", "sim-b", "dies-once"], "status"].eq("ok").all()
    for name in ("sim-a", "sim-b", "dies-once"):
        record = json.loads((out / name / "summary.json").read_text())
        assert record["status"] == "ok" and record["summary"]["data_sha256"] == table.loc[name, "data_sha256"]
        assert not (out / name / "fit.nc").exists()          # fits are saved only when asked
        assert not list((out / name).glob(".*.tmp"))          # no temporary files left behind
        # the workers imported the package under test, not another checkout
        assert record["worker"]["nexusbayes"] == nexusbayes.__file__
    assert table.loc["sim-a", "has_truth"] and table.loc["dies-once", "has_truth"]
    assert table.loc["sim-a", "data_sha256"] != table.loc["sim-b", "data_sha256"]   # own seed per task
    assert pd.read_csv(out / "batch.csv")["task"].tolist() == list(table.index)
    print(f"\nbatch of {len(tasks)} tasks (3 fits, a worker death) on 2 workers: {seconds:.0f} s; per task: "
          + ", ".join(f"{n} {table.loc[n, 'seconds']:.0f} s" for n in ("sim-a", "sim-b", "dies-once")))


def test_a_task_that_kills_its_worker_is_run_again(batch_run):
    tasks, out, table, _ = batch_run
    assert table.loc["dies-once", "status"] == "ok"
    assert (out.parent / "dies-once.marker").exists()     # so it did kill a worker first


def test_a_task_that_keeps_killing_workers_is_recorded_as_failed(tmp_path):
    start = time.perf_counter()
    table = run_batch([Task("dies-always", SPEC, always_dies, FAST)], tmp_path, n_workers=1, progress=False,
                      worker_deaths=1)
    assert table.loc[0, "status"] == "failed"
    assert table.loc[0, "error_type"] == "distributed.scheduler.KilledWorker"
    error = json.loads((tmp_path / "dies-always" / "error.json").read_text())["error"]
    assert "dies-always" in error["message"] and "on 2 different workers" in error["message"]
    print(f"\ntwo worker deaths and restarts: {time.perf_counter() - start:.0f} s")


def test_a_task_that_raises_is_recorded_and_the_others_are_fine(batch_run):
    tasks, out, table, _ = batch_run
    assert table.loc["raises", "status"] == "failed"
    assert table.loc["raises", "error_type"] == "builtins.ValueError"
    assert table.loc["raises", "error_message"] == "bad data on purpose"
    error = json.loads((out / "raises" / "error.json").read_text())["error"]
    assert "in raises" in error["traceback"] and "ValueError: bad data on purpose" in error["traceback"]
    assert not (out / "raises" / "summary.json").exists()


def test_rerun_skips_done_tasks_and_retries_failed_ones(batch_run, monkeypatch):
    tasks, out, table, _ = batch_run
    done = ["sim-a", "sim-b", "dies-once"]
    mtimes = {n: (out / n / "summary.json").stat().st_mtime_ns for n in done}

    class WouldStartCluster(Exception):
        pass

    def no_cluster(*args, **kwargs):
        raise WouldStartCluster

    monkeypatch.setattr(jobs, "connect", no_cluster)
    # only the finished tasks: nothing is left to do, so no cluster is even started
    again = run_batch([t for t in tasks if t.name in done], out, seed=SEED, progress=False, summarise=fingerprint)
    assert again["status"].eq("skipped").all()
    assert again.set_index("task")["loading_mean"].equals(table.loc[done, "loading_mean"])
    assert {n: (out / n / "summary.json").stat().st_mtime_ns for n in done} == mtimes
    # a failed task is not done: a rerun tries it again
    with pytest.raises(WouldStartCluster):
        run_batch(tasks, out, seed=SEED, progress=False, summarise=fingerprint)


def test_rerun_with_other_inputs_refuses_to_mix_results(batch_run):
    tasks, out, _, _ = batch_run
    with pytest.raises(OutputExistsError, match="holds the result of a different task"):
        run_batch(tasks[:1], out, seed=SEED + 1, progress=False, summarise=fingerprint)
    with pytest.raises(OutputExistsError, match="different task"):
        run_batch(tasks[:1], out, seed=SEED, progress=False)   # another summariser


@pytest.mark.slow
def test_results_do_not_depend_on_worker_count_or_order(batch_run, tmp_path):
    tasks, _, table, _ = batch_run
    solo = run_batch([tasks[1]], tmp_path, n_workers=1, seed=SEED, progress=False, summarise=fingerprint)
    row = solo.set_index("task").loc["sim-b"]
    assert row["status"] == "ok"
    for key in ("data_sha256", "loading_mean", "intercept_mean", "sampler_seed"):
        assert row[key] == table.loc["sim-b", key], key
    assert row["sampler_seed"] == task_seeds(SEED, "sim-b")[1]


INTERRUPTIBLE = textwrap.dedent("""
    import signal
    import sys
    import time
    from pathlib import Path
    from nexusbayes.workflows.batch import Task, run_batch
    from nexusbayes.model.simulate import simulate
    from nexusbayes.spec.document import Spec
    from nexusbayes.spec.indicators import Indicator

    SPEC = Spec(name="tiny", traits=["willingness"],
                indicators={{"staff": Indicator(family="normal", loads={{"willingness": "positive"}})}})

    def counted(seed, name):
        work = Path(sys.argv[2])
        with open(work / "calls.txt", "a") as f:
            print(name, flush=True, file=f)
        while name == "second" and (work / "hold").exists():   # the test interrupts here
            time.sleep(0.1)
        return simulate(SPEC, n_regions=2, n_periods=3, seed=seed)

    class Counted:
        def __init__(self, name):
            self.name = name
        def __call__(self, seed):
            return counted(seed, self.name)

    if __name__ == "__main__":
        # Ctrl-C as in a terminal: a shell without job control starts background commands (this test's
        # pytest, say) with SIGINT ignored, and Python then leaves it ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tasks = [Task(n, SPEC, Counted(n), {fast!r}) for n in ("first", "second")]
        try:
            table = run_batch(tasks, sys.argv[1], n_workers=1, seed=1, progress=False)
        except KeyboardInterrupt:
            sys.exit(130)
        print(table.to_json(orient="records"))
""")


@pytest.mark.slow
def test_an_interrupted_batch_resumes_without_redoing_finished_fits(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(INTERRUPTIBLE.format(fast=FAST))
    out = tmp_path / "out"
    command = [sys.executable, str(script), str(out), str(tmp_path)]
    log = tmp_path / "interrupted.log"
    calls = tmp_path / "calls.txt"
    hold = tmp_path / "hold"
    hold.touch()   # the second task waits while this exists, so the interrupt always finds it running
    with open(log, "w") as sink:   # a file, not a pipe nobody reads while we wait
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 900
            while not ((out / "first" / "summary.json").exists()
                       and calls.exists() and "second" in calls.read_text().split()):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the first task did not finish or the second did not start"
                time.sleep(0.5)
            proc.send_signal(signal.SIGINT)                     # Ctrl-C while the second task runs
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the batch went on for 120 s after Ctrl-C; its output:\n{log.read_text()[-4000:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, log.read_text()
    assert not (out / "second" / "summary.json").exists()
    first = json.loads((out / "first" / "summary.json").read_text())
    assert not psutil.pid_exists(first["worker"]["pid"])    # the local cluster's worker went with it
    mtime = (out / "first" / "summary.json").stat().st_mtime_ns

    hold.unlink()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    rows = {r["task"]: r for r in json.loads(resumed.stdout.strip().splitlines()[-1])}
    assert rows["first"]["status"] == "skipped" and rows["second"]["status"] == "ok"
    assert (out / "first" / "summary.json").stat().st_mtime_ns == mtime
    names = calls.read_text().split()
    assert names.count("first") == 1 and names.count("second") == 2   # interrupted once, then run again


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_whose_exception_python_dropped_still_stops_the_run():
    """Ctrl-C during a ``__del__`` (distributed's futures have one): Python drops its KeyboardInterrupt."""
    class Releases:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)

    # Ctrl-C as in a terminal (pytest started in the background by a shell without job control ignores it)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        Releases()                              # without the latch the interrupt is simply lost
        with jobs._signals_latched() as raise_lost:
            raise_lost()                        # nothing received yet: no-op
            Releases()
            with pytest.raises(KeyboardInterrupt):
                raise_lost()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


# ---- tasks and seeds (no cluster) ------------------------------------------------------------------
def test_task_names_must_be_safe_and_unique(tmp_path):
    with pytest.raises(SpecError, match="task name '../x'"):
        Task("../x", SPEC, Simulate())
    with pytest.raises(SpecError, match="unknown fit option"):
        Task("a", SPEC, Simulate(), {"draw": 10})
    with pytest.raises(SpecError, match=r"task names repeat: \['a'\]"):
        run_batch([Task("a", SPEC, Simulate()), Task("a", SPEC, Simulate())], tmp_path, progress=False)
    assert Task("a", SPEC.to_dict(), "data.csv").data == Path("data.csv").resolve()


def test_seeds_depend_on_batch_seed_and_name_only():
    assert task_seeds(1, "a") == task_seeds(1, "a")
    seeds = {task_seeds(s, n) for s in (1, 2) for n in ("a", "b", "a-1")}
    assert len(seeds) == 6 and all(0 <= x < 2**32 for pair in seeds for x in pair)
    # the same in a fresh interpreter (Python's hash() would differ there)
    code = "from nexusbayes.workflows.batch import task_seeds; print(task_seeds(1, 'a'))"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == str(task_seeds(1, "a"))


# ---- sweeps -------------------------------------------------------------------------------------
def test_prior_scale_sweep_varies_each_used_scale():
    sim = simulate(SPEC, **SHAPE, seed=1)
    sweep = sweep_tasks(SPEC, sim.frame, "prior_scale")
    names = [t.name for t in sweep.tasks]
    assert names[0] == "baseline" and "prior-noise_sd-x0.5" in names and "prior-noise_sd-x2" in names
    assert not any("cutpoint" in n or "inv_dispersion" in n for n in names)   # not in this model
    varied = next(t for t in sweep.tasks if t.name == "prior-loading-x2")
    assert varied.spec.priors.loading == 2 * SPEC.priors.loading
    assert varied.spec.priors.intercept == SPEC.priors.intercept
    sweep = sweep_tasks(SPEC, sim.frame, "prior_scale", fields=["cutpoint"])
    assert [t.name for t in sweep.tasks] == ["baseline"]
    assert sweep.refused["prior-cutpoint-x2"] == "this model does not use priors.cutpoint"


def test_leave_one_out_refuses_to_drop_an_only_anchor():
    spec = default_spec()
    sim = simulate(spec, n_regions=2, n_periods=3, seed=1)
    sweep = sweep_tasks(spec, sim.frame, "leave_one_indicator_out")
    assert [t.name for t in sweep.tasks] == ["baseline"] + [f"drop-{n}" for n in spec.indicators]
    dropped = next(t for t in sweep.tasks if t.name == "drop-seizures")
    assert "seizures" not in dropped.spec.indicators and "seizures" not in set(dropped.data["indicator"])
    lone = Spec(name="lone", indicators={k: spec.indicators[k] for k in ("staff", "seizures", "quota")})
    sweep = sweep_tasks(lone, simulate(lone, n_regions=2, n_periods=3, seed=1).frame, "leave_one_indicator_out")
    assert sorted(sweep.refused) == ["drop-quota", "drop-staff"]      # the spec's own anchor rule says why
    for name, trait in (("drop-staff", "capability"), ("drop-quota", "willingness")):
        assert sweep.refused[name].startswith(f"trait '{trait}' is not identified: no indicator loads on it alone "
                                              "with a fixed sign")


def test_per_country_sweep_splits_the_data():
    sim = simulate(SPEC, n_countries=2, **SHAPE, seed=1)
    sweep = sweep_tasks(SPEC, sim.frame, "per_country")
    assert [t.name for t in sweep.tasks] == ["baseline", "country-C1", "country-C2"]
    assert set(sweep.tasks[1].data["country"]) == {"C1"}
    single = sweep_tasks(SPEC, simulate(SPEC, **SHAPE, seed=1).frame, "per_country")
    assert [t.name for t in single.tasks] == ["baseline"] and "single country" in single.refused["country-C1"]


def test_sweep_command_prints_one_row_per_task(tmp_path, monkeypatch, capsys):
    sim = simulate(SPEC, n_countries=2, **SHAPE, seed=1)
    sim.frame.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "spec.toml").write_text(SPEC.model_copy(update={"data": "data.csv"}).to_toml())
    seen = {}

    def fake_run_batch(tasks, out_dir, **kwargs):   # the batch itself is tested above
        seen.update(kwargs, tasks=[t.name for t in tasks], out_dir=out_dir)
        return pd.DataFrame({"task": seen["tasks"], "status": "ok", "seconds": 1.0, "error_type": None,
                             "error_message": None, "theta.C1.willingness": [0.1, 0.2, 0.3],
                             "max_rhat": 1.0, "min_ess_bulk": 300.0, "divergences": 0})

    monkeypatch.setattr(batch, "run_batch", fake_run_batch)
    status = main(["sweep", str(tmp_path / "spec.toml"), "--kind", "per_country", "--scheduler", "tcp://h:1",
                   "--out", str(tmp_path / "sweep"), "--draws", "50", "--no-progress"])
    assert status == 0
    assert seen["scheduler"] == "tcp://h:1" and seen["tasks"] == ["baseline", "country-C1", "country-C2"]
    assert seen["summarise"] is batch.sweep_summary and seen["out_dir"] == tmp_path / "sweep"
    printed = capsys.readouterr().out
    assert "theta.C1.willingness" in printed and "country-C2" in printed


@pytest.mark.parametrize("kind", ["per_country", "prior_scale", "leave_one_indicator_out"])
def test_swept_fits_keep_the_covariate_table(kind, tmp_path, monkeypatch):
    from nexusbayes.data.covariates import attach_covariates
    from nexusbayes.data.read import load_panel
    from nexusbayes.spec.sections import CovariateEffect, CovariatesSpec

    spec = default_spec(covariates=CovariatesSpec(columns={"aid": CovariateEffect(on="level",
                                                                                   traits=["capability"])}))
    sim = simulate(spec, n_countries=2, n_regions=3, n_periods=3, seed=2)
    path = tmp_path / "cov.csv"
    sim.panel.covariates.frame.to_csv(path, index=False)
    sweep = sweep_tasks(spec, sim.frame, kind, covariates=path, fields=["loading"] if kind == "prior_scale" else None)
    assert len(sweep.tasks) > 1
    for task in sweep.tasks:
        # what fit does with the task's data and covariates: every task's panel carries the table
        panel = attach_covariates(load_panel(task.data, task.spec), task.spec, task.covariates)
        assert panel.covariates is not None and panel.covariates.names == ["aid"]
        if task.name.startswith("country-"):
            assert set(task.covariates["region"]) == set(panel.regions) and len(panel.countries) == 1
    with pytest.raises(SpecError, match="no \\[covariates\\]"):
        sweep_tasks(SPEC, sim.frame, kind, covariates=path)
    # the worker passes the table on to fit
    seen = {}
    monkeypatch.setattr(batch, "fit", lambda *a, **k: seen.update(k) or (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.raises(RuntimeError, match="stop"):
        batch.execute(sweep.tasks[-1], (1, 2))
    assert seen["covariates"] is sweep.tasks[-1].covariates
