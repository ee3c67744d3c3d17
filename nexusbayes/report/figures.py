r"""Domain figures of the report, hand-written with matplotlib (Agg).

Typology map, type heat maps, transition matrices, threshold sensitivity and trait trajectories.

Each function takes plain results (xarray / pandas, as the fit computes them) and returns a
:class:`matplotlib.figure.Figure`; :func:`png` renders one to PNG bytes and closes it. Text from
data or spec (region, indicator and type names) is drawn literally: math text is switched off.

Examples
--------
>>> import numpy as np, xarray as xr
>>> probs = xr.DataArray(np.full((2, 3, 4), 0.25), dims=("region", "period", "type"),
...                      coords={"region": ["A", "<b>B</b>"], "period": [2000, 2001, 2002],
...                              "type": ["hegemonic", "captured", "degraded", "failed"]})
>>> data = png(type_heatmaps(probs))
>>> data[:4] == b"\x89PNG"
True
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nexusbayes.analysis.typology import interval_names  # noqa: E402
from nexusbayes.constants import CI_PROB, TYPES  # noqa: E402

#: rcParams for every report figure: literal text (no math), small fonts, white background.
RC = {"text.parse_math": False, "font.size": 8, "axes.titlesize": 9, "figure.facecolor": "white",
      "savefig.facecolor": "white"}
#: Resolution of the PNG figures (dots per inch); 300 suits print.
DPI = 120
#: Resolutions a report accepts (below, text is unreadable; above, files grow for nothing).
DPI_RANGE = (50, 1200)
#: A transition-matrix row resting on fewer region-steps than this (posterior mean) is drawn hatched and grey.
THIN_ROW_COUNT = 5
LOW, HIGH = interval_names()
TYPE_COLOURS = {"hegemonic": "#1b9e77", "captured": "#d95f02", "degraded": "#7570b3", "failed": "#e7298a"}


def png(fig: Figure, dpi: int = DPI) -> bytes:
    """Render ``fig`` to PNG bytes at ``dpi`` and close it."""
    return render(fig, "png", dpi=dpi)[0]


def render(fig: Figure, *formats: str, dpi: int = DPI) -> list[bytes]:
    """Render ``fig`` in each of ``formats`` (``"png"``, ``"svg"``) and close it."""
    out = []
    try:
        for fmt in formats:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight")
            out.append(buffer.getvalue())
    finally:
        plt.close(fig)
    return out


#: Most panels of a per-region grid (trajectories, typology map, fan chart; countries of the transition
#: matrices): beyond, :func:`spread_regions` picks which, and the caption says so.
MAX_PANELS = 24


def _grid(n: int, ncols: int = 3, size: tuple[float, float] = (3.2, 2.6), **kwargs):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kwargs)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def spread_regions(summary: pd.DataFrame, n: int | None = None) -> tuple[list[str], str]:
    """The regions of the per-region grids: all up to ``n`` (:data:`MAX_PANELS`), else ``n`` spread over a ranking.

    Beyond ``n`` regions the grids would hold one panel per region (190 panels for a country panel of the
    world); instead they show ``n`` regions evenly spaced over the ranking by the first trait's posterior
    mean in the last period (the highest, the lowest and the range between). Returns the regions (in the
    summary's order) and the caption's note saying so ("" when all are shown).

    Examples
    --------
    >>> s = pd.DataFrame({"region": list("abcde"), "period": 1, "trait": "t", "mean": [5.0, 1, 4, 2, 3]})
    >>> regions, note = spread_regions(s, 3)
    >>> regions, note[:22]
    (['a', 'b', 'e'], ' 3 of 5 regions shown,')
    """
    n = MAX_PANELS if n is None else n
    regions = list(dict.fromkeys(summary["region"]))
    if len(regions) <= n:
        return regions, ""
    trait, period = summary["trait"].iloc[0], summary["period"].iloc[-1]
    last = summary[(summary["trait"] == trait) & (summary["period"] == period)].set_index("region")["mean"]
    order = last.reindex(regions).sort_values(ascending=False, kind="stable").index
    keep = set(order[np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))])
    return ([r for r in regions if r in keep],
            f" {len(keep)} of {len(regions)} regions shown, evenly spaced over their ranking by {trait} in {period} "
            "(highest, lowest and between); every region is in traits.csv.")


def _ticks(ax, periods, axis: str = "x", max_ticks: int = 8) -> None:
    step = max(1, math.ceil(len(periods) / max_ticks))
    pos = np.arange(len(periods))[::step]
    labels = [str(p) for p in periods][::step]
    if axis == "x":
        ax.set_xticks(pos, labels, rotation=90)
    else:
        ax.set_yticks(pos, labels)


def typology_map(summary: pd.DataFrame, thresholds: dict[str, tuple[float, float, float]]) -> Figure:
    """Capability (x) against willingness (y), one panel per region, with its trajectory over periods.

    Parameters
    ----------
    summary : pandas.DataFrame
        Columns ``region, period, trait, mean`` and the interval ``q05, q95`` (as
        :meth:`nexusbayes.Fit.trait_summary`).
    thresholds : dict
        ``{"capability": (mean, lower, upper), "willingness": (...)}``: the typology thresholds
        (an interval when they are anchored on an indicator and vary by draw).

    Returns
    -------
    matplotlib.figure.Figure
        Quadrants labelled hegemonic (high, high), captured (high capability, low willingness),
        degraded (low, high) and failed (low, low); points are posterior means with
        equal-tailed intervals on both axes, coloured from the first period (light) to the last (dark).
    """
    with plt.rc_context(RC):
        wide = summary.pivot_table(index=["region", "period"], columns="trait", values=["mean", LOW, HIGH],
                                   sort=False)
        regions = list(dict.fromkeys(summary["region"]))
        lo = min(summary[LOW].min(), thresholds["capability"][1], thresholds["willingness"][1]) - 0.2
        hi = max(summary[HIGH].max(), thresholds["capability"][2], thresholds["willingness"][2]) + 0.2
        fig, axes = _grid(len(regions), size=(3.3, 3.2), sharex=True, sharey=True, layout="constrained")
        cmap = plt.get_cmap("viridis_r")
        for ax, region in zip(axes, regions, strict=True):
            part = wide.loc[region]
            n = len(part)
            colours = cmap(np.linspace(0.1, 0.95, n))
            cap, will = part[("mean", "capability")].to_numpy(), part[("mean", "willingness")].to_numpy()
            xerr = np.abs(np.vstack([cap - part[(LOW, "capability")], part[(HIGH, "capability")] - cap]))
            yerr = np.abs(np.vstack([will - part[(LOW, "willingness")], part[(HIGH, "willingness")] - will]))
            ax.errorbar(cap, will, xerr=xerr, yerr=yerr, fmt="none", ecolor="0.75", elinewidth=0.7, zorder=1)
            ax.plot(cap, will, color="0.4", lw=0.8, zorder=2)
            ax.scatter(cap, will, c=colours, s=14, zorder=3, edgecolors="none")
            # the first period's label up and right of its point, the last's down and left of its own: a path that
            # ends where it began does not write one over the other
            ax.annotate(str(part.index[0]), (cap[0], will[0]), fontsize=6, color="0.3", xytext=(3, 3),
                        textcoords="offset points", ha="left", va="bottom")
            ax.annotate(str(part.index[-1]), (cap[-1], will[-1]), fontsize=6, color="0.1", xytext=(-3, -3),
                        textcoords="offset points", ha="right", va="top")
            for trait, line in (("capability", ax.axvline), ("willingness", ax.axhline)):
                mean, low, up = thresholds[trait]
                line(mean, color="black", lw=0.9, ls="--")
                if up > low:
                    span = ax.axvspan if trait == "capability" else ax.axhspan
                    span(low, up, color="0.85", alpha=0.5, lw=0)
            corners = {"hegemonic": (hi, hi, "right", "top"), "captured": (hi, lo, "right", "bottom"),
                       "degraded": (lo, hi, "left", "top"), "failed": (lo, lo, "left", "bottom")}
            for label, (x, y, ha, va) in corners.items():
                ax.text(x - 0.05 if ha == "right" else x + 0.05, y - 0.05 if va == "top" else y + 0.05, label,
                        ha=ha, va=va, fontsize=7, color=TYPE_COLOURS[label], alpha=0.9)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_title(str(region))
        for ax in axes:
            ax.set_xlabel("capability")
            ax.set_ylabel("willingness")
        fig.suptitle("Typology map: posterior mean and interval per period, thresholds dashed")
    return fig


def type_heatmaps(probs: xr.DataArray) -> Figure:
    """P(type) per region (rows) and period (columns), one panel per type, on a common 0-1 scale."""
    with plt.rc_context(RC):
        regions = [str(r) for r in probs["region"].values]
        periods = list(probs["period"].values)
        types = [str(t) for t in probs["type"].values]
        width = max(4.0, 0.22 * len(periods) + 1.5)
        height = max(1.6, 0.28 * len(regions) + 0.9)
        fig, axes = plt.subplots(len(types), 1, figsize=(width, (height + 0.4) * len(types)), squeeze=False,
                                 layout="constrained")
        for ax, name in zip(axes[:, 0], types, strict=True):
            values = probs.sel(type=name).transpose("region", "period").values
            image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto", interpolation="nearest")
            ax.set_yticks(np.arange(len(regions)), regions)
            _ticks(ax, periods, max_ticks=20)
            ax.set_title(f"P({name})")
        fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.6, label="posterior probability")
        for ax in axes[:-1, 0]:
            ax.tick_params(labelbottom=False)     # one row of period labels, under the last panel
    return fig


def modal_type_map(probs: xr.DataArray) -> Figure:
    """Modal type per region-period (colour) with its posterior probability (opacity and number)."""
    with plt.rc_context(RC):
        regions = [str(r) for r in probs["region"].values]
        periods = list(probs["period"].values)
        types = [str(t) for t in probs["type"].values]
        values = probs.transpose("region", "period", "type").values
        modal, best = values.argmax(-1), values.max(-1)
        rgba = np.zeros((*modal.shape, 4))
        for k, name in enumerate(types):
            rgba[modal == k] = matplotlib.colors.to_rgba(TYPE_COLOURS.get(name, "grey"))
        rgba[..., 3] = 0.25 + 0.75 * best
        fig, ax = plt.subplots(figsize=(max(4.0, 0.42 * len(periods) + 2.8), max(1.8, 0.36 * len(regions) + 1.4)),
                               layout="constrained")
        ax.imshow(rgba, aspect="auto", interpolation="nearest")
        if len(periods) * len(regions) <= 400:
            for (i, j), p in np.ndenumerate(best):
                ax.text(j, i, f"{p:.2f}".removeprefix("0"), ha="center", va="center", fontsize=7,
                        color="white" if p > 0.6 else "black", fontweight="bold")
        ax.set_yticks(np.arange(len(regions)), regions)
        _ticks(ax, periods, max_ticks=30)
        ax.set_xlabel("period")
        handles = [matplotlib.patches.Patch(color=TYPE_COLOURS.get(t, "grey"), label=t) for t in types]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        ax.set_title("Modal type (opacity and number: its posterior probability)")
    return fig


def type_maps(probs: xr.DataArray, shown: list, shown_note: str = "") -> dict[str, tuple[str, Figure]]:
    """The modal-type map and the type-probability heat maps (caption, figure), one row per region of ``shown``.

    ``shown`` and ``shown_note`` are :func:`spread_regions`'s: beyond :data:`MAX_PANELS` regions the rows are
    those regions (the per-region grids' own), and the captions say so; every region stays in the table.
    """
    note = shown_note.replace("traits.csv", "type_probabilities.csv")
    if len(shown) < probs.sizes["region"]:
        probs = probs.sel(region=list(shown))
    return {"modal_type": ("Modal type of each region-period and its posterior probability." + note,
                           modal_type_map(probs)),
            "type_probabilities": ("Posterior probability of each type, region by period." + note,
                                   type_heatmaps(probs))}


def transition_heatmaps(matrices: pd.DataFrame) -> Figure:
    """Pooled transition matrix per country: posterior mean P(to | from) with its interval in each cell.

    Each row is labelled with the number of region-steps it rests on (posterior mean) and the share
    of draws in which it is defined; rows resting on fewer than :data:`THIN_ROW_COUNT` region-steps
    are hatched and their numbers greyed, as their intervals say little.
    """
    with plt.rc_context(RC):
        countries = list(dict.fromkeys(matrices["country"]))
        types = list(TYPES)
        fig, axes = _grid(len(countries), ncols=2, size=(5.2, 4.2), layout="constrained")
        for ax, country in zip(axes, countries, strict=True):
            part = matrices[matrices["country"] == country].set_index(["from", "to"])
            mean = np.array([[part.loc[(a, b), "mean"] for b in types] for a in types], dtype=float)
            ax.imshow(np.nan_to_num(mean, nan=0.0), vmin=0, vmax=1, cmap="Blues")
            labels = []
            for i, a in enumerate(types):
                count, defined = part.loc[(a, types[0]), "from_count"], part.loc[(a, types[0]), "p_row_defined"]
                thin = count < THIN_ROW_COUNT
                labels.append(f"{a}\n(n = {count:.1f}, {defined:.0%})")
                if thin:
                    ax.add_patch(matplotlib.patches.Rectangle((-0.5, i - 0.5), len(types), 1, facecolor="0.92",
                                                              edgecolor="0.6", hatch="///", lw=0, zorder=1.5))
                for j, b in enumerate(types):
                    row = part.loc[(a, b)]
                    text = ("n/a" if np.isnan(row["mean"])
                            else f"{row['mean']:.2f}\n[{row[LOW]:.2f}, {row[HIGH]:.2f}]")
                    colour = "0.45" if thin else ("white" if np.nan_to_num(row["mean"]) > 0.6 else "black")
                    ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color=colour, zorder=3)
            ax.set_xticks(range(len(types)), types, rotation=30, ha="right")
            ax.set_yticks(range(len(types)), labels)
            ax.set_xlabel("to (next period)")
            ax.set_ylabel("from (region-steps, share of draws defined)")
            ax.set_title(str(country))
        fig.suptitle(f"Hatched rows rest on fewer than {THIN_ROW_COUNT} region-steps: read their intervals as "
                     "'little information'", fontsize=8)
    return fig


def sensitivity_heatmaps(table: pd.DataFrame) -> Figure:
    """Mean share of region-periods of each type as the capability (x) and willingness (y) thresholds move."""
    with plt.rc_context(RC):
        types = list(TYPES)
        fig, axes = _grid(len(types), ncols=4, size=(2.6, 2.5), layout="constrained")
        cap = sorted(table["capability_shift"].unique())
        will = sorted(table["willingness_shift"].unique())
        for ax, name in zip(axes, types, strict=True):
            grid = table.pivot(index="willingness_shift", columns="capability_shift", values=name).loc[will, cap]
            ax.imshow(grid.values, vmin=0, vmax=1, cmap="viridis", origin="lower")
            for (i, j), v in np.ndenumerate(grid.values):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
            ax.set_xticks(range(len(cap)), [f"{c:+g}" for c in cap])
            ax.set_yticks(range(len(will)), [f"{w:+g}" for w in will])
            ax.set_xlabel("capability threshold shift")
            ax.set_ylabel("willingness threshold shift")
            ax.set_title(f"share {name}")
    return fig


def trait_trajectories(summary: pd.DataFrame, thresholds: dict[str, tuple[float, float, float]]) -> Figure:
    """Each trait over periods, one panel per region: posterior mean with its interval band.

    Typology thresholds, when given, are dashed lines; thresholds at the same value are drawn once.
    """
    with plt.rc_context(RC):
        regions = list(dict.fromkeys(summary["region"]))
        traits = list(dict.fromkeys(summary["trait"]))
        periods = list(dict.fromkeys(summary["period"]))
        x = np.arange(len(periods))
        colours = plt.get_cmap("tab10")
        lines = _threshold_lines({t: thresholds[t][0] for t in traits if t in thresholds},
                                 {t: colours(k) for k, t in enumerate(traits)})
        fig, axes = _grid(len(regions), size=(3.4, 2.5), sharex=True, sharey=True, layout="constrained")
        for ax, region in zip(axes, regions, strict=True):
            for k, trait in enumerate(traits):
                part = summary[(summary["region"] == region) & (summary["trait"] == trait)]
                part = part.set_index("period").loc[periods]
                ax.fill_between(x, part[LOW], part[HIGH], color=colours(k), alpha=0.25, lw=0)
                ax.plot(x, part["mean"], color=colours(k), lw=1.2, label=trait)
            for value, colour, label in lines:
                ax.axhline(value, color=colour, lw=0.8, ls="--", label=label)
            ax.set_title(str(region))
            _ticks(ax, periods)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(traits) + len(lines),
                   fontsize=7, frameon=False)
        fig.suptitle(f"Traits over periods (posterior mean and {CI_PROB:.0%} interval"
                     + ("; dashed: typology thresholds)" if lines else ")"))
    return fig


def _threshold_lines(values: dict[str, float], colours: dict) -> list[tuple[float, object, str]]:
    """(value, colour, legend label) per distinct threshold: equal thresholds share one black line."""
    out = []
    for value in dict.fromkeys(values.values()):
        traits = [t for t, v in values.items() if v == value]
        colour = colours[traits[0]] if len(traits) == 1 else "black"
        out.append((value, colour, f"threshold: {' and '.join(traits)}"))
    return out
