"""Draw indicator data from the generative model, with the truth kept (tests, calibration, examples).

Examples
--------
>>> sim = simulate(n_regions=4, n_periods=5, seed=3)
>>> sim.truth["theta"].dims
('region', 'period', 'trait')
>>> round(float(sim.truth["theta"].mean()), 6), round(float(sim.truth["theta"].std()), 6)
(0.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.data.panel import Panel, validate
from nexusbayes.model.families import FAMILIES, Block
from nexusbayes.spec.document import Spec
from nexusbayes.spec.sections import Indicator


def default_spec(name: str = "simulated", **kwargs) -> Spec:
    """A two-trait spec with mixed families like the Kyrgyzstan example (normal, negbin, binomial, ordinal)."""
    indicators = {
        "staff": Indicator(family="normal", loads={"capability": "positive"}, label="log staff per capita"),
        "seizures": Indicator(family="negbin", loads={"capability": "positive", "willingness": "positive"},
                              label="drug seizures"),
        "quota": Indicator(family="binomial", loads={"willingness": "positive"}, label="months quota met"),
        "abuse": Indicator(family="negbin", loads={"willingness": "negative"}, label="abuse reports"),
        "expert_capability": Indicator(family="ordinal", categories=5, loads={"capability": "positive"}),
        "expert_willingness": Indicator(family="ordinal", categories=5, loads={"willingness": "positive"}),
    }
    return Spec(name=name, indicators=indicators, **kwargs)


@dataclass(frozen=True)
class Simulation:
    """Simulated data with the values that generated it.

    Attributes
    ----------
    frame : pandas.DataFrame
        The long indicator table.
    panel : Panel
        The validated panel.
    spec : Spec
    truth : xarray.Dataset
        ``theta`` (region, period, trait), standardised like the model's; ``country_theta``
        (country, period, trait), the mean of ``theta`` over each country's regions (what the
        model's ``country_theta`` estimates); ``loading`` (indicator, trait), ``intercept``
        (indicator) and ``country_offset`` (indicator, country; zero for comparable indicators); with
        indicators with ``drift``, also ``drift`` (indicator_drifting, period), their paths centred over
        the periods in which each has data, as the model's, and ``drift_sd`` (indicator_drifting).
    """

    frame: pd.DataFrame
    panel: Panel
    spec: Spec
    truth: xr.Dataset


def simulate_paths(rng: np.random.Generator, n_countries: int, regions_per_country: int, n_periods: int,
                   n_traits: int, correlation: float = 0.3, innovation_sd: float = 0.35,
                   country_sd: float = 0.7) -> np.ndarray:
    """Random-walk trait paths: country path plus centred region paths, standardised per trait."""
    cov = np.full((n_traits, n_traits), correlation) + (1 - correlation) * np.eye(n_traits)
    chol = np.linalg.cholesky(cov)
    n_regions = n_countries * regions_per_country
    country = np.cumsum(np.concatenate([
        country_sd * rng.standard_normal((n_countries, 1, n_traits)) @ chol.T,
        innovation_sd * rng.standard_normal((n_countries, n_periods - 1, n_traits)) @ chol.T], axis=1), axis=1)
    region = np.cumsum(np.concatenate([
        rng.standard_normal((n_regions, 1, n_traits)) @ chol.T,
        innovation_sd * rng.standard_normal((n_regions, n_periods - 1, n_traits)) @ chol.T], axis=1), axis=1)
    region = region.reshape(n_countries, regions_per_country, n_periods, n_traits)
    region = region - region.mean(axis=1, keepdims=True)
    theta = (country[:, None] + region).reshape(n_regions, n_periods, n_traits)
    return (theta - theta.mean(axis=(0, 1))) / theta.std(axis=(0, 1))


def simulate(spec: Spec | None = None, *, n_countries: int = 1, n_regions: int = 9, n_periods: int = 10,
             first_year: int = 2000, missing: float = 0.0, n_raters: int = 0, theta: np.ndarray | None = None,
             exposure: np.ndarray | None = None, drift_sd: float = 0.3, offsets: dict | None = None,
             seed: int = 0) -> Simulation:
    """Simulate a long indicator table from the measurement model.

    Parameters
    ----------
    spec : Spec, optional
        Indicators and families to simulate (default :func:`default_spec`).
    n_countries, n_regions, n_periods : int
        Shape; ``n_regions`` is per country. Periods are the years from ``first_year``.
    missing : float
        Share of (region, period, indicator) cells dropped at random.
    n_raters : int
        Ordinal indicators get this many raters each (0: no ``rater`` column).
    theta : numpy.ndarray, optional
        True traits (region, period, trait); default: random-walk paths, standardised.
    exposure : numpy.ndarray, optional
        Exposure per region for count indicators (default log-normal around 1).
    drift_sd : float
        Step SD per year of the random walks of the intercepts (cut-point centres for ordinal) of the
        spec's indicators with ``drift``; drawn from their own stream, so the rest of the data are those
        of the same spec without drift.
    offsets : dict of str to sequence of float, optional
        Country offsets to plant on the linear predictor of the named indicators (one value per country,
        centred over countries here), whatever their ``comparable`` setting: data of indicators not
        comparable across countries, for a model that has to find them (``[comparability] detect``).
        Indicators with ``comparable = false`` not named here draw theirs from ``priors.country_offset``.
    seed : int
        Random seed; the same seed gives the same data.

    Returns
    -------
    Simulation
    """
    rng = np.random.default_rng(seed)
    spec = spec or default_spec()
    traits = spec.traits
    n_units = n_countries * n_regions
    if theta is None:
        theta = simulate_paths(rng, n_countries, n_regions, n_periods, len(traits))
    countries = [f"C{c + 1}" for c in range(n_countries)]
    regions = [f"C{c + 1}-R{r + 1:02d}" for c in range(n_countries) for r in range(n_regions)]
    years = list(range(first_year, first_year + n_periods))
    if exposure is None:
        exposure = np.exp(rng.normal(0.0, 0.5, n_units))

    names = list(spec.indicators)
    unknown = sorted(set(offsets or {}) - set(names))
    if unknown:
        raise ValueError(f"offsets names {unknown}, not indicators of the spec ({names})")
    loading = np.zeros((len(names), len(traits)))
    intercept = np.zeros(len(names))
    offset = np.zeros((len(names), n_countries))     # country offsets of non-comparable indicators
    drifting = [n for n in names if spec.indicators[n].drift is not None]
    walk_rng = np.random.default_rng([seed, 23])
    drift = np.cumsum(np.concatenate([np.zeros((len(drifting), 1)), drift_sd * walk_rng.standard_normal(
        (len(drifting), n_periods - 1))], axis=1), axis=1)   # yearly periods: gaps of 1
    rows = []
    for j, name in enumerate(names):
        ind = spec.indicators[name]
        for trait, sign in ind.loads.items():
            size = rng.uniform(0.8, 1.4)
            free = size * rng.choice([-1, 1])
            loading[j, traits.index(trait)] = {"positive": size, "negative": -size}.get(sign, free)
        intercept[j] = 0.0 if ind.family == "ordinal" else rng.normal(0.0, 0.5)
        if not ind.comparable and n_countries > 1:
            draw = rng.normal(0.0, spec.priors.country_offset, n_countries)
            offset[j] = draw - draw.mean()
        if name in (offsets or {}):
            planted = np.asarray(offsets[name], dtype=float)
            if planted.shape != (n_countries,):
                raise ValueError(f"offsets[{name!r}] needs one value per country ({n_countries}), got {planted.shape}")
            offset[j] = planted - planted.mean()
        r_idx, t_idx = np.meshgrid(np.arange(n_units), np.arange(n_periods), indexing="ij")
        r_idx, t_idx = r_idx.ravel(), t_idx.ravel()
        raters = [f"rater{k + 1}" for k in range(n_raters)] if (ind.family == "ordinal" and n_raters) else [None]
        params = _nuisance(ind, rng, n_raters)   # one set per indicator; raters differ by their shift only
        for rater in raters:
            keep = rng.random(len(r_idx)) >= missing
            r, t = r_idx[keep], t_idx[keep]
            eta = intercept[j] + offset[j, r // n_regions] + theta[r, t] @ loading[j]
            if name in drifting:    # the intercept rises with the path; a cut-point centre raised lowers eta
                eta = eta + drift[drifting.index(name), t] * (-1.0 if ind.drift == "cutpoints" else 1.0)
            n = len(r)
            block = Block(key=ind.family, names=[name], rows=np.arange(n), labels=np.arange(n),
                          local=np.zeros(n, int), y=np.zeros(n),
                          exposure=exposure[r] if ind.family == "negbin" else np.ones(n),
                          trials=np.full(n, 12.0), rater=np.full(n, -1 if rater is None else raters.index(rater)),
                          categories=ind.categories)
            family = FAMILIES[ind.family]
            if ind.family == "negbin":
                eta = eta + np.log(3.0)  # a few events per unit of exposure
            y = family.simulate(rng, eta, (5.0, 2.0), block, params)
            part = pd.DataFrame({"country": [countries[u // n_regions] for u in r],
                                 "region": [regions[u] for u in r], "period": [years[p] for p in t],
                                 "indicator": name, "value": y})
            if ind.family == "negbin":
                part["exposure"] = exposure[r]
            if ind.family == "binomial":
                part["trials"] = 12
            if rater is not None:
                part["rater"] = rater
            rows.append(part)
    frame = pd.concat(rows, ignore_index=True)
    panel = validate(frame, spec, "<simulated>")
    country_theta = theta.reshape(n_countries, n_regions, n_periods, len(traits)).mean(axis=1)
    for i, name in enumerate(drifting):     # centred over its periods with data; the intercept takes the mean
        mean = drift[i, np.isin(years, frame.loc[frame["indicator"] == name, "period"])].mean()
        drift[i] -= mean
        if spec.indicators[name].drift == "intercept":
            intercept[names.index(name)] += mean
    extra = {"drift": (("indicator_drifting", "period"), drift),
             "drift_sd": ("indicator_drifting", np.full(len(drifting), drift_sd))} if drifting else {}
    truth = xr.Dataset(
        {"theta": (("region", "period", "trait"), theta), "loading": (("indicator", "trait"), loading),
         "intercept": ("indicator", intercept), "country_theta": (("country", "period", "trait"), country_theta),
         "country_offset": (("indicator", "country"), offset), **extra},
        coords={"region": regions, "period": years, "trait": traits, "indicator": names, "country": countries,
                **({"indicator_drifting": drifting} if drifting else {})},
    )
    return Simulation(frame=frame, panel=panel, spec=spec, truth=truth)


def _nuisance(ind: Indicator, rng: np.random.Generator, n_raters: int) -> dict:
    if ind.family == "normal":
        return {"sigma": np.array([0.5])}
    if ind.family == "negbin":
        return {"inv_dispersion": np.array([0.2])}
    if ind.family == "ordinal":
        k = ind.categories
        cut = np.sort(np.linspace(-1.8, 1.8, k - 1) + rng.normal(0, 0.15, k - 1))[None, :]
        params = {"cutpoints": cut}
        if n_raters:
            params["rater_shift"] = rng.normal(0, 0.4, (1, n_raters))
        return params
    return {}
