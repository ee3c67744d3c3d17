"""The reporting model in the report: its parameters with intervals, and P(reported) against a trait.

For indicators with ``missing = "informative"`` (:mod:`nexusbayes.model.reporting`): a table of each
indicator's reporting intercept, loadings (and country offsets) with posterior mean, SD, equal-tailed
interval and P(> 0), beside the share of its cells reported; and a figure of P(reported) against each
trait (the other traits at 0, their average), with the observed shares of reporting cells binned by the
posterior-mean trait.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nexusbayes.analysis.typology import interval_names
from nexusbayes.constants import CI_PROB
from nexusbayes.fit import Fit
from nexusbayes.model.reporting import INTERCEPT, LOADING, OFFSET, reporting_cells
from nexusbayes.report.figures import RC, _grid

#: Bins of the posterior-mean trait in which the figure shows observed shares reported.
SHARE_BINS = 6


def reporting_table(fit: Fit) -> pd.DataFrame:
    """Per informative indicator and parameter: mean, SD, interval, P(> 0); empty without the reporting model.

    Columns ``indicator, parameter, mean, sd, <low>, <high>, p_positive, cells, share_reported``; the
    parameter is ``intercept``, ``loading:<trait>`` or ``offset:<country>`` (on the logit scale). A loading
    whose interval lies above 0 says the indicator is reported more where the trait is higher.
    """
    post = fit.tree["posterior"]
    low, high = interval_names()
    columns = ["indicator", "parameter", "mean", "sd", low, high, "p_positive", "cells", "share_reported"]
    if LOADING not in post:
        return pd.DataFrame(columns=columns)
    cells = reporting_cells(fit.spec, fit.panel)
    parts = [(INTERCEPT, post[INTERCEPT].expand_dims(part=["intercept"], axis=-1))]
    parts.append((LOADING, post[LOADING].rename(trait="part").assign_coords(
        part=[f"loading:{t}" for t in post[LOADING]["trait"].values])))
    if OFFSET in post:
        parts.append((OFFSET, post[OFFSET].rename(country="part").assign_coords(
            part=[f"offset:{c}" for c in post[OFFSET]["country"].values])))
    rows = []
    for i, name in enumerate(cells.names):
        mine = cells.item == i
        offsets_here = not fit.spec.indicator(name).comparable
        for var, draws in parts:
            if var == OFFSET and not offsets_here:
                continue
            values = draws.sel(indicator_informative=name).stack(sample=("chain", "draw")).transpose("part", "sample")
            for label, d in zip(values["part"].values, values.values, strict=True):
                lo, hi = np.quantile(d, [(1 - CI_PROB) / 2, (1 + CI_PROB) / 2])
                rows.append({"indicator": name, "parameter": str(label), "mean": d.mean(), "sd": d.std(), low: lo,
                             high: hi, "p_positive": (d > 0).mean(), "cells": int(mine.sum()),
                             "share_reported": cells.reported[mine].mean()})
    return pd.DataFrame(rows, columns=columns)


def reporting_figure(fit: Fit) -> Figure:
    """P(reported) against each trait, per informative indicator: posterior mean curve, interval band, shares.

    The curve holds the other traits at 0 (their average over region-periods with data); the points are the
    observed shares of the indicator's reporting cells reported, binned by the cells' posterior-mean trait.
    """
    import matplotlib.pyplot as plt

    post = fit.tree["posterior"]
    cells = reporting_cells(fit.spec, fit.panel)
    traits = list(post[LOADING]["trait"].values)
    grid = np.linspace(-2.5, 2.5, 101)
    theta = post["theta"].mean(("chain", "draw")).values                          # (region, period, trait)
    alpha = post[INTERCEPT].stack(sample=("chain", "draw")).values                 # (indicator, sample)
    gamma = post[LOADING].stack(sample=("chain", "draw")).values                   # (indicator, trait, sample)
    with plt.rc_context(RC):
        fig, axes = _grid(len(cells.names) * len(traits), ncols=min(3, len(cells.names) * len(traits)))
        for n, ax in enumerate(axes):
            i, k = divmod(n, len(traits))
            p = 1.0 / (1.0 + np.exp(-(alpha[i][None, :] + gamma[i, k][None, :] * grid[:, None])))
            ax.fill_between(grid, *np.quantile(p, [(1 - CI_PROB) / 2, (1 + CI_PROB) / 2], axis=1), alpha=0.3,
                            label=f"{CI_PROB:.0%} interval")
            ax.plot(grid, p.mean(axis=1), label="posterior mean")
            mine = cells.item == i
            x = theta[cells.region[mine], cells.period[mine], k]
            bins = np.quantile(x, np.linspace(0, 1, SHARE_BINS + 1))
            which = np.clip(np.searchsorted(bins, x, side="right") - 1, 0, SHARE_BINS - 1)
            shares = [(x[which == b].mean(), cells.reported[mine][which == b].mean())
                      for b in range(SHARE_BINS) if (which == b).any()]
            ax.plot(*zip(*shares, strict=True), "o", color="black", markersize=3, label="observed share")
            ax.set(xlabel=traits[k], ylabel="P(reported)", ylim=(0, 1), title=cells.names[i])
        axes[0].legend(loc="lower right", fontsize=6)
        fig.tight_layout()
    return fig


def reporting_figures(fit: Fit) -> dict[str, tuple[str, Figure]]:
    """The report's figure of the reporting model (``{stem: (caption, figure)}``; empty without it)."""
    if LOADING not in fit.tree["posterior"]:
        return {}
    return {"reporting": (f"P(reported) against each trait for the indicators whose reporting is informative: "
                          f"posterior mean and {CI_PROB:.0%} band (other traits at 0), and the observed shares "
                          "reported, binned by the posterior-mean trait (reporting_model.csv: the parameters).",
                          reporting_figure(fit))}
