"""The embedded Laplace approximation: exact where the latent field is Gaussian, exact gradients otherwise."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from nexusbayes.inference.laplace import EmbeddedLaplace
from nexusbayes.model.build import Model
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec

Y = np.array([0.3, -0.4, 1.2, 0.8])


@pytest.fixture(scope="module")
def gaussian():
    """mu ~ N(0, 1), x_i ~ N(mu, tau), y_i ~ N(x_i, 0.5) with tau ~ HalfNormal(1): x | mu, tau is Gaussian."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        tau = pm.HalfNormal("tau", 1.0)
        x = pm.Normal("x", mu, tau, shape=len(Y))
        pm.Normal("y", x, 0.5, observed=Y)
    return EmbeddedLaplace(model, {"x": None}, compile_mode="FAST_COMPILE")


def exact(mu, log_tau):
    """log p(mu, log tau, y) with x integrated out exactly (y_i ~ N(mu, tau^2 + 0.25)), Jacobian included."""
    tau = np.exp(log_tau)
    return (stats.norm.logpdf(mu) + stats.halfnorm.logpdf(tau) + log_tau
            + stats.norm.logpdf(Y, mu, np.sqrt(tau**2 + 0.25)).sum())


def test_the_marginal_is_exact_for_a_gaussian_latent_field(gaussian):
    """Its value and gradient equal the closed form at points away from the mode."""
    x0 = np.zeros(len(Y))
    for mu, log_tau in [(0.0, 0.0), (0.7, -1.2), (-1.5, 0.9)]:
        phi = np.array([mu, log_tau])
        value, grad, _, _ = gaussian.marginal(phi, x0)
        assert value == pytest.approx(exact(mu, log_tau), abs=1e-8)
        eps = 1e-6
        numeric = [(exact(*(phi + eps * e)) - exact(*(phi - eps * e))) / (2 * eps) for e in np.eye(2)]
        assert grad == pytest.approx(numeric, abs=1e-5)


def test_the_conditional_gaussian_is_the_exact_conditional(gaussian):
    """x | mu, tau, y: precision 1/tau^2 + 4, mean (mu/tau^2 + 4 y) / precision; draws match both."""
    mu, tau = 0.5, 0.8
    _, _, mode, chol = gaussian.marginal(np.array([mu, np.log(tau)]), np.zeros(len(Y)), gradient=False)
    precision = 1 / tau**2 + 4.0
    assert mode == pytest.approx((mu / tau**2 + 4 * Y) / precision, abs=1e-8)
    draws = np.array([gaussian.conditional_draw(mode, chol, np.random.default_rng(i)) for i in range(4000)])
    assert draws.std(axis=0) == pytest.approx(np.full(len(Y), precision**-0.5), rel=0.05)


@pytest.mark.slow
def test_the_gradient_through_the_mode_is_exact_on_the_package_model():
    """On a centred-walk panel with normal and ordinal indicators (not Gaussian: the Laplace term moves with
    the hyperparameters through the mode and the third derivatives), the gradient matches finite differences."""
    items = {"n0": {"family": "normal", "loads": {"ideology": "positive"}},
             "o0": {"family": "ordinal", "categories": 3, "loads": {"ideology": "positive"}}}
    spec = Spec.from_dict({"name": "t", "traits": ["ideology"], "dynamics": {"centred": True}, "indicators": items})
    model = Model(spec, simulate(spec, n_regions=3, n_periods=3, seed=1).panel).pymc
    n = model.initial_point()["region_state_free"].size - 2
    laplace = EmbeddedLaplace(model, {"region_state_free": n}, compile_mode="FAST_COMPILE")
    x, phi = laplace.start
    phi = phi + np.random.default_rng(0).normal(0.0, 0.3, size=len(phi))
    _, grad, mode, _ = laplace.marginal(phi, x)
    eps = 1e-5
    for direction in np.random.default_rng(1).normal(size=(2, len(phi))):   # random directions: any error shows
        numeric = (laplace.marginal(phi + eps * direction, mode, False)[0]
                   - laplace.marginal(phi - eps * direction, mode, False)[0]) / (2 * eps)
        assert grad @ direction == pytest.approx(numeric, rel=1e-6, abs=1e-6)
