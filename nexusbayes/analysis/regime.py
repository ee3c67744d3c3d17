"""The capacity types of a regime fit (``[model] kind = "regime"``): the same results as the trait typology.

A regime fit's types are its hidden states. After sampling, forward-backward ran draw by draw
(:mod:`nexusbayes.model.regime_predict`) and left the smoothed P(type | y, parameters) per draw, a draw of
each region's type path from p(types | y, parameters) and the most probable path in the tree's ``regime``
group; the results here average them over the posterior draws, so they carry the parameters' uncertainty:

* :func:`type_probabilities`: P(type) per region-period, the draws' smoothed probabilities averaged
  (Rao-Blackwellised: exact given each draw, no counting noise);
* :func:`transition_probabilities`: P(type at t, type at t+1) per region and step, from the sampled paths,
  as the trait typology counts them from its draws;
* :func:`transition_matrices`: the model's transition matrix per country (a parameter, over one time unit:
  ``regime.attrs["time_unit_years"]``), with its posterior mean, SD and interval, in the trait typology's columns;
* :func:`path_table`: per region-period the type on the region's most probable path.

Examples
--------
>>> import numpy as np, xarray as xr
>>> p = xr.DataArray(np.full((1, 2, 1, 1, 4), 0.25), dims=("chain", "draw", "region", "period", "type"))
>>> tree = xr.DataTree.from_dict({"regime": xr.Dataset({"type_probability": p})})
>>> type_probabilities(tree).dims
('region', 'period', 'type')
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis.typology import SAMPLE_DIMS, eti, interval_names, transition_counts
from nexusbayes.constants import CI_PROB, TYPES
from nexusbayes.spec.document import Spec

#: The tree group a regime fit keeps its states in.
GROUP = "regime"


def is_regime_tree(tree: xr.DataTree) -> bool:
    """Whether ``tree`` holds a regime fit's states."""
    return GROUP in tree.children


def type_probabilities(tree: xr.DataTree) -> xr.DataArray:
    """P(type) per region-period, dims (region, period, type), summing to 1 over ``type``."""
    probs = tree[GROUP]["type_probability"].astype(float).mean(SAMPLE_DIMS)
    return probs.assign_coords(type=list(TYPES)).transpose("region", "period", "type").rename("type_probability")


def transition_probabilities(tree: xr.DataTree) -> xr.DataArray:
    """Per region and step, P(type at t = from, type at t+1 = to), dims (region, step, from, to).

    From the paths drawn from p(types | y), one per posterior draw; ``step`` is labelled by the later period.
    """
    states = tree[GROUP]["type_state"].transpose(*SAMPLE_DIMS, "region", "period")
    codes = states.values.astype(int)
    n = len(TYPES)
    pair = codes[..., :-1] * n + codes[..., 1:]
    probs = np.stack([(pair == k).mean(axis=(0, 1)) for k in range(n * n)], axis=-1)
    return xr.DataArray(probs.reshape(*probs.shape[:-1], n, n), dims=("region", "step", "from", "to"),
                        coords={"region": states["region"].values, "step": states["period"].values[1:],
                                "from": list(TYPES), "to": list(TYPES)}, name="transition_probability")


def transition_matrices(tree: xr.DataTree, region_country: dict[str, str], ci_prob: float = CI_PROB) -> pd.DataFrame:
    """The transition matrix of each country: posterior mean, SD and equal-tailed interval of every entry.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`nexusbayes.analysis.typology.transition_matrices`: country, from, to, mean, sd,
        the interval (``q05``, ``q95`` for 90%), ``p_row_defined`` (1: a parameter row is always defined) and
        ``from_count`` (mean number of region-steps starting in the ``from`` type, over the sampled paths).
    """
    transition = tree["posterior"]["transition"]
    draws = transition.transpose(*SAMPLE_DIMS, "country", "type", "type_").values
    draws = draws.reshape(-1, *draws.shape[2:])
    states = tree[GROUP]["type_state"].transpose(*SAMPLE_DIMS, "region", "period")
    regions = states["region"].values
    flat = states.values.astype(int).reshape(-1, len(regions), states.sizes["period"])
    lo_name, hi_name = interval_names(ci_prob)
    out = []
    for c, country in enumerate(transition["country"].values):
        mask = np.array([region_country[r] == country for r in regions])
        from_count = transition_counts(flat[:, mask, :]).sum(axis=-1).mean(axis=0)       # (from,)
        for a, from_type in enumerate(TYPES):
            for b, to_type in enumerate(TYPES):
                vals = draws[:, c, a, b]
                lower, upper = eti(vals, ci_prob)
                out.append({"country": str(country), "from": from_type, "to": to_type, "mean": float(vals.mean()),
                            "sd": float(vals.std()), lo_name: float(lower), hi_name: float(upper),
                            "p_row_defined": 1.0, "from_count": float(from_count[a])})
    return pd.DataFrame(out)


def path_table(tree: xr.DataTree, region_country: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per region-period: the type on the region's most probable path (the draws' most frequent one)."""
    path = tree[GROUP]["modal_path"]
    table = path.to_dataframe(name="code").reset_index()
    table["path_type"] = np.asarray(TYPES)[table.pop("code").to_numpy().astype(int)]
    if region_country is not None:
        table.insert(0, "country", table["region"].map(region_country))
    return table


def refuse_thresholds(spec: Spec, what: str) -> None:
    """Raise for a threshold-based analysis of a regime fit, whose types are states, not thresholds."""
    if spec.is_regime:
        raise ValueError(f"{what} moves the typology thresholds of a trait model; a regime fit's types are its hidden "
                         "states, with no thresholds to move (fit the spec with [model] kind = \"trait\" for it)")
