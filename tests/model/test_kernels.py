"""The log-density kernels the sampler differentiates equal PyMC's full log-densities up to data-only terms."""

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import expit, gammaln

from nexusbayes.model.kernels import (
    between_cuts,
    binomial_kernel,
    negbin_kernel,
    normal_kernel,
    ordinal_kernel,
    softplus,
)

RNG = np.random.default_rng(7)
N = 400


def test_negbin_kernel_is_the_full_log_mass_plus_log_y_factorial():
    y = RNG.poisson(RNG.gamma(2.0, 20.0, N))
    log_mu = RNG.normal(2.0, 1.5, N)
    alpha = RNG.gamma(2.0, 1.0, N)
    terms = alpha * np.log(alpha) - gammaln(alpha)
    lgamma_y = gammaln(y + alpha)
    kernel = negbin_kernel(pt.as_tensor(y), pt.as_tensor(log_mu), pt.as_tensor(alpha), pt.as_tensor(np.log(alpha)),
                            pt.as_tensor(terms), pt.as_tensor(lgamma_y)).eval()
    full = pm.logp(pm.NegativeBinomial.dist(mu=np.exp(log_mu), alpha=alpha), y).eval()
    np.testing.assert_allclose(kernel - gammaln(y + 1.0), full, rtol=1e-9, atol=1e-9)


def test_normal_kernel_is_the_full_log_density_plus_log_sd_and_half_log_two_pi():
    y = RNG.normal(50.0, 20.0, N)
    eta = RNG.normal(0.0, 1.5, N)
    loc, sd = 48.0, RNG.gamma(5.0, 4.0, N)
    sigma = RNG.gamma(2.0, 0.5, N)
    kernel = normal_kernel(*(pt.as_tensor(a) for a in (y, eta, loc, sd, sigma, 1.0 / sigma**2, np.log(sigma)))).eval()
    full = pm.logp(pm.Normal.dist(mu=loc + sd * eta, sigma=sd * sigma), y).eval()
    np.testing.assert_allclose(kernel - np.log(sd) - 0.5 * np.log(2 * np.pi), full, rtol=1e-9, atol=1e-9)


def test_softplus_and_its_gradient_match_the_exact_ones_over_the_whole_range():
    """One exponential for value and gradient, no overflow at either end, the gradient 1/2 at exactly 0."""
    x = pt.dvector("x")
    value = softplus(x)
    grad = pt.grad(value.sum(), x)
    points = np.concatenate([[-800.0, -40.0, 0.0, 40.0, 800.0], RNG.normal(0.0, 10.0, N)])
    got_value, got_grad = (v.eval({x: points}) for v in (value, grad))
    np.testing.assert_allclose(got_value, np.logaddexp(0.0, points), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(got_grad, expit(points), rtol=1e-13, atol=1e-300)
    assert got_grad[2] == 0.5


def test_binomial_kernel_is_the_full_log_mass_minus_log_n_choose_k():
    n = RNG.integers(1, 40, N)
    k = RNG.binomial(n, 0.3)
    eta = RNG.normal(0.0, 3.0, N)
    kernel = binomial_kernel(pt.as_tensor(k), pt.as_tensor(eta), pt.as_tensor(n)).eval()
    full = pm.logp(pm.Binomial.dist(n=n, logit_p=eta), k).eval()
    log_choose = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
    np.testing.assert_allclose(kernel + log_choose, full, rtol=1e-9, atol=1e-9)


def test_ordinal_kernel_is_the_full_log_mass_for_every_category_including_the_outer_ones():
    cut = np.sort(RNG.normal(0.0, 2.0, (N, 4)), axis=1)
    eta = RNG.normal(0.0, 3.0, N)
    code = RNG.integers(0, 5, N)
    rows = np.arange(N)
    lower, upper = cut[rows, np.maximum(code - 1, 0)], cut[rows, np.minimum(code, 3)]
    table = between_cuts(pt.as_tensor(cut)).eval()
    assert table.shape == (N, 5) and (table[:, [0, 4]] == 0).all()
    kernel = ordinal_kernel(pt.as_tensor(eta), pt.as_tensor(lower), pt.as_tensor(upper),
                             pt.as_tensor(table[rows, code]), pt.as_tensor(code == 0), pt.as_tensor(code == 4)).eval()
    full = pm.logp(pm.OrderedLogistic.dist(eta=eta, cutpoints=cut, compute_p=False), code).eval()
    np.testing.assert_allclose(kernel, full, rtol=1e-7, atol=1e-9)
    assert set(code) == {0, 1, 2, 3, 4}


def test_ordinal_model_gradients_are_finite_when_differentiated_through_both_branches():
    """JAX (numpyro) differentiates through both branches of a switch: no branch may be infinite."""
    import jax
    from pymc.sampling.jax import get_jaxified_graph

    from nexusbayes.model.build import build_model
    from nexusbayes.model.simulate import simulate

    sim = simulate(n_regions=3, n_periods=4, n_raters=2, seed=3)
    model = build_model(sim.panel, sim.spec)
    start = model.initial_point(random_seed=0)
    values = [start[v.name] + RNG.uniform(-1, 1, np.shape(start[v.name])) for v in model.value_vars]
    logp = get_jaxified_graph(inputs=model.value_vars, outputs=[model.logp(vars=[*model.free_RVs,
                                                                                 model["y_ordinal"]])])
    gradient = jax.grad(lambda v: logp(*v)[0])(values)
    assert all(np.isfinite(np.asarray(g)).all() for g in gradient)


def test_negbin_pair_table_gives_each_count_its_own_pair():
    from nexusbayes.model.families import NegBin

    local = RNG.integers(0, 3, N)
    y = RNG.poisson(4.0, N).astype(float)
    table = NegBin().kernel_tables(local, y)
    assert len(table["pair_count"]) == len({(j, c) for j, c in zip(local, y, strict=True)}) < N
    np.testing.assert_array_equal(table["pair_indicator"][table["pair"]], local)
    np.testing.assert_array_equal(table["pair_count"][table["pair"]], y)


def test_negbin_log_mass_of_the_fit_is_scipys_from_overdispersed_to_the_poisson_limit():
    from scipy import stats

    from nexusbayes.model.families import Block, NegBin

    local = RNG.integers(0, 3, N)
    y = RNG.poisson(RNG.gamma(2.0, 30.0, N)).astype(float)
    exposure = RNG.uniform(0.5, 2.0, N)
    block = Block("negbin", ["a", "b", "c"], np.arange(N), np.arange(N), local, y, exposure, np.ones(N),
                  np.full(N, -1))
    eta = RNG.normal(3.0, 1.0, (5, N))                          # five draws
    inv_dispersion = np.array([[2.0, 0.3, 1e-9]] * 5)          # the third indicator all but Poisson
    got = NegBin().logp(eta, None, block, {"inv_dispersion": inv_dispersion})
    mu, alpha = np.exp(eta) * exposure, 1.0 / inv_dispersion[:, local]
    scipy = stats.nbinom.logpmf(y, alpha, alpha / (alpha + mu))
    overdispersed = local < 2
    np.testing.assert_allclose(got[:, overdispersed], scipy[:, overdispersed], rtol=1e-11, atol=1e-11)
    # at alpha = 1e9 both lose digits to the cancellation of lgamma(y + alpha) - lgamma(alpha) (checked against
    # 50-digit arithmetic for counts around 60: ours off by 4.4e-6, SciPy's by 5.3e-6); the limit is the Poisson's
    poisson = ~overdispersed
    np.testing.assert_allclose(got[:, poisson], stats.poisson.logpmf(y[poisson], mu[:, poisson]), rtol=1e-6,
                               atol=1e-5)


def test_ordinal_forward_draws_follow_the_ordered_logit_probabilities():
    from nexusbayes.model.kernels import ordinal_dist

    eta = np.array([-1.0, 0.3, 2.0])
    cut = np.array([[-0.5, 0.5, 1.5], [-0.5, 0.5, 1.5], [0.0, 1.0, 3.0]])
    draws = pm.draw(ordinal_dist(pt.as_tensor(eta), pt.as_tensor(cut), None, None, size=None), draws=20_000,
                    random_seed=11)
    bounds = np.column_stack([np.full(3, -np.inf), cut, np.full(3, np.inf)])
    probs = expit(eta[:, None] - bounds[:, :-1]) - expit(eta[:, None] - bounds[:, 1:])   # (observation, category)
    freq = np.stack([np.bincount(draws[:, i], minlength=4) for i in range(3)]) / len(draws)
    se = np.sqrt(probs * (1 - probs) / len(draws))
    assert np.abs(freq - probs).max() < 4.5 * se.max()       # 12 frequencies: a false alarm has odds ~ 1e-4
    assert np.abs(freq - probs).max() > 0                    # (they are draws, not the probabilities)
