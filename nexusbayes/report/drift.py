"""The report's part on changing standards (fits with indicators with ``drift``).

Tables: ``drift_paths`` (each drifting parameter's path by period, mean with 50% and 90% intervals) and
``drift_size`` (each drift's total change and step SD against the traits' movement, in trait SD units; see
:mod:`nexusbayes.analysis.drift`). Figure: one panel per drifting parameter, its path with the two bands.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nexusbayes.analysis.drift import drift_paths, drift_size  # noqa: E402
from nexusbayes.analysis.typology import interval_names  # noqa: E402
from nexusbayes.constants import CI_PROB  # noqa: E402
from nexusbayes.report.figures import RC, _grid, _ticks  # noqa: E402

#: The stems of the section's tables (CSV files) and figure.
PATHS, SIZE = "drift_paths", "drift_size"

#: What each kind of path is, for the panels' titles.
TITLES = {"intercept": "intercept", "cutpoints": "cut-point centre", "log loading": "log loading"}


def has_drift(fit) -> bool:
    """Whether any of the fit's indicators drifts."""
    return any(fit.spec.indicator(n).drift is not None for n in fit.panel.indicators)


def section(fit, tables: dict[str, pd.DataFrame]) -> dict[str, tuple[str, Figure]]:
    """Add the drift tables to ``tables``; return the figure (stem: (caption, figure)); nothing without drift."""
    paths = drift_paths(fit.tree, fit.spec)
    if paths.empty:
        return {}
    tables[PATHS] = paths
    tables[SIZE] = drift_size(fit.tree, fit.spec)
    return {PATHS: (f"Changing standards: each drifting parameter's path over periods (posterior mean, 50% and "
                    f"{CI_PROB:.0%} bands; centred over the periods with data, so 0 is the indicator's average). "
                    "A rising intercept means higher readings for the same traits, a rising cut-point centre lower "
                    "ratings (a harsher standard), a rising log loading an indicator that tells regions apart more "
                    "sharply. Sizes against the traits' movement in drift_size.csv.", path_figure(paths))}


def path_figure(paths: pd.DataFrame) -> Figure:
    """One panel per (parameter, indicator): the path's mean with its 50% and ``CI_PROB`` bands."""
    low, high = interval_names(CI_PROB)
    groups = list(paths.groupby(["parameter", "indicator"], sort=False))
    with plt.rc_context(RC):
        fig, axes = _grid(len(groups), ncols=3, size=(3.4, 2.6), layout="constrained")
        for ax, ((kind, name), sub) in zip(axes, groups, strict=True):
            x = np.arange(len(sub))
            ax.fill_between(x, sub[low], sub[high], color="#9ecae1", alpha=0.6, linewidth=0, label=f"{CI_PROB:.0%}")
            ax.fill_between(x, sub["q25"], sub["q75"], color="#3182bd", alpha=0.6, linewidth=0, label="50%")
            ax.plot(x, sub["mean"], color="#08306b", linewidth=1.2)
            ax.axhline(0.0, color="black", linewidth=0.6, linestyle=":")
            _ticks(ax, list(sub["period"]))
            ax.set_title(f"{name}: {TITLES[kind]}")
        axes[0].legend(loc="upper left", frameon=False)
    return fig
