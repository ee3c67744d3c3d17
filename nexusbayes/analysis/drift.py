"""Changing standards read from a fit: the drift paths with bands, and the drift's size against the traits' movement.

The paths are those of :mod:`nexusbayes.model.drift`: ``drift`` (indicator_drifting, period) is added to an
intercept (or to a cut-point centre, where it lowers the ratings), ``loading_drift`` (indicator_loading_drifting,
period) is the log of the factor multiplying an indicator's loadings. Each is centred over the periods in which the
indicator has data.

To compare a drift with the traits' movement, both are put in trait SD units: a location path ``d`` moves the
indicator's linear predictor as a change of ``d / loading_jk`` in trait k would (``-d / loading_jk`` for cut-points);
a log-loading path ``d`` rescales the indicator's reading of a trait by ``exp(d)``, as a trait one SD from the
average moving by ``exp(d) - 1`` would. The traits are standardised (SD 1 over region-periods with data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis.typology import eti, interval_names
from nexusbayes.constants import CI_PROB

SAMPLE = ("chain", "draw")

#: Per path variable: its coordinate of indicators.
PATHS = {"drift": "indicator_drifting", "loading_drift": "indicator_loading_drifting"}


def _kind(spec, name: str, variable: str) -> str:
    """What a path moves: ``intercept``, ``cutpoints`` (the centre) or ``log loading``."""
    return "log loading" if variable == "loading_drift" else spec.indicator(name).location_drift


def _paths(posterior: xr.Dataset, spec):
    """Each drifting parameter: (variable, kind, indicator, draws (chain, draw, period))."""
    for variable, dim in PATHS.items():
        if variable in posterior:
            for name in posterior[dim].values:
                yield variable, _kind(spec, str(name), variable), str(name), posterior[variable].sel({dim: name})


def drift_paths(tree: xr.DataTree, spec, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """Every drifting parameter's path over periods: posterior mean, SD, the 50% and ``ci_prob`` intervals.

    Columns: ``parameter`` (``intercept``, ``cutpoints``: their centre, ``log loading``), ``indicator``, ``period``,
    ``mean``, ``sd``, ``q25``, ``q75`` and the ``ci_prob`` interval (``q05``, ``q95`` at 0.9). Empty without drift.

    Examples
    --------
    >>> from nexusbayes.model.simulate import default_spec
    >>> spec = default_spec().model_copy(update={"indicators": {**default_spec().indicators}})
    >>> post = xr.Dataset({"drift": (("chain", "draw", "indicator_drifting", "period"),
    ...                              np.arange(8.0).reshape(1, 4, 1, 2))},
    ...                   coords={"indicator_drifting": ["staff"], "period": [2000, 2001]})
    >>> spec.indicators["staff"] = spec.indicators["staff"].model_copy(update={"drift": "intercept"})
    >>> drift_paths(xr.DataTree.from_dict({"posterior": post}), spec)[["parameter", "period", "mean"]]
       parameter  period  mean
    0  intercept    2000   3.0
    1  intercept    2001   4.0
    """
    posterior = tree["posterior"].to_dataset()
    low, high = interval_names(ci_prob)
    rows = []
    for _, kind, name, draws in _paths(posterior, spec):
        lower, upper = eti(draws, ci_prob, SAMPLE)
        q25, q75 = eti(draws, 0.5, SAMPLE)
        rows.append(pd.DataFrame({"parameter": kind, "indicator": name, "period": draws["period"].values,
                                  "mean": draws.mean(SAMPLE).values, "sd": draws.std(SAMPLE).values,
                                  "q25": q25.values, "q75": q75.values, low: lower.values, high: upper.values}))
    columns = ["parameter", "indicator", "period", "mean", "sd", "q25", "q75", low, high]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


def drift_size(tree: xr.DataTree, spec, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """The size of each drift against the traits' movement, in trait SD units (see the module's note).

    One row per drifting parameter and trait the indicator loads on. Columns: ``parameter``, ``indicator``,
    ``trait``; ``total_drift`` (the path's change from the first period to the last, posterior mean) with its
    ``ci_prob`` interval; ``drift_step_sd`` (the SD of the path's period-to-period changes); ``trait_step_sd`` (the
    SD of the trait's period-to-period changes over regions); ``trait_trend`` (the average region's change from the
    first period to the last); ``ratio`` (``drift_step_sd / trait_step_sd``: above about 0.3 the standard moves
    by a sizeable share of what the regions do, and a model without drift would read it as movement of the trait).
    Each a posterior mean, computed draw by draw.
    """
    posterior = tree["posterior"].to_dataset()
    theta = posterior["theta"]
    step = theta.diff("period")
    trait_step_sd = step.std(("region", "period"))                         # (chain, draw, trait)
    trend = (theta.isel(period=-1) - theta.isel(period=0)).mean("region")    # (chain, draw, trait)
    low, high = interval_names(ci_prob)
    rows = []
    for _, kind, name, draws in _paths(posterior, spec):
        for trait in spec.indicator(name).loads:
            if kind == "log loading":
                units = np.exp(draws) - 1.0
            else:
                size = posterior["loading"].sel(indicator=name, trait=trait)
                units = draws / size * (-1.0 if kind == "cutpoints" else 1.0)
            total = units.isel(period=-1) - units.isel(period=0)
            lower, upper = eti(total, ci_prob, SAMPLE)
            moves = units.diff("period").std("period")
            ratio = moves / trait_step_sd.sel(trait=trait)
            rows.append({"parameter": kind, "indicator": name, "trait": trait,
                         "total_drift": float(total.mean()), low: float(lower), high: float(upper),
                         "drift_step_sd": float(moves.mean()),
                         "trait_step_sd": float(trait_step_sd.sel(trait=trait).mean()),
                         "trait_trend": float(trend.sel(trait=trait).mean()), "ratio": float(ratio.mean())})
    columns = ["parameter", "indicator", "trait", "total_drift", low, high, "drift_step_sd", "trait_step_sd",
               "trait_trend", "ratio"]
    return pd.DataFrame(rows, columns=columns)
