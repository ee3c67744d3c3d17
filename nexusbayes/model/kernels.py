"""The log-density kernels of the families' likelihoods (PyTensor), and the draws that go with them.

The observed variables are CustomDists: PyMC's own distribution draws them (prior
predictive), but the log-density the sampler differentiates is a kernel without the terms that depend
on the data alone (log sd, log n-choose-k, log y!), which are data containers here and so would be
recomputed at every gradient, and with the special functions of per-indicator parameters computed
once per indicator. The pointwise log-likelihood stored for LOO is the full one (``Family.logp``).
Special functions per observation are what a gradient costs most (numba calls libm element by
element), so each kernel keeps them to the fewest: none for the normal, and ``softplus`` shares one
exponential between the value and the gradient.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

_LOG2E = 1.0 / np.log(2.0)


def softplus(x):
    """``log(1 + exp(x))`` as ``relu(x) + log1p(exp(-|x|))``: stable, with one exponential for value and gradient.

    PyTensor's own ``softplus`` (which its rewrites also make of ``log1p(exp(.))``) has ``sigmoid``
    as its gradient, which computes the exponential a second time. ``exp2`` of the rescaled argument
    is not rewritten, and its gradient reuses the value. ``relu`` is ``(x + |x|) / 2`` so that the
    gradient at 0 is exactly 1/2.

    Examples
    --------
    >>> x = np.array([-800.0, -3.0, 0.0, 2.5, 800.0])
    >>> np.allclose(softplus(pt.as_tensor(x)).eval(), np.logaddexp(0.0, x))
    True
    """
    magnitude = pt.abs(x)
    return 0.5 * (x + magnitude) + pt.log1p(pt.exp2(-_LOG2E * magnitude))


def normal_dist(eta, loc, sd, sigma, precision, log_sigma, size):
    """Normal draws on the data scale (prior predictive)."""
    return pm.Normal.dist(mu=loc + sd * eta, sigma=sd * sigma, size=size)


def normal_kernel(value, eta, loc, sd, sigma, precision, log_sigma):
    """Log Normal(y | loc + sd eta, sd sigma) + log sd + log(2 pi) / 2.

    That is ``-((y - loc) / sd - eta)^2 / (2 sigma^2) - log sigma``, with ``precision`` (1 / sigma^2)
    and ``log_sigma`` computed per indicator: no special function per observation.
    """
    z = (value - loc) / sd - eta
    return -0.5 * precision * z**2 - log_sigma


def negbin_dist(log_mu, alpha, log_alpha, terms, lgamma_y, size):
    """Negative-binomial draws (prior predictive)."""
    return pm.NegativeBinomial.dist(mu=pt.exp(log_mu), alpha=alpha, size=size)


def negbin_kernel(value, log_mu, alpha, log_alpha, terms, lgamma_y):
    """Log NB(y | mu, alpha) + log y!: lgamma(y + a) - lgamma(a) + a log a + y log mu - (y + a) log(mu + a).

    ``lgamma_y`` is ``lgamma(y + a)`` of the observed counts, from the table of distinct pairs
    (:meth:`NegBin.kernel_tables`), so the kernel holds at the observed values only: the sampler's use.
    ``log(mu + a)`` is ``log mu + softplus(log a - log mu)``, with ``log a`` per indicator.
    """
    log_total = log_mu + softplus(log_alpha - log_mu)
    return lgamma_y + terms + value * log_mu - (value + alpha) * log_total


def binomial_dist(eta, trials, size):
    """Binomial draws (prior predictive)."""
    return pm.Binomial.dist(n=trials, logit_p=eta, size=size)


def binomial_kernel(value, eta, trials):
    """Log Binomial(k | n, expit(eta)) - log C(n, k) = k eta - n log(1 + e^eta)."""
    return value * eta - trials * softplus(eta)


def bernoulli_dist(logit, size):
    """Bernoulli draws with logit ``logit`` (prior predictive)."""
    return pm.Bernoulli.dist(logit_p=logit, size=size)


def bernoulli_kernel(value, logit):
    """Log Bernoulli(y | expit(logit)) as ``-softplus((1 - 2y) logit)``: one exponential for value and gradient.

    PyMC's Bernoulli switches between two of PyTensor's softplus, whose gradient computes the exponential again
    (see :func:`softplus`). The Bernoulli family's likelihood and the reporting model's
    (:mod:`nexusbayes.model.reporting`).
    """
    return -softplus((1.0 - 2.0 * value) * logit)


def ordinal_dist(eta, cut, table, shift, size):
    """Ordered-logit draws as the number of cut-points below ``eta`` plus a standard logistic variable.

    The same distribution as ``pm.OrderedLogistic``, whose categorical draws search each observation's
    cumulative probabilities in a Python loop, the slowest part of the prior predictive.
    """
    latent = pm.Logistic.dist(mu=eta, s=1.0, size=size)
    return pt.sum(pt.gt(latent[..., None], cut), axis=-1)


def between_cuts(cut):
    """``log(1 - exp(c_{k-1} - c_k))`` per indicator and category, (indicator, K); 0 for the outer categories.

    The part of the ordered-logit log mass that depends on the cut-points alone (see :func:`ordinal_kernel`),
    so it is computed once per indicator and category rather than once per observation.
    """
    outer = pt.zeros((cut.shape[0], 1))
    return pt.concatenate([outer, pt.log1mexp(cut[:, :-1] - cut[:, 1:]), outer], axis=1)


def ordinal_kernel(eta, lower, upper, between, first, last):
    """Log(expit(eta - lower) - expit(eta - upper)), the observed category's cut-points only (not all K).

    It factorises as ``log expit(eta - lower) + log expit(upper - eta) + log(1 - exp(lower - upper))``;
    the last term (``between``, from :func:`between_cuts`) depends on the cut-points alone, so each
    observation costs two softplus functions and no difference of probabilities (no cancellation).
    ``lower`` is -inf for the first category (``first``) and ``upper`` +inf for the last (``last``);
    their terms are 0 there, by switches rather than by infinite cut-points, so that no branch is ever
    infinite: backends that differentiate through both branches of a switch (JAX, for numpyro) would
    otherwise get NaN gradients.
    """
    log_a = pt.switch(first, 0.0, -softplus(lower - eta))      # log expit(eta - lower)
    log_b = pt.switch(last, 0.0, -softplus(eta - upper))       # log expit(upper - eta)
    return log_a + log_b + between
