"""Hidden Markov chains in NumPy, vectorised over draws and regions: forward-backward, sampling, Viterbi.

Every function takes log-probabilities: ``log_init`` (draw, region, state), ``log_trans`` (draw, region, step,
state, state) (row: from, column: to) and ``emission`` (draw, region, period, state), the log-likelihood of each
region-period's observations under each state (0 where a region-period has none). They run after sampling, on
the posterior draws (:mod:`nexusbayes.model.regime_predict`); the model itself sums the states out with the
forward recursion in PyTensor (:func:`nexusbayes.model.regime.forward_loglik`).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> log_init = np.log(np.full((1, 2, 3), 1 / 3))
>>> trans = rng.dirichlet(np.ones(3), size=3)
>>> log_trans = np.broadcast_to(np.log(trans), (1, 2, 4, 3, 3))
>>> emission = rng.normal(size=(1, 2, 5, 3))
>>> loglik, smoothed = forward_backward(log_init, log_trans, emission)
>>> bool(np.allclose(smoothed.sum(-1), 1.0)), bool(np.isclose(loglik[0, 0], brute_force(log_init, log_trans,
...                                                                                         emission)[0, 0]))
(True, True)
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.special import logsumexp


def forward(log_init: np.ndarray, log_trans: np.ndarray, emission: np.ndarray) -> np.ndarray:
    """Log forward variables ``log p(y_1..t, s_t)``, (draw, region, period, state)."""
    alpha = np.empty_like(emission)
    alpha[:, :, 0] = log_init + emission[:, :, 0]
    for t in range(1, emission.shape[2]):
        alpha[:, :, t] = logsumexp(alpha[:, :, t - 1, :, None] + log_trans[:, :, t - 1], axis=-2) + emission[:, :, t]
    return alpha


def backward(log_trans: np.ndarray, emission: np.ndarray) -> np.ndarray:
    """Log backward variables ``log p(y_t+1..T | s_t)``, (draw, region, period, state)."""
    beta = np.zeros_like(emission)
    for t in range(emission.shape[2] - 2, -1, -1):
        beta[:, :, t] = logsumexp(log_trans[:, :, t] + (emission[:, :, t + 1] + beta[:, :, t + 1])[..., None, :],
                                  axis=-1)
    return beta


def forward_backward(log_init: np.ndarray, log_trans: np.ndarray,
                     emission: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each region's marginal log-likelihood (draw, region) and the smoothed P(state) (draw, region, period, state)."""
    alpha = forward(log_init, log_trans, emission)
    beta = backward(log_trans, emission)
    loglik = logsumexp(alpha[:, :, -1], axis=-1)
    return loglik, np.exp(alpha + beta - loglik[:, :, None, None])


def sample_states(rng: np.random.Generator, log_trans: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """One path per draw and region from p(states | y) by backward sampling of the forward variables (int8).

    ``alpha`` are the log forward variables (:func:`forward`); the last state is drawn from the filtered
    distribution at the last period, each earlier one given the next (forward filtering, backward sampling).
    """
    n_draw, n_region, n_period, n_state = alpha.shape
    states = np.empty((n_draw, n_region, n_period), dtype=np.int8)
    draws, regions = np.meshgrid(np.arange(n_draw), np.arange(n_region), indexing="ij")
    logits = alpha[:, :, -1]
    for t in range(n_period - 1, -1, -1):
        if t < n_period - 1:
            logits = alpha[:, :, t] + log_trans[draws, regions, t, :, states[:, :, t + 1]]
        p = np.exp(logits - logsumexp(logits, axis=-1, keepdims=True))
        u = rng.random((n_draw, n_region, 1))
        states[:, :, t] = np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), n_state - 1)
    return states


def viterbi(log_init: np.ndarray, log_trans: np.ndarray, emission: np.ndarray) -> np.ndarray:
    """The most probable path per draw and region, (draw, region, period) (int8)."""
    n_draw, n_region, n_period, _ = emission.shape
    delta = log_init + emission[:, :, 0]
    pointer = np.empty(emission.shape, dtype=np.int8)
    for t in range(1, n_period):
        scores = delta[..., :, None] + log_trans[:, :, t - 1]           # (draw, region, from, to)
        pointer[:, :, t] = scores.argmax(axis=-2)
        delta = scores.max(axis=-2) + emission[:, :, t]
    path = np.empty((n_draw, n_region, n_period), dtype=np.int8)
    path[:, :, -1] = delta.argmax(axis=-1)
    for t in range(n_period - 1, 0, -1):
        path[:, :, t - 1] = np.take_along_axis(pointer[:, :, t], path[:, :, t, None].astype(np.intp), -1)[..., 0]
    return path


def modal_paths(paths: np.ndarray) -> np.ndarray:
    """Per region, the path that occurs most often among the draws' paths (draw, region, period) -> (region, period)."""
    out = np.empty(paths.shape[1:], dtype=paths.dtype)
    for r in range(paths.shape[1]):
        unique, counts = np.unique(paths[:, r], axis=0, return_counts=True)
        out[r] = unique[np.argmax(counts)]
    return out


def brute_force(log_init: np.ndarray, log_trans: np.ndarray, emission: np.ndarray) -> np.ndarray:
    """Each region's marginal log-likelihood by summing over every path (tests only: S ** T paths)."""
    n_period, n_state = emission.shape[2], emission.shape[3]
    total = np.full(emission.shape[:2], -np.inf)
    for path in itertools.product(range(n_state), repeat=n_period):
        lp = log_init[..., path[0]] + emission[:, :, 0, path[0]]
        for t in range(1, n_period):
            lp = lp + log_trans[:, :, t - 1, path[t - 1], path[t]] + emission[:, :, t, path[t]]
        total = np.logaddexp(total, lp)
    return total
