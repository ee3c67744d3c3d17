"""Analytic derivatives of the particle update's rows in their traits, against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from nexusbayes.inference.update_derivatives import family_derivatives
from nexusbayes.inference.update_laplace import _cell_onehot, local_quadratic, summed_quadratic
from nexusbayes.model.drift import WALKS
from nexusbayes.model.families import FAMILIES, Block
from tests.inference.test_update_features import featured_prior, flat

H = 1e-4


def row_stencil(f, theta):
    """Each row's gradient and Hessian in its region-period's traits by central differences (all cells moved)."""
    n_trait = theta.shape[-1]
    eye = np.eye(n_trait) * H
    f0 = f(theta)
    grad = np.stack([(f(theta + e) - f(theta - e)) / (2 * H) for e in eye], -1)
    hess = np.empty((*f0.shape, n_trait, n_trait))
    for k in range(n_trait):
        for j in range(n_trait):
            a, b = eye[k], eye[j]
            hess[..., k, j] = (f(theta + a + b) - f(theta + a - b) - f(theta - a + b) + f(theta - a - b)) / (4 * H**2)
    return grad, hess


@pytest.fixture(scope="module")
def featured():
    """Prior draws of a 2 x 2 x 5 panel with every measurement feature, the first 4 periods standing for a fit:
    the likelihood of the last fitted and the new period's rows, the draws' traits and drift paths there."""
    _, _, _, prior, n_old, lik = featured_prior(12)
    aux = {walk.path: flat(prior[walk.path])[:, :, n_old:] for walk in WALKS}
    # near the prior's traits, scaled down: prior draws of the loadings make some rows' curvature extreme
    theta = 0.5 * flat(prior["theta"])[:, :, n_old - 1:]
    return lik, np.arange(theta.shape[0]), theta, aux


def test_every_rows_derivatives_are_its_finite_differences(featured):
    """Every term (normal, negative binomial with a quota heap and structural zeros, binomial, ordinal with drifting
    cut-points, the reporting cells), drifting intercepts and log loadings, country offsets: the analytic gradient
    and Hessian of each row in its region-period's traits equal central differences."""
    lik, idx, theta, aux = featured
    grad, hess = lik.derivatives(idx, theta, aux)
    fd_grad, fd_hess = row_stencil(lambda t: lik.logp(idx, t, aux), theta)
    assert set(lik.term) == {"y_normal", "y_negbin", "y_binomial", "y_ordinal", "reported"}
    for term in set(lik.term):
        rows = lik.term == term
        scale = 1.0 + np.abs(fd_hess[:, rows]).max()
        np.testing.assert_allclose(grad[:, rows], fd_grad[:, rows], atol=1e-6 * scale, rtol=1e-6, err_msg=term)
        np.testing.assert_allclose(hess[:, rows], fd_hess[:, rows], atol=1e-4 * scale, rtol=1e-4, err_msg=term)
        assert np.abs(hess[:, rows]).max() > 1e-3, term               # not trivially zero
    # the inflated rows (heap or zero) reach the mixture's own curvature, not the honest count's
    assert (np.linalg.eigvalsh(hess[:, lik.term == "y_negbin"]) > 1e-6).any()


def test_region_period_sums_match_the_stencil_and_skip_masked_rows(featured):
    """The Laplace proposal's per-cell quadratic from the rows' derivatives against its finite-difference stencil,
    the lagged rows alone counting (the masked ones, at the new period, left out)."""
    lik, idx, theta, aux = featured
    n_step = theta.shape[2]
    cell, mask = lik.region * n_step + lik.period, (lik.period < 1).astype(float)
    n_cell = theta.shape[1] * n_step
    grad, info = summed_quadratic(*lik.derivatives(idx, theta, aux), _cell_onehot(cell, n_cell, mask))
    def stacked(t):   # the stencil's points stacked on the draws
        k = len(t) // len(idx)
        return lik.logp(np.tile(idx, k), t, {name: np.tile(v, (k, 1, 1)) for name, v in aux.items()})

    fd_grad, fd_info = local_quadratic(stacked, theta, cell, n_cell, mask)
    scale = 1.0 + np.abs(fd_info).max()
    np.testing.assert_allclose(grad, fd_grad, atol=1e-5 * scale)
    np.testing.assert_allclose(info, fd_info, atol=1e-3 * scale)
    new = (np.arange(n_cell) % n_step) == 1
    assert not grad[:, new].any() and not info[:, new].any()
    assert np.abs(grad[:, ~new]).min() > 0


@pytest.mark.parametrize("name", ["normal", "negbin", "binomial", "bernoulli", "ordinal"])
def test_each_familys_derivatives_in_eta(name):
    """Each family at random eta, its nuisance parameters drawn (ordinal: rater shifts, every rating; negative
    binomial: near its Poisson limit too), against differences of its log mass."""
    rng = np.random.default_rng(4)
    n_obs, n_ind, family = 40, 3, FAMILIES[name]
    local = rng.integers(0, n_ind, n_obs)
    trials = rng.integers(1, 20, n_obs).astype(float)
    y = {"normal": rng.normal(1.0, 2.0, n_obs), "negbin": rng.poisson(4.0, n_obs).astype(float),
         "binomial": rng.binomial(trials.astype(int), 0.3).astype(float),
         "bernoulli": rng.integers(0, 2, n_obs).astype(float), "ordinal": np.arange(n_obs) % 5 + 1.0}[name]
    block = Block("b", ["a", "b", "c"], np.arange(n_obs), np.arange(n_obs), local, y, rng.uniform(0.5, 2.0, n_obs),
                  trials, rng.integers(-1, 2, n_obs), categories=5 if name == "ordinal" else None)
    params = {"sigma": rng.uniform(0.3, 2.0, (2, n_ind)),
              "inv_dispersion": np.array([[1e-6, 0.5, 2.0], [0.1, 1e-3, 1.0]]),
              "cutpoints": np.sort(rng.normal(0, 2, (2, n_ind, 4)), -1),
              "rater_shift": rng.normal(0, 0.5, (2, n_ind, 2))}
    scale = (rng.normal(size=n_obs), rng.uniform(0.5, 3.0, n_obs))
    eta = rng.normal(0.0, 2.0, (2, n_obs))
    d1, d2 = family_derivatives(family, eta, scale, block, params)

    def f(e):
        return family.logp(e, scale, block, params)

    np.testing.assert_allclose(d1, (f(eta + H) - f(eta - H)) / (2 * H), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d2, (f(eta + 10 * H) - 2 * f(eta) + f(eta - 10 * H)) / (10 * H) ** 2, rtol=1e-4,
                               atol=1e-4)
    assert (d2 < 0).all()                                       # each family is log-concave in eta
