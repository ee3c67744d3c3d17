"""How well posterior draws recover known values: interval coverage and correlation with the truth.

Recovery studies, the benchmarks and the sampling tests score a fit against a simulation's truth with the
same few numbers: whether each true value lies inside its central interval, and how closely the posterior means
follow the true values. They are computed here once. The interval is the package's equal-tailed one
(:func:`~nexusbayes.analysis.typology.eti`, NumPy's "linear" quantiles); the truth is matched to the draws by
label, so a panel's sorting of regions (``'C10-R01'`` before ``'C2-R01'``) cannot pair the wrong cells.

Examples
--------
>>> import numpy as np, xarray as xr
>>> rng = np.random.default_rng(0)
>>> truth = xr.DataArray(rng.normal(size=(40, 2)), dims=("region", "trait"),
...                      coords={"region": [f"R{i:02d}" for i in range(40)], "trait": ["capability", "willingness"]})
>>> mean = truth + rng.normal(0.0, 0.5, size=(40, 2))    # a calibrated posterior: the truth is its mean + error
>>> draws = mean + xr.DataArray(rng.normal(0.0, 0.5, size=(2, 500, 40, 2)), dims=("chain", "draw", "region", "trait"))
>>> covered = interval_covers(draws, truth)            # the default interval: CI_PROB = 0.9
>>> covered.dims, round(float(covered.mean()), 2)
(('region', 'trait'), 0.95)
>>> {k: round(r, 2) for k, r in correlation_by_trait(mean, truth).items()}
{'capability': 0.91, 'willingness': 0.87}
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from nexusbayes.analysis.typology import SAMPLE_DIMS, eti
from nexusbayes.constants import CI_PROB


def on_labels(truth, like: xr.DataArray):
    """``truth`` on the labels of ``like``, in its order (dims too): the cells of the truth that ``like`` holds.

    Dimensions without labels in either are matched by position; a truth without the dimension broadcasts, and a
    number or NumPy array is returned as it is (matched by position, as NumPy broadcasts).

    Raises
    ------
    ValueError
        If the truth has a dimension that ``like`` lacks (it would broadcast), or lacks a label of ``like``.
    """
    if not isinstance(truth, xr.DataArray):
        return truth
    extra = [d for d in truth.dims if d not in like.dims]
    if extra:
        raise ValueError(f"the truth has dimensions {extra} that the draws or estimate lack (they have "
                         f"{list(like.dims)}): select or rename them so that the truth's dimensions are among theirs")
    labels = {d: like.indexes[d] for d in like.dims if d in like.indexes and d in truth.indexes}
    for d, index in labels.items():
        missing = index.difference(truth.indexes[d])
        if len(missing):
            raise ValueError(f"the truth has no {d} {list(missing[:5])} (of {len(missing)} missing) that the draws "
                             f"have: pass the truth of every fitted {d}, or select the draws' {d} it holds")
    truth = truth.sel(labels)
    return truth.transpose(*[d for d in like.dims if d in truth.dims])


def interval_covers(draws: xr.DataArray, truth, ci_prob: float = CI_PROB, dim=SAMPLE_DIMS) -> xr.DataArray:
    """Whether each true value lies inside the draws' central ``ci_prob`` interval (both ends included).

    Parameters
    ----------
    draws : xarray.DataArray
        Posterior draws, with the sample dims ``dim``.
    truth : xarray.DataArray, numpy.ndarray or float
        The true values, matched to the draws by label (:func:`on_labels`; it may hold more cells), an array by
        position.
    ci_prob : float
        Probability of the equal-tailed interval (:func:`~nexusbayes.analysis.typology.eti`).
    dim : tuple of str
        The sample dims, summarised away.

    Returns
    -------
    xarray.DataArray
        Booleans over the draws' other dims; their mean is the coverage.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> draws = xr.DataArray(np.arange(101.0).reshape(1, 101, 1).repeat(3, axis=2), dims=("chain", "draw", "x"))
    >>> interval_covers(draws, xr.DataArray([4.0, 5.0, 95.0], dims="x")).values.tolist()
    [False, True, True]
    """
    lower, upper = eti(draws, ci_prob, dim)
    truth = on_labels(truth, lower)
    return (lower <= truth) & (truth <= upper)


def correlation(estimate: xr.DataArray, truth) -> float:
    """Pearson correlation of an estimate (e.g. posterior means) with the truth over all the estimate's cells.

    A DataArray truth is matched to the estimate by label (:func:`on_labels`), a NumPy array taken in the
    estimate's order.

    Examples
    --------
    >>> import xarray as xr
    >>> truth = xr.DataArray([1.0, 2.0, 3.0], dims="region", coords={"region": ["a", "b", "c"]})
    >>> round(correlation(truth.sel(region=["c", "a", "b"]) ** 2, truth), 4)
    0.9897
    """
    truth = np.asarray(on_labels(truth, estimate))
    return float(np.corrcoef(estimate.values.ravel(), truth.ravel())[0, 1])


def correlation_by_trait(estimate: xr.DataArray, truth: xr.DataArray, dim: str = "trait") -> dict[str, float]:
    """:func:`correlation` within each trait (each label of ``dim``): ``{trait: r}``, in the truth's trait order."""
    return {str(k): correlation(estimate.sel({dim: k}), truth.sel({dim: k})) for k in truth[dim].values}
