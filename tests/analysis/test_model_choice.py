"""compare_models on small synthetic fits: LOO prefers the model that predicts the data; types compared cell by cell."""

from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from nexusbayes.analysis.model_choice import compare_models
from nexusbayes.model.simulate import default_spec
from nexusbayes.spec.sections import ModelSpec

REGIONS, PERIODS = ["a", "b"], [2000, 2001, 2002]


def fake_fit(kind: str, centre: float, y: np.ndarray, seed: int):
    """A fit whose log-likelihood is Normal(centre + noise, 1) at the observations ``y``; 2 chains x 200 draws."""
    rng = np.random.default_rng(seed)
    mu = centre + 0.05 * rng.standard_normal((2, 200, 1))
    ll = xr.DataArray(stats.norm.logpdf(y[None, None, :], mu, 1.0), dims=("chain", "draw", "obs_normal"))
    spec = default_spec(model=ModelSpec(kind=kind))
    groups = {"observed_data": xr.Dataset({"y_normal": ("obs_normal", y)})}
    cells = {"region": REGIONS, "period": PERIODS}
    if kind == "regime":
        # hegemonic everywhere but region b in 2002, which is failed
        probs = np.zeros((2, 200, 2, 3, 4))
        probs[..., 0] = 1.0
        probs[:, :, 1, 2] = [0.1, 0.0, 0.0, 0.9]
        groups["regime"] = xr.Dataset({"type_probability": (("chain", "draw", "region", "period", "type"), probs)},
                                      coords=cells)
    else:   # theta high on both traits everywhere
        theta = np.ones((2, 200, 2, 3, 2))
        groups["posterior"] = xr.Dataset({"theta": (("chain", "draw", "region", "period", "trait"), theta)},
                                         coords={**cells, "trait": spec.traits})
    tree = xr.DataTree.from_dict(groups)
    return SimpleNamespace(tree=tree, spec=spec, log_likelihood=lambda: xr.Dataset({"y_normal": ll}))


def test_loo_prefers_the_model_that_predicts_the_data_and_lists_disagreements():
    y = np.random.default_rng(0).normal(0.0, 1.0, 60)
    trait, regime = fake_fit("trait", 1.5, y, 1), fake_fit("regime", 0.0, y, 2)
    result = compare_models(trait, regime)
    assert result.loo.index[0] == "regime"
    assert result.loo.loc["trait", "elpd_diff"] < -2 * result.loo.loc["trait", "dse"]
    assert {"max_pareto_k", "n_k_above"} <= set(result.loo.columns)
    assert result.agreement == pytest.approx(5 / 6)
    row = result.disagreements.iloc[0]
    assert (row["region"], row["period"], row["trait_type"], row["regime_type"]) == ("b", 2002, "hegemonic", "failed")
    assert row["regime_probability"] == pytest.approx(0.9)


def test_fits_of_other_data_are_refused():
    y = np.random.default_rng(0).normal(0.0, 1.0, 60)
    with pytest.raises(ValueError, match="same observations"):
        compare_models(fake_fit("trait", 0.0, y, 1), fake_fit("regime", 0.0, y + 1.0, 2))


def test_report_section_tables_and_figure():
    from nexusbayes.report.model_choice import section

    y = np.random.default_rng(0).normal(0.0, 1.0, 60)
    tables, figures = section(fake_fit("trait", 1.5, y, 1), fake_fit("regime", 0.0, y, 2))
    loo = tables["model_comparison"]
    assert loo["model"].tolist() == ["regime", "trait"] and loo["beyond_2se"].tolist() == [False, True]
    assert {"elpd_diff", "dse", "max_pareto_k", "n_k_above"} <= set(loo.columns)
    assert tables["type_disagreements"][["region", "period"]].values.tolist() == [["b", 2002]]
    caption, fig = figures["model_agreement"]
    assert caption.startswith("Model choice: PSIS-LOO prefers regime") and "83% of region-periods" in caption
    # one cell differs: hegemonic (trait) against failed with P 0.9 (regime), distance 0.9; marked "h/f"
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(image, [[0, 0, 0], [0, 0, 0.9]], atol=1e-12)
    assert [t.get_text() for t in fig.axes[0].texts] == ["h/f"]


def test_cli_writes_the_comparison_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    import nexusbayes.fit
    from nexusbayes.cli import main

    y = np.random.default_rng(0).normal(0.0, 1.0, 60)
    fits = {"t.nc": fake_fit("trait", 1.5, y, 1), "r.nc": fake_fit("regime", 0.0, y, 2)}
    monkeypatch.setattr(nexusbayes.fit, "load", lambda path: fits[path.name])
    argv = ["compare-models", str(tmp_path / "t.nc"), str(tmp_path / "r.nc"), "--out", str(tmp_path / "out"),
            "--dpi", "50"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "regime" in printed and "modal types differ (1)" in printed
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["model_agreement.png", "model_comparison.csv", "type_disagreements.csv"]
    assert main(argv) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    fits["r.nc"] = fake_fit("regime", 0.0, y + 1.0, 2)
    assert main([*argv, "--overwrite"]) == 2 and "same observations" in capsys.readouterr().err
