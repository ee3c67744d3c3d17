"""The inflated blocks' log density and gradient against a straightforward reference formula (issue 23, part 3).

The model evaluates the quota-heap and structural-zero mixtures on each component's own observations, with the
second softplus only at the counts that sit at the inflated value (``nexusbayes.model.heaping``). Here the whole
model's log density and gradient at random points are checked against the same model built with the mixture
written out plainly: logits per observation from a gather of theta, and over the whole block
``switch(y == value, logaddexp(l + log(1 - pi), log pi), l + log(1 - pi))``, PyTensor's own softplus, constant
masks for the component's rows. No sampling, no C compiler (Python thunks).
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

from nexusbayes.model import build
from nexusbayes.model.build import Model
from nexusbayes.model.predict import forward_mode
from nexusbayes.model.simulate import default_spec
from nexusbayes.spec.document import Spec


def overlapping_spec() -> Spec:
    """Seizures heaped at 10 and zero-inflated, abuse zero-inflated, quota heaped at a column's quota.

    So the zeros cover the whole negbin block and the heap part of it (the heap first, the zeros over it), and the
    heap covers the whole binomial block: each way the model adds a component in.
    """
    data = default_spec().to_dict()
    data["indicators"]["seizures"].update(quota=10, zero_inflated=True)
    data["indicators"]["abuse"].update(zero_inflated=True)
    data["indicators"]["quota"].update(quota="target")
    return Spec.from_dict(data)


def reference_logits(parts, inflation, cells, region, period, n_cell, n_period):
    """Each component's logits over its observations: intercept + loadings . theta, gathered row by row."""
    out = {}
    for comp, part in parts.items():
        intercept, loading, _ = inflation[comp]
        cell = region[part.rows] * n_period + period[part.rows]
        out[comp] = intercept[part.member] + (loading[part.member] * cells[cell]).sum(axis=-1)
    return out


def reference_likelihood(family, block, eta, params, inputs, observed, parts, logits):
    """The mixture over the whole block as a logsumexp of its two components, component by component."""
    args, dist, kernel = family.kernel(block, eta, params, inputs)
    n, comps = len(block.y), list(parts)
    data_only = family.data_only(block, block.y.astype(float))
    masks = {}
    for comp, part in parts.items():
        has, at = np.zeros(n, bool), np.zeros(n, bool)
        has[part.rows] = True
        at[part.rows] = block.y[part.rows] == part.value
        masks[comp] = (has, at)

    def logp(value, *rest):
        log_mass = kernel(value, *rest[:len(args)]) + data_only
        for comp, u_own in zip(comps, rest[len(args):], strict=True):
            has, at = masks[comp]
            u = pt.set_subtensor(pt.zeros(n)[parts[comp].rows], u_own)
            log_pi, log_rest = -pt.softplus(-u), -pt.softplus(u)
            mixed = pt.switch(at, pt.logaddexp(log_mass + log_rest, log_pi), log_mass + log_rest)
            log_mass = pt.switch(has, mixed, log_mass)
        return log_mass

    signature = ",".join(["()"] * len(args) + [f"(c{i})" for i in range(len(comps))]) + "->()"
    def honest(*rest):        # draws are not checked here; a symbolic dist takes the model's logp path
        return dist(*rest[:len(args)], size=rest[-1])

    return pm.CustomDist(f"y_{block.key}", *args, *logits.values(), dist=honest, logp=logp, observed=observed,
                         dims=block.dim, signature=signature)


@pytest.fixture(scope="module")
def models():
    from nexusbayes.model.simulate import simulate

    sim = simulate(overlapping_spec(), n_countries=2, n_regions=3, n_periods=4, missing=0.1, seed=7)
    fast = Model(sim.spec, sim.panel).pymc
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "component_logits", reference_logits)
        patch.setattr(build, "inflated_likelihood", reference_likelihood)
        slow = Model(sim.spec, sim.panel).pymc
    return sim, fast, slow


INFLATED = ("y_negbin", "y_binomial")


@pytest.fixture(scope="module")
def functions(models):
    """Per model: the inflated terms' pointwise log mass and the gradient of their sum in every parameter.

    The rest of the log density is the same graph in both models, so this is the whole model's difference.
    """
    out = []
    for model in models[1:]:
        terms = model.logp(vars=[model[name] for name in INFLATED], sum=False)
        total = pt.sum([t.sum() for t in terms])
        gradient = pytensor.grad(total, model.value_vars, disconnected_inputs="ignore")
        out.append(pytensor.function(model.value_vars, [*terms, *gradient], mode=forward_mode(),
                                     on_unused_input="ignore"))
    return out


def test_the_panel_has_heaps_and_zeros_in_every_component(models):
    sim, fast, _ = models
    at = {name: fast[name].get_value() for name in ("at_heap_negbin", "at_zero_negbin", "at_heap_binomial")}
    assert all(len(v) >= 3 for v in at.values()), {k: len(v) for k, v in at.items()}
    assert len(fast["heap_value_negbin"].get_value()) < len(fast["data_negbin"].get_value())     # part of the block


def test_log_density_and_gradient_equal_the_reference_formula(models, functions):
    """At five random points (a prior draw plus unit noise on the unconstrained scale): 1e-9 relative.

    The log density's sum, each observation's log mass (1e-10 relative) and the gradient in every parameter.
    """
    _, fast, slow = models
    assert [v.name for v in fast.value_vars] == [v.name for v in slow.value_vars]
    rng = np.random.default_rng(23)
    start = fast.initial_point(random_seed=5)
    for _ in range(5):
        point = [start[v.name] + rng.normal(0.0, 1.0, np.shape(start[v.name])) for v in fast.value_vars]
        got, want = (f(*point) for f in functions)
        total, wanted = sum(float(t.sum()) for t in got[:2]), sum(float(t.sum()) for t in want[:2])
        assert np.isfinite(total) and abs(total - wanted) <= 1e-9 * abs(wanted), (total, wanted)
        for name, a, b in zip(INFLATED, got[:2], want[:2], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=0, err_msg=name)
        got_grad, want_grad = (np.concatenate([np.ravel(x) for x in out[2:]]) for out in (got, want))
        assert np.abs(want_grad).max() > 1.0      # the inflated terms do depend on the parameters
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-9, atol=1e-9 * np.abs(want_grad).max())


def test_reporting_kernel_and_gradient_equal_pymcs_bernoulli():
    """The reporting model's Bernoulli kernel (one softplus) against PyMC's Bernoulli, logits up to +-40."""
    from nexusbayes.model.kernels import bernoulli_kernel

    rng = np.random.default_rng(4)
    logit, value = pt.dvector("logit"), pt.lvector("value")
    mine, theirs = bernoulli_kernel(value, logit), pm.logp(pm.Bernoulli.dist(logit_p=logit), value)
    f = pytensor.function([logit, value], [mine, theirs, pytensor.grad(mine.sum(), logit),
                                           pytensor.grad(theirs.sum(), logit)])
    x = np.concatenate([rng.normal(0.0, 3.0, 200), [-40.0, -1e-3, 0.0, 1e-3, 40.0]])
    got, want, got_grad, want_grad = f(x, rng.integers(0, 2, len(x)))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-12, atol=1e-300)
