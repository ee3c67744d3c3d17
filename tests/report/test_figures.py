"""The report's figures: no text drawn over other text, the right parameters in the pair plot, thin
transition rows marked, thresholds drawn once, resolution and SVG on request; and the run folder's
CSV columns (country, sd, the interval named by its quantiles).

The report that `nexusbayes fit` wrote for the tiny fit of tests/conftest.py (``hostile_report``) had
every figure checked before it was rendered; the country-comparison figures, which need several countries, are drawn
from small synthetic inputs.
"""

import hashlib
import itertools
import struct

import arviz_plots as azp
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib import pyplot as plt
from matplotlib.text import Text

from nexusbayes import report as report_module
from nexusbayes.constants import TYPES
from nexusbayes.model.build import build_model
from nexusbayes.report import build_report, checks, comparison, figures, header
from nexusbayes.report.run import summary_text


# ---- the overlap check ---------------------------------------------------------------------------
def drawn_texts(fig) -> list[tuple[Text, object]]:
    """Every non-empty text the figure draws, with its box in display coordinates.

    Texts are collected while ``fig.canvas.draw()`` draws them, so hidden axes, tick labels outside
    the view and empty strings (which are not drawn) are left out.
    """
    drawn = []
    original = Text.draw

    def draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return original(self, renderer)

    Text.draw = draw
    try:
        fig.canvas.draw()
    finally:
        Text.draw = original
    renderer = fig.canvas.get_renderer()
    return [(text, text.get_window_extent(renderer)) for text in drawn]


def overlapping_text(fig, tolerance: float = 1.0) -> list[tuple[str, str, float, float]]:
    """Pairs of drawn texts whose boxes overlap by more than ``tolerance`` pixels both ways."""
    out = []
    for (a, box_a), (b, box_b) in itertools.combinations(drawn_texts(fig), 2):
        width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if width > tolerance and height > tolerance:
            out.append((a.get_text(), b.get_text(), round(width, 1), round(height, 1)))
    return out


def test_the_overlap_check_finds_text_drawn_over_text():
    fig = plt.figure(figsize=(3, 2))
    fig.text(0.5, 0.5, "a long label", ha="center")
    fig.text(0.55, 0.52, "over it", ha="center")
    fig.text(0.5, 0.9, "well above", ha="center")
    fig.text(0.5, 0.1, "", ha="center")                       # empty: not counted
    found = overlapping_text(fig)
    plt.close(fig)
    assert [f[:2] for f in found] == [("a long label", "over it")]
    fig, ax = plt.subplots()
    ax.set_title("alone")
    ax.set_visible(False)                     # hidden: not drawn, so not counted
    assert overlapping_text(fig) == []
    plt.close(fig)


# ---- every figure of a report --------------------------------------------------------------------
@pytest.fixture(scope="module")
def checked_report(hostile_report):
    """The hostile fit's report as `nexusbayes fit` wrote it, each figure's overlapping texts recorded (conftest)."""
    return hostile_report


def test_no_figure_of_the_report_draws_text_over_text(checked_report):
    report, found = checked_report
    assert len(found) == len(report.figures) > 15
    bad = {stem: pairs for stem, pairs in zip(report.figures, found.values(), strict=True) if pairs}
    assert not bad, bad


def _synthetic_countries(seed=0):
    rng = np.random.default_rng(seed)
    countries, periods = ["Kyrgyzstan", "Tajikistan", "Uzbekistan"], list(range(2000, 2016))
    traits = ["capability", "willingness"]
    ct = xr.DataArray(rng.normal(size=(2, 50, 3, len(periods), 2)),
                      dims=("chain", "draw", "country", "period", "trait"),
                      coords={"country": countries, "period": periods, "trait": traits})
    return ct, countries, periods, traits


def test_no_country_comparison_figure_draws_text_over_text():
    ct, countries, periods, traits = _synthetic_countries()
    ranks = xr.DataArray(np.full((len(countries), len(periods), 2, len(countries)), 1 / 3),
                         dims=("country", "period", "trait", "rank"),
                         coords={"country": countries, "period": periods, "trait": traits, "rank": [1, 2, 3]})
    region_country = {f"{c}-R{k}": c for c in countries for k in range(3)}
    rng = np.random.default_rng(1)
    rows = [{"region": r, "period": p, "trait": t, "mean": rng.normal()}
            for r in region_country for p in periods for t in traits]
    thresholds = {"capability": (0.0, 0.0, 0.0), "willingness": (0.0, 0.0, 0.0)}
    made = {"country_trajectories": comparison.country_trajectories(ct),
            "rank_probabilities": comparison.rank_bars(ranks, periods[-1]),
            "typology_by_country": comparison.typology_by_country(pd.DataFrame(rows), region_country, thresholds),
            "country_forest": comparison.forest_periods(xr.DataTree.from_dict(
                {"posterior": xr.Dataset({"country_theta": ct})}), periods[::4])}
    bad = {}
    for stem, fig in made.items():
        bad[stem] = overlapping_text(fig)
        plt.close(fig)
    assert not any(bad.values()), bad


# ---- what the figures show ------------------------------------------------------------------------
def test_pair_plot_takes_one_element_per_free_parameter(hostile):
    fit, _ = hostile
    model = build_model(fit.panel, fit.spec)
    deterministic = {v.name for v in model.deterministics}
    worst = checks.worst_mixing(fit.tree, fit.diagnostics, exclude=deterministic)
    names = [label.split("[")[0] for label in worst["posterior"].data_vars]
    assert len(names) == checks.N_WORST and len(set(names)) == len(names), names
    assert set(names) <= {v.name for v in model.free_RVs}, names
    unfiltered = checks.worst_mixing(fit.tree, fit.diagnostics)       # without the model's help
    assert len({label.split("[")[0] for label in unfiltered["posterior"].data_vars}) == checks.N_WORST


def test_the_pair_plot_leaves_out_an_element_that_varies_by_a_few_steps_of_its_precision():
    """A chain stuck at a boundary in single precision: its draws differ in the last bits only, and a density of
    them cannot be binned (numpy: "Too many bins for data range"); the pair plot draws the others."""
    from nexusbayes.analysis.diagnostics import diagnose

    rng = np.random.default_rng(0)
    stuck = (np.float32(0.25) + np.spacing(np.float32(0.25)) * rng.integers(0, 3, (2, 200))).astype("float32")
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"a": (("chain", "draw"), rng.normal(size=(2, 200))),
                                 "b": (("chain", "draw"), rng.normal(size=(2, 200))),
                                 "stuck": (("chain", "draw"), stuck)}),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 200), bool)),
                                    "energy": (("chain", "draw"), rng.normal(size=(2, 200)))})})
    worst = checks.worst_mixing(tree, diagnose(tree))
    assert set(worst["posterior"].data_vars) == {"a", "b"}
    fig = checks.render(azp.plot_pair, worst, marginal=True)
    plt.close(fig)


def _matrices(counts: dict[str, float]) -> pd.DataFrame:
    rows = [{"country": "KG", "from": a, "to": b, "mean": 0.25, "sd": 0.1, "q05": 0.0, "q95": 1.0,
             "p_row_defined": 0.92 if counts[a] < 1 else 1.0, "from_count": counts[a]} for a in TYPES for b in TYPES]
    return pd.DataFrame(rows)


def test_thin_transition_rows_are_hatched_and_labelled_with_their_support():
    counts = dict(zip(TYPES, (0.4, 12.0, 30.0, 4.9), strict=True))
    fig = figures.transition_heatmaps(_matrices(counts))
    ax = fig.axes[0]
    hatched = sorted(round(p.get_y() + 0.5) for p in ax.patches if p.get_hatch())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    plt.close(fig)
    assert hatched == [0, 3]                                  # hegemonic (0.4 steps) and failed (4.9 < 5)
    assert labels[0] == "hegemonic\n(n = 0.4, 92%)" and labels[1] == "captured\n(n = 12.0, 100%)"


def _summary(traits=("capability", "willingness")):
    return pd.DataFrame([{"region": r, "period": p, "trait": t, "mean": 0.1, "q05": -0.5, "q95": 0.5}
                         for r in ("A", "B") for p in (2000, 2001, 2002) for t in traits])


def test_equal_thresholds_are_drawn_once_and_no_thresholds_are_not_announced():
    both = {"capability": (0.0, 0.0, 0.0), "willingness": (0.0, 0.0, 0.0)}
    fig = figures.trait_trajectories(_summary(), both)
    dashed = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    title = fig._suptitle.get_text()
    plt.close(fig)
    assert len(dashed) == 1 and "threshold: capability and willingness" in labels and "dashed" in title
    fig = figures.trait_trajectories(_summary(("capacity",)), {})
    title = fig._suptitle.get_text()
    assert not [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    plt.close(fig)
    assert "dashed" not in title and "threshold" not in title


def _png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]


def test_dpi_scales_the_png_and_svg_is_rendered_only_when_asked():
    def fig():
        return figures.trait_trajectories(_summary(), {})

    low, high = figures.png(fig(), dpi=100), figures.png(fig(), dpi=300)
    assert _png_width(high) == pytest.approx(3 * _png_width(low), rel=0.02)
    png, svg = figures.render(fig(), "png", "svg", dpi=300)
    assert png == high and svg.lstrip().startswith(b"<?xml") and b"<svg" in svg


def test_report_files_hold_svgs_only_when_asked(checked_report):
    report, _ = checked_report
    files = report.files()
    assert not any(name.endswith(".svg") for name in files)
    assert {f"{stem}.png" for stem in report.figures} | {f"{stem}.csv" for stem in report.tables} | {"report.html"} \
        == set(files)


# ---- the header and the verdict -------------------------------------------------------------------
def test_every_data_file_of_a_multi_file_fit_is_hashed_and_named(tmp_path):
    one, two = tmp_path / "KG.csv", tmp_path / "TJ.csv"
    one.write_text("a\n1\n")
    two.write_text("a\n2\n")
    facts = header.file_digests(f"{one} + {two}")
    assert facts == {"SHA-256 of data file 1 now (KG.csv)": hashlib.sha256(b"a\n1\n").hexdigest(),
                     "SHA-256 of data file 2 now (TJ.csv)": hashlib.sha256(b"a\n2\n").hexdigest()}
    two.unlink()
    assert header.file_digests(f"{one} + {two}")["SHA-256 of data file 2 now (TJ.csv)"] \
        == f"(file not found: {two})"
    assert header.file_digests(str(one)) == {"SHA-256 of the data file now":
                                                     hashlib.sha256(b"a\n1\n").hexdigest()}


def test_verdict_states_the_rank_plot_tests(checked_report):
    report, _ = checked_report
    rank = report.tables["rank_tests"]
    flagged = int(rank["flagged"].sum())
    assert f'id="rank-tests" data-flagged="{flagged}"' in report.html
    assert f"{flagged} of {len(rank)} panels" in report.html


def test_worst_elements_are_named_by_their_dimensions():
    post = xr.Dataset({"region_z": (("chain", "draw", "region_contrast", "step", "trait"), np.zeros((1, 1, 2, 2, 1)))},
                      coords={"region_contrast": [0, 1], "step": [2001, 2002], "trait": ["willingness"]})
    assert report_module._named("region_z[1, 2002, willingness]", post) \
        == "region_z[region_contrast=1, step=2002, trait=willingness]"
    assert report_module._named("chain 0", post) == "chain 0"


# ---- the run folder's CSV tables ------------------------------------------------------------------
def test_run_folder_tables_carry_country_sd_and_named_intervals(hostile_run, hostile):
    _, run = hostile_run
    fit, _ = hostile
    traits = pd.read_csv(run / "traits.csv")
    assert list(traits.columns) == ["country", "region", "period", "trait", "mean", "sd", "q05", "q95"]
    assert (traits["country"] == traits["region"].map(fit.region_country)).all()
    assert (traits["q05"] <= traits["mean"]).all() and (traits["mean"] <= traits["q95"]).all()
    assert (traits["sd"] > 0).all()
    transitions = pd.read_csv(run / "transitions.csv")
    assert list(transitions.columns) == ["country", "region", "step", "from", "to", "transition_probability"]
    assert (transitions["country"] == transitions["region"].map(fit.region_country)).all()
    matrices = pd.read_csv(run / "transition_matrices.csv")
    assert {"country", "mean", "sd", "q05", "q95", "p_row_defined", "from_count"} <= set(matrices.columns)
    for table in (traits, transitions, matrices):       # 4 significant digits (at least 2 decimals)
        values = table.select_dtypes("float").to_numpy().ravel()
        values = values[np.isfinite(values) & (values != 0)]
        decimals = np.maximum(3 - np.floor(np.log10(np.abs(values))), 2)
        np.testing.assert_allclose(values, [round(v, int(d)) for v, d in zip(values, decimals, strict=True)],
                                   rtol=0, atol=1e-12)


def test_printed_summary_shows_every_probability_column_with_two_decimals(hostile, monkeypatch):
    from nexusbayes.fit import Fit

    fit, _ = hostile
    groups = pd.DataFrame([{"group": "north", "era": "early", "hegemonic": 1.0, "captured": 0.0, "degraded": 0.0,
                            "failed": 0.0, "modal_type": "hegemonic", "modal_probability": 1.0},
                           {"group": "south", "era": "early", "hegemonic": 0.125, "captured": 0.5, "degraded": 0.25,
                            "failed": 0.125, "modal_type": "captured", "modal_probability": 0.5}])
    monkeypatch.setattr(Fit, "group_era_summary", lambda self: groups)
    text = summary_text(fit)
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["north"], ["south"])]
    assert rows == [["north", "early", "1.00", "0.00", "0.00", "0.00", "hegemonic", "1.00"],
                    ["south", "early", "0.12", "0.50", "0.25", "0.12", "captured", "0.50"]]


def test_rank_tests_flag_chains_that_disagree_and_the_caption_says_so():
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(2, 300))
    draws[1] += 3.0                                                 # chain 1 sits elsewhere
    post = xr.Dataset({"sigma_normal": (("chain", "draw"), draws),
                       "ar_phi": (("chain", "draw"), rng.normal(size=(2, 300)))})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 300), dtype=bool))})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    rank = checks.rank_tests(checks.hyperparameters(tree, ["sigma_normal", "ar_phi"]))
    assert rank.set_index("variable")["flagged"].to_dict() == {"sigma_normal": True, "ar_phi": False}
    assert rank["alpha"].tolist() == pytest.approx([0.01, 0.01])
    caption = checks.rank_caption(rank)
    assert "α = 0.01" in caption and "1 of 2 panels fail it (sigma_normal p = 0.0" in caption
    assert "the verdict lists this as a warning" in caption
    assert "every panel passes its test" in checks.rank_caption(rank[~rank["flagged"]])


@pytest.mark.parametrize("dpi", [0, 49, 1201, 150.5, "300", True])
def test_a_bad_dpi_is_refused_before_any_work(dpi):
    from nexusbayes.errors import NexusBayesError

    with pytest.raises(NexusBayesError, match=r"dpi = .*: give a whole number from 50 to 1200"):
        build_report(None, dpi=dpi)         # no fit needed: refused first
