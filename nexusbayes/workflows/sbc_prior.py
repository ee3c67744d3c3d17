"""The joint prior draws that simulation-based calibration refits to: (parameters, data), for either model kind.

The trait model draws both from its PyMC graph (every likelihood is an observed variable, the reporting
model's ``reported`` included) and orients the parameters to the mirror image the fits are oriented to. The
regime model's likelihood is a potential with the states summed out, which PyMC cannot draw from: its
parameters are PyMC's forward draws and its data are drawn given state paths drawn forward from each draw's
Markov chain (:func:`nexusbayes.model.regime_predict.regime_prior_draws`).
"""

from __future__ import annotations

import hashlib

import numpy as np
import xarray as xr

from nexusbayes.model.build import Model
from nexusbayes.model.predict import prior_draws
from nexusbayes.model.regime_predict import regime_prior_draws


def joint_prior(model: Model, draws: int, seed: int) -> tuple[xr.Dataset, xr.Dataset]:
    """``draws`` joint draws from the prior of ``model``: parameters and observations, each over dim ``draw``.

    Observations are named ``y_<key>`` (or ``reported``) and are on the model's scale (ordinal codes 0..K-1),
    as the data containers ``data_<key>`` take them.
    """
    if model.spec.is_regime:
        params, data = regime_prior_draws(model.pymc, model.design, model.panel, model.spec, draws, seed)
    else:
        prior = prior_draws(model.pymc, draws=draws, seed=seed)
        # the true values in the mirror image the fits are oriented to (a no-op without an orientation)
        params = model.orient(xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()}))
        params = params["posterior"].to_dataset()
        data = prior["prior_predictive"].to_dataset()
    return params.isel(chain=0), data.isel(chain=0)


def arrays_sha(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of named arrays (names, dtypes, shapes and bytes), independent of the dict's order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def int_seed(seq: np.random.SeedSequence) -> int:
    """A 32-bit integer seed from a seed sequence."""
    return int(seq.generate_state(1, dtype=np.uint32)[0])
