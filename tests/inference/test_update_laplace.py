"""The particle update's Laplace proposal (nexusbayes.inference.update_laplace)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nexusbayes.inference.update_laplace import Layout, Proposal


def _linear_case(seed: int, n_draw: int = 3):
    """One country, two regions (one contrast), two traits, one step: theta = b + A z, normal rows."""
    rng = np.random.default_rng(seed)
    layout = Layout.of(np.array([0]), 1)                  # slots: the country z and one contrast
    n_trait, dim = 2, 4                                   # dim = slots x steps x traits
    a = rng.normal(size=(n_draw, 2 * n_trait, dim))       # d theta[region, trait] / d z, per draw
    b = rng.normal(size=(n_draw, 2 * n_trait))
    row_region = np.array([0, 0, 0, 1, 1, 1, 1])
    loading = rng.normal(size=(len(row_region), n_trait))
    sigma = 0.5
    y = rng.normal(size=len(row_region))

    def traits(z, local=None):
        local = np.arange(n_draw) if local is None else local
        flat = b[local] + np.einsum("nij,nj->ni", a[local], z.reshape(len(z), dim))
        return flat.reshape(len(z), 2, 1, n_trait), np.zeros((len(z), 1, 1, n_trait))

    def loglik(local, theta):
        mean = np.einsum("nrk,rk->nr", theta[:, row_region, 0], loading)
        return stats.norm.logpdf(y, mean, sigma)

    # exact: y = G (b + A z) + e, z ~ N(0, I), e ~ N(0, sigma^2 I), G the rows' loadings on their region's traits
    g = np.zeros((len(row_region), 2 * n_trait))
    g[np.arange(len(row_region))[:, None], row_region[:, None] * n_trait + np.arange(n_trait)] = loading
    exact = []
    for s in range(n_draw):
        ga = g @ a[s]
        cov = ga @ ga.T + sigma**2 * np.eye(len(y))
        post_cov = np.linalg.inv(np.eye(dim) + ga.T @ ga / sigma**2)
        exact.append((stats.multivariate_normal(g @ b[s], cov).logpdf(y), post_cov @ ga.T @ (y - g @ b[s]) / sigma**2,
                      post_cov))
    prop = Proposal(traits, loglik, layout, np.array([0, 0]), n_draw, 1, n_trait, row_region,
                    np.zeros(len(row_region), int), np.ones(len(row_region), bool))
    return prop, exact


def test_laplace_weights_are_the_exact_marginal_likelihood_in_a_conjugate_normal_case():
    """Normal rows linear in the innovations: the Laplace proposal is the exact posterior, every weight the evidence."""
    prop, exact = _linear_case(seed=1)
    mode, chol = prop.fit()
    z, log_ratio = prop.sample(mode, chol, 50, np.random.default_rng(2))
    theta, _ = prop.traits(z.reshape(-1, *prop.shape), np.repeat(np.arange(prop.n_draw), 50))
    logw = prop.loglik(None, theta).sum(-1).reshape(prop.n_draw, 50, 1) + log_ratio
    for s, (evidence, mean, cov) in enumerate(exact):
        np.testing.assert_allclose(mode[s, 0], mean, atol=1e-5)
        np.testing.assert_allclose(np.linalg.inv(chol[s, 0] @ chol[s, 0].T), cov, atol=1e-5)
        np.testing.assert_allclose(logw[s], evidence, atol=1e-5)                    # every particle: the evidence
    np.testing.assert_allclose(prop.log_mean_weight(logw)[:, 0], [e[0] for e in exact], atol=1e-5)


def test_layout_places_each_contrast_in_its_countrys_slots():
    layout = Layout.of(np.array([0, 0, 1, 2, 2, 2]), 4)
    assert layout.valid.tolist() == [[True, True, True, False], [True, True, False, False],
                                     [True, True, True, True], [True, False, False, False]]
    z = np.arange(4 * 4).reshape(1, 4, 4, 1, 1).astype(float)
    z_c, z_r = layout.split(z, True)
    assert z_c[0, :, 0, 0].tolist() == [0, 4, 8, 12]
    assert z_r[0, :, 0, 0].tolist() == [1, 2, 5, 9, 10, 11]


@pytest.mark.parametrize("df", [None, 4.0])
def test_laplace_mode_maximises_the_conditional_posterior(df):
    """The Newton mode against a direct optimiser of log-likelihood + log prior (normal or Student-t z)."""
    from scipy.optimize import minimize

    prop, _ = _linear_case(seed=3, n_draw=1)
    prop.df = df
    mode = prop.fit()[0][0, 0]

    def objective(z):
        theta, _ = prop.traits(z.reshape(1, *prop.shape))
        return -(prop.loglik(None, theta).sum() + prop.log_prior(z.reshape(1, 1, -1)).sum())

    best = minimize(objective, np.zeros(prop.dim), method="BFGS").x
    np.testing.assert_allclose(mode, best, atol=2e-3 if df else 1e-4)
