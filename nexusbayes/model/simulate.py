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

from nexusbayes.data.covariates import attach_covariates
from nexusbayes.data.panel import Panel, validate
from nexusbayes.model.families import FAMILIES, Block
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator

#: The location and scale of normal indicators' values (``value = 5 + 2 * (eta + noise)``): the model centres them
#: on their data's own mean and SD, so its intercepts, loadings and drift of a normal indicator are the truth's
#: times ``2 / SD(value)``.
NORMAL_SCALE = (5.0, 2.0)


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
        indicators with ``drift`` of their location, also ``drift`` (indicator_drifting, period), their paths
        centred over the periods in which each has data, as the model's, and ``drift_sd`` (indicator_drifting);
        with ``drift = "loading"``, ``loading_drift`` (indicator_loading_drifting, period), the log-loading paths
        centred so, and ``loading_drift_sd``; with
        indicators with ``missing = "informative"``, ``reporting_intercept`` (indicator_informative),
        ``reporting_loading`` (indicator_informative, trait) and ``reporting_offset`` (indicator_informative,
        country).
        ``[covariates]``, ``covariate_beta`` (covariate_label; raw scale) and ``covariate_effect`` (the same
        over the trait's SD: what the model's ``covariate_effect`` estimates).
    covariates : pandas.DataFrame or None
        The covariate table (region, period and one column per covariate), with ``[covariates]``.
    """

    frame: pd.DataFrame
    panel: Panel
    spec: Spec
    truth: xr.Dataset
    covariates: pd.DataFrame | None = None


def simulate_paths(rng: np.random.Generator, n_countries: int, regions_per_country: int, n_periods: int,
                   n_traits: int, correlation: float = 0.3, innovation_sd: float = 0.35,
                   country_sd: float = 0.7, standardise: bool = True) -> np.ndarray:
    """Random-walk trait paths: country path plus centred region paths, standardised per trait (if asked)."""
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
    return (theta - theta.mean(axis=(0, 1))) / theta.std(axis=(0, 1)) if standardise else theta


def simulate(spec: Spec | None = None, *, n_countries: int = 1, n_regions: int = 9, n_periods: int = 10,
             first_year: int = 2000, missing: float = 0.0, n_raters: int = 0, theta: np.ndarray | None = None,
             exposure: np.ndarray | None = None, drift_sd: float = 0.3, offsets: dict | None = None,
             loading_drift_sd: float = 0.15,
             reporting: tuple[float, float] = (1.0, 1.5), effects: dict[str, float] | None = None,
             heap: tuple[float, float] = (-1.0, -1.0), zero: tuple[float, float] = (-2.0, -0.5),
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
        True traits (region, period, trait); default: random-walk paths, standardised. With
        ``[covariates]`` the paths before the covariates' terms (standardised after they are added).
    exposure : numpy.ndarray, optional
        Exposure per region for count indicators (default log-normal around 1).
    drift_sd : float
        Step SD per year of the random walks of the intercepts (cut-point centres for ordinal) of the
        spec's indicators with ``drift``; drawn from their own stream, so the rest of the data are those
        of the same spec without drift.
    loading_drift_sd : float
        Step SD per year of the random walks of the log loadings of the spec's indicators with ``drift =
        "loading"`` (each loading of the indicator multiplied by ``exp`` of its path); their own stream too.
    reporting : (float, float)
        For indicators with ``missing = "informative"``: the intercept and the loading on the first trait of
        the logit of P(reported) (zero loadings on the others; per-country offsets drawn from their prior for
        an indicator with ``comparable = false``). A region-period not reported loses all its rows of the
        indicator and gets one row with ``status = "not_reported"``. Drawn from their own stream, so with a
        zero loading the reporting is at random and the values that remain are those of the same seed.
    effects : dict of str to float, optional
        With ``[covariates]`` in the spec: the planted coefficients by ``covariate:trait``, on the raw scale
        (per SD of the covariate; see :mod:`nexusbayes.model.covariates`); default drawn Normal(0, 0.5).
        The covariates are drawn from their own stream (a region part and a period-to-period part), so the
        rest of the data are those of the same spec without them.
    heap, zero : tuple of float
        (intercept, loading) of the logits of quota heaping and of structural zeros of the spec's indicators with
        ``quota`` or ``zero_inflated``: the loading is on each trait the indicator loads on (0 on the others); an
        intercept of ``-inf`` gives data without them. Drawn from their own stream, so the honest counts are those
        of the same spec without them. A quota column gets, per period, the median honest count (at least 1).
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
    countries = [f"C{c + 1}" for c in range(n_countries)]
    regions = [f"C{c + 1}-R{r + 1:02d}" for c in range(n_countries) for r in range(n_regions)]
    years = list(range(first_year, first_year + n_periods))
    planted = None
    if theta is None:
        theta = simulate_paths(rng, n_countries, n_regions, n_periods, len(traits),
                               standardise=spec.covariates is None)
    if spec.covariates is not None:
        theta, planted = _plant_effects(spec, theta, regions, years, effects, seed)
    if exposure is None:
        exposure = np.exp(rng.normal(0.0, 0.5, n_units))

    names = list(spec.indicators)
    unknown = sorted(set(offsets or {}) - set(names))
    if unknown:
        raise ValueError(f"offsets names {unknown}, not indicators of the spec ({names})")
    loading = np.zeros((len(names), len(traits)))
    intercept = np.zeros(len(names))
    offset = np.zeros((len(names), n_countries))     # country offsets of non-comparable indicators
    drifting = [n for n in names if spec.indicators[n].location_drift is not None]
    walk_rng = np.random.default_rng([seed, 23])
    drift = np.cumsum(np.concatenate([np.zeros((len(drifting), 1)), drift_sd * walk_rng.standard_normal(
        (len(drifting), n_periods - 1))], axis=1), axis=1)   # yearly periods: gaps of 1
    scaled = [n for n in names if spec.indicators[n].loading_drift]
    log_scale = np.cumsum(np.concatenate([np.zeros((len(scaled), 1)), loading_drift_sd * np.random.default_rng(
        [seed, 31]).standard_normal((len(scaled), n_periods - 1))], axis=1), axis=1)
    rows, inflation = [], {}
    silent = [n for n in names if spec.indicators[n].missing == "informative"]
    report_rng = np.random.default_rng([seed, 29])
    report = {"reporting_intercept": np.full(len(silent), float(reporting[0])),
              "reporting_loading": np.zeros((len(silent), len(traits))),
              "reporting_offset": np.zeros((len(silent), n_countries))}
    report["reporting_loading"][:, 0] = reporting[1]
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
            given = np.asarray(offsets[name], dtype=float)
            if given.shape != (n_countries,):
                raise ValueError(f"offsets[{name!r}] needs one value per country ({n_countries}), got {given.shape}")
            offset[j] = given - given.mean()
        r_idx, t_idx = np.meshgrid(np.arange(n_units), np.arange(n_periods), indexing="ij")
        r_idx, t_idx = r_idx.ravel(), t_idx.ravel()
        raters = [f"rater{k + 1}" for k in range(n_raters)] if (ind.family == "ordinal" and n_raters) else [None]
        params = _nuisance(ind, rng, n_raters)   # one set per indicator; raters differ by their shift only
        reported, existed = np.ones((n_units, n_periods), bool), np.zeros((n_units, n_periods), bool)
        if name in silent:
            i = silent.index(name)
            if not ind.comparable and n_countries > 1:
                draw = report_rng.normal(0.0, spec.priors.country_offset, n_countries)
                report["reporting_offset"][i] = draw - draw.mean()
            logit = (report["reporting_intercept"][i] + theta @ report["reporting_loading"][i]
                     + np.repeat(report["reporting_offset"][i], n_regions)[:, None])
            reported = report_rng.random((n_units, n_periods)) < 1.0 / (1.0 + np.exp(-logit))
        for rater in raters:
            keep = rng.random(len(r_idx)) >= missing
            existed[r_idx[keep], t_idx[keep]] = True
            r, t = r_idx[keep], t_idx[keep]
            eta = theta[r, t] @ loading[j]
            if name in scaled:      # every loading times exp(path): signs and zeros kept in every period
                eta = eta * np.exp(log_scale[scaled.index(name), t])
            eta = eta + intercept[j] + offset[j, r // n_regions]
            if name in drifting:    # the intercept rises with the path; a cut-point centre raised lowers eta
                eta = eta + drift[drifting.index(name), t] * (-1.0 if ind.location_drift == "cutpoints" else 1.0)
            n = len(r)
            block = Block(key=ind.family, names=[name], rows=np.arange(n), labels=np.arange(n),
                          local=np.zeros(n, int), y=np.zeros(n),
                          exposure=exposure[r] if ind.family == "negbin" else np.ones(n),
                          trials=np.full(n, 12.0), rater=np.full(n, -1 if rater is None else raters.index(rater)),
                          categories=ind.categories)
            family = FAMILIES[ind.family]
            if ind.family == "negbin":
                eta = eta + np.log(3.0)  # a few events per unit of exposure
            y = family.simulate(rng, eta, NORMAL_SCALE, block, params)
            quota = None
            if ind.inflated:
                y, quota, found = _inflate(ind, y, theta[r, t], [traits.index(k) for k in ind.loads], t, heap, zero,
                                           np.random.default_rng([seed, 29, j]))
                inflation.update({(name, c): v for c, v in found.items()})
            part = pd.DataFrame({"country": [countries[u // n_regions] for u in r],
                                 "region": [regions[u] for u in r], "period": [years[p] for p in t],
                                 "indicator": name, "value": y})
            if ind.family == "negbin":
                part["exposure"] = exposure[r]
            if ind.family == "binomial":
                part["trials"] = 12
            if isinstance(ind.quota, str):
                part[ind.quota] = quota
            if rater is not None:
                part["rater"] = rater
            rows.append(part[reported[r, t]])     # drawn either way: reporting leaves the other values alone
        r, t = np.nonzero(existed & ~reported)
        if len(r):
            rows.append(pd.DataFrame({"country": [countries[u // n_regions] for u in r],
                                      "region": [regions[u] for u in r], "period": [years[p] for p in t],
                                      "indicator": name, "value": np.nan, "status": "not_reported"}))
    frame = pd.concat(rows, ignore_index=True)
    panel = validate(frame, spec, "<simulated>")
    country_theta = theta.reshape(n_countries, n_regions, n_periods, len(traits)).mean(axis=1)
    for i, name in enumerate(drifting):     # centred over its periods with data; the intercept takes the mean
        mean = drift[i, np.isin(years, frame.loc[frame["indicator"] == name, "period"])].mean()
        drift[i] -= mean
        if spec.indicators[name].location_drift == "intercept":
            intercept[names.index(name)] += mean
    for i, name in enumerate(scaled):       # the loading takes the geometric mean over the periods with data
        mean = log_scale[i, np.isin(years, frame.loc[frame["indicator"] == name, "period"])].mean()
        log_scale[i] -= mean
        loading[names.index(name)] *= np.exp(mean)
    extra = {"drift": (("indicator_drifting", "period"), drift),
             "drift_sd": ("indicator_drifting", np.full(len(drifting), drift_sd))} if drifting else {}
    if scaled:
        extra.update(loading_drift=(("indicator_loading_drifting", "period"), log_scale),
                     loading_drift_sd=("indicator_loading_drifting", np.full(len(scaled), loading_drift_sd)))
    if silent:
        extra.update({k: (("indicator_informative", *(("trait",) if v.ndim > 1 and k.endswith("loading") else
                                                        ("country",) if v.ndim > 1 else ())), v)
                      for k, v in report.items()})
    table = None
    if planted is not None:
        table, beta, effect = planted
        panel = attach_covariates(panel, spec, table)
        extra.update(covariate_beta=("covariate_label", beta), covariate_effect=("covariate_label", effect))
    extra_coords = {}
    for comp, dim in (("heap", "indicator_heaped"), ("zero", "indicator_zero_inflated")):
        members = [n for n in names if (n, comp) in inflation]
        if members:
            share = np.stack([1.0 / (1.0 + np.exp(-(inflation[n, comp][0] + theta @ inflation[n, comp][1])))
                              for n in members])
            extra |= {f"{comp}_intercept": (dim, np.array([inflation[n, comp][0] for n in members])),
                      f"{comp}_loading": ((dim, "trait"), np.stack([inflation[n, comp][1] for n in members])),
                      f"{comp}_share": ((dim, "region", "period"), share)}
            extra_coords[dim] = members
    truth = xr.Dataset(
        {"theta": (("region", "period", "trait"), theta), "loading": (("indicator", "trait"), loading),
         "intercept": ("indicator", intercept), "country_theta": (("country", "period", "trait"), country_theta),
         "country_offset": (("indicator", "country"), offset), **extra},
        coords={"region": regions, "period": years, "trait": traits, "indicator": names, "country": countries,
                **({"indicator_drifting": drifting} if drifting else {}),
                **({"indicator_loading_drifting": scaled} if scaled else {}),
                **({"indicator_informative": silent} if silent else {}),
                **({"covariate_label": list(effects_index(spec))} if planted is not None else {}),
                **extra_coords},
    )
    return Simulation(frame=frame, panel=panel, spec=spec, truth=truth, covariates=table)


def effects_index(spec: Spec) -> list[str]:
    """The ``covariate:trait`` labels of the spec's coefficients, in the model's order."""
    return [f"{name}:{t}" for name, e in spec.covariates.columns.items() for t in e.traits]


def _plant_effects(spec: Spec, raw: np.ndarray, regions: list[str], years: list[int],
                   effects: dict[str, float] | None, seed: int):
    """Covariates and the traits with their planted terms: (theta, (table, beta, effect)).

    Each covariate is ``2 + 3 * (u_r + e_rt)`` (a region part and independent period parts), so its raw unit
    is a third of an SD; the terms are those of :mod:`nexusbayes.model.covariates` with the covariates
    standardised over the grid cells the model uses, and theta is standardised after they are added (all
    cells; the model uses the cells with data, so simulate without ``missing`` for an exact truth).
    """
    rng = np.random.default_rng([seed, 29])
    n_region, n_period, n_trait = raw.shape
    labels = effects_index(spec)
    beta = np.array([(effects or {}).get(lab, np.nan) for lab in labels])
    beta = np.where(np.isnan(beta), rng.normal(0.0, 0.5, len(labels)), beta)
    unknown = sorted(set(effects or {}) - set(labels))
    if unknown:
        raise ValueError(f"effects {unknown} are not coefficients of the spec's [covariates] ({labels})")
    table = pd.DataFrame({"region": np.repeat(regions, n_period), "period": np.tile(years, n_region)})
    terms = np.zeros_like(raw)
    i = 0
    for name, e in spec.covariates.columns.items():
        x = 2.0 + 3.0 * (rng.standard_normal((n_region, 1)) + rng.standard_normal((n_region, n_period)))
        table[name] = x.ravel()
        first = 1 if e.on == "step" else 0
        z = (x - x[:, first:].mean()) / x[:, first:].std()
        z[:, :first] = 0.0
        for t in e.traits:
            k = spec.traits.index(t)
            terms[:, :, k] += beta[i] * (np.cumsum(z, axis=1) if e.on == "step" else z)
            i += 1
    theta = raw + terms
    mean, sd = theta.mean(axis=(0, 1)), theta.std(axis=(0, 1))
    trait_of = np.array([spec.traits.index(lab.rsplit(":", 1)[1]) for lab in labels])
    return (theta - mean) / sd, (table, beta, beta / sd[trait_of])


def _inflate(ind: Indicator, y: np.ndarray, theta: np.ndarray, loads: list[int], period: np.ndarray,
            heap: tuple[float, float], zero: tuple[float, float], rng: np.random.Generator):
    """Reported counts from honest ones ``y``: heaped at the quota, then structural zeros (as the model's mixture).

    Returns the counts, each row's quota (None without one) and, per component, its (intercept, loadings).
    """
    found, quota = {}, None
    for comp, (intercept, size) in (("heap", heap), ("zero", zero)):
        if (comp == "heap" and ind.quota is None) or (comp == "zero" and not ind.zero_inflated):
            continue
        loading = np.zeros(theta.shape[-1])
        loading[loads] = size
        found[comp] = (intercept, loading)
        hit = rng.random(len(y)) < 1.0 / (1.0 + np.exp(-(intercept + theta @ loading)))
        if comp == "heap":
            if isinstance(ind.quota, str):
                median = {p: max(1.0, float(np.round(np.median(y[period == p])))) for p in np.unique(period)}
                quota = np.array([median[p] for p in period])
            else:
                quota = np.full(len(y), float(ind.quota))
            y = np.where(hit, quota, y)
        else:
            y = np.where(hit, 0.0, y)
    return y, quota, found


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


def simulate_regime(spec: Spec | None = None, *, n_countries: int = 1, n_regions: int = 8, n_periods: int = 12,
                    stay: float = 0.75, deviation_sd: float = 0.0, transition_effects: dict[str, float] | None = None,
                    seed: int = 0, **kwargs) -> Simulation:
    """Simulate from the regime model: type paths from a Markov chain per country, then the indicators.

    Each country's true transition matrix has rows drawn from a Dirichlet whose mean keeps the type with
    probability ``stay`` (concentration 20), its initial probabilities from Dirichlet(3, 3, 3, 3); the paths
    start from those and move by the matrix (yearly periods: one step each). The indicators are drawn by
    :func:`simulate` (``kwargs`` go to it) with theta at each type's levels (:func:`nexusbayes.model.regime.levels`),
    plus with ``deviation_sd`` > 0 a within-state deviation per region and trait (normal with that SD, centred
    over the regions: ``[model] region_deviation = true``). Covariates with ``on = "transition"`` in the spec are
    drawn as the trait model's (their own stream) and shift the log-odds of leaving the type on each step by
    ``transition_effects[name]`` per SD (default 0.5; :mod:`nexusbayes.model.regime_covariates`).

    Returns
    -------
    Simulation
        Its ``truth`` adds ``type_state`` (region, period; codes into TYPES), ``region_deviation`` (region, trait;
        zeros when ``deviation_sd`` is 0), ``transition`` (country, type, type_) and ``initial_type`` (country,
        type) to :func:`simulate`'s (whose ``theta`` holds the levels plus the deviations).
    """
    from nexusbayes.constants import TYPES
    from nexusbayes.model.regime import levels
    from nexusbayes.model.regime_covariates import log_transitions, transition_columns
    from nexusbayes.model.regime_predict import markov_paths
    from nexusbayes.spec.sections import ModelSpec

    spec = spec or default_spec(model=ModelSpec(kind="regime"))
    rng = np.random.default_rng([seed, 29])
    n_state = len(TYPES)
    mean = np.full((n_state, n_state), (1 - stay) / (n_state - 1))
    np.fill_diagonal(mean, stay)
    transition = np.stack([[rng.dirichlet(20 * row) for row in mean] for _ in range(n_countries)])
    initial = rng.dirichlet(np.full(n_state, 3.0), size=n_countries)
    region_country = np.repeat(np.arange(n_countries), n_regions)
    names = transition_columns(spec)
    if names:
        x_rng = np.random.default_rng([seed, 31])
        x = 2.0 + 3.0 * (x_rng.standard_normal((n_countries * n_regions, 1, len(names)))
                         + x_rng.standard_normal((n_countries * n_regions, n_periods, len(names))))
        z = (x - x[:, 1:].mean(axis=(0, 1))) / x[:, 1:].std(axis=(0, 1))
        effect = np.array([(transition_effects or {}).get(n, 0.5) for n in names])
        log_trans = log_transitions(transition[None], region_country, np.ones(n_periods - 1, dtype=int), z,
                                    effect[None])
    else:
        log_trans = np.broadcast_to(np.log(transition)[region_country][None, :, None],
                                    (1, n_countries * n_regions, n_periods - 1, n_state, n_state))
    states = markov_paths(rng, np.log(initial)[region_country][None], log_trans)[0]
    deviation = deviation_sd * rng.standard_normal((n_countries * n_regions, len(spec.traits)))
    deviation -= deviation.mean(axis=0)
    sim = simulate(spec.model_copy(update={"covariates": None}), n_countries=n_countries, n_regions=n_regions,
                   n_periods=n_periods, theta=levels(spec.traits)[states] + deviation[:, None], seed=seed, **kwargs)
    panel, table = sim.panel, None
    if names:
        table = pd.DataFrame({"region": np.repeat(sim.panel.regions, n_periods),
                              "period": np.tile(sim.panel.periods, n_countries * n_regions),
                              **{n: x[:, :, k].ravel() for k, n in enumerate(names)}})
        panel = attach_covariates(sim.panel, spec, table)
    truth = sim.truth.assign(type_state=(("region", "period"), states.astype(int)),
                             region_deviation=(("region", "trait"), deviation),
                             transition=(("country", "type", "type_"), transition),
                             initial_type=(("country", "type"), initial)).assign_coords(type=list(TYPES),
                                                                                         type_=list(TYPES))
    if names:
        truth = truth.assign(covariate_effect=("covariate_label", effect)).assign_coords(
            covariate_label=[f"{n}:leave" for n in names])
    return Simulation(frame=sim.frame, panel=panel, spec=spec, truth=truth, covariates=table)
