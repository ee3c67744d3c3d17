"""Report section of a model choice: two fits of the same observations compared by PSIS-LOO and by their types.

Tables ``model_comparison`` (one row per fit, best first: elpd, its difference from the best and the SE of the
difference, effective parameters, weight, the largest Pareto k and the observations above
:data:`~nexusbayes.constants.PARETO_K_MAX`) and ``type_disagreements`` (the region-periods whose modal types
differ), and one figure, ``model_agreement``: per region-period the total-variation distance between the two
fits' type probabilities (0: the same distribution, 1: no type in common), the cells whose modal types differ
marked with both types' initials.

Examples
--------
>>> import numpy as np, xarray as xr
>>> p = xr.DataArray(np.full((2, 3, 4), 0.25), dims=("region", "period", "type"),
...                  coords={"region": ["a", "b"], "period": [2000, 2001, 2002]})
>>> q = p.copy(data=np.eye(4)[np.zeros((2, 3), dtype=int)])
>>> distance(p, q).values.round(2).tolist()
[[0.75, 0.75, 0.75], [0.75, 0.75, 0.75]]
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nexusbayes.analysis.model_choice import (  # noqa: E402
    ModelComparison,
    compare_models,
    names_of,
    type_probabilities,
)
from nexusbayes.constants import PARETO_K_MAX, TYPES  # noqa: E402
from nexusbayes.report.figures import RC  # noqa: E402

#: The section's tables, in the order the report shows them.
STEMS = ("model_comparison", "type_disagreements")

#: The columns of :func:`arviz_stats.compare`'s table that the report keeps, in order.
LOO_COLUMNS = ["rank", "elpd", "elpd_diff", "dse", "se", "p", "weight", "max_pareto_k", "n_k_above"]


def distance(first: xr.DataArray, second: xr.DataArray) -> xr.DataArray:
    """Total-variation distance between two fits' P(type) per region-period (each (region, period, type))."""
    return 0.5 * abs(first - second.transpose(*first.dims)).sum("type")


def loo_table(comparison: ModelComparison) -> pd.DataFrame:
    """The LOO table with the fits' names as a column, best first, and whether a fit's shortfall exceeds 2 SE.

    ``elpd_diff`` is each fit's elpd minus the best's (0 or negative), ``dse`` its standard error.
    """
    table = comparison.loo.rename_axis("model").reset_index()
    table = table[["model", *[c for c in LOO_COLUMNS if c in table.columns]]]
    shortfall, dse = -table["elpd_diff"].to_numpy(float), table["dse"].to_numpy(float)   # elpd_diff <= 0
    table["beyond_2se"] = (shortfall > 0) & (shortfall > 2 * dse)
    return table


def agreement_figure(first: xr.DataArray, second: xr.DataArray, names: tuple[str, str]) -> Figure:
    """Heat map (region x period) of the distance between the fits' type probabilities, disagreements marked."""
    gap = distance(first, second)
    modal = [p.argmax("type").transpose("region", "period").values for p in (first, second)]
    regions, periods = [str(r) for r in gap["region"].values], [str(t) for t in gap["period"].values]
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(periods) + 2.5), max(2.5, 0.35 * len(regions) + 1.2)),
                               layout="constrained")
        image = ax.imshow(gap.transpose("region", "period").values, vmin=0.0, vmax=1.0, cmap="Reds", aspect="auto")
        for r, t in zip(*np.nonzero(modal[0] != modal[1]), strict=True):
            ax.text(t, r, f"{TYPES[modal[0][r, t]][0]}/{TYPES[modal[1][r, t]][0]}", ha="center", va="center",
                    fontsize=6, color="white" if float(gap.transpose("region", "period")[r, t]) > 0.5 else "black")
        ax.set_xticks(range(len(periods)), periods, rotation=90, fontsize=7)
        ax.set_yticks(range(len(regions)), regions, fontsize=7)
        ax.set_title(f"{names[0]} vs {names[1]}: distance between P(type); letters: modal types where they differ",
                     fontsize=9)
        fig.colorbar(image, ax=ax, label="total-variation distance", shrink=0.8)
    return fig


def section(first, second, names: tuple[str, str] | None = None,
            comparison: ModelComparison | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[str, Figure]]]:
    """The section's tables (:data:`STEMS`) and its figure (caption, figure) for two fits of the same observations.

    ``comparison`` is :func:`~nexusbayes.analysis.model_choice.compare_models`'s result when already computed.
    """
    names = tuple(names) if names is not None else tuple(names_of([first, second]))
    comparison = comparison or compare_models(first, second, names)
    probs = [type_probabilities(f) for f in (first, second)]
    caption = (f"Model choice: PSIS-LOO prefers {comparison.loo.index[0]} "
               f"by {-comparison.loo['elpd_diff'].iloc[1]:.1f} elpd (SE {comparison.loo['dse'].iloc[1]:.1f}); "
               f"the modal types agree in {comparison.agreement:.0%} of region-periods. Colour: the distance between "
               "the two fits' type probabilities per region-period; letters: the two modal types where they differ "
               f"(Pareto k above {PARETO_K_MAX} is counted in model_comparison.csv).")
    tables = {"model_comparison": loo_table(comparison), "type_disagreements": comparison.disagreements}
    return tables, {"model_agreement": (caption, agreement_figure(*probs, names))}
