"""The Bernoulli family's likelihood (one softplus per observation) against PyMC's own ``Bernoulli``.

The family's observed variable is a CustomDist with :func:`nexusbayes.model.kernels.bernoulli_kernel`; the
reference is the same model with ``pm.Bernoulli(logit_p=eta)`` (``benchmarks/bernoulli.py``, which times both).
The whole model's log density and gradient at random points, the stored log-likelihood (NumPy, for LOO) against
the sampler's kernel, and the prior predictive draws. No sampling, no C compiler (Python thunks).
"""

import numpy as np
import pytensor
import pytest

from benchmarks.bernoulli import bernoulli_spec, pymc_model
from nexusbayes.model.build import Model
from nexusbayes.model.families import FAMILIES
from nexusbayes.model.predict import forward_mode
from nexusbayes.model.simulate import simulate
from tests.modes import PY_RUN


@pytest.fixture(scope="module")
def models():
    sim = simulate(bernoulli_spec(), n_countries=2, n_regions=3, n_periods=4, missing=0.1, seed=7)
    return sim, Model(sim.spec, sim.panel), pymc_model(sim.spec, sim.panel)


def _functions(model):
    """The pointwise log mass of ``y_bernoulli``, its sum and the sum's gradient in every parameter.

    The rest of the log density is the same graph in both models, so this is the whole model's difference.
    """
    pm_model = model.pymc
    term = pm_model.logp(vars=[pm_model["y_bernoulli"]], sum=False)[0]
    gradient = pytensor.grad(term.sum(), pm_model.value_vars, disconnected_inputs="ignore")
    return pytensor.function(pm_model.value_vars, [term, term.sum(), *gradient], mode=forward_mode(),
                             on_unused_input="ignore")


def test_log_density_and_gradient_equal_pymcs_bernoulli(models):
    """At five random points (a prior point plus unit noise, unconstrained scale): 1e-9 relative.

    The likelihood term's sum and its gradient in every parameter, each observation's log mass to 1e-10.
    """
    _, fast, slow = models
    assert type(fast.pymc["y_bernoulli"].owner.op).__name__ != type(slow.pymc["y_bernoulli"].owner.op).__name__
    assert [v.name for v in fast.pymc.value_vars] == [v.name for v in slow.pymc.value_vars]
    functions = [_functions(m) for m in (fast, slow)]
    rng = np.random.default_rng(23)
    start = fast.pymc.initial_point(random_seed=5)
    for _ in range(5):
        point = [start[v.name] + rng.normal(0.0, 1.0, np.shape(start[v.name])) for v in fast.pymc.value_vars]
        got, want = (f(*point) for f in functions)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=0)          # each observation's log mass
        assert abs(float(got[1]) - float(want[1])) <= 1e-9 * abs(float(want[1])), (got[1], want[1])
        got_grad, want_grad = (np.concatenate([np.ravel(x) for x in out[2:]]) for out in (got, want))
        assert np.abs(want_grad).max() > 1.0
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-9, atol=1e-9 * np.abs(want_grad).max())


def test_stored_log_likelihood_is_the_kernel_the_sampler_uses(models):
    """``Bernoulli.logp`` (NumPy: the log-likelihood LOO reads) equals the graph's kernel, logits up to +-40."""
    from nexusbayes.model.kernels import bernoulli_kernel

    sim, fast, _ = models
    block = next(b for b in fast.design.blocks if b.key == "bernoulli")
    rng = np.random.default_rng(4)
    eta = rng.normal(0.0, 4.0, (3, len(block.y)))
    eta[0, :5] = [-40.0, -1e-3, 0.0, 1e-3, 40.0]
    numpy = FAMILIES["bernoulli"].logp(eta, None, block, {})
    graph = bernoulli_kernel(block.y.astype("int64"), eta).eval(mode=PY_RUN)
    assert set(np.unique(block.y)) == {0.0, 1.0}
    np.testing.assert_allclose(numpy, graph, rtol=1e-12, atol=1e-300)


def test_predictive_draws_given_the_same_parameters_match_pymcs(models):
    """Given one prior draw of every parameter, 600 draws of the observations from each likelihood: the share of
    ones per observation agrees (the draws come from ``pm.Bernoulli.dist`` either way; their random streams differ).
    """
    import pymc as pm
    import xarray as xr

    _, fast, slow = models
    point = pm.sample_prior_predictive(draws=1, model=fast.pymc, random_seed=3,
                                       compile_kwargs={"mode": forward_mode()})["prior"].to_dataset()
    trace = xr.DataTree.from_dict({"posterior": point.isel(draw=[0] * 600).assign_coords(draw=np.arange(600))})
    shares = []
    for model in (fast, slow):
        draws = pm.sample_posterior_predictive(trace, model=model.pymc, var_names=["y_bernoulli"], random_seed=11,
                                               progressbar=False, compile_kwargs={"mode": forward_mode()})
        shares.append(draws["posterior_predictive"]["y_bernoulli"].values.reshape(600, -1).mean(0))
    got, want = shares
    assert np.std(want) > 0.2                       # the observations' probabilities differ: a flip would show
    se = np.sqrt(want * (1 - want) / 600 * 2) + 1e-3
    assert np.abs(got - want).max() < 4.5 * se.max() and np.mean(np.abs(got - want) / se) < 1.2
