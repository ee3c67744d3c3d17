r"""Figures comparing countries, for fits with more than one country (report section 5).

Trait trajectories by country with bands, a forest plot of country traits by period
(arviz-plots), the typology map coloured by country, and rank probabilities.

Examples
--------
>>> import numpy as np, xarray as xr
>>> rng = np.random.default_rng(0)
>>> ct = xr.DataArray(rng.normal(size=(2, 50, 2, 3, 2)), dims=("chain", "draw", "country", "period", "trait"),
...                   coords={"country": ["KG", "TJ"], "period": [2000, 2001, 2002],
...                           "trait": ["capability", "willingness"]})
>>> png(country_trajectories(ct))[:4] == b"\x89PNG"
True
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nexusbayes.analysis.typology import eti  # noqa: E402
from nexusbayes.constants import CI_PROB  # noqa: E402
from nexusbayes.fit import Fit  # noqa: E402
from nexusbayes.report.figures import RC, _grid, _ticks, png  # noqa: E402

__all__ = ["country_trajectories", "forest_periods", "rank_bars", "section", "typology_by_country", "png"]

SAMPLE = ("chain", "draw")


def _colours(countries) -> dict:
    cmap = plt.get_cmap("tab10")
    return {c: cmap(i % 10) for i, c in enumerate(countries)}


def country_trajectories(country_theta: xr.DataArray, ci_prob: float = CI_PROB) -> Figure:
    """One panel per trait: each country's trait over periods, posterior mean and ``ci_prob`` band."""
    traits = list(country_theta["trait"].values)
    periods = list(country_theta["period"].values)
    x = np.arange(len(periods))
    colours = _colours(country_theta["country"].values)
    lower, upper = eti(country_theta, ci_prob, SAMPLE)
    mean = country_theta.mean(SAMPLE)
    with plt.rc_context(RC):
        fig, axes = _grid(len(traits), ncols=2, size=(4.6, 3.0), layout="constrained")
        for ax, trait in zip(axes, traits, strict=False):
            for country, colour in colours.items():
                sel = {"country": country, "trait": trait}
                ax.fill_between(x, lower.sel(sel), upper.sel(sel), color=colour,
                                alpha=0.2, linewidth=0)
                ax.plot(x, mean.sel(sel), color=colour, label=str(country))
            ax.axhline(0.0, color="grey", linewidth=0.6, linestyle="--")
            ax.set_title(str(trait))
            _ticks(ax, periods)
        axes[0].legend(fontsize=7, frameon=False)
    return fig


def forest_periods(tree: xr.DataTree, periods: list, ci_prob: float = CI_PROB) -> Figure:
    """Forest plot (arviz-plots) of ``country_theta`` at the given periods."""
    import arviz_plots as azp

    from nexusbayes.report.checks import render

    post = tree["posterior"].to_dataset()[["country_theta"]].sel(period=periods)
    return render(azp.plot_forest, xr.DataTree.from_dict({"posterior": post}), var_names=["country_theta"],
                  combined=True, ci_probs=(0.5, ci_prob))


def typology_by_country(summary: pd.DataFrame, region_country: dict[str, str],
                        thresholds: dict[str, tuple[float, float, float]]) -> Figure:
    """The capability-willingness plane, every region-period's posterior mean coloured by country."""
    wide = summary.pivot_table(index=["region", "period"], columns="trait", values="mean").reset_index()
    wide["country"] = wide["region"].map(region_country)
    colours = _colours(sorted(set(region_country.values())))
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(5.2, 4.4), layout="constrained")
        for country, colour in colours.items():
            part = wide[wide["country"] == country]
            ax.scatter(part["capability"], part["willingness"], s=9, color=colour, alpha=0.7, label=str(country))
        cap, will = thresholds["capability"][0], thresholds["willingness"][0]
        ax.axvline(cap, color="black", linestyle="--", linewidth=0.8)
        ax.axhline(will, color="black", linestyle="--", linewidth=0.8)
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        for text, x, y, ha, va in (("hegemonic", x1, y1, "right", "top"), ("captured", x1, y0, "right", "bottom"),
                                   ("degraded", x0, y1, "left", "top"), ("failed", x0, y0, "left", "bottom")):
            ax.text(x, y, text, ha=ha, va=va, fontsize=8, color="dimgrey")
        ax.set_xlabel("capability")
        ax.set_ylabel("willingness")
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def rank_bars(ranks: xr.DataArray, period) -> Figure:
    """Stacked P(rank) per country and trait at one period (rank 1 = highest)."""
    sub = ranks.sel(period=period)
    traits = list(sub["trait"].values)
    countries = [str(c) for c in sub["country"].values]
    cmap = plt.get_cmap("viridis", sub.sizes["rank"])
    with plt.rc_context(RC):
        fig, axes = _grid(len(traits), ncols=2, size=(4.2, 0.9 + 0.45 * len(countries)), layout="constrained")
        for ax, trait in zip(axes, traits, strict=False):
            left = np.zeros(len(countries))
            for k, rank in enumerate(sub["rank"].values):
                share = sub.sel(trait=trait, rank=rank).values
                ax.barh(countries, share, left=left, color=cmap(k), label=f"rank {rank}")
                left += share
            ax.set_xlim(0, 1)
            ax.set_title(f"{trait}, {period}")
            ax.invert_yaxis()
        fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, frameon=False, loc="outside lower center",
                   ncol=min(6, sub.sizes["rank"]))
    return fig


def section(fit: Fit, tables: dict, thresholds: dict) -> dict[str, tuple[str, Figure]]:
    """Country comparisons (fits with several countries): tables (added to ``tables``) and figures for section 5."""
    from nexusbayes.analysis.compare import comparison_tables, rank_probabilities

    tables.update({f"compare_{k}": v for k, v in comparison_tables(fit, periods=None).items()})
    post = fit.tree["posterior"]
    periods = list(post["period"].values)
    shown = periods[:: max(1, len(periods) // 5)][:6]
    results = {}
    results["country_trajectories"] = (
        f"Country traits over periods (the average of each country's regions): posterior mean and {CI_PROB:.0%} "
        "band, on the fit's common latent scale.",
        (country_trajectories(post["country_theta"])))
    results["country_forest"] = (
        f"Country traits at selected periods (forest plot: 50% and {CI_PROB:.0%} intervals).",
        forest_periods(fit.tree, shown))
    if thresholds:
        results["typology_by_country"] = (
            "Typology map by country: each region-period's posterior mean, coloured by country.",
            (typology_by_country(tables["traits"], fit.region_country, thresholds)))
    results["rank_probabilities"] = (
        f"Rank probabilities of the countries in {periods[-1]} (rank 1 = highest).",
        (rank_bars(rank_probabilities(fit), periods[-1])))
    return results
