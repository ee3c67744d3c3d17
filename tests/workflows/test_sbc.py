"""Simulation-based calibration: the rank and uniformity machinery, data swapping, and small real runs on Dask.

The Dask runs are tiny (one trait, 3 regions x 4 periods, 6 simulations of 2 chains x 100 draws); each
worker still compiles the model once, so one module-scoped run on a 2-worker LocalCluster serves several
tests, and the interrupted-and-resumed run on one worker is compared with it.
"""

import collections
import dataclasses
import json
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nexusbayes.cli import main
from nexusbayes.errors import Interrupted, OutputExistsError, SamplingError
from nexusbayes.inference import compile_cache
from nexusbayes.model.build import Model, build_model
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator
from nexusbayes.workflows import jobs, sbc
from nexusbayes.workflows.sbc import SIMS_DIR, run_sbc
from nexusbayes.workflows.sbc_ranks import holm, uniformity_tests

ROOT = Path(__file__).resolve().parents[2]
N_SIMS = 200
L = 100


def _ranks(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"sim": np.arange(len(r)), "parameter": name, "kind": "hyper", "rank": r,
                                    "n_draws": L}) for name, r in columns.items()], ignore_index=True)


def _rank_of_truth(rng, posterior_sd: float, bias: float) -> np.ndarray:
    """Ranks from a normal-normal model whose 'posterior' is N(truth + bias + noise, posterior_sd): 1 is calibrated."""
    truth = rng.standard_normal(N_SIMS)
    centre = truth + rng.standard_normal(N_SIMS) + bias   # the calibrated posterior is centred on the data...
    draws = centre[:, None] + posterior_sd * rng.standard_normal((N_SIMS, L))   # ...with SD 1 around it
    return (draws < truth[:, None]).sum(axis=1)


def test_uniform_ranks_pass_and_miscalibrated_ranks_fail():
    rng = np.random.default_rng(7)
    ranks = _ranks({f"ok_{i}": rng.integers(0, L + 1, N_SIMS) for i in range(8)}
                   | {"ok_normal": _rank_of_truth(rng, 1.0, 0.0),
                      "too_narrow": _rank_of_truth(rng, 0.3, 0.0),     # U-shaped ranks
                      "too_wide": _rank_of_truth(rng, 3.0, 0.0),       # ranks piled in the middle
                      "biased": _rank_of_truth(rng, 1.0, 0.8)})        # ranks pushed to one side
    tests = uniformity_tests(ranks, seed=3).set_index("parameter")
    assert set(tests.index[~tests["passed"]]) == {"too_narrow", "too_wide", "biased"}
    assert (tests["p_holm"] >= tests["p_pot"]).all()
    assert tests.loc["too_narrow", "coverage_90"] < 0.6 and tests.loc["too_wide", "coverage_90"] > 0.99
    assert tests.loc[["ok_0", "ok_normal"], "p_chi2"].min() > 0.01 and tests.loc["biased", "p_chi2"] < 1e-3


def test_holm_controls_family_wise_error():
    p = np.array([0.001, 0.02, 0.5, 0.011])
    assert holm(p).tolist() == pytest.approx([0.004, 0.04, 0.5, 0.033])


@pytest.fixture(scope="module")
def tiny():
    """One trait, a normal and a count indicator, 3 regions x 4 periods with missing cells."""
    spec = Spec(name="tiny", traits=["capability"], indicators={
        "staff": Indicator(family="normal", loads={"capability": "positive"}),
        "cases": Indicator(family="negbin", loads={"capability": "positive"}),
    })
    return simulate(spec, n_regions=3, n_periods=4, missing=0.1, seed=4)


def test_with_data_refits_new_values_without_recompiling(tiny):
    import nutpie

    model = build_model(tiny.panel, tiny.spec)
    compiled, _ = compile_cache.compile_nutpie(model, tiny.panel, tiny.spec)   # as fits and SBC compile it
    y = model["data_normal"].get_value()
    sd = float(np.std(y))        # the fixed centring scale of the normal indicator
    means = []
    for shift in (0.0, 3.0):     # shift the normal indicator by 3 of its SDs: its intercept follows
        updated = compiled.with_data(data_normal=y + shift * sd)
        assert updated.compiled_logp_func is compiled.compiled_logp_func   # the same compiled code
        tree = nutpie.sample(updated, draws=200, tune=200, chains=2, seed=1, progress_bar=False)
        means.append(float(tree["posterior"]["intercept"].sel(indicator="staff").mean()))
    assert means[1] - means[0] == pytest.approx(3.0, abs=0.5)
    with pytest.raises(ValueError, match="rank"):
        compiled.with_data(data_normal=y[:, None])


#: The settings of the Dask runs; the command line's defaults for the rest (thin to 100, 20 theta elements).
SBC = {"n_sims": 6, "draws": 100, "tune": 100, "chains": 2, "seed": 5}
#: Columns of the fits table that depend on where and when a simulation ran, not on its result.
WHERE_AND_WHEN = ["seconds", "seconds_compile", "worker"]


@pytest.fixture(scope="module")
def tiny_spec(tiny, tmp_path_factory):
    """The tiny spec as a TOML file whose data file is the tiny panel (as the command line reads it)."""
    folder = tmp_path_factory.mktemp("tiny")
    tiny.frame.to_csv(folder / "data.csv", index=False)
    path = folder / "tiny.toml"
    path.write_text(tiny.spec.model_copy(update={"data": "data.csv"}).to_toml())
    return path


@pytest.fixture(scope="module")
def dask_sbc(tiny_spec, tmp_path_factory):
    """An uninterrupted SBC on a 2-worker LocalCluster: (result, run folder, seconds)."""
    out = tmp_path_factory.mktemp("sbc") / "two-workers"
    start = time.perf_counter()
    result = run_sbc(tiny_spec, **SBC, out_dir=out, n_workers=2, progress=False)
    return result, out, time.perf_counter() - start


def _records(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out / SIMS_DIR).glob("*/summary.json"))}


@pytest.mark.slow
def test_dask_sbc_writes_one_record_per_sim_and_its_outputs(dask_sbc, tmp_path):
    result, out, seconds = dask_sbc
    records = _records(out)
    assert list(records) == [f"sim-{s:04d}" for s in range(6)]
    assert all(r["status"] == "ok" and r["summary"]["sim"] == int(name[-4:]) for name, r in records.items())
    assert not list((out / SIMS_DIR).glob("*/error.json")) and not list(out.rglob(".*.tmp"))
    ranks = result.ranks
    assert set(ranks["kind"]) == {"hyper", "theta"}
    assert ranks["rank"].between(0, ranks["n_draws"]).all() and (ranks["n_draws"] == 100).all()
    assert ranks.groupby("parameter")["sim"].nunique().eq(6).all()
    hyper = set(ranks.loc[ranks["kind"] == "hyper", "parameter"])
    assert {"sigma_normal[staff]", "inv_dispersion_negbin[cases]", "loading_pos[staff:capability]"} <= hyper
    assert not any("_z" in p for p in hyper)                 # innovations are not hyperparameters
    assert (ranks["kind"] == "theta").sum() == 12 * 6        # all 3 x 4 elements (fewer than 20)
    # the tables are the records: each sim's ranks and fit row as stored on disk
    for name, record in records.items():
        sim = record["summary"]["sim"]
        stored = [[sim, *row] for row in record["summary"]["ranks"]]
        assert ranks[ranks["sim"] == sim].values.tolist() == stored, name
        assert result.fits.set_index("sim").loc[sim, "max_rhat"] == record["summary"]["fit"]["max_rhat"]
    assert len(result.fits) == 6 and result.fits["ok"].all() and result.fits["seconds"].gt(0).all()
    assert result.summary["theta_correlation"] > 0.5 and result.summary["n_resumed"] == 0
    assert result.summary["settings"]["n_sims"] == 6
    saved = result.save(out)                                  # into its own run folder: no overwrite needed
    assert {p.name for p in saved.iterdir()} == {"settings.json", SIMS_DIR, "ranks.csv", "tests.csv", "fits.csv",
                                                  "summary.json", "ecdf_hyper.png", "ecdf_theta.png"}
    assert json.loads((out / "summary.json").read_text())["n_sims"] == 6
    assert pd.read_csv(out / "ranks.csv").shape == ranks.shape
    (tmp_path / "x").write_text("x")
    with pytest.raises(OutputExistsError):                   # another folder that is not empty needs overwrite
        result.save(tmp_path)
    print(f"\nSBC of 6 simulations on 2 workers: {seconds:.0f} s; compile per worker "
          f"{result.summary['seconds_compile_by_worker']}; per fit {result.fits['seconds'].round(2).tolist()} s")


@pytest.mark.slow
def test_each_worker_compiles_the_model_once(dask_sbc):
    result, out, _ = dask_sbc
    records = _records(out).values()
    pids = {r["worker"]["pid"] for r in records}
    compiles = collections.Counter(r["worker"]["pid"] for r in records if r["summary"]["seconds_compile"] is not None)
    assert 1 <= len(pids) <= 2
    assert compiles == collections.Counter(pids)             # every worker that ran a simulation compiled once
    assert result.fits["seconds_compile"].notna().sum() == len(pids)
    assert len(result.summary["seconds_compile_by_worker"]) == len(pids)
    assert all(s > 0 for s in result.summary["seconds_compile_by_worker"].values())


@pytest.mark.slow
def test_an_interrupted_sbc_resumes_and_matches_an_uninterrupted_run(dask_sbc, tiny_spec, tmp_path, monkeypatch):
    """Stop the client after 3 results (as Ctrl-C would), rerun: on 1 worker, the tables equal the 2-worker run's."""
    full, _, _ = dask_sbc
    out = tmp_path / "one-worker"
    write = jobs._write
    written = []

    def write_then_interrupt(job_dir, job, record):
        stored = write(job_dir, job, record)
        written.append(job.name)
        if len(written) == 3:
            raise Interrupted("stopped after 3 simulations", signum=signal.SIGINT)
        return stored

    monkeypatch.setattr(jobs, "_write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_sbc(tiny_spec, **SBC, out_dir=out, n_workers=1, progress=False)
    monkeypatch.undo()
    first = _records(out)
    assert list(first) == written == ["sim-0000", "sim-0001", "sim-0002"]
    mtimes = {n: (out / SIMS_DIR / n / "summary.json").stat().st_mtime_ns for n in first}

    messages = []
    resumed = run_sbc(tiny_spec, **SBC, out_dir=out, n_workers=1, progress=False, status=messages.append)
    assert messages == [f"3 of 6 sims already done in {out / SIMS_DIR}/; 3 to run"]
    records = _records(out)
    assert {n: (out / SIMS_DIR / n / "summary.json").stat().st_mtime_ns for n in first} == mtimes   # not refitted
    assert all(records[n] == first[n] for n in first)
    later = {r["worker"]["pid"] for n, r in records.items() if n not in first}
    assert len(later) == 1 and later.isdisjoint({r["worker"]["pid"] for r in first.values()})   # a new worker...
    assert [records[f"sim-{s:04d}"]["summary"]["seconds_compile"] is not None for s in range(6)] == \
        [True, False, False, True, False, False]                                               # ...compiled once
    assert resumed.summary["n_resumed"] == 3
    pd.testing.assert_frame_equal(resumed.ranks, full.ranks)
    pd.testing.assert_frame_equal(resumed.tests, full.tests)
    pd.testing.assert_frame_equal(resumed.fits.drop(columns=WHERE_AND_WHEN), full.fits.drop(columns=WHERE_AND_WHEN))


@pytest.mark.slow
def test_cli_sbc_resumes_a_finished_run_and_refuses_other_settings(dask_sbc, tiny_spec, monkeypatch, capsys):
    result, out, _ = dask_sbc

    def no_cluster(*args, **kwargs):
        raise AssertionError("every simulation is done: no cluster should start")

    monkeypatch.setattr(jobs, "connect", no_cluster)
    command = ["sbc", str(tiny_spec), *(f"--{k.replace('_', '-')}={v}" for k, v in SBC.items()), "--out", str(out),
               "--no-progress"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert f"6 of 6 sims already done in {out / SIMS_DIR}/; 0 to run" in printed
    assert pd.read_csv(out / "ranks.csv").equals(result.ranks)
    assert json.loads((out / "summary.json").read_text())["n_resumed"] == 6
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main([*command, "--seed", "6"]) == 2                # other settings: refused before anything is drawn
    error = capsys.readouterr().err
    assert "holds an SBC with other settings (changed: seed)" in error and "--overwrite" in error
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_cli_sbc_refuses_to_overwrite_before_fitting(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "ranks.csv").write_text("old")
    assert main(["sbc", str(ROOT / "models" / "sbc_small.toml"), "--n-sims", "2", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "ranks.csv").read_text() == "old"


@pytest.mark.slow
def test_a_failed_simulation_is_a_row_of_fits_and_the_others_count(dask_sbc, tiny, tiny_spec, tmp_path, monkeypatch,
                                                                   capsys):
    """The tables of a run in which one simulation failed on its worker (its record as run_jobs returns it)."""
    result, out, _ = dask_sbc
    records = {name: {**r, "status": "skipped"} for name, r in _records(out).items()}
    records["sim-0002"] = {**records["sim-0002"], "status": "failed", "seconds": 0.5, "summary": None,
                           "error": {"type": "builtins.ValueError", "message": "simulated values do not fit ['x']"}}
    again = sbc._assemble(records, result.summary["settings"], tiny.panel, {})
    fits = again.fits.set_index("sim")
    assert not fits.loc[2, "ok"] and fits.loc[2, "error"] == "ValueError: simulated values do not fit ['x']"
    assert fits.drop(index=2)["ok"].all() and again.summary["n_failed"] == 1
    assert 2 not in set(again.ranks["sim"]) and again.ranks.groupby("parameter")["sim"].nunique().eq(5).all()
    pd.testing.assert_frame_equal(again.ranks, result.ranks[result.ranks["sim"] != 2].reset_index(drop=True))
    # the command line writes the tables and says which failed, but exits 1: the run is not complete
    timed = dataclasses.replace(again, summary={**result.summary, **again.summary})   # run_sbc adds the timings
    monkeypatch.setattr(sbc, "run_sbc", lambda *args, **kwargs: timed)
    assert main(["sbc", str(tiny_spec), "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    assert "FAILED simulation 2: ValueError: simulated values do not fit ['x']" in capsys.readouterr().err
    assert (tmp_path / "run" / "fits.csv").is_file()
    failed_all = {n: {**r, "status": "failed", "summary": None, "error": {"type": "x.E", "message": "m"}}
                  for n, r in records.items()}
    with pytest.raises(SamplingError, match="every one of the 6 simulations failed; the first: E: m"):
        sbc._assemble(failed_all, result.summary["settings"], tiny.panel, {})


def test_cli_sbc_interrupted_says_how_to_resume(tiny_spec, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise Interrupted("received SIGTERM", signum=signal.SIGTERM)

    monkeypatch.setattr(sbc, "run_sbc", interrupted)
    assert main(["sbc", str(tiny_spec), "--out", str(tmp_path / "run")]) == 143
    assert "interrupted by SIGTERM; finished fits are kept: run the same command again to resume" in \
        capsys.readouterr().err


def test_overwrite_removes_an_earlier_sbc_of_other_settings_only(tmp_path):
    settings = {"spec": "tiny", "n_sims": 6, "seed": 5}
    sbc._claim(tmp_path, settings, overwrite=False)              # an empty folder is claimed
    (tmp_path / SIMS_DIR / "sim-0000").mkdir(parents=True)
    (tmp_path / SIMS_DIR / "sim-0000" / "summary.json").write_text("{}")
    (tmp_path / "ranks.csv").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    sbc._claim(tmp_path, settings, overwrite=False)              # the same settings: resumed, nothing removed
    assert (tmp_path / SIMS_DIR / "sim-0000" / "summary.json").exists()
    other = {**settings, "seed": 6}
    with pytest.raises(OutputExistsError, match=r"holds an SBC with other settings \(changed: seed\)"):
        sbc._claim(tmp_path, other, overwrite=False)
    assert (tmp_path / "ranks.csv").read_text() == "old"
    sbc._claim(tmp_path, other, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "settings.json"]
    assert json.loads((tmp_path / "settings.json").read_text()) == other


@pytest.mark.parametrize("centred", [False, True])
def test_latent_states_are_not_ranked_as_hyperparameters(centred):
    spec = Spec(name="one", traits=["willingness"], dynamics={"centred": centred},
                indicators={"staff": Indicator(family="normal", loads={"willingness": "positive"}),
                            "arrests": Indicator(family="negbin", loads={"willingness": "positive"})})
    sim = simulate(spec, n_countries=2, n_regions=3, n_periods=4, seed=1)
    names = Model(spec, sim.panel).roles.ranked()
    assert "region_innovation_sd" in names and "sigma_normal" in names
    latent = {"region_state"} if centred else {"region_z", "country_z", "country_start"}
    assert not latent & set(names), names
