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

__all__ = ["country_trajectories", "forest_periods", "rank_bars", "rank_intervals", "section", "typology_by_country",
           "png"]

SAMPLE = ("chain", "draw")
#: Countries up to which the figures show every country's band, legend entry and stacked rank probabilities;
#: beyond, the compact kind (a ~190-country panel would otherwise draw 190 bands and 190 x 190 bars).
FIGURE_COUNTRIES = 12


def _colours(countries) -> dict:
    cmap = plt.get_cmap("tab10")
    return {c: cmap(i % 10) for i, c in enumerate(countries)}


def country_trajectories(country_theta: xr.DataArray, ci_prob: float = CI_PROB) -> Figure:
    """One panel per trait: each country's trait over periods, posterior mean and ``ci_prob`` band.

    With more than :data:`FIGURE_COUNTRIES` countries, thin lines of the means only (no bands, no legend):
    the shape of the panel, not a country to read off.
    """
    many = country_theta.sizes["country"] > FIGURE_COUNTRIES
    traits = list(country_theta["trait"].values)
    periods = list(country_theta["period"].values)
    x = np.arange(len(periods))
    colours = _colours(country_theta["country"].values)
    lower, upper = eti(country_theta, ci_prob, SAMPLE)
    mean = country_theta.mean(SAMPLE)
    with plt.rc_context(RC):
        fig, axes = _grid(len(traits), ncols=2, size=(4.6, 3.0), layout="constrained")
        for ax, trait in zip(axes, traits, strict=False):
            if many:
                ax.plot(x, mean.sel(trait=trait).transpose("period", "country").values, color="steelblue",
                        linewidth=0.5, alpha=0.5)
            for country, colour in ({} if many else colours).items():
                sel = {"country": country, "trait": trait}
                ax.fill_between(x, lower.sel(sel), upper.sel(sel), color=colour,
                                alpha=0.2, linewidth=0)
                ax.plot(x, mean.sel(sel), color=colour, label=str(country))
            ax.axhline(0.0, color="grey", linewidth=0.6, linestyle="--")
            ax.set_title(str(trait))
            _ticks(ax, periods)
        if not many:
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
        if len(colours) <= FIGURE_COUNTRIES:
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


def rank_intervals(ranks: xr.DataArray, period, ci_prob: float = CI_PROB) -> Figure:
    """Expected rank and its ``ci_prob`` interval per country and trait at one period, countries by expected rank.

    The compact form of :func:`rank_bars` for many countries (one row per country, no stacked bars).
    """
    sub = ranks.sel(period=period)
    traits = list(sub["trait"].values)
    n = sub.sizes["rank"]
    cdf = sub.cumsum("rank")
    tail = (1 - ci_prob) / 2
    with plt.rc_context(RC):
        fig, axes = _grid(len(traits), ncols=2, size=(4.2, 1.2 + 0.06 * sub.sizes["country"]), layout="constrained")
        for ax, trait in zip(axes, traits, strict=False):
            expected = (sub.sel(trait=trait) * sub["rank"]).sum("rank").values
            low = (cdf.sel(trait=trait) < tail - 1e-12).sum("rank").values + 1
            high = (cdf.sel(trait=trait) < 1 - tail - 1e-12).sum("rank").values + 1
            order = np.argsort(expected, kind="stable")
            y = np.arange(len(order))
            ax.hlines(y, low[order], high[order], color="grey", linewidth=0.8)
            ax.plot(expected[order], y, "o", color="black", markersize=2)
            labels = [str(c) for c in sub["country"].values[order]]
            step = max(1, len(labels) // 60)
            ax.set_yticks(y[::step], labels[::step], fontsize=5)
            ax.set_xlim(0.5, n + 0.5)
            ax.set_xlabel("rank (1 = highest)")
            ax.set_title(f"{trait}, {period}")
            ax.invert_yaxis()
    return fig


def section(fit: Fit, tables: dict, thresholds: dict,
            results: dict | None = None) -> dict[str, tuple[str, Figure]]:
    """Country comparisons (fits with several countries): tables (added to ``tables``) and figures for section 5.

    The ``compare_*`` tables are taken from ``results`` (:func:`nexusbayes.report.tables.result_tables`) when
    there, else computed (:func:`~nexusbayes.report.tables.report_comparison_tables`), once per report. With
    more than :data:`FIGURE_COUNTRIES` countries the figures are the compact kind, and their captions say so.
    """
    from nexusbayes.analysis.compare import rank_probabilities
    from nexusbayes.report.tables import report_comparison_tables

    stems = [k for k in (results or {}) if k.startswith("compare_")]
    tables.update({k: results[k] for k in stems} if stems else report_comparison_tables(fit))
    post = fit.tree["posterior"]
    periods = list(post["period"].values)
    n = post.sizes["country"]
    many = n > FIGURE_COUNTRIES
    shown = [periods[-1]] if many else periods[:: max(1, len(periods) // 5)][:6]
    capped = (f" With {n} countries (more than {FIGURE_COUNTRIES}) this figure is compact: " if many else "")
    out = {}
    out["country_trajectories"] = (
        f"Country traits over periods (the average of each country's regions): posterior mean and {CI_PROB:.0%} "
        "band, on the fit's common latent scale." + (capped + "means only, no bands or legend; any country's "
                                                    "band is in compare_country_ranks.csv and `nexusbayes "
                                                    "compare FIT.nc A B`." if many else ""),
        (country_trajectories(post["country_theta"])))
    out["country_forest"] = (
        f"Country traits at {'the last period' if many else 'selected periods'} (forest plot: 50% and "
        f"{CI_PROB:.0%} intervals).", forest_periods(fit.tree, shown))
    if thresholds:
        out["typology_by_country"] = (
            "Typology map by country: each region-period's posterior mean, coloured by country."
            + (capped + "no legend (country types: compare_country_types.csv)." if many else ""),
            (typology_by_country(tables["traits"], fit.region_country, thresholds)))
    ranks = rank_probabilities(fit)
    out["rank_probabilities"] = (
        (f"Ranks of the countries in {periods[-1]}: expected rank and {CI_PROB:.0%} interval (rank 1 = highest)."
         + capped + "intervals instead of stacked rank probabilities (all in compare_country_ranks.csv).")
        if many else f"Rank probabilities of the countries in {periods[-1]} (rank 1 = highest).",
        rank_intervals(ranks, periods[-1]) if many else rank_bars(ranks, periods[-1]))
    return out
