"""Chains started from a variational approximation instead of prior draws (issue 24's warm-up lever).

:func:`advi_start` fits mean-field ADVI on the model and returns its mean and SD in nutpie's
unconstrained coordinates (the model's free variables in order, each in its transformed space, flattened);
:func:`started_from` gives a compiled nutpie model whose chains start at independent draws from that
approximation. nutpie's own ``init_mean`` is ignored for PyMC models (they start from
``initial_point_func``), and nutpie takes no initial mass matrix from Python, so only the starting points
move; its adaptation starts from the gradient at those points as usual.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pymc as pm


def advi_start(model: pm.Model, n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean-field ADVI's mean and SD, flattened in the order nutpie joins the free variables.

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
