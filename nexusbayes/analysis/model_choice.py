"""Trait model or regime model? PSIS-LOO of two fits on the same observations, and where their types differ.

The unit left out is one observation in both models, each observation's log-density given its model's latent
variables as drawn from the posterior: the trait model's theta, the regime model's states (drawn by forward
filtering, backward sampling; :mod:`nexusbayes.model.regime_predict`). Both models' pointwise log-likelihoods
are thus computed the same way, on the same observations. Leaving a region's whole series out would be the
more demanding test of an HMM, and the regime fit keeps each region's marginal log-likelihood for it
(``regime.region_loglik``), but the trait model's counterpart needs its theta path integrated out, which is
not done yet: comparing a marginal with a conditional likelihood would favour the conditional one.

Examples
--------
>>> names_of([SimpleNamespace(spec=SimpleNamespace(model=SimpleNamespace(kind=k))) for k in ("trait", "trait")])
['trait_1', 'trait_2']
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import SimpleNamespace  # noqa: F401 (the doctest's)

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis import regime, typology
from nexusbayes.analysis.compare import Drawn
from nexusbayes.constants import PARETO_K_MAX, TYPES
from nexusbayes.errors import DataError


@dataclass(frozen=True)
class ModelComparison:
    """The result of :func:`compare_models`.

    Attributes
    ----------
    loo : pandas.DataFrame
        :func:`arviz_stats.compare`'s table (``elpd``, ``p``, ``elpd_diff``, ``dse``, ``weight``, ...), best model
        first, with ``max_pareto_k`` and ``n_k_above`` (observations whose Pareto k exceeds
        :data:`~nexusbayes.constants.PARETO_K_MAX`) per model.
    agreement : float
        Share of region-periods whose modal type is the same in both fits.
    disagreements : pandas.DataFrame
        The region-periods whose modal types differ: region, period, each fit's modal type and its probability.
    """

    loo: pd.DataFrame
    agreement: float
    disagreements: pd.DataFrame


def names_of(fits) -> list[str]:
    """Each fit's name: its model kind, numbered when kinds repeat."""
    kinds = [f.spec.model.kind for f in fits]
    return [f"{k}_{kinds[:i + 1].count(k)}" if kinds.count(k) > 1 else k for i, k in enumerate(kinds)]


def pointwise_tree(ll: xr.Dataset) -> xr.DataTree:
    """A tree whose one log-likelihood variable ``y`` holds every observation of every term of ``ll``, in term order.

    ``ll`` is a fit's pointwise log-likelihood (:meth:`nexusbayes.fit.Fit.log_likelihood`), in single precision;
    ``y`` is in double precision, for PSIS.
    """
    stacked = xr.concat([ll[v].rename({ll[v].dims[-1]: "obs"}).drop_vars("obs", errors="ignore")
                         for v in sorted(ll.data_vars)], dim="obs").astype(np.float64)
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"lp": stacked.isel(obs=0, drop=True)}),
                                  "log_likelihood": xr.Dataset({"y": stacked})})


def type_probabilities(fit: Drawn) -> xr.DataArray:
    """P(type) per region-period of a trait or a regime fit."""
    return regime.type_probabilities(fit.tree) if fit.spec.is_regime else \
        typology.type_probabilities(fit.tree, fit.spec)


def compare_models(first: Drawn, second: Drawn, names: tuple[str, str] | None = None) -> ModelComparison:
    """PSIS-LOO comparison of two fits of the same observations (e.g. a trait and a regime fit).

    Parameters
    ----------
    first, second : Fit
    names : (str, str), optional
        Default: the fits' model kinds.

    Raises
    ------
    DataError
        When the two fits were not fitted to the same observations (a ``ValueError``).
    """
    import arviz_stats as azs

    names = list(names) if names is not None else names_of([first, second])
    a, b = first.tree["observed_data"].to_dataset(), second.tree["observed_data"].to_dataset()
    if sorted(a.data_vars) != sorted(b.data_vars) or any(
            a[v].shape != b[v].shape or not np.array_equal(a[v].values, b[v].values) for v in a.data_vars):
        raise DataError("compare_models needs two fits of the same observations; these were fitted to different "
                        "data (refit both models to one data set)")
    # each fit's log-likelihood computed once (no fit holds it; see nexusbayes.fit.Fit.log_likelihood)
    trees = {n: pointwise_tree(f.log_likelihood())
             for n, f in zip(names, (first, second), strict=True)}
    extra = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # its notes on high Pareto k: counted in the table instead
        for name, tree in trees.items():
            k = np.asarray(azs.loo(tree, pointwise=True, var_name="y").pareto_k)
            extra[name] = {"max_pareto_k": float(np.nanmax(k)), "n_k_above": int((k > PARETO_K_MAX).sum())}
        table = azs.compare(trees, round_to="none")
    table = table.join(pd.DataFrame(extra).T)
    probs = [type_probabilities(f) for f in (first, second)]
    modal = [p.argmax("type").values for p in probs]
    same = modal[0] == modal[1]
    region, period = np.nonzero(~same)
    regions, periods = probs[0]["region"].values, probs[0]["period"].values
    rows = {"region": regions[region], "period": periods[period]}
    for name, m, p in zip(names, modal, probs, strict=True):
        rows[f"{name}_type"] = np.asarray(TYPES)[m[region, period]]
        rows[f"{name}_probability"] = p.values[region, period, m[region, period]]
    return ModelComparison(loo=table, agreement=float(same.mean()), disagreements=pd.DataFrame(rows))
