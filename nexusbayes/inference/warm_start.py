"""Chains started from a variational approximation instead of prior draws (issue 24's warm-up lever).

:func:`compiled_advi` fits mean-field ADVI on nutpie's compiled log density itself (its callback,
:func:`nexusbayes.inference.nutpie_callbacks.logp_call`: one gradient evaluation per iteration, nothing
compiled a second time), with Adam on the mean and log SD in nutpie's unconstrained coordinates.
:func:`started_from` gives a compiled nutpie model whose chains start at independent draws from that
approximation. nutpie's own ``init_mean`` is ignored for PyMC models (they start from
``initial_point_func``), and nutpie takes no initial mass matrix from Python, so only the starting points
move; its adaptation starts from the gradient at those points as usual.

:func:`advi_start` (PyMC's own ``pm.fit``) is kept for comparison in the benchmarks: it compiles a second
(C) function, which costs more than the warm-up it saves (``benchmarks/HISTORY.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pymc as pm

from nexusbayes.inference.nutpie_callbacks import logp_call


@dataclass(frozen=True)
class Approximation:
    """A mean-field normal approximation in nutpie's unconstrained coordinates.

    Attributes
    ----------
    mean, std : numpy.ndarray
        Of length nutpie's ``n_dim``.
    evaluations : int
        Log-density-and-gradient evaluations it took (failed ones included).
    failed : int
        Evaluations at points where the log density or its gradient was not finite (skipped).
    """

    mean: np.ndarray
    std: np.ndarray
    evaluations: int
    failed: int


def compiled_advi(compiled, n: int = 2000, seed: int = 0, learning_rate: float = 0.02,
                  initial_std: float = 0.1) -> Approximation:
    """Mean-field ADVI on nutpie's compiled log density: Adam on the ELBO, one draw per iteration.

    The mean starts at the compiled model's own first start (``initial_point_func(seed)``, a prior draw), the
    SD at ``initial_std``. The reparameterised gradient of the ELBO is ``g`` for the mean and
    ``g * eps * sd + 1`` for the log SD, ``g`` the log density's gradient at ``mean + sd * eps``. The result
    is the average of the last quarter's iterates (less noisy than the last). A draw where the log density
    or its gradient is not finite is skipped.

    Parameters
    ----------
    compiled : nutpie.compile_pymc.CompiledPyMCModel
        From :func:`nexusbayes.inference.nutpie_callbacks.compile_model`.
    n : int
        Iterations (gradient evaluations).
    seed : int
    learning_rate : float
        Adam's step size.
    initial_std : float

    Returns
    -------
    Approximation
    """
    rng = np.random.default_rng(seed)
    mean = np.array(compiled.initial_point_func(seed), dtype=float)
    log_std = np.full(mean.shape, np.log(initial_std))
    x = np.empty_like(mean)
    call, _, grad = logp_call(compiled, x)
    moments = [np.zeros(2 * mean.size), np.zeros(2 * mean.size)]
    beta1, beta2 = 0.9, 0.999
    kept, sums, failed = 0, [np.zeros_like(mean), np.zeros_like(mean)], 0
    start_average = n - n // 4
    for i in range(n):
        eps = rng.standard_normal(mean.shape)
        std = np.exp(log_std)
        x[:] = mean + std * eps
        if call() != 0:
            failed += 1
            continue
        step = np.concatenate([grad, grad * eps * std + 1.0])
        moments[0] = beta1 * moments[0] + (1 - beta1) * step
        moments[1] = beta2 * moments[1] + (1 - beta2) * step**2
        t = i + 1 - failed
        update = learning_rate * (moments[0] / (1 - beta1**t)) / (np.sqrt(moments[1] / (1 - beta2**t)) + 1e-8)
        mean += update[:mean.size]
        log_std += update[mean.size:]
        if i >= start_average:
            kept += 1
            sums[0] += mean
            sums[1] += log_std
    if kept == 0:
        raise ValueError(f"ADVI on the compiled model: the log density was not finite at any of its last {n // 4} "
                         "draws; start from prior draws (init = \"prior\")")
    return Approximation(mean=sums[0] / kept, std=np.exp(sums[1] / kept), evaluations=n, failed=failed)


def advi_start(model: pm.Model, n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean-field ADVI's mean and SD (PyMC's ``pm.fit``), flattened in the order nutpie joins the free variables.

    Parameters
    ----------
    model : pymc.Model
    n : int
        Optimisation iterations.
    seed : int

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Mean and SD of the approximation, unconstrained, each of length nutpie's ``n_dim``.
    """
    with model:
        approx = pm.fit(n=n, method="advi", random_seed=seed, progressbar=False)
    group = approx.groups[0]
    # the group's own order (PyMC's mean_data fails on variables without dims); nutpie's is model.free_RVs'
    where = {name: s for name, s, _, _ in group.ordering.values()}
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    mean, std = np.asarray(group.mean.eval()), np.asarray(group.std.eval())
    return tuple(np.concatenate([np.ravel(v[where[name]]) for name in names]) for v in (mean, std))


def started_from(compiled, mean: np.ndarray, std: np.ndarray, scale: float = 1.0):
    """``compiled`` with each chain starting at ``mean + scale * std * z``, ``z`` standard normal per chain seed."""
    if mean.shape != (compiled.n_dim,) or std.shape != mean.shape:
        raise ValueError(f"start of {mean.shape[0]} values for a model of {compiled.n_dim} unconstrained values")

    def initial_point(seed) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return mean + scale * std * rng.standard_normal(mean.shape)

    return dataclasses.replace(compiled, initial_point_func=initial_point)
