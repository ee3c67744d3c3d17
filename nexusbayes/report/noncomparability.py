r"""The report's non-comparability section: which indicators can be trusted for comparing countries.

For fits with ``[comparability] detect = true``: the table of
:func:`nexusbayes.analysis.comparability.noncomparability_table` (also written as ``noncomparability.csv``) and a
forest plot of every indicator's country offsets with their intervals against ``±delta``.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"indicator": ["staff", "staff", "seizures", "seizures"], "country": ["A", "B"] * 2,
...                       "mean": [0.0, 0.0, 0.9, -0.9], "q05": [-0.2, -0.2, 0.4, -1.4], "q95": [0.2, 0.2, 1.4, -0.4],
...                       "p_exceeds": [0.01, 0.02, 0.9, 0.9], "shrunk": True})
>>> png(offset_forest(table, 0.5))[:4] == b"\x89PNG"
True
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nexusbayes.constants import CI_PROB  # noqa: E402
from nexusbayes.report.figures import RC, png  # noqa: E402

__all__ = ["offset_forest", "png", "section"]

#: The stem of the table and of the figure (``noncomparability.csv``, ``noncomparability.png``).
STEM = "noncomparability"


def offset_forest(table: pd.DataFrame, delta: float) -> Figure:
    """Each indicator's country offsets (posterior mean and interval), one colour per country, with ``±delta``.

    ``table`` is a non-comparability table (columns ``indicator, country, mean``, the two interval columns next
    to ``mean`` and ``p_exceeds``).
    """
    low, high = table.columns[table.columns.get_loc("mean") + 1: table.columns.get_loc("mean") + 3]
    indicators = list(dict.fromkeys(table["indicator"]))
    countries = list(dict.fromkeys(table["country"]))
    cmap = plt.get_cmap("tab10")
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.45 * len(indicators)), layout="constrained")
        step = 0.7 / max(len(countries), 1)
        for c, country in enumerate(countries):
            rows = table[table["country"] == country].set_index("indicator").reindex(indicators)
            y = np.arange(len(indicators)) + (c - (len(countries) - 1) / 2) * step
            ax.errorbar(rows["mean"], y, xerr=[rows["mean"] - rows[low], rows[high] - rows["mean"]], fmt="o",
                        ms=3, lw=1, color=cmap(c % 10), label=country)
        for x in (-delta, delta):
            ax.axvline(x, color="grey", ls="--", lw=0.8)
        ax.axvline(0.0, color="black", lw=0.5)
        ax.set_yticks(np.arange(len(indicators)), indicators)
        ax.invert_yaxis()
        ax.set_xlabel("country offset (linear predictor scale)")
        ax.legend(title="country", fontsize=7, loc="best")
    return fig


def section(results: dict[str, pd.DataFrame], tables: dict[str, pd.DataFrame],
            delta: float) -> dict[str, tuple[str, Figure]]:
    """Add the fit's non-comparability table (when ``results`` has one) to ``tables``; its figure by stem."""
    if STEM not in results:
        return {}
    table = tables[STEM] = results[STEM]
    caption = (f"Country offsets of every indicator: posterior mean and {CI_PROB:.0%} interval, one colour per "
               f"country; dashed lines at ±delta = {delta:g}. An indicator whose offsets stay between them reads "
               "the same in every country; one outside them is not comparable there (table: P(|offset| > delta)).")
    return {STEM: (caption, offset_forest(table, delta))}
