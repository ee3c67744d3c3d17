"""Forecasts of fits with [covariates]: future values from a table, or held at the last values."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nexusbayes.analysis.forecast import ForecastError, forecast
from nexusbayes.cli import main
from nexusbayes.errors import DataError
from nexusbayes.model.covariates import EFFECT
from nexusbayes.model.simulate import simulate


@pytest.fixture(scope="module")
def covariate_fit(covariate_fits):
    """One of the session's covariate fits (8 regions x 8 periods; level0-2 on the level, step0-2 on the steps)."""
    _, result, _ = covariate_fits[0]
    return result


def future_table(result, periods=(2008, 2009)) -> pd.DataFrame:
    """Each region's covariates in the last fitted period, repeated for the forecast periods."""
    frame = result.panel.covariates.frame
    last = frame[frame["period"] == result.panel.periods[-1]]
    return pd.concat([last.assign(period=p) for p in periods], ignore_index=True)


def test_covariate_fits_forecast_with_held_or_given_future_values(covariate_fit):
    result = covariate_fit
    with pytest.raises(ForecastError, match="needs their future values.*--hold-covariates"):
        result.forecast(2)
    # the traits less their covariate terms follow the dynamics exactly (else Dynamics refuses the fit)
    held = result.forecast(2, hold_covariates=True)
    assert held.attrs["covariates"] == "covariates held at their values in 2007"
    given = result.forecast(2, covariates=future_table(result))
    assert given.attrs["covariates"] == "future covariate values from <DataFrame>"
    np.testing.assert_allclose(given["forecast"]["theta"], held["forecast"]["theta"], atol=1e-12)
    # one SD more of a level covariate in one region moves that region by its effect, draw by draw; a step
    # covariate's SD more in the first forecast year moves it by the effect in that year and stays (random walk)
    table, scale = future_table(result), dict(zip(result.panel.covariates.names, result.panel.covariates.scale,
                                                  strict=True))
    region = result.panel.regions[0]
    table.loc[table["region"] == region, "level1"] += scale["level1"]
    table.loc[(table["region"] == region) & (table["period"] == 2008), "step2"] += scale["step2"]
    moved = result.forecast(2, covariates=table)["forecast"]["theta"] - held["forecast"]["theta"]
    effect = result.tree["posterior"][EFFECT]
    for trait in ("capability", "willingness"):
        expected = effect.sel(covariate_label=f"level1:{trait}") + effect.sel(covariate_label=f"step2:{trait}")
        for horizon in (1, 2):
            np.testing.assert_allclose(moved.sel(region=region, trait=trait, horizon=horizon), expected, atol=1e-9)
    assert np.abs(moved.sel(region=result.panel.regions[1:])).max() < 1e-9
    # the country's trait is the average of its regions'
    n_regions = len(result.panel.regions)
    country = result.forecast(2, covariates=table)["forecast"]["country_theta"]
    country_moved = country - held["forecast"]["country_theta"]
    np.testing.assert_allclose(country_moved.isel(country=0).sel(trait="capability", horizon=2),
                               moved.sel(region=region, trait="capability", horizon=2) / n_regions, atol=1e-9)


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.iloc[1:], r"no row for region-period\(s\) the model needs: \(C1-R01, 2008\)"),
    (lambda t: t.assign(level0=t["level0"].astype(object).where(t.index != 3, "high")),
     r"row 5: `level0` is not a number"),
    (lambda t: t.assign(period=t["period"].replace({2009: 2010})), r"`period` is not a forecast period.*2009"),
    (lambda t: t.drop(columns="step1"), r"lacks column\(s\) 'step1'"),
], ids=["no-row", "text", "period", "column"])
def test_bad_future_tables_name_file_row_and_column(covariate_fit, tmp_path, change, message):
    path = tmp_path / "future.csv"
    change(future_table(covariate_fit)).to_csv(path, index=False)
    with pytest.raises(DataError, match=message) as excinfo:
        covariate_fit.forecast(2, covariates=path)
    assert str(path) in str(excinfo.value) and "future covariates" in str(excinfo.value)


def test_covariate_options_need_covariates_and_exclude_each_other(covariate_fit):
    with pytest.raises(ForecastError, match="not both"):
        covariate_fit.forecast(1, covariates=future_table(covariate_fit, (2008,)), hold_covariates=True)
    sim = simulate(n_regions=2, n_periods=3, seed=0)   # checked before the draws are read
    with pytest.raises(ForecastError, match=r"has no \[covariates\]"):
        forecast(None, sim.spec, sim.panel, 1, hold_covariates=True)


def test_forecast_command_takes_future_covariates(covariate_fit, tmp_path, capsys):
    path = covariate_fit.save(tmp_path / "fit.nc")    # each load of it: ~5 s on a busy machine
    future = tmp_path / "future.csv"
    future_table(covariate_fit).to_csv(future, index=False)
    assert main(["forecast", str(path), "--periods", "2", "--covariates", str(future)]) == 0
    assert f"(future covariate values from {future})" in capsys.readouterr().out


def test_forecast_check_scores_a_covariate_fit_with_the_held_out_covariates(covariate_fit):
    from nexusbayes.analysis.forecast_check import score_forecast
    from nexusbayes.data.covariates import attach_covariates
    from nexusbayes.data.read import load_panel

    result = covariate_fit
    frame = result.panel.frame[["country", "region", "period", "indicator", "value", "exposure", "trials"]]
    frame = frame.loc[:, [c for c in frame.columns if c in result.panel.frame]]
    # a held-out year 2008: the data of 2007 again, the covariates of 2007 with one region's level1 1 SD higher
    full_frame = pd.concat([frame, frame[frame["period"] == 2007].assign(period=2008)], ignore_index=True)
    table = future_table(result, (2008,))
    region = result.panel.regions[0]
    table.loc[table["region"] == region, "level1"] += result.panel.covariates.scale[1]
    covariates = pd.concat([result.panel.covariates.frame, table], ignore_index=True)
    full = attach_covariates(load_panel(full_frame, result.spec), result.spec, covariates)
    check = score_forecast(result.tree, result.spec, result.panel, full, 1)
    obs = check.observations
    assert len(obs) == int((full_frame["period"] == 2008).sum()) and check.dropped == {}
    assert obs[["lpd_forecast", "lpd_no_change", "pit"]].notna().all().all()
    held = score_forecast(result.tree, result.spec, result.panel, dataclasses.replace(
        full, covariates=attach_covariates(dataclasses.replace(full, covariates=None), result.spec, pd.concat(
            [result.panel.covariates.frame, future_table(result, (2008,))], ignore_index=True)).covariates), 1)
    # only the moved region's forecast, hence its observations' scores, change
    moved = obs["lpd_forecast"].to_numpy() != held.observations["lpd_forecast"].to_numpy()
    assert moved.any() and set(obs.loc[moved, "region"]) == {region}
