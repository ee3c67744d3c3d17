"""Sampler trouble is reported, not hidden: diagnostics messages on synthetic DataTrees, and `fit` refusing
NaN posteriors, partial (interrupted) traces and start failures, with the sampler replaced by a stub."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import nutpie
import pymc as pm
import pytest
import xarray as xr

from nexusbayes.analysis.diagnostics import ADVICE, SamplingWarning, diagnose
from nexusbayes.errors import Interrupted, SamplingError
from nexusbayes.fit import fit
from nexusbayes.inference import compile_cache
from nexusbayes.inference.sample_checks import check_finite, start_failure
from nexusbayes.model.roles import Roles
from nexusbayes.model.simulate import simulate

CHAINS, DRAWS = 2, 500


def synthetic_tree(*, diverging: int = 0, energy_walk: bool = False, treedepth_share: float = 0.0,
                   nan: bool = False, seed: int = 0) -> xr.DataTree:
    """Well-mixed iid draws, with one sampler problem switched on at a time."""
    rng = np.random.default_rng(seed)
    shape = (CHAINS, DRAWS)
    mu = rng.standard_normal(shape)
    if nan:
        mu[0, 3] = np.nan
    energy = np.cumsum(rng.standard_normal(shape), axis=1) if energy_walk else rng.standard_normal(shape)
    div = np.zeros(shape, bool)
    div.flat[:diverging] = True
    depth = np.zeros(shape, bool)
    depth.flat[: int(treedepth_share * depth.size)] = True
    coords = {"chain": np.arange(CHAINS), "draw": np.arange(DRAWS)}
    dims = ("chain", "draw")
    return xr.DataTree.from_dict({
        "posterior": xr.Dataset({"mu": (dims, mu)}, coords=coords),
        "sample_stats": xr.Dataset({"diverging": (dims, div), "energy": (dims, energy),
                                    "reached_max_treedepth": (dims, depth)}, coords=coords),
    })


def test_healthy_synthetic_tree_passes():
    diag = diagnose(synthetic_tree())
    assert diag.passed, diag.text()
    assert diag.failures() == []


@pytest.mark.parametrize(("problem", "kwargs", "expected"), [
    ("divergences", {"diverging": 7}, "divergences = 7, needs = 0: the sampler hit regions of high curvature, "
                                      "so the posterior there may be missed: raise target_accept (e.g. 0.95)"),
    ("bfmi", {"energy_walk": True}, "min E-BFMI = "),
    ("treedepth", {"treedepth_share": 0.1}, "max tree depth hit = 0.1, needs <= 1%: trajectories are cut short"),
])
def test_each_sampler_problem_says_what_it_means_and_what_to_try(problem, kwargs, expected):
    diag = diagnose(synthetic_tree(**kwargs))
    assert not diag.checks.loc[problem, "passed"]
    [failure] = diag.failures()
    assert expected in failure
    assert failure.endswith(ADVICE[problem])
    assert f"[FAIL] {diag.checks.loc[problem, 'label']}" in diag.text()
    with pytest.warns(SamplingWarning, match=r"Sampling diagnostics FAILED, do not trust these results yet"):
        diag.warn()


def test_a_single_chain_fails_the_rhat_check_instead_of_crashing():
    one = synthetic_tree().isel(chain=[0])
    diag = diagnose(one)
    assert not diag.passed
    row = diag.checks.loc["rhat"]
    assert np.isnan(row["value"]) and row["worst"] == "R-hat needs at least 2 chains"
    assert diag.checks.loc["ess_bulk", "passed"]           # ESS is still computed from one chain
    assert any(f.startswith("max R-hat = nan") for f in diag.failures())


def test_bfmi_and_treedepth_advice_say_what_to_try():
    assert "reparametrise or tighten the scale priors" in ADVICE["bfmi"]
    assert "dense mass-matrix adaptation or more informative priors" in ADVICE["treedepth"]


def test_check_finite_names_the_variable_and_counts():
    with pytest.raises(SamplingError, match=r"the posterior holds non-finite draws \(mu: 1 NaN, 0 infinite of "
                                            r"1000\); these results are not reported"):
        check_finite(synthetic_tree(nan=True))
    check_finite(synthetic_tree())


# ---- fit() with the sampler replaced ----------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    return simulate(n_regions=2, n_periods=2, seed=4)


class StubSampler:
    """Stands in for nutpie's background sampler: returns a given tree or raises from wait()."""

    def __init__(self, tree=None, error=None):
        self.tree, self.error, self.cancelled = tree, error, False

    def wait(self):
        if self.error is not None:
            raise self.error
        return self.tree

    def cancel(self):
        self.cancelled = True


@pytest.fixture
def stub(monkeypatch):
    """Replace nutpie's compile and sample; returns a setter for what sampling yields."""
    holder = {}
    monkeypatch.setattr(compile_cache, "compile_nutpie", lambda model, panel, spec, salt="", lean=False:
                        ("compiled", "compiled"))

    def sample(compiled, **kwargs):
        assert kwargs["blocking"] is False  # blocking=True would swallow Ctrl-C into a truncated trace
        return holder["sampler"]

    monkeypatch.setattr(nutpie, "sample", sample)

    def set_(sampler):
        holder["sampler"] = sampler
        return sampler

    return set_


def test_fit_refuses_a_posterior_with_nan(small, stub):
    stub(StubSampler(tree=synthetic_tree(nan=True)))
    with pytest.raises(SamplingError, match=r"non-finite draws \(mu: 1 NaN"):
        fit(small.spec, small.panel, draws=DRAWS, chains=CHAINS, progress=False)


def test_fit_refuses_a_partial_trace(small, stub):
    """What nutpie and PyMC return when Ctrl-C reaches them: fewer draws than asked."""
    stub(StubSampler(tree=synthetic_tree()))
    with pytest.raises(Interrupted, match=r"sampling was interrupted: got 2 chain\(s\) x 500 draws of 2 x 600"):
        fit(small.spec, small.panel, draws=600, chains=CHAINS, progress=False)


@pytest.mark.parametrize("signal_error", [KeyboardInterrupt(), Interrupted("received SIGTERM", signum=15)])
def test_interrupt_while_waiting_cancels_the_sampler_and_propagates(small, stub, signal_error):
    sampler = stub(StubSampler(error=signal_error))
    with pytest.raises(KeyboardInterrupt) as excinfo:
        fit(small.spec, small.panel, draws=DRAWS, chains=CHAINS, progress=False)
    assert excinfo.value is signal_error
    assert sampler.cancelled


def test_initialisation_failure_is_explained(small, stub):
    stub(StubSampler(error=RuntimeError("All initialization points failed")))
    with pytest.raises(SamplingError) as excinfo:
        fit(small.spec, small.panel, draws=DRAWS, chains=CHAINS, progress=False)
    msg = str(excinfo.value)
    assert msg.startswith("sampling failed to start or stopped with an error (nutpie: RuntimeError: All "
                          "initialization points failed).")
    assert "(initialisation failure). What to try: look for extreme values in the data" in msg
    assert isinstance(excinfo.value.__cause__, RuntimeError)


def test_initialisation_failure_names_the_non_finite_term():
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Normal("y_normal", mu, 1.0, observed=np.array([0.0, np.inf]))
    stand_in = SimpleNamespace(pymc=model, spec=None, roles=Roles([]))   # a model with no declared roles
    msg = start_failure(stand_in, "pymc", pm.exceptions.SamplingError("Initial evaluation of model at starting "
                                                                      "point failed!"))
    assert "Terms whose log-density is not finite at the initial point: y_normal = -inf." in msg
