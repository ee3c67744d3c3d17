"""Typology and transitions on small synthetic DataTrees (no sampling)."""

import numpy as np
import pytest
import xarray as xr
from scipy.special import expit

from nexusbayes.analysis.typology import (
    classify,
    eti,
    group_era_summary,
    threshold_draws,
    threshold_sensitivity,
    trait_summary,
    transition_counts,
    transition_matrices,
    transition_probabilities,
    type_probabilities,
    types_table,
)
from nexusbayes.constants import TYPES
from nexusbayes.model.simulate import default_spec
from nexusbayes.spec.sections import AnchoredThreshold, Typology


def make_tree(theta: np.ndarray, regions=("A", "B"), periods=(2000, 2001, 2002)) -> xr.DataTree:
    """theta has shape (chain, draw, region, period, 2)."""
    post = xr.Dataset({"theta": (("chain", "draw", "region", "period", "trait"), theta)},
                      coords={"region": list(regions), "period": list(periods),
                              "trait": ["capability", "willingness"]})
    return xr.DataTree.from_dict({"posterior": post})


def test_classify_quadrants_follow_table_1():
    codes = classify(np.array([1, 1, -1, -1, 0.0]), np.array([1, -1, 1, -1, 0.0]), 0.0, 0.0)
    assert [TYPES[c] for c in codes] == ["hegemonic", "captured", "degraded", "failed", "failed"]


def test_type_probabilities_are_shares_of_draws():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(2, 50, 2, 3, 2))
    theta[:, :, 0, 0] = [2.0, 2.0]        # region A, 2000: always hegemonic
    theta[:, :25, 1, 2] = [2.0, -2.0]     # region B, 2002: half captured, half degraded
    theta[:, 25:, 1, 2] = [-2.0, 2.0]
    probs = type_probabilities(make_tree(theta), default_spec())
    assert probs.dims == ("region", "period", "type")
    np.testing.assert_allclose(probs.sum("type"), 1.0)
    assert float(probs.sel(region="A", period=2000, type="hegemonic")) == 1.0
    assert float(probs.sel(region="B", period=2002, type="captured")) == 0.5
    assert float(probs.sel(region="B", period=2002, type="degraded")) == 0.5
    table = types_table(probs, {"A": "KG", "B": "KG"})
    row = table[(table.region == "A") & (table.period == 2000)].iloc[0]
    assert row["modal_type"] == "hegemonic" and row["modal_probability"] == 1.0 and row["country"] == "KG"


def test_transition_counts_and_probabilities():
    codes = np.array([[0, 0, 1], [3, 2, 2]])   # unit, period
    counts = transition_counts(codes)
    assert counts[0, 0] == 1 and counts[0, 1] == 1 and counts[3, 2] == 1 and counts[2, 2] == 1
    assert counts.sum() == 4
    theta = np.zeros((1, 4, 2, 3, 2))
    theta[..., 0, :, :] = [[1, 1], [1, -1], [-1, -1]]          # A: hegemonic -> captured -> failed
    theta[..., 1, :, :] = [[-1, 1], [-1, 1], [-1, 1]]          # B: degraded throughout
    trans = transition_probabilities(make_tree(theta), default_spec())
    assert trans.dims == ("region", "step", "from", "to")
    assert float(trans.sel(region="A", step=2001, **{"from": "hegemonic", "to": "captured"})) == 1.0
    assert float(trans.sel(region="A", step=2002, **{"from": "captured", "to": "failed"})) == 1.0
    np.testing.assert_allclose(trans.sum(("from", "to")), 1.0)
    matrices = transition_matrices(make_tree(theta), default_spec(), {"A": "KG", "B": "KG"})
    row = matrices[(matrices["from"] == "degraded") & (matrices["to"] == "degraded")].iloc[0]
    assert row["mean"] == 1.0
    hegemonic_row = matrices[matrices["from"] == "hegemonic"].set_index("to")["mean"]
    assert hegemonic_row["captured"] == 1.0 and hegemonic_row.sum() == pytest.approx(1.0)


def test_pooled_matrix_is_computed_draw_by_draw_with_intervals():
    theta = np.zeros((1, 2, 1, 2, 2))
    theta[0, 0, 0] = [[1, 1], [1, 1]]      # draw 0: hegemonic -> hegemonic
    theta[0, 1, 0] = [[1, 1], [-1, -1]]    # draw 1: hegemonic -> failed
    tree = make_tree(theta, regions=("A",), periods=(2000, 2001))
    m = transition_matrices(tree, default_spec(), {"A": "KG"}, ci_prob=0.5).set_index(["from", "to"])
    assert m.loc[("hegemonic", "hegemonic"), "mean"] == 0.5
    assert m.loc[("hegemonic", "failed"), "q25"] == 0.25 and m.loc[("hegemonic", "failed"), "q75"] == 0.75
    assert m.loc[("hegemonic", "failed"), "sd"] == 0.5 and m.loc[("hegemonic", "failed"), "from_count"] == 1
    assert np.isnan(m.loc[("failed", "failed"), "mean"]) and m.loc[("failed", "failed"), "p_row_defined"] == 0


def test_eti_is_numpy_s_equal_tailed_quantiles():
    rng = np.random.default_rng(2)
    draws = rng.standard_normal((7, 400))
    for prob in (0.9, 0.5):
        lower, upper = eti(draws, prob)                       # over the last axis of an array
        np.testing.assert_array_equal(lower, np.quantile(draws, (1 - prob) / 2, axis=-1))
        np.testing.assert_array_equal(upper, np.quantile(draws, 1 - (1 - prob) / 2, axis=-1))


def test_trait_summary_is_arviz_s_summary_per_region_period():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(2, 200, 2, 3, 2))
    tree = make_tree(theta)
    table = trait_summary(tree, {"A": "X", "B": "Y"}, 0.9)
    assert list(table.columns) == ["country", "region", "period", "trait", "mean", "sd", "q05", "q95"]
    assert len(table) == 2 * 3 * 2 and list(table["country"].unique()) == ["X", "Y"]
    row = table.set_index(["region", "period", "trait"]).loc[("B", 2001, "willingness")]
    draws = theta[:, :, 1, 1, 1].ravel()
    assert row["mean"] == pytest.approx(draws.mean(), rel=1e-12)
    assert row["sd"] == pytest.approx(draws.std(ddof=1), rel=1e-12)            # ArviZ's sd: ddof=1
    assert row["q05"] == np.quantile(draws, (1 - 0.9) / 2) and row["q95"] == np.quantile(draws, 1 - (1 - 0.9) / 2)
    assert list(trait_summary(tree, {"A": "X", "B": "Y"}, 0.95).columns[-2:]) == ["q2.5", "q97.5"]


def test_threshold_sensitivity_moves_types():
    theta = np.zeros((1, 1, 1, 1, 2))
    theta[..., :] = [0.3, 0.3]
    rows = threshold_sensitivity(make_tree(theta, ("A",), (2000,)), default_spec(), shifts=(0.0, 0.5))
    base = rows[(rows.capability_shift == 0.0) & (rows.willingness_shift == 0.0)].iloc[0]
    raised = rows[(rows.capability_shift == 0.5) & (rows.willingness_shift == 0.5)].iloc[0]
    assert base["hegemonic"] == 1.0 and raised["failed"] == 1.0


def test_anchored_ordinal_threshold_solves_the_expected_rating():
    """With K = 2, E[rating] = 1 + expit(lambda*theta - c) crosses 1.5 at theta = c / lambda."""
    spec = default_spec()
    spec.indicators["expert_willingness"].categories = 2
    spec.indicators["expert_capability"].categories = 2
    spec.typology = Typology(thresholds={"willingness": AnchoredThreshold(indicator="expert_willingness")})
    lam = np.array([[0.5, 1.0, 2.0]])
    cut = np.array([[[0.4], [1.0], [-1.0]]])[..., None]          # (chain, draw, indicator_ordinal, cut)
    names = list(spec.indicators)
    loading = np.zeros((1, 3, len(names), 2))
    loading[..., names.index("expert_willingness"), 1] = lam
    post = xr.Dataset({
        "loading": (("chain", "draw", "indicator", "trait"), loading),
        "intercept": (("chain", "draw", "indicator"), np.zeros((1, 3, len(names)))),
        "cutpoints_ordinal": (("chain", "draw", "indicator_ordinal", "cut_ordinal"),
                              np.concatenate([cut, cut], axis=2)),
    }, coords={"indicator": names, "trait": ["capability", "willingness"],
               "indicator_ordinal": ["expert_capability", "expert_willingness"]})
    const = xr.Dataset({"centre_loc": ("indicator", np.zeros(len(names))),
                        "centre_scale": ("indicator", np.ones(len(names)))}, coords={"indicator": names})
    tree = xr.DataTree.from_dict({"posterior": post, "constant_data": const})
    thr = threshold_draws(tree, spec, "willingness").values.ravel()
    expected = cut.ravel() / lam.ravel()
    np.testing.assert_allclose(thr, expected, atol=1e-8)
    assert np.allclose(1 + expit(lam.ravel() * thr - cut.ravel()), 1.5)
    assert (threshold_draws(tree, spec, "capability").values == 0.0).all()


def test_group_era_summary_averages_members_and_years():
    spec = default_spec()
    spec.summary.eras = [{"name": "early", "start": 2000, "end": 2002}, {"name": "late", "start": 2002, "end": 2003}]
    spec.summary.region_groups = {"both": ["A", "B"]}
    spec = spec.model_validate(spec.model_dump())
    theta = np.zeros((1, 1, 2, 3, 2))
    theta[..., :2, :] = [-1, 1]     # 2000, 2001 degraded
    theta[..., 2, :] = [1, -1]      # 2002 captured
    table = group_era_summary(type_probabilities(make_tree(theta), spec), spec).set_index("era")
    assert table.loc["early", "modal_type"] == "degraded" and table.loc["early", "degraded"] == 1.0
    assert table.loc["late", "modal_type"] == "captured"


def test_typology_needs_both_traits():
    spec = default_spec().model_copy(update={"traits": ["capability"]})
    with pytest.raises(ValueError, match="needs traits 'capability' and 'willingness'"):
        type_probabilities(make_tree(np.zeros((1, 1, 2, 3, 2))), spec)
