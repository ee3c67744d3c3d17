"""The report's part on quota heaping and structural zeros (fits with ``quota`` or ``zero_inflated`` indicators).

Tables: ``heap_share`` (each heaped or zero-inflated indicator's probability of the point mass by region and
period, with the report beside it) and ``heap_parameters`` (intercepts and loadings, at most 0: the heap rising as the
trait falls). Figures: the share as a region x period heat map per indicator, and a hanging
rootogram per indicator, whose bar at the quota (or at 0) reaching the zero line shows that the heap is fitted.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nexusbayes.analysis.heaping import count_frequencies, loading_table, share_table  # noqa: E402
from nexusbayes.constants import CI_PROB  # noqa: E402
from nexusbayes.model.design import term_key  # noqa: E402
from nexusbayes.report.figures import RC, _grid, _ticks  # noqa: E402

#: Counts shown by a rootogram: up to this quantile of the reports (and at least the quota).
ROOTOGRAM_QUANTILE = 0.98


def inflated(fit) -> list[str]:
    """The fit's indicators with quota heaping or structural zeros."""
    return [n for n in fit.panel.indicators if fit.spec.indicator(n).inflated]


def section(fit, tables: dict[str, pd.DataFrame]) -> dict[str, tuple[str, Figure]]:
    """Add the heaping tables to ``tables``; return the figures (stem: (caption, figure))."""
    shares = share_table(fit.tree, fit.spec, fit.panel)
    tables["heap_share"] = shares
    tables["heap_parameters"] = loading_table(fit.tree)
    return {
        "heap_share": (f"Probability that a report is the heap (at the quota) or a structural zero, by region and "
                       f"period (posterior mean; {CI_PROB:.0%} intervals in heap_share.csv). Dots: reports at the "
                       "quota (or 0).", share_map(shares)),
        "rootogram": ("Hanging rootograms of the inflated counts: bars of sqrt(observed frequency) hang from the "
                      "curve of sqrt(expected frequency) under the posterior predictive; a bar ending near the zero "
                      "line is fitted, one far below or above it is not (dashed: the quota).",
                      rootograms(fit)),
    }


def share_map(shares: pd.DataFrame) -> Figure:
    """One heat map per (component, indicator): region x period, the posterior mean probability."""
    groups = list(shares.groupby(["component", "indicator"], sort=False))
    with plt.rc_context(RC):
        fig, axes = _grid(len(groups), ncols=2, size=(4.4, 3.2), layout="constrained")
        for ax, ((comp, name), sub) in zip(axes, groups, strict=True):
            grid = sub.pivot(index="region", columns="period", values="mean")
            image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="magma_r", vmin=0.0, vmax=1.0)
            hits = sub.pivot(index="region", columns="period", values="at_value").reindex_like(grid)
            r, t = np.nonzero(hits.to_numpy(dtype=float) == 1.0)
            ax.scatter(t, r, s=6, color="#1b9e77")
            ax.set_yticks(range(len(grid.index)), [str(x) for x in grid.index])
            _ticks(ax, list(grid.columns))
            ax.set_title(f"{name}: {'heap at the quota' if comp == 'heap' else 'structural zero'}")
            fig.colorbar(image, ax=ax, shrink=0.8, label="probability")
    return fig


def rootograms(fit) -> Figure:
    """A hanging rootogram per inflated indicator (sqrt scale), the quota marked."""
    names = inflated(fit)
    frame = fit.panel.frame
    with plt.rc_context(RC):
        fig, axes = _grid(len(names), ncols=2, size=(4.4, 2.8), layout="constrained")
        for ax, name in zip(axes, names, strict=True):
            values = frame.loc[frame["indicator"] == name, "value"].to_numpy()
            quota = fit.spec.indicator(name).quota
            top = int(max(np.quantile(values, ROOTOGRAM_QUANTILE), quota if isinstance(quota, int) else 0)) + 1
            freq = count_frequencies(fit.tree, fit.panel, name, term_key(fit.spec, name), top)
            root, obs = np.sqrt(freq["expected"]), np.sqrt(freq["observed"])
            ax.bar(freq["count"], obs, bottom=root - obs, width=0.8, color="#bbbbbb", edgecolor="#777777")
            ax.plot(freq["count"], root, color="#d95f02", marker=".", markersize=3)
            ax.axhline(0.0, color="black", linewidth=0.6)
            if isinstance(quota, int):
                ax.axvline(quota, color="#1b9e77", linestyle="--", linewidth=0.8)
            ax.set_title(str(name))
            ax.set_xlabel("count")
            ax.set_ylabel("sqrt(frequency)")
    return fig
