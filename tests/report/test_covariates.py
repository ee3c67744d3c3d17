"""The covariate section: effects table, transition contrast, the report page and a saved fit's round trip."""

import numpy as np

from nexusbayes.analysis.typology import interval_names
from nexusbayes.fit import load
from nexusbayes.model.covariates import EFFECT
from nexusbayes.report import build_report


def test_effects_table_matches_the_draws(covariate_fits):
    sim, result, _ = covariate_fits[0]
    table = result.covariate_effects()
    low, high = interval_names()
    assert len(table) == 12 and set(table["on"]) == {"level", "step"}
    draws = result.tree["posterior"][EFFECT].sel(covariate_label="level1:willingness").values.ravel()
    row = table[(table["covariate"] == "level1") & (table["trait"] == "willingness")].iloc[0]
    assert np.isclose(row["mean"], draws.mean()) and np.isclose(row["p_positive"], (draws > 0).mean())
    assert row[low] < row["mean"] < row[high]
    unit = sim.covariates["level1"].std(ddof=0)      # level covariates use every cell of the grid
    assert np.isclose(row["covariate_sd"], unit) and np.isclose(row["per_unit_mean"], row["mean"] / unit)


def test_transition_contrast_observed_matches_the_fits_transitions(covariate_fits):
    _, result, _ = covariate_fits[0]
    contrast = result.covariate_transitions("step0", values=(-3.0, 9.0))
    assert list(contrast["setting"]) == ["observed", "low", "high"]
    probs = result.transitions()                      # (region, step, from, to)
    stay = sum(probs.isel({"from": k, "to": k}) for k in range(probs.sizes["from"]))
    assert np.isclose(contrast["mean"].iloc[0], float(1 - stay.mean()))
    # the low and high values move the step: with both effects ~0 the shares would be equal
    assert contrast["mean"].iloc[1] != contrast["mean"].iloc[2]


def test_report_and_saved_fit_carry_the_effects(covariate_fits, tmp_path):
    _, result, _ = covariate_fits[0]
    report = build_report(result, dpi=50)
    assert "covariate_effects" in report.tables and "covariate_transitions" in report.tables
    assert 'id="covariates"' in report.html and "covariate_effects" in report.figures
    path = result.save(tmp_path / "fit.nc")
    again = load(path)
    assert again.covariate_effects().equals(result.covariate_effects())
    assert np.array_equal(again.panel.covariates.values, result.panel.covariates.values, equal_nan=True)
