"""Forecast calibration under AR(1) dynamics: simulated AR(1) panels fitted without their last period.

The random-walk counterpart is tests/analysis/test_forecast.py (``held_out``). Under AR(1) the forecast must
pull the traits towards the stationary mean (``phi ** gap`` per year); one that ignored the pull would centre
the held-out period on the last fitted one and miss it more often than nominal.
"""

import time

import numpy as np
import pandas as pd
import pytest

from nexusbayes.analysis.forecast_check import LEVELS, coverage_tolerance
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.workflows.forecast_check import forecast_check

#: One structure (2 countries x 6 regions x 7 years, the last held out): compiled once, then data swapped in.
AR1_SEEDS = (7, 8, 9, 10, 11, 12)
#: The true persistence per year of each trait, and the countries' stationary SD (the regions' is 1).
PHI, COUNTRY_SD, CORR = np.array([0.5, 0.7]), 0.7, 0.3


def ar1_paths(rng: np.random.Generator, n_countries: int, per_country: int, n_periods: int) -> np.ndarray:
    """Traits (region, period, trait) as the model's AR(1) makes them, started stationary, then standardised.

    Country paths with stationary SD ``COUNTRY_SD`` plus region deviations with stationary SD 1 centred within
    their country (the model's zero-sum map has the same covariance), steps correlated ``CORR`` across traits.
    """
    chol = np.linalg.cholesky(np.array([[1.0, CORR], [CORR, 1.0]]))

    def paths(n: int, sd: float) -> np.ndarray:
        x = np.empty((n, n_periods, 2))
        x[:, 0] = sd * rng.standard_normal((n, 2)) @ chol.T
        for t in range(1, n_periods):
            x[:, t] = PHI * x[:, t - 1] + sd * np.sqrt(1 - PHI**2) * rng.standard_normal((n, 2)) @ chol.T
        return x

    country = paths(n_countries, COUNTRY_SD)
    region = paths(n_countries * per_country, 1.0).reshape(n_countries, per_country, n_periods, 2)
    theta = (country[:, None] + region - region.mean(axis=1, keepdims=True)).reshape(-1, n_periods, 2)
    return (theta - theta.mean(axis=(0, 1))) / theta.std(axis=(0, 1))


@pytest.fixture(scope="module")
def ar1_held_out():
    """[(simulation, fit of the first six years, forecast check of the seventh)], seconds."""
    spec = default_spec(dynamics={"kind": "ar1"})
    start = time.perf_counter()
    fits = []
    for seed in AR1_SEEDS:
        theta = ar1_paths(np.random.default_rng(seed), 2, 6, 7)
        sim = simulate(spec, n_countries=2, n_regions=6, n_periods=7, theta=theta, seed=seed)
        result, check = forecast_check(sim.spec, sim.frame, 1, draws=300, tune=300, chains=2, seed=1)
        fits.append((sim, result, check))
    return fits, time.perf_counter() - start


@pytest.mark.slow
def test_ar1_held_out_traits_lie_in_the_forecast_intervals_at_the_nominal_rates(ar1_held_out):
    fits, seconds = ar1_held_out
    inside = {level: [] for level in LEVELS}
    slopes = []
    for sim, result, _ in fits:
        fc = result.forecast(periods=1)["forecast"]["theta"].isel(horizon=0)
        # the truth on the fit's scale: standardised over the six fitted years, as the fit's traits are
        fitted = sim.truth["theta"].isel(period=slice(None, -1))
        truth = ((sim.truth["theta"].isel(period=-1) - fitted.mean(("region", "period")))
                 / fitted.std(("region", "period"))).transpose("region", "trait").values
        draws = fc.transpose("chain", "draw", "region", "trait").values.reshape(-1, *truth.shape)
        for level in LEVELS:
            lower, upper = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2], axis=0)
            inside[level].append(((lower <= truth) & (truth <= upper)).ravel())
        # the pull towards the mean: the forecast's mean against the last fitted period's, per trait
        last = result.tree["posterior"]["theta"].isel(period=-1).mean(("chain", "draw"))
        last = last.transpose("region", "trait").values
        slopes.append([np.polyfit(last[:, k], draws.mean(0)[:, k], 1)[0] for k in range(2)])
    slopes = np.array(slopes)
    rates = {level: float(np.concatenate(v).mean()) for level, v in inside.items()}
    n = len(np.concatenate(inside[LEVELS[0]]))
    print(f"AR(1) held-out traits: n = {n} ({len(fits)} fits in {seconds:.0f} s); coverage "
          + ", ".join(f"{level:.0%}: {rate:.3f}" for level, rate in rates.items())
          + f"; forecast mean / last fitted mean slope per trait {slopes.mean(0).round(2)} (true phi {PHI})")
    for level, rate in rates.items():     # 3 binomial SEs (generous: values of a country share its steps)
        assert abs(rate - level) <= coverage_tolerance(level, n)
    # the forecast reverts: its slope on the last period is below 1 for every fit and trait (a random walk's is 1)
    assert (slopes < 0.95).all()


@pytest.mark.slow
def test_ar1_held_out_indicators_have_nominal_coverage_and_beat_no_change(ar1_held_out):
    fits, _ = ar1_held_out
    obs = pd.concat([check.observations for _, _, check in fits], ignore_index=True)
    n = len(obs)
    assert n == sum(len(sim.frame[sim.frame["period"] == max(sim.panel.periods)]) for sim, _, _ in fits)
    gain = obs["lpd_forecast"] - obs["lpd_no_change"]
    rates = {level: float((np.abs(obs["pit"] - 0.5) <= level / 2).mean()) for level in LEVELS}
    print(f"AR(1) held-out indicators: n = {n}; lpd gain over no change {gain.mean():.3f} "
          f"(SE {gain.std() / np.sqrt(n):.3f}); coverage " + ", ".join(f"{k:.0%}: {v:.3f}" for k, v in rates.items()))
    for level, rate in rates.items():
        assert abs(rate - level) <= coverage_tolerance(level, n)
    # the pull to the mean and the wider interval beat holding the traits at the last fitted period
    assert gain.mean() > 2 * gain.std() / np.sqrt(n)
