"""Each observation's log-density under every state of the regime model, (obs, state), per family (PyTensor).

The same kernels as the trait model's likelihood terms (:mod:`nexusbayes.model.kernels`), broadcast over a
last axis of states: everything per observation enters as a column (``[:, None]``), the linear predictor
``eta`` is (obs, state). Like the kernels they leave out the terms that depend on the data alone, which are
the same in every state and so change neither the posterior nor the smoothed states. The data containers
(``data_<key>``, the families' inputs and kernel tables) have the trait model's names, so a compiled regime
model is refitted to new values of the same structure as the trait model is.
"""

from __future__ import annotations

import pymc as pm
import pytensor.tensor as pt

from nexusbayes.model.families import Block, Family, Ordinal
from nexusbayes.model.kernels import between_cuts, binomial_kernel, negbin_kernel, normal_kernel, ordinal_kernel


def state_logp(family: Family, block: Block, eta, scale, params: dict, observed, inputs: dict):
    """Log-density (up to terms of the data alone) of the block's observations under each state, (obs, state).

    Parameters
    ----------
    family : Family
    block : Block
    eta : TensorVariable
        Linear predictors (obs, state).
    scale : (TensorVariable, TensorVariable)
        Each observation's indicator location and scale (the normal family's data scale).
    params : dict
        The family's nuisance parameters (:meth:`Family.nuisance`).
    observed : TensorVariable
        The ``data_<key>`` container (:meth:`Family.observed_values`).
    inputs : dict
        The family's input containers (:meth:`Family.inputs`).
    """
    local = block.local
    value = observed[:, None]
    if family.name == "normal":
        loc, sd = scale
        sigma = params["sigma"]
        return normal_kernel(value, eta, loc[:, None], sd[:, None], sigma[local][:, None],
                             (1.0 / sigma**2)[local][:, None], pt.log(sigma)[local][:, None])
    if family.name == "negbin":
        alpha = 1.0 / params["inv_dispersion"]
        terms = (alpha * pt.log(alpha) - pt.gammaln(alpha))[local]
        table = {name: pm.Data(f"{name}_{block.key}", values)
                 for name, values in family.kernel_tables(local, block.y).items()}
        lgamma_y = pt.gammaln(table["pair_count"] + alpha[table["pair_indicator"]])[table["pair"]]
        return negbin_kernel(value, eta + inputs["log_exposure"][:, None], alpha[local][:, None],
                             pt.log(alpha)[local][:, None], terms[:, None], lgamma_y[:, None])
    if family.name == "binomial":
        return binomial_kernel(value, eta, inputs["trials"][:, None])
    if family.name == "bernoulli":
        return binomial_kernel(value, eta, 1.0)
    if family.name == "ordinal":
        shift = Ordinal._shift(block, params)
        last = block.categories - 1
        flat = params["cutpoints"].ravel()
        lower = flat[local * last + pt.maximum(observed - 1, 0)]
        upper = flat[local * last + pt.minimum(observed, last - 1)]
        between = between_cuts(params["cutpoints"]).ravel()[local * (last + 1) + observed]
        return ordinal_kernel(eta - pt.as_tensor(shift)[:, None], lower[:, None], upper[:, None], between[:, None],
                              pt.eq(value, 0), pt.eq(value, last))
    raise NotImplementedError(f"the regime model has no emission for family {family.name!r}")
