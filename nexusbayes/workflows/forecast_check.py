"""The forecast check: refit a spec without its last period(s), forecast them and score the forecast.

Opt-in (it costs a second fit): ``nexusbayes fit SPEC --forecast-check K`` or :func:`forecast_check`. The
scores are those of :mod:`nexusbayes.analysis.forecast_check` (log predictive density against a no-change
baseline; coverage of the 50% and 90% predictive intervals of the held-out indicators).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nexusbayes.analysis.forecast import ForecastError
from nexusbayes.analysis.forecast_check import ForecastCheck, score_forecast
from nexusbayes.data.panel import OPTIONAL, REQUIRED, Panel
from nexusbayes.data.reporting import NOT_REPORTED, STATUS
from nexusbayes.data.resolve import resolve_covariates, resolve_panel, resolve_spec
from nexusbayes.fit import Fit, fit
from nexusbayes.spec.document import Spec


def kept_table(panel: Panel, periods: int) -> pd.DataFrame:
    """The panel's observations (and non-reports) before its last ``periods`` periods, as a long table."""
    cut = len(panel.periods) - periods
    columns = [c for c in (*REQUIRED, *OPTIONAL, *panel.quota_columns) if c in panel.frame]
    frame = panel.frame.loc[panel.frame["period_idx"] < cut, columns]
    gaps = panel.not_reported
    if len(gaps):
        gaps = gaps[gaps["period"].isin(panel.periods[:cut])]
        frame = pd.concat([frame, gaps[["country", "region", "period", "indicator"]].assign(
            value=float("nan"), **{STATUS: NOT_REPORTED})], ignore_index=True)
    return frame.reset_index(drop=True)


def check_held_out(n_periods: int, periods, name: str = "periods to hold out") -> None:
    """Refuse ``periods`` to hold out of ``n_periods`` unless a whole number >= 1 leaving at least two periods.

    ``name`` says where the number came from in the message (``--forecast-check`` on the command line).

    Examples
    --------
    >>> check_held_out(5, 3)
    >>> check_held_out(5, 4, "--forecast-check")
    Traceback (most recent call last):
    ...
    nexusbayes.analysis.forecast.ForecastError: --forecast-check 4: the data hold 5 periods, and holding out 4 \
leaves fewer than the two a forecast needs; hold out at most 3
    """
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
        raise ForecastError(f"{name} must be a whole number >= 1, got {periods!r}")
    if n_periods - periods < 2:
        fix = f"hold out at most {n_periods - 2}" if n_periods > 2 else "there is nothing to hold out"
        raise ForecastError(f"{name} {periods}: the data hold {n_periods} periods, and holding out {periods} leaves "
                            f"fewer than the two a forecast needs; {fix}")


def forecast_check(spec: Spec | str | Path, data=None, periods: int = 1, *, covariates=None,
                   **fit_options) -> tuple[Fit, ForecastCheck]:
    """Fit ``spec`` to ``data`` without its last ``periods`` periods and score the forecast of them.

    Parameters
    ----------
    spec : Spec or path
    data : path, DataFrame or Panel, optional
        The full indicator table (default the spec's data).
    periods : int
        How many last periods to hold out (at least two periods must remain).
    covariates : path or DataFrame, optional
        The covariate table (see :func:`nexusbayes.fit.fit`).
    **fit_options
        Passed to :func:`nexusbayes.fit.fit` (``draws``, ``tune``, ``chains``, ``seed``, ``progress``, ...).

    With ``[covariates]`` the kept fit gets the covariate table's rows of the kept periods, and the forecast the
    held-out periods' values (known: they are the data's).

    Returns
    -------
    (Fit, ForecastCheck)
        The fit of the kept periods and the scores (seeded with the spec's sampler seed).
    """
    given = spec
    spec, data_path = resolve_spec(spec)
    full = resolve_panel(spec, data, data_path, covariates=resolve_covariates(given, spec, covariates))
    check_held_out(len(full.periods), periods)
    options = {"progress": False, "check": False, **fit_options}
    if full.covariates is not None:     # the kept periods' rows; the held-out ones feed the forecast
        table = full.covariates.frame
        options["covariates"] = table[table["period"].isin(full.periods[:-periods])].reset_index(drop=True)
    result = fit(spec, kept_table(full, periods), **options)
    return result, score_forecast(result.tree, spec, result.panel, full, periods, seed=spec.sampler.seed)
