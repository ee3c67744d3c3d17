"""Forecasts in the run folder and the report: the same numbers as `Fit.forecast`, a fan chart, a note when none."""

import numpy as np
import pandas as pd
import pytest

from nexusbayes.analysis.forecast import forecast_table, forecast_types_table
from nexusbayes.cli import main
from nexusbayes.fit import Fit
from nexusbayes.report import REPORT_FILE
from nexusbayes.report.forecasts import fan_chart, forecast_section, make_forecast
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
    centred_fit = Fit(tree=fit.tree, spec=centred, panel=fit.panel)
    tables, figures, notes = forecast_section(centred_fit, make_forecast(centred_fit, 1))
    assert tables == {} and figures == {}
    # a spec that does not match the draws (centred walks store their states)
    assert notes == ["No forecast in this run: the fit's posterior has no 'region_state', which its spec's dynamics "
                     "need: was the spec changed after fitting?"]
    assert forecast_section(fit, make_forecast(fit, 0)) == ({}, {}, [])


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


# ---- `nexusbayes fit SPEC --forecast-check K` ---------------------------------------------------------------------
def test_fit_command_writes_the_forecast_check_table_and_report_section(hostile_run, hostile):
    """The hostile run was made with ``--forecast-check 1``: its last period (2003) refitted away and scored."""
    status, run = hostile_run
    fit, report = hostile
    assert status == 0
    data = pd.read_csv(run.parent / "sim.csv")
    held = data[(data["period"] == data["period"].max()) & data["value"].notna()]
    for folder in (run, report):
        table = pd.read_csv(folder / "forecast_check.csv")
        assert list(table["indicator"]) == ["all", *sorted(set(held["indicator"]), key=fit.panel.indicators.index)]
        assert table["n"].iloc[0] == len(held) == table["n"].iloc[1:].sum()
        assert table[["lpd_forecast", "lpd_no_change", "lpd_gain", "gain_se"]].notna().all().all()
        assert (table[["lpd_forecast", "lpd_no_change"]] < 5).all().all()   # a density, not a probability: loose
        # each coverage is a share of the indicator's n, and the 90% interval holds at least what the 50% one does
        for level in ("coverage_50", "coverage_90"):
            assert table[level].between(0, 1).all()
            assert np.allclose(table[level] * table["n"], np.round(table[level] * table["n"]), atol=0.01)
        assert (table["coverage_90"] >= table["coverage_50"]).all()
        np.testing.assert_allclose(table["lpd_gain"], table["lpd_forecast"] - table["lpd_no_change"], atol=2e-3)
    page = (report / REPORT_FILE).read_text(encoding="utf-8")
    assert "Forecast check: held-out periods scored on their indicators" in page
    assert "refitting it without its last 1 period(s)" in page and "held-out period(s) 2003:" in page


def test_fit_command_with_a_forecast_check_reads_and_validates_the_data_once(hostile_cli):
    """The data file is read and validated once, for the check of K and the fit; the forecast check's refit validates
    only its kept periods' table (a DataFrame), not the file again."""
    status, run, *_, validated = hostile_cli
    assert status == 0
    assert validated == [str((run.parent / "sim.csv").resolve()), "<DataFrame>"], validated


@pytest.mark.parametrize("k, message", [("0", "must be a whole number from 1 to 100, got '0'"),
                                        ("1.5", "must be a whole number from 1 to 100, got '1.5'"),
                                        ("two", "must be a whole number from 1 to 100, got 'two'")])
def test_fit_command_refuses_a_forecast_check_that_is_not_a_count(hostile_run, k, message, tmp_path, capsys):
    _, run = hostile_run
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(run.parent / "hostile.toml"), "--out", str(tmp_path / "run"), "--forecast-check", k])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--forecast-check" in err and message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("k, fix", [("3", "hold out at most 2"), ("4", "hold out at most 2"),
                                    ("9", "hold out at most 2")])
def test_fit_command_refuses_to_hold_out_too_many_periods_before_fitting(hostile_run, k, fix, tmp_path, capsys):
    """Four periods: holding out three or more leaves fewer than two, refused before the (costly) fit."""
    _, run = hostile_run
    assert main(["fit", str(run.parent / "hostile.toml"), "--out", str(tmp_path / "run"), "--no-progress",
                 "--forecast-check", k]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(f"nexusbayes: error: --forecast-check {k}: the data hold 4 periods")
    assert fix in printed.err and "fewer than the two a forecast needs" in printed.err
    assert "Fitting" not in printed.out and not (tmp_path / "run").exists()


def test_a_run_makes_its_forecast_once_for_its_tables_and_its_report(monkeypatch, tmp_path):
    """``write_run`` with its report: one forecast, whose draws the CSV tables and the fan chart both show."""
    from types import SimpleNamespace

    from nexusbayes.report import run

    made, passed = [], {}
    monkeypatch.setattr(run, "make_forecast", lambda fit, periods: made.append(periods) or "the forecast")
    monkeypatch.setattr(run, "result_tables", lambda fit, forecast: passed.setdefault("tables", forecast) and {})
    monkeypatch.setattr(run, "summary_text", lambda fit: "")
    monkeypatch.setattr(run, "build_report", lambda fit, **kw: passed.setdefault("report", kw["forecast"])
                        and SimpleNamespace(write=lambda folder: None))
    fit = SimpleNamespace(save=lambda path: path.write_text(""))
    run.write_run(fit, tmp_path / "run", report=True, forecast=3)
    assert made == [3] and passed == {"tables": "the forecast", "report": "the forecast"}
