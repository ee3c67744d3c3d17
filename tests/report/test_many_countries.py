"""The report's country comparison at many countries: bounded tables and figures that say what they leave out.

Synthetic draws (no sampling): 30 countries of one region each, 3 periods, 2 traits, 2 x 100 draws.
"""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from nexusbayes.analysis.compare import REPORT_ALL_PAIRS, compare, differences, rank_draws, rank_probabilities
from nexusbayes.analysis.typology import SAMPLE_DIMS
from nexusbayes.report import comparison
from nexusbayes.report.tables import report_comparison_tables

N = 30


def many_fit(n: int) -> SimpleNamespace:
    rng = np.random.default_rng(1)
    countries = [f"C{i:02d}" for i in range(n)]
    level = rng.normal(0, 1, (1, 1, n, 1, 2))
    country_theta = level + rng.normal(0, 0.5, (2, 100, n, 3, 2))
    coords = {"country": countries, "region": [f"r{c}" for c in countries], "period": [2000, 2001, 2002],
              "trait": ["capability", "willingness"]}
    dims = ("chain", "draw", "country", "period", "trait")
    post = xr.Dataset({"country_theta": (dims, country_theta),
                       "theta": (("chain", "draw", "region", "period", "trait"), country_theta)}, coords=coords)
    tree = xr.DataTree.from_dict({"posterior": post})
    return SimpleNamespace(tree=tree, spec=SimpleNamespace(has_typology=False),
                           region_country={f"r{c}": c for c in countries}, panel=SimpleNamespace(countries=countries))


@pytest.fixture(scope="module")
def many():
    return many_fit(N)


def test_many_countries_compare_rank_neighbours_only_and_say_so(many):
    tables = report_comparison_tables(many)
    diff = tables["compare_differences"]
    pairs = list(dict.fromkeys(zip(diff["a"], diff["b"], strict=True)))
    assert len(pairs) <= 2 * (N - 1) < N * (N - 1) // 2
    assert len(diff) == len(pairs) * 3 * 2
    last = many.tree["posterior"]["country_theta"].isel(period=-1).mean(SAMPLE_DIMS)
    unordered = {frozenset(p) for p in pairs}
    for trait in ("capability", "willingness"):     # every step of each trait's ranking, and nothing else
        order = list(last["country"].values[np.argsort(-last.sel(trait=trait).values)])
        assert {frozenset(p) for p in zip(order[:-1], order[1:], strict=True)} <= unordered
    note = diff.attrs["note"]
    assert f"{len(pairs)} of the {N * (N - 1) // 2:,} pairs" in note and "nexusbayes compare FIT.nc A B" in note
    assert set(tables["compare_country_ranks"]["country"]) == set(many.panel.countries)   # ranks: every country
    some = pairs[:3]
    expected = pd.concat([compare(many, a, b, None) for a, b in some], ignore_index=True)
    pd.testing.assert_frame_equal(differences(many, some), expected, check_exact=False, rtol=1e-12, atol=1e-14)
    # one row order (period by period, traits within) whatever the order of the stored dims and coordinates
    post = many.tree["posterior"].to_dataset().transpose("chain", "draw", ..., "trait", "period")
    post = post.assign_coords(trait=post["trait"], period=post["period"])          # trait's coordinate first
    swapped = SimpleNamespace(**{**vars(many), "tree": xr.DataTree.from_dict({"posterior": post})})
    expected = pd.concat([compare(swapped, a, b, None) for a, b in some], ignore_index=True)
    assert list(expected["trait"][:2]) == ["capability", "willingness"]
    assert expected["period"][:6].is_monotonic_increasing
    pd.testing.assert_frame_equal(differences(swapped, some), expected, check_exact=False, rtol=1e-12, atol=1e-14)


def test_few_countries_keep_every_pair_without_a_note():
    few = many_fit(REPORT_ALL_PAIRS)
    diff = report_comparison_tables(few)["compare_differences"]
    assert len(set(zip(diff["a"], diff["b"], strict=True))) == REPORT_ALL_PAIRS * (REPORT_ALL_PAIRS - 1) // 2
    assert diff.attrs["note"] is None


def test_rank_probabilities_equal_counting_each_rank(many):
    ranks = rank_draws(many.tree["posterior"]["country_theta"], "country")
    brute = xr.concat([(ranks == k).mean(SAMPLE_DIMS) for k in range(1, N + 1)], dim="rank")
    got = rank_probabilities(many)
    np.testing.assert_allclose(got.values, brute.transpose("country", "period", "trait", "rank").values, atol=0)


def test_many_country_figures_are_compact_and_captions_say_so(many):
    tables = {}
    figs = comparison.section(many, tables, thresholds={})
    assert "compare_differences" in tables
    assert "more than" in figs["country_trajectories"][0] and "more than" in figs["rank_probabilities"][0]
    rank_fig = figs["rank_probabilities"][1]
    assert rank_fig.get_size_inches()[1] < 10                        # one row per country, not 30 x 30 bars
    assert sum(len(ax.patches) for ax in rank_fig.axes) == 0
    for _, fig in figs.values():
        plt.close(fig)


def test_type_maps_beyond_24_regions_draw_24_rows_spread_over_the_ranking_and_say_so():
    """189 regions: the modal-type map and the P(type) heat maps draw the per-region grids' 24, captions saying so."""
    from nexusbayes.constants import TYPES
    from nexusbayes.report import figures

    rng = np.random.default_rng(2)
    regions, periods = [f"R{i:03d}" for i in range(189)], [2000, 2001, 2002]
    means = rng.normal(size=len(regions))
    summary = pd.DataFrame([{"region": r, "period": p, "trait": "capability", "mean": m + 0.1 * k}
                            for r, m in zip(regions, means, strict=True) for k, p in enumerate(periods)])
    shown, note = figures.spread_regions(summary)
    raw = rng.dirichlet(np.ones(len(TYPES)), (len(regions), len(periods)))
    probs = xr.DataArray(raw, dims=("region", "period", "type"),
                         coords={"region": regions, "period": periods, "type": list(TYPES)})
    maps = figures.type_maps(probs, shown, note)
    assert len(shown) == figures.MAX_PANELS == 24
    ranked = [regions[i] for i in np.argsort(-(means + 0.2))]
    assert ranked[0] in shown and ranked[-1] in shown                 # the highest and the lowest among them
    for stem, (caption, fig) in maps.items():
        assert "24 of 189 regions shown" in caption and "type_probabilities.csv" in caption, stem
        for ax in fig.axes:
            if ax.get_label() != "<colorbar>":
                assert [t.get_text() for t in ax.get_yticklabels()] == shown, stem
                assert ax.images[0].get_array().shape[0] == 24, stem
        plt.close(fig)
    few = probs.isel(region=slice(0, 5))
    shown_few, note_few = figures.spread_regions(summary[summary["region"].isin(regions[:5])])
    for caption, fig in figures.type_maps(few, shown_few, note_few).values():
        assert "shown" not in caption and len(fig.axes[0].get_yticklabels()) == 5
        plt.close(fig)
