"""Analytic first and second derivatives of an update's row log-likelihoods in their region-period's traits.

Each row of :class:`~nexusbayes.inference.update_likelihood.NewRowsLikelihood` depends on the traits ``theta`` of
one region-period through linear predictors that are affine in them: its family's ``eta`` (slope: the
indicator's loadings, times the drifting log-loading's ``exp`` where it drifts), and, for counts with quota heaping
or structural zeros, each inflation component's logit ``u`` (slope: the component's loadings); a reporting cell
through its reporting logit. So the row's gradient and Hessian in ``theta`` are those of its log-likelihood in
these predictors, carried by the slopes (the chain rule; no finite differences):

* the families' log-likelihoods in ``eta`` (:func:`family_derivatives`): normal, negative binomial (Poisson in
  its limit), binomial, Bernoulli and ordered logit, each in closed form;
* a mixture's point mass (:func:`mix_derivatives`), applied as :func:`nexusbayes.model.heaping.mix_logp` applies it
  (the heap, then the structural zeros over it): ``l - softplus(u)`` away from the inflated value and
  ``logaddexp(l - softplus(u), -softplus(-u))`` at it;
* a Bernoulli logit for the reporting cells (:func:`logit_derivatives`).

Arrays are per draw and row: values ``(n, obs)``, gradients ``(n, obs, trait)``, Hessians ``(n, obs, trait,
trait)``. The Laplace proposal (:mod:`nexusbayes.inference.update_laplace`) sums them over each region-period's
rows.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from nexusbayes.model.families import Block, Family, Ordinal


def family_derivatives(family: Family, eta: np.ndarray, scale, block: Block,
                       params: dict) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives (n, obs) of the family's pointwise log-likelihood in ``eta``.

    Arguments as :meth:`nexusbayes.model.families.Family.logp`'s.

    Examples
    --------
    A Bernoulli one at ``eta = 0``: ``d log expit(eta) = 1 - expit(eta)``, ``d2 = -expit (1 - expit)``.

    >>> from nexusbayes.model.families import FAMILIES
    >>> block = Block("b", ["x"], np.arange(1), np.arange(1), np.zeros(1, int), np.ones(1), np.ones(1),
    ...               np.ones(1), -np.ones(1, int))
    >>> [float(d[0, 0]) for d in family_derivatives(FAMILIES["bernoulli"], np.zeros((1, 1)), None, block, {})]
    [0.5, -0.25]
    """
    y = block.y
    if family.name == "normal":
        loc, sd = scale
        sigma = params["sigma"][..., block.local]
        return (y - loc - sd * eta) / (sd * sigma**2), np.broadcast_to(-1.0 / sigma**2, eta.shape)
    if family.name == "negbin":
        # log mass y (log mu - log(mu + alpha)) - alpha log(1 + mu / alpha) + ...: p = mu / (mu + alpha)
        alpha = (1.0 / params["inv_dispersion"])[..., block.local]
        p = expit(eta + np.log(block.exposure) - np.log(alpha))
        return y - (y + alpha) * p, -(y + alpha) * p * (1.0 - p)
    if family.name in ("binomial", "bernoulli"):
        n = block.trials if family.name == "binomial" else 1.0
        p = expit(eta)
        return y - n * p, -n * p * (1.0 - p)
    if family.name == "ordinal":
        # log(F(eta - lower) - F(eta - upper)), F = expit: since F' = F (1 - F), its derivative is 1 - a - b
        # with a = F(eta - lower), b = F(eta - upper) (a = 1 at the lowest rating, b = 0 at the highest)
        k, n_cut = y.astype(int), block.categories - 1
        cut, shift = params["cutpoints"], Ordinal._shift(block, params)
        lower = cut[..., block.local, np.maximum(k - 2, 0)] + shift
        upper = cut[..., block.local, np.minimum(k - 1, n_cut - 1)] + shift
        a = np.where(k == 1, 1.0, expit(eta - lower))
        b = np.where(k == n_cut + 1, 0.0, expit(eta - upper))
        return 1.0 - a - b, -a * (1.0 - a) - b * (1.0 - b)
    raise ValueError(f"no derivatives for the {family.name!r} family")


def in_traits(d1: np.ndarray, d2: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (n, obs, trait) and Hessian (n, obs, trait, trait) from the derivatives in one predictor.

    ``d1``, ``d2`` (n, obs): the derivatives in the predictor; ``slope`` (n, obs, trait): its slope in the traits.
    """
    return d1[..., None] * slope, d2[..., None, None] * slope[..., :, None] * slope[..., None, :]


def logit_derivatives(logit: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives of the Bernoulli log mass ``-softplus(-(2y - 1) logit)`` in the logit."""
    p = expit(logit)
    return y - p, -p * (1.0 - p)


def mix_derivatives(value: np.ndarray, grad: np.ndarray, hess: np.ndarray, y: np.ndarray, parts: dict,
                    logits: dict, slopes: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The value, gradient and Hessian of :func:`nexusbayes.model.heaping.mix_logp`'s mixture from the honest mass's.

    ``value``, ``grad``, ``hess``: the honest log mass (n, obs) and its derivatives in the traits; ``logits`` and
    ``slopes`` per component: its logits (n, component's obs) and their slopes (n, component's obs, trait). With
    ``A = l - softplus(u)`` and ``B = -softplus(-u)`` (``log(1 - pi)`` and ``log pi`` added), a row away from
    the inflated value has ``A``; one at it ``logaddexp(A, B)``, whose gradient is ``w dA + (1 - w) dB`` and
    Hessian ``w d2A + (1 - w) d2B + w (1 - w) (dA - dB)(dA - dB)^T``, ``w = expit(A - B)``.
    """
    out, grad, hess = np.array(value, dtype=float), np.array(grad, dtype=float), np.array(hess, dtype=float)
    for comp in ("heap", "zero"):
        if comp not in parts:
            continue
        part, u, b = parts[comp], logits[comp], slopes[comp]
        at = part.at(y).astype(bool)
        pi = expit(u)
        curv = (pi * (1.0 - pi))[..., None, None] * b[..., :, None] * b[..., None, :]
        honest, gl, hl = out[..., part.rows], grad[..., part.rows, :], hess[..., part.rows, :, :]
        big_a = honest - np.logaddexp(0.0, u)
        big_b = -np.logaddexp(0.0, -u)
        ga, gb = gl - pi[..., None] * b, (1.0 - pi)[..., None] * b
        w = np.where(at, expit(big_a - big_b), 1.0)
        diff = gl - b                                                            # dA - dB
        out[..., part.rows] = np.where(at, np.logaddexp(big_a, big_b), big_a)
        grad[..., part.rows, :] = w[..., None] * ga + (1.0 - w)[..., None] * gb
        # w d2A + (1 - w) d2B = w hl - curv (d2A = hl - curv, d2B = -curv)
        hess[..., part.rows, :, :] = (w[..., None, None] * hl - curv
                                      + (w * (1.0 - w))[..., None, None] * diff[..., :, None] * diff[..., None, :])
    return out, grad, hess
