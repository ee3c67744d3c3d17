"""Forecasts in the run folder and the report: the same numbers as `Fit.forecast`, a fan chart, a note when none."""

import numpy as np
import pandas as pd
import pytest

from nexusbayes.analysis.forecast import forecast_table, forecast_types_table
from nexusbayes.cli import main
from nexusbayes.fit import Fit
from nexusbayes.report import REPORT_FILE
from nexusbayes.report.forecasts import fan_chart, forecast_section
from nexusbayes.report.run import write_run
from nexusbayes.report.tables import rounded


def _expected(fit, periods):
    fc = fit.forecast(periods, seed=fit.spec.sampler.seed)
    return fc, {"forecast_traits": forecast_table(fc), "forecast_types": forecast_types_table(fc)}


def test_run_folder_and_report_hold_the_one_period_forecast_by_default(hostile_run, hostile):
    status, run = hostile_run
    fit, report = hostile
    _, expected = _expected(fit, 1)
    for folder in (run, report):
        for stem, table in expected.items():
            got = pd.read_csv(folder / f"{stem}.csv")
            assert (got["horizon"] == 1).all()
            numeric = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
            pd.testing.assert_frame_equal(got[numeric], rounded(table[numeric]), check_exact=False, rtol=1e-12)
            assert list(got["region"].astype(str)) == list(table["region"].astype(str))
    page = (report / REPORT_FILE).read_text(encoding="utf-8")
    assert "Forecast types (P(each type) at each horizon" in page
    assert "Forecast fan chart per region, 1 period(s) ahead" in page
    assert (report / "forecast_fan.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_forecasts_as_far_as_asked_or_not_at_all(hostile, tmp_path):
    fit, _ = hostile
    write_run(fit, tmp_path / "two", forecast=2)
    traits = pd.read_csv(tmp_path / "two" / "forecast_traits.csv")
    assert sorted(set(traits["horizon"])) == [1, 2]
    sd = traits.groupby("horizon")["sd"].mean()
    assert sd[2] > sd[1]                                   # the fan widens
    write_run(fit, tmp_path / "none", forecast=0)
    assert not list((tmp_path / "none").glob("forecast_*.csv"))


def test_dynamics_that_cannot_be_continued_get_a_note_not_an_error(hostile):
    fit, _ = hostile
    centred = fit.spec.model_copy(update={"dynamics": fit.spec.dynamics.model_copy(update={"centred": True})})
    tables, figures, notes = forecast_section(Fit(tree=fit.tree, spec=centred, panel=fit.panel), 1)
    assert tables == {} and figures == {}
    # a spec that does not match the draws (centred walks store their states)
    assert notes == ["No forecast in this run: the fit's posterior has no 'region_state', which its spec's dynamics "
                     "need: was the spec changed after fitting?"]
    assert forecast_section(fit, 0) == ({}, {}, [])


def test_fan_chart_has_a_panel_per_region_that_ends_at_the_horizon(hostile):
    fit, _ = hostile
    fc, _ = _expected(fit, 3)
    fig = fan_chart(fit.tree["posterior"]["theta"], fc, fit.panel.period_time)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == [str(r) for r in fit.panel.regions]
    right = max(line.get_xdata()[-1] for line in axes[0].get_lines() if len(line.get_xdata()) > 1)
    assert right == pytest.approx(float(fc["forecast"]["time"].values[-1]))
    dashed = [line for line in axes[0].get_lines() if line.get_linestyle() == "--"]
    median = fc["forecast"]["theta"].sel(region=fit.panel.regions[0], trait="capability").median(("chain", "draw"))
    np.testing.assert_allclose(dashed[0].get_ydata()[1:], median.values)


def test_fit_and_report_commands_take_forecast(capsys):
    for command in ("fit", "report"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--forecast K" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["report", "x.nc", "--forecast", "-1"])
    assert "must be a whole number" in capsys.readouterr().err


def test_a_forecast_is_made_once_per_fit_and_anew_for_other_draws():
    """The run folder's tables and the report's fan chart share one forecast (same seed, same draws)."""
    from types import SimpleNamespace

    from nexusbayes.report.forecasts import forecast_of

    made = []

    def forecast(periods, seed):
        made.append((periods, seed))
        return object()

    fit = SimpleNamespace(tree=object(), spec=SimpleNamespace(sampler=SimpleNamespace(seed=7)), forecast=forecast)
    first = forecast_of(fit, 1)
    assert forecast_of(fit, 1) is first and made == [(1, 7)]
    forecast_of(fit, 2)
    assert made == [(1, 7), (2, 7)]                           # another horizon: made
    fit.tree = object()
    assert forecast_of(fit, 1)[0] is not first[0] and made[-1] == (1, 7) and len(made) == 3   # other draws: anew
    assert forecast_of(fit, 0) == (None, None)
