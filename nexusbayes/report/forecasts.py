"""Forecasts in the report and the run folder: the tables and a fan chart per region.

By default a run forecasts :data:`~nexusbayes.constants.FORECAST_PERIODS` (1) period ahead: it costs well
under a second of NumPy on the draws, and one period ahead is the horizon whose calibration the held-out
check measures; further horizons under a random walk widen fast and are asked for explicitly
(``nexusbayes fit --forecast K``, ``nexusbayes report --forecast K``; 0 for none). A fit whose periods
are named eras (no next time known; use ``nexusbayes forecast --times``) or that has ``[covariates]`` (their
future values are needed: ``nexusbayes forecast --covariates`` or ``--hold-covariates``) gets a note
instead. The innovations are drawn with the spec's sampler seed, so the report and the CSV tables show the
same forecast. With ``--forecast-check K`` the report also shows the scores of a forecast of the last K
periods by a refit without them (:func:`check_section`).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nexusbayes.analysis.forecast import ForecastError, forecast_table, forecast_types_table  # noqa: E402
from nexusbayes.analysis.forecast_check import ForecastCheck  # noqa: E402
from nexusbayes.analysis.regime_forecast import forecast_type_intervals  # noqa: E402
from nexusbayes.analysis.typology import SAMPLE_DIMS  # noqa: E402
from nexusbayes.constants import CI_PROB  # noqa: E402
from nexusbayes.fit import Fit  # noqa: E402
from nexusbayes.report.figures import RC, _grid  # noqa: E402

#: The stem of the forecast check's table (``forecast_check.csv``, and its report section).
CHECK_STEM = "forecast_check"
#: The observed periods shown before the forecast in the fan chart (the last ones).
HISTORY = 6
#: The fan's bands, widest first.
BANDS = (CI_PROB, 0.5)


@dataclass(frozen=True)
class RunForecast:
    """The forecast of a run (its tables and fan chart read the same one), or why there is none.

    Made once by whoever builds the run's outputs (:func:`make_forecast`) and passed to the tables
    (:func:`nexusbayes.report.tables.result_tables`) and the report (:func:`forecast_section`).
    """

    periods: int
    tree: xr.DataTree | None
    reason: str | None = None


def make_forecast(fit: Fit, periods: int) -> RunForecast:
    """The fit's forecast ``periods`` ahead with the spec's seed, or None and the reason it cannot be made.

    Examples
    --------
    >>> make_forecast(None, 0)
    RunForecast(periods=0, tree=None, reason=None)
    """
    if periods < 1:
        return RunForecast(periods, None)
    try:
        return RunForecast(periods, fit.forecast(periods, seed=fit.spec.sampler.seed))
    except ForecastError as exc:
        return RunForecast(periods, None, f"No forecast in this run: {exc}")


def forecast_tables(forecast: xr.DataTree | None) -> dict[str, pd.DataFrame]:
    """``forecast_traits`` and, with a typology, ``forecast_types`` (none without a forecast).

    A regime fit's forecast also gives ``forecast_type_intervals`` (the interval of each P(type) over the draws).
    """
    if forecast is None:
        return {}
    tables = {"forecast_traits": forecast_table(forecast)}
    if "types" in forecast.children:
        tables["forecast_types"] = forecast_types_table(forecast)
    if "type_probability" in forecast["forecast"]:
        tables["forecast_type_intervals"] = forecast_type_intervals(forecast)
    return tables


def fan_chart(theta: xr.DataArray, forecast: xr.DataTree, period_time, history: int = HISTORY) -> Figure:
    """One panel per region: each trait's last ``history`` fitted periods and the forecast, as a fan.

    The fitted periods show the posterior median with its :data:`CI_PROB` band; the forecast continues it
    with the predictive median and its 50% and :data:`CI_PROB` bands, from the last fitted period on.
    """
    future = forecast["forecast"]["theta"]
    keep = slice(max(0, theta.sizes["period"] - history), None)
    past = theta.isel(period=keep)
    x_past = np.asarray(period_time, dtype=float)[keep]
    x_future = np.concatenate([x_past[-1:], np.asarray(future["time"].values, dtype=float)])
    # the fan starts at the last fitted period's draws, so it widens from there
    joined = xr.concat([theta.isel(period=-1, drop=True).expand_dims(horizon=[0]),
                        future.drop_vars([c for c in future.coords if c not in future.dims])], dim="horizon")
    regions = list(theta["region"].values)
    traits = list(theta["trait"].values)
    colours = plt.get_cmap("tab10")

    def quantiles(draws: xr.DataArray, probs) -> np.ndarray:
        return draws.quantile(probs, dim=SAMPLE_DIMS).transpose("quantile", "region", ..., "trait").values

    wide = [(1 - BANDS[0]) / 2, 0.5, (1 + BANDS[0]) / 2]
    q_past = quantiles(past, wide)
    q_future = quantiles(joined, [(1 - BANDS[0]) / 2, (1 - BANDS[1]) / 2, 0.5, (1 + BANDS[1]) / 2,
                                  (1 + BANDS[0]) / 2])
    with plt.rc_context(RC):
        fig, axes = _grid(len(regions), size=(3.4, 2.5), sharey=True, layout="constrained")
        for i, (ax, region) in enumerate(zip(axes, regions, strict=True)):
            for k, trait in enumerate(traits):
                c = colours(k)
                ax.fill_between(x_past, q_past[0, i, :, k], q_past[2, i, :, k], color=c, alpha=0.15, lw=0)
                ax.plot(x_past, q_past[1, i, :, k], color=c, lw=1.2, label=trait)
                ax.fill_between(x_future, q_future[0, i, :, k], q_future[4, i, :, k], color=c, alpha=0.15, lw=0)
                ax.fill_between(x_future, q_future[1, i, :, k], q_future[3, i, :, k], color=c, alpha=0.3, lw=0)
                ax.plot(x_future, q_future[2, i, :, k], color=c, lw=1.2, ls="--")
            ax.axvline(x_past[-1], color="grey", lw=0.6, ls=":")
            ax.set_title(str(region))
            labels = [*past["period"].values, *future["period"].values]
            ticks = [*x_past, *x_future[1:]]
            step = max(1, int(np.ceil(len(ticks) / 8)))
            ax.set_xticks(ticks[::step], [str(p) for p in labels][::step], rotation=90)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(traits),
                   fontsize=7, frameon=False)
        fig.suptitle(f"Forecast from {forecast.attrs['last_period']}: fitted median and {BANDS[0]:.0%} band, then "
                     f"the predictive median (dashed) with {BANDS[1]:.0%} and {BANDS[0]:.0%} bands")
    return fig


def forecast_section(fit: Fit, made: RunForecast, regions: list | None = None, shown_note: str = ""
                     ) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[str, Figure]], list[str]]:
    """The report's forecast: its tables, the fan chart (with caption) and a note when none could be made.

    ``made`` is the run's forecast (:func:`make_forecast`). ``regions`` limits the fan chart's panels (every
    region stays in the tables); ``shown_note`` says so in its caption
    (:func:`nexusbayes.report.figures.spread_regions`).
    """
    forecast = made.tree
    if forecast is None:
        return {}, {}, [made.reason] if made.reason else []
    caption = (f"Forecast fan chart per region, {made.periods} period(s) ahead of {forecast.attrs['last_period']} "
               f"under the fitted {forecast.attrs['dynamics']} dynamics (seed {forecast.attrs['seed']}); the forecast "
               "types are in forecast_types.csv and the table above." + shown_note.replace("traits.csv",
                                                                                          "forecast_traits.csv"))
    theta = fit.tree["posterior"]["theta"]
    if regions is not None and len(regions) < theta.sizes["region"]:
        shown = forecast.copy()
        shown["forecast"] = shown["forecast"].to_dataset().sel(region=regions)
        theta, forecast = theta.sel(region=regions), shown
    figure = fan_chart(theta, forecast, fit.panel.period_time)
    return forecast_tables(forecast), {"forecast_fan": (caption, figure)}, []


def check_section(check: ForecastCheck | None) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The forecast check's table and its text (what was held out, what the scores mean), or nothing."""
    if check is None:
        return {}, {}
    text = (f"This run was checked by refitting it without its last {len(check.periods)} period(s) and forecasting "
            f"them: {check.summary()}. lpd: the mean log predictive density of the held-out indicators (higher is "
            "better); no change: the traits held at the last fitted period; gain: forecast minus no change (with "
            "its standard error over observations); coverage: the share of held-out values inside the central 50% "
            "and 90% predictive intervals (randomised PIT), nominal 0.50 and 0.90.")
    if check.dropped:
        text += " Not scored: " + "; ".join(f"{n} row(s), {reason}" for reason, n in check.dropped.items()) + "."
    return {CHECK_STEM: check.scores()}, {"text": text}
