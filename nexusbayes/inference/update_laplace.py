"""A Gaussian (Laplace) proposal of a country's new traits given one draw of the fit, for the particle update.

Given draw ``s`` the new traits are affine in the standard innovations of the re-proposed periods (per country:
its country ``z`` and its regions' contrast ``z``, per period and trait; :func:`.update_particles.path`), and each
row's log-likelihood depends on one region-period's traits. So, per (draw, country):

* each region-period's log-likelihood is approximated by a quadratic in its traits, its gradient and Hessian
  the sums of its rows' (all draws, regions and periods at once: a region-period's rows move with its own traits
  only), analytic where the likelihood gives them (:meth:`.update_likelihood.NewRowsLikelihood.derivatives`),
  else taken by central finite differences on a small stencil (:func:`local_quadratic`), the curvature floored at
  zero (eigenvalues clipped) so that the precision in ``z`` below is at least the prior's;
* with the ``z`` prior (``N(0, I)``; Student-t innovations: the t's gradient and its positive curvature
  ``(df + 1) / (df + z^2)``), a few Newton steps find the conditional mode of ``z`` and the precision ``P`` there;
* the particles are ``z ~ N(mode, P^-1)``, weighted by log-likelihood + log prior - log proposal.

The mean weight of a (draw, country) then estimates the draw's likelihood of that country's rows with little
variance when the quadratic fits, and the particles chosen by weight are near-exact draws of the new traits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import gammaln, logsumexp

#: Most Newton steps to the conditional mode (the log-likelihoods an update accepts are concave in the traits).
N_NEWTON = 10
#: The Newton steps stop when no innovation moves by more than this.
TOLERANCE = 1e-4
#: Halvings of a Newton step that would lower the log posterior.
N_HALVING = 5
#: Finite-difference step on the standardised traits' scale.
DELTA = 1e-3


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each country's innovations sit: slot 0 its country ``z``, slots 1.. its regions' contrasts."""

    contrast_country: np.ndarray     # (contrast,)
    contrast_slot: np.ndarray        # (contrast,) slot within its country, from 1
    valid: np.ndarray                # (country, slot) the slot exists

    @classmethod
    def of(cls, contrast_country: np.ndarray, n_country: int) -> Layout:
        """The layout of contrasts ``contrast_country`` (each contrast's country) over ``n_country`` countries."""
        slot = np.zeros(len(contrast_country), int)
        for c in range(n_country):
            where = np.flatnonzero(contrast_country == c)
            slot[where] = 1 + np.arange(len(where))
        n_slot = 1 + (np.bincount(contrast_country, minlength=n_country).max() if len(contrast_country) else 0)
        valid = np.zeros((n_country, n_slot), bool)
        valid[:, 0] = True
        valid[contrast_country, slot] = True
        return cls(np.asarray(contrast_country, int), slot, valid)

    def split(self, z: np.ndarray, has_regions: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``z`` (n, country, slot, step, trait) as (z_country, z_region) for :func:`.update_particles.path`."""
        return z[:, :, 0], (z[:, self.contrast_country, self.contrast_slot] if has_regions else None)


def _stencil(n_trait: int) -> np.ndarray:
    """The offsets (point, trait) of the central-difference stencil: 0, +-e_k, and +-e_k +-e_l (k < l)."""
    eye = np.eye(n_trait)
    points = [np.zeros(n_trait)] + [sign * eye[k] for k in range(n_trait) for sign in (1, -1)]
    points += [a * eye[k] + b * eye[j] for k in range(n_trait) for j in range(k + 1, n_trait)
               for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    return np.array(points)


def local_quadratic(loglik, theta: np.ndarray, cell: np.ndarray, n_cell: int, row_mask: np.ndarray):
    """Gradient and floored negative Hessian of each region-period's log-likelihood at ``theta``, by the stencil.

    ``loglik(theta)`` gives (n, row) for traits (n, region, step, trait); ``cell`` (row,) is each row's
    region-period (``region * steps + step``), ``row_mask`` the rows that count. Returns (n, cell, trait) and
    (n, cell, trait, trait).
    """
    n, n_trait = theta.shape[0], theta.shape[-1]
    offsets = _stencil(n_trait) * DELTA
    stacked = (theta[None] + offsets[:, None, None, None, :]).reshape(-1, *theta.shape[1:])
    f = (loglik(stacked) @ _cell_onehot(cell, n_cell, row_mask)).reshape(len(offsets), n, n_cell)
    f0, pm = f[0], f[1:1 + 2 * n_trait].reshape(n_trait, 2, n, n_cell)
    grad = np.moveaxis((pm[:, 0] - pm[:, 1]) / (2 * DELTA), 0, -1)
    hess = np.zeros((n, n_cell, n_trait, n_trait))
    for k in range(n_trait):
        hess[..., k, k] = (pm[k, 0] - 2 * f0 + pm[k, 1]) / DELTA**2
    cross = iter(f[1 + 2 * n_trait:].reshape(-1, 4, n, n_cell))
    for k in range(n_trait):
        for j in range(k + 1, n_trait):
            pp, pn, np_, nn = next(cross)
            hess[..., k, j] = hess[..., j, k] = (pp - pn - np_ + nn) / (4 * DELTA**2)
    return grad, _floored(hess)


def summed_quadratic(grad: np.ndarray, hess: np.ndarray, onehot: np.ndarray):
    """Gradient and floored negative Hessian of each region-period's log-likelihood from its rows'.

    ``grad`` (n, row, trait) and ``hess`` (n, row, trait, trait): each row's in its region-period's traits;
    ``onehot`` (row, cell): each row's region-period, 0 for the rows that do not count (:func:`_cell_onehot`).
    Returns (n, cell, trait) and (n, cell, trait, trait), as :func:`local_quadratic`.
    """
    n, n_row, n_trait = grad.shape
    g = np.swapaxes(np.swapaxes(grad, 1, 2) @ onehot, 1, 2)
    h = np.swapaxes(np.swapaxes(hess.reshape(n, n_row, -1), 1, 2) @ onehot, 1, 2)
    return g, _floored(h.reshape(n, -1, n_trait, n_trait))


def _cell_onehot(cell: np.ndarray, n_cell: int, row_mask: np.ndarray) -> np.ndarray:
    """(row, cell): each row's region-period, weighted by ``row_mask``."""
    onehot = np.zeros((len(cell), n_cell))
    onehot[np.arange(len(cell)), cell] = row_mask
    return onehot


def _floored(hess: np.ndarray) -> np.ndarray:
    """The negative Hessians (..., trait, trait) with their negative eigenvalues set to 0."""
    value, vector = np.linalg.eigh(-hess)
    return np.einsum("...ij,...j,...kj->...ik", vector, np.clip(value, 0.0, None), vector)


class Proposal:
    """The Laplace proposal for a chunk of draws (see the module docstring).

    ``traits(z)`` maps innovations (n, country, slot, step, trait) to (theta, country theta) of the chunk's
    draws (n = draws, in order); ``loglik(idx, theta)`` gives (n, row) for chunk draw ``idx`` (n,), and
    ``derivatives(idx, theta)``, when given, each row's gradient (n, row, trait) and Hessian (n, row, trait,
    trait) in its region-period's traits (else they are taken by the stencil, :func:`local_quadratic`).
    ``row_mask`` selects the rows this proposal targets, ``row_region`` and ``row_step`` place them.
    """

    def __init__(self, traits, loglik, layout: Layout, region_country: np.ndarray, n_draw: int, n_step: int,
                 n_trait: int, row_region: np.ndarray, row_step: np.ndarray, row_mask: np.ndarray,
                 df: float | None = None, derivatives=None):
        self.traits, self.loglik, self.layout, self.df = traits, loglik, layout, df
        self.derivatives = derivatives
        self.n_draw, self.n_step, self.n_trait = n_draw, n_step, n_trait
        self.region_country = np.asarray(region_country)
        n_country, n_slot = layout.valid.shape
        self.shape = (n_country, n_slot, n_step, n_trait)
        self.dim = n_slot * n_step * n_trait
        self.valid = np.broadcast_to(layout.valid[:, :, None, None], self.shape).reshape(n_country, self.dim)
        self.row_cell = row_region * n_step + row_step
        self.row_mask = row_mask.astype(float)
        self.n_cell = len(self.region_country) * n_step
        self.cell_onehot = _cell_onehot(self.row_cell, self.n_cell, self.row_mask)
        self.row_onehot = np.eye(n_country)[self.region_country[row_region]]
        self.jacobian = self._jacobian()

    def _jacobian(self) -> np.ndarray:
        """The traits' derivatives in the innovations of their country: (draw, region, step * trait, dim)."""
        n, d = self.n_draw, self.dim
        n_country = self.shape[0]
        unit = np.zeros((d, n, n_country, d))
        unit[np.arange(d), :, :, np.arange(d)] = 1.0
        base = self.traits(np.zeros((n, *self.shape)))[0]
        moved = self.traits(unit.reshape(d * n, *self.shape), np.tile(np.arange(n), d))[0]
        jac = (moved.reshape(d, n, *base.shape[1:]) - base[None]).reshape(d, n, base.shape[1], -1)
        return np.moveaxis(jac, 0, -1)

    def _derivatives(self, z: np.ndarray):
        """At innovations ``z`` (draw, country, dim): the log-posterior's gradient and the precision in ``z``."""
        theta = self.traits(z.reshape(self.n_draw, *self.shape))[0][:, :, :self.n_step]
        idx = np.arange(self.n_draw)
        if self.derivatives is None:
            grad_cell, info_cell = local_quadratic(
                lambda t: self.loglik(np.tile(idx, len(t) // self.n_draw), t), theta, self.row_cell, self.n_cell,
                self.row_mask)
        else:
            grad_cell, info_cell = summed_quadratic(*self.derivatives(idx, theta), self.cell_onehot)
        n_region = len(self.region_country)
        jac = self.jacobian.reshape(self.n_draw, n_region, self.n_step, self.n_trait, self.dim)
        g = np.einsum("nrhk,nrhkj->nrj", grad_cell.reshape(self.n_draw, n_region, self.n_step, self.n_trait), jac)
        info_r = info_cell.reshape(self.n_draw, n_region, self.n_step, self.n_trait, self.n_trait)
        weighted = np.einsum("nrhkq,nrhqj->nrhkj", info_r, jac)
        onehot = np.eye(self.shape[0])[self.region_country]                    # (region, country)
        grad = np.einsum("nrj,rc->ncj", g, onehot)
        info = np.zeros((self.n_draw, self.shape[0], self.dim, self.dim))
        for c in range(self.shape[0]):
            members = self.region_country == c
            a = jac[:, members].reshape(self.n_draw, -1, self.dim)
            b = weighted[:, members].reshape(self.n_draw, -1, self.dim)
            info[:, c] = np.einsum("nij,nil->njl", a, b)
        if self.df is None:
            prior_grad, prior_curv = -z, np.ones_like(z)
        else:
            prior_grad, prior_curv = -(self.df + 1) * z / (self.df + z**2), (self.df + 1) / (self.df + z**2)
        mask = self.valid[None]
        precision = info * (mask[..., :, None] & mask[..., None, :])
        precision[..., np.arange(self.dim), np.arange(self.dim)] += np.where(mask, prior_curv, 1.0)
        return np.where(mask, grad + prior_grad, 0.0), precision

    def objective(self, z: np.ndarray) -> np.ndarray:
        """Log-likelihood of the targeted rows plus log prior at innovations ``z`` (draw, country, dim)."""
        theta = self.traits(z.reshape(self.n_draw, *self.shape))[0]
        loglik = (self.loglik(np.arange(self.n_draw), theta) * self.row_mask) @ self.row_onehot
        return loglik + self.log_prior(z)

    def fit(self) -> tuple[np.ndarray, np.ndarray]:
        """The conditional mode (draw, country, dim) and the Cholesky factor of the precision there.

        Newton steps, each halved (up to :data:`N_HALVING` times) where it would lower the objective, until
        no innovation moves by more than :data:`TOLERANCE` (at most :data:`N_NEWTON` steps).
        """
        z = np.zeros((self.n_draw, self.shape[0], self.dim))
        value = self.objective(z)
        for _ in range(N_NEWTON):
            grad, precision = self._derivatives(z)
            move = np.linalg.solve(precision, grad[..., None])[..., 0]
            if np.abs(move).max() < TOLERANCE:
                return z, np.linalg.cholesky(precision)
            for _ in range(N_HALVING):
                trial = z + move
                new = self.objective(trial)
                better = new >= value - 1e-9
                z = np.where(better[..., None], trial, z)
                value = np.where(better, new, value)
                if better.all():
                    break
                move = np.where(better[..., None], 0.0, move / 2)
        return z, np.linalg.cholesky(self._derivatives(z)[1])

    def log_prior(self, z: np.ndarray) -> np.ndarray:
        """The innovations' log prior density over the valid coordinates, summed: (..., country)."""
        if self.df is None:
            term = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
        else:
            nu = self.df
            term = (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
                    - (nu + 1) / 2 * np.log1p(z**2 / nu))
        return (term * self.valid).sum(-1)

    def sample(self, mode: np.ndarray, chol: np.ndarray, m: int, rng: np.random.Generator):
        """``m`` particles per (draw, country): z (draw, m, country, dim) and their log prior - log proposal."""
        e = rng.standard_normal((self.n_draw, m, *mode.shape[1:]))
        # z = mode + L^-T e, with P = L L^T
        shift = np.linalg.solve(np.swapaxes(chol, -1, -2)[:, None], e[..., None])[..., 0]
        z = np.where(self.valid, mode[:, None] + shift, 0.0)
        log_det = (np.log(np.diagonal(chol, axis1=-2, axis2=-1)) * self.valid).sum(-1)     # (draw, country)
        log_q = (-0.5 * e**2 - 0.5 * np.log(2 * np.pi)) * self.valid
        return z, self.log_prior(z) - (log_q.sum(-1) + log_det[:, None])

    def log_mean_weight(self, log_weight: np.ndarray) -> np.ndarray:
        """Log of the mean of the weights (draw, m, country) over the particles."""
        return logsumexp(log_weight, axis=1) - np.log(log_weight.shape[1])
