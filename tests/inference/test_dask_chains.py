"""Chains as tasks on a Dask cluster (``fit(..., scheduler=ADDRESS)``, ``inference/dask_chains.py``).

The cluster is a :class:`distributed.LocalCluster` of two in-process workers: its tasks run in this process, so
they share the compiled model of the panel's structure (also ``tests/inference/test_run_length.py``'s) instead of
each loading it. What a worker in another process receives and returns is checked apart, through Dask's own
serialisation.
"""

from __future__ import annotations

import re
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
from arviz_stats import mcse

from nexusbayes.cli import main
from nexusbayes.errors import SpecError
from nexusbayes.fit import fit, load
from nexusbayes.inference import compile_cache, dask_chains
from nexusbayes.inference.sample import sample, sample_chain
from nexusbayes.report.header import run_facts
from nexusbayes.spec.sections import SamplerSpec
from tests.conftest import RECOVERY_SEEDS

SETTINGS = {"draws": 100, "tune": 100, "chains": 2, "seed": 11}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    # no dashboard, and the scheduler's HTTP endpoint on a free port (its default, 8787, may be another cluster's)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as local:
        yield local


@pytest.fixture(scope="module")
def twin(recovery, cluster):
    """The recovery fit of seed 11 (tests/conftest.py) again, its chains as Dask tasks: same spec, data, settings."""
    sim, here = recovery
    lines: list[str] = []
    there = fit(sim.spec, sim.panel, chains=4, seed=RECOVERY_SEEDS[0], progress=False, check=False,
                scheduler=cluster.scheduler_address, status=lines.append)
    return here, there, lines


ONE_RECOVERY_FIT = pytest.mark.parametrize("recovery", [RECOVERY_SEEDS[0]], indirect=True, ids=["seed11"])


@ONE_RECOVERY_FIT
def test_chains_on_the_cluster_give_the_posterior_of_the_local_sampler(twin):
    here, there, _ = twin
    a, b = here.tree["posterior"].to_dataset(), there.tree["posterior"].to_dataset()
    assert set(a.data_vars) == set(b.data_vars) and a.sizes == b.sizes
    worst, compared = 0.0, 0
    for name in a.data_vars:
        spread = np.asarray(a[name].std(("chain", "draw")))
        error = np.hypot(mcse(a[name]).values, mcse(b[name]).values)
        gap = np.abs(a[name].mean(("chain", "draw")).values - b[name].mean(("chain", "draw")).values)
        fixed = spread == 0                    # e.g. a correlation matrix's diagonal: the same constant in both
        np.testing.assert_array_equal(gap[fixed], 0.0, err_msg=name)
        worst = max(worst, float(np.max(gap[~fixed] / error[~fixed], initial=0.0)))
        compared += int((~fixed).sum())
    # each mean within 4.5 MCSE of the other's: |z| > 4.5 by chance has p < 1e-5, so < 1% over the 438 means
    assert compared > 400 and worst < 4.5, worst
    # the same R-hat gate: both pass it
    assert [bool(r.diagnostics.checks.loc["rhat", "passed"]) for r in (here, there)] == [True, True]


@ONE_RECOVERY_FIT
def test_the_joined_tree_is_the_local_runs_shape_with_its_checks_and_groups(twin):
    here, there, lines = twin
    assert set(there.tree.children) == set(here.tree.children)
    for group in there.tree.children:
        assert set(there.tree[group].data_vars) == set(here.tree[group].data_vars), group
        assert dict(there.tree[group].sizes) == dict(here.tree[group].sizes), group
    assert there.tree["posterior"]["chain"].values.tolist() == [0, 1, 2, 3]
    attrs = there.tree.attrs
    assert attrs["chain_seeds"] == [dask_chains.chain_seed(RECOVERY_SEEDS[0], k) for k in range(4)]
    assert len(set(attrs["chain_workers"])) == 2 and attrs["compile_source"] in compile_cache.SOURCES
    assert attrs["seconds_compile"] >= 0 and attrs["seconds_sampling"] > 0
    assert sum(line.startswith("chain ") for line in lines) == 4     # a line per finished chain
    assert set(there.diagnostics.table.index) == set(here.diagnostics.table.index)
    assert attrs["scheduler"] in run_facts(there)[0]["chains run"]


@ONE_RECOVERY_FIT
def test_a_fit_whose_chains_ran_on_the_cluster_saves_and_loads_with_their_seeds_and_workers(twin, tmp_path):
    there = twin[1]
    there.save(tmp_path / "fit.nc")
    back = load(tmp_path / "fit.nc")
    for key in ("chain_seeds", "chain_workers", "chain_seconds_sampling", "scheduler"):
        assert np.asarray(back.tree.attrs[key]).tolist() == np.asarray(there.tree.attrs[key]).tolist(), key


def test_a_chains_draws_are_a_local_lean_one_chain_run_of_its_seed(small_model, cluster):
    """Chain 1 of a run on the cluster, and a local one-chain run seeded as that chain (lean, as a local fixed-length
    run is): the same draws and sampler statistics, bit for bit. The chain's task, run alone, samples the lean trace."""
    settings = SamplerSpec(**SETTINGS)
    tree = sample(small_model, settings, progress=False, predictions=False, scheduler=cluster.scheduler_address)
    seed = dask_chains.chain_seed(SETTINGS["seed"], 1)
    local = sample(small_model, SamplerSpec(**{**SETTINGS, "chains": 1, "seed": seed}), progress=False,
                   predictions=False)
    for group in ("posterior", "sample_stats"):
        there, here = tree[group].to_dataset().isel(chain=[1]), local[group].to_dataset()
        assert set(there.data_vars) == set(here.data_vars), group
        for name in here.data_vars:
            np.testing.assert_array_equal(there[name].values, here[name].values, err_msg=f"{group}.{name}")
    assert "chain_seeds" not in local.attrs and "lean" not in tree.attrs
    alone = sample_chain(small_model.spec.to_dict(), small_model.panel, settings.model_dump(), seed, {})
    assert alone["lean"] and alone["worker"] == "local"
    np.testing.assert_array_equal(np.float32(xr.Dataset.from_dict(alone["groups"]["posterior"])["theta"].values),
                                  np.float32(tree["posterior"]["theta"].isel(chain=[1]).values))


def test_what_a_chain_task_sends_and_returns_survives_dasks_serialisation(small_model):
    """The spec's dict and the panel go to a worker, the draws' arrays come back: no model object."""
    from distributed.protocol import deserialize, serialize

    spec, panel = small_model.spec.to_dict(), small_model.panel
    spec_back, panel_back = (deserialize(*serialize(x)) for x in (spec, panel))
    assert compile_cache.structure_key(panel_back, type(small_model.spec).from_dict(spec_back)) == \
        compile_cache.structure_key(panel, small_model.spec)
    one = xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), [[0.5, 1.5]])},
                                                         coords={"chain": [0], "draw": [0, 1]})})
    groups = deserialize(*serialize(dask_chains.chain_groups(one)))
    assert dask_chains.join_chains([groups], [7])["posterior"]["mu"].values.tolist() == [[0.5, 1.5]]


@pytest.mark.parametrize("settings, message", [
    ({"backend": "pymc"}, "nutpie backend"),
    ({"until_converged": True, "draws": 400}, "until_converged = false"),
    ({"init": "advi"}, 'init = "prior"'),
])
def test_a_scheduler_is_refused_where_chains_cannot_run_as_tasks(small_model, settings, message):
    spec = SamplerSpec(**{**SETTINGS, **settings})
    with pytest.raises(SpecError, match=message):
        sample(small_model, spec, scheduler="tcp://127.0.0.1:9", progress=False)


def test_fit_command_with_an_address_where_no_scheduler_answers_says_how_to_start_one(tmp_path, capsys):
    spec = Path(__file__).resolve().parents[2] / "models" / "kyrgyzstan.toml"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = main(["fit", str(spec), "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "run")])
    assert status == 2
    assert re.search(r"no Dask scheduler answered at 'tcp://127.0.0.1:9'.*dask scheduler", capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
