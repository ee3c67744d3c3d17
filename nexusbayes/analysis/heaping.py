"""Quota heaping and structural zeros read from a fit: the heap's share, its parameters, the counts' frequencies.

The heap's share is by region and period, the frequencies observed and predicted (for a rootogram).

The probabilities are those of the model (:mod:`nexusbayes.model.heaping`): per component ``c`` (``heap`` at the
quota, ``zero`` for structural zeros) and indicator j, ``expit(c_intercept_j + c_loading[j] . theta[r, t])``, draw
by draw, for every region-period (where the indicator has no report too: what the traits imply there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis.typology import eti, interval_names
from nexusbayes.constants import CI_PROB

SAMPLE = ("chain", "draw")

#: Each component's coordinate of indicators, and what its point mass is at.
COMPONENT_DIMS = {"heap": "indicator_heaped", "zero": "indicator_zero_inflated"}


def components(posterior: xr.Dataset) -> list[str]:
    """The inflation components a fit has (``heap``, ``zero``), in that order."""
    return [c for c in COMPONENT_DIMS if f"{c}_intercept" in posterior]


def inflation_share(posterior: xr.Dataset, component: str = "heap") -> xr.DataArray:
    """Draws of each region-period's probability of the component: (chain, draw, indicator_<c>, region, period).

    Examples
    --------
    >>> post = xr.Dataset({"heap_intercept": (("chain", "draw", "indicator_heaped"), np.zeros((1, 1, 1))),
    ...                    "heap_loading": (("chain", "draw", "indicator_heaped", "trait"), -np.ones((1, 1, 1, 1))),
    ...                    "theta": (("chain", "draw", "region", "period", "trait"), np.zeros((1, 1, 2, 1, 1)))})
    >>> inflation_share(post).values.ravel().tolist()
    [0.5, 0.5]
    """
    logit = posterior[f"{component}_intercept"] + xr.dot(posterior[f"{component}_loading"], posterior["theta"],
                                                          dim="trait")
    return (1.0 / (1.0 + np.exp(-logit))).transpose(*SAMPLE, COMPONENT_DIMS[component], "region", "period")


def share_table(tree: xr.DataTree, spec, panel, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """The heap's (and structural zeros') share by indicator, region and period, with the data beside it.

    Columns: ``component``, ``indicator``, ``region``, ``period``, ``mean`` and the interval of the probability,
    ``reported`` (the count reported, blank without one) and ``at_value`` (whether it is the quota, or 0).
    """
    posterior = tree["posterior"].to_dataset()
    frame = panel.frame
    rows = []
    for comp in components(posterior):
        share = inflation_share(posterior, comp)
        lower, upper = eti(share, ci_prob, SAMPLE)
        dim = COMPONENT_DIMS[comp]
        table = xr.Dataset({"mean": share.mean(SAMPLE), "lower": lower, "upper": upper}).to_dataframe()
        table = table.reset_index().rename(columns={dim: "indicator"})
        sub = frame[frame["indicator"].isin(table["indicator"].unique())]
        seen = sub[["indicator", "region", "period", "value"]].rename(columns={"value": "reported"})
        table = table.merge(seen, on=["indicator", "region", "period"], how="left")
        if comp == "heap":
            quota = _quota_of(sub, spec)
            table = table.merge(quota, on=["indicator", "region", "period"], how="left")
            table["at_value"] = (table["reported"] == table["quota"]).where(table["reported"].notna())
            table = table.drop(columns="quota")
        else:
            table["at_value"] = (table["reported"] == 0).where(table["reported"].notna())
        table.insert(0, "component", comp)
        rows.append(table)
    low, high = interval_names(ci_prob)     # q05, q95: as every other table's interval
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return out.rename(columns={"lower": low, "upper": high})


def _quota_of(sub: pd.DataFrame, spec) -> pd.DataFrame:
    """Each report's quota (``indicator, region, period, quota``): the spec's number or the row's quota column."""
    out = sub[["indicator", "region", "period"]].copy()
    out["quota"] = np.nan
    for name in out["indicator"].unique():
        where = (sub["indicator"] == name).to_numpy()
        quota = spec.indicator(name).quota
        out.loc[where, "quota"] = sub.loc[where, quota].to_numpy(float) if isinstance(quota, str) else quota
    return out


def loading_table(tree: xr.DataTree, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """The components' intercepts and loadings (at most 0: the heap rises as the trait falls): mean and interval."""
    posterior = tree["posterior"].to_dataset()
    rows = []
    for comp in components(posterior):
        dim = COMPONENT_DIMS[comp]
        for name in (f"{comp}_intercept", f"{comp}_loading"):
            draws = posterior[name]
            lower, upper = eti(draws, ci_prob, SAMPLE)
            table = xr.Dataset({"mean": draws.mean(SAMPLE), "lower": lower,
                                "upper": upper}).to_dataframe().reset_index()
            table = table.rename(columns={dim: "indicator"})
            if "trait" not in table:
                table["trait"] = ""
            table.insert(0, "parameter", name)
            rows.append(table[["parameter", "indicator", "trait", "mean", "lower", "upper"]])
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    low, high = interval_names(ci_prob)
    return out.rename(columns={"lower": low, "upper": high})


def count_frequencies(tree: xr.DataTree, panel, indicator: str, key: str, max_count: int) -> pd.DataFrame:
    """Observed and posterior-predictive expected frequencies of each count 0..max_count of ``indicator``.

    ``key`` is the indicator's likelihood term; the expected frequency is the mean over draws of the number of
    its reports at each count (what a rootogram compares with the observed one).
    """
    frame = panel.frame
    labels = frame.loc[frame["indicator"] == indicator, "row"].to_numpy()
    observed = tree["observed_data"][f"y_{key}"].sel({f"obs_{key}": labels}).values
    predicted = tree["posterior_predictive"][f"y_{key}"].sel({f"obs_{key}": labels}).values
    counts = np.arange(max_count + 1)
    flat = predicted.reshape(-1, predicted.shape[-1])
    expected = np.stack([(flat == c).sum(axis=1).mean() for c in counts])
    return pd.DataFrame({"count": counts, "observed": [(observed == c).sum() for c in counts], "expected": expected})
