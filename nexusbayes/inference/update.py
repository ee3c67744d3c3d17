"""A fit updated with new periods, without a full refit: the new traits sampled, everything else held.

:func:`update` checks the new data against the fit (:mod:`nexusbayes.inference.update_inputs`: only new periods
after the last fitted one, for the fit's countries, regions (or new regions of its countries), indicators and
raters; rows at fitted periods must repeat the fitted data exactly and are then dropped), holds the fit's
measurement parameters, process scales and last-period traits at ``n_held`` posterior draws (``held="draws"``) or
at their posterior means (``held="means"``), and samples the filtering model of :mod:`nexusbayes.model.update`
through the one sampling path (:func:`nexusbayes.inference.sample.sample`). The result is the fit's posterior
with the new periods appended: each draw of it pairs one held draw (the held draws taken in turn) with one draw
of the new traits given it, so every analysis of a fit reads it as it reads a fitted posterior.

It filters, it does not smooth: the fitted periods keep their posterior (a full refit would also move them
a little with the new data), and the held parameters do not learn from the new data. With ``[covariates]``
their effects are held too and the new periods' values given (``covariates``): the traits less their covariate
terms follow the dynamics, and the new periods get the terms of the given values. Refused, each with what to do
instead: regime fits, centred spans, drifting indicators, informative missingness, inflated counts (these three
are updated by particles), new countries, indicators or raters, new regions with covariates. New regions of
the fit's countries are placed by the filter (:mod:`nexusbayes.inference.update_regions`), held draw by draw.

``method="particles"`` instead reweights the fit's draws by their likelihood of the new rows and draws the new
traits by particles, in NumPy (:mod:`nexusbayes.inference.update_particles`): nothing compiled, and the fitted
periods and parameters move as far as the fit's draws reach. It covers the indicators' measurement features too
(drift, informative missingness, quota heaping, structural zeros:
:mod:`nexusbayes.inference.update_likelihood`); the other refusals apply, and new regions and covariates are
refused.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import xarray as xr

from nexusbayes.analysis.forecast import Dynamics, _draws
from nexusbayes.data.panel import Panel
from nexusbayes.inference import update_particles as particles_
from nexusbayes.inference import update_regions as regions_
from nexusbayes.inference.sample import sample
from nexusbayes.inference.update_inputs import UpdateError, new_covariates, new_rows, refuse
from nexusbayes.model.build import Model
from nexusbayes.model.design import make_design
from nexusbayes.model.families import NUISANCE
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.roles import COUNTRY_THETA, INTERCEPT, LOADING, THETA, TRAIT_CORR
from nexusbayes.model.update import HELD_DIM, Held, NewRows, UpdateModel
from nexusbayes.spec.sections import SamplerSpec

#: Held draws by default: enough that their mixture carries the fit's uncertainty (the Monte Carlo error of a
#: probability from 100 held draws is below 0.05), few enough that the filter stays cheap.
N_HELD = 100

#: The filter's draws and tuning steps per chain by default: each draw holds one draw of every held copy, so a
#: chain gives ``FILTER_DRAWS * n_held`` draws of the updated fit; the filter's posterior (new traits given held
#: parameters, no hierarchy left to learn) needs little tuning.
FILTER_DRAWS, FILTER_TUNE = 10, 200

def filter_draws(hold: str) -> int:
    """The filter's draws per chain by default: :data:`FILTER_DRAWS` per held copy, as many in all held at the means."""
    return FILTER_DRAWS * (N_HELD if hold == "means" else 1)


#: The ways of updating: particles over the fit's draws (NumPy), or a NUTS filter of the new traits given held draws.
METHODS = ("particles", "filter")

#: The ways of holding: draw by draw, or at the posterior means.
HOLD = ("draws", "means")

#: The attribute of an updated fit that says what was held and how.
HELD_ATTR = "update_held"

#: The posterior variables an update extends over the new periods (the rest are held: selected per draw).
EXTENDED = (THETA, COUNTRY_THETA, "country_z", "region_z")


def held_values(tree: xr.DataTree, spec, panel: Panel, hold: str, n_held: int, z_new: np.ndarray | None = None,
                gaps: np.ndarray | None = None) -> Held:
    """The fit's held parameters and last-period traits at ``n_held`` evenly spaced draws, or at their means.

    With ``[covariates]``, ``z_new`` (region, new period, covariate) are the new periods' standardised covariates
    and ``gaps`` the years into each new period: the held terms are then each draw's covariate terms at the last
    two fitted periods and the new ones (:class:`~nexusbayes.analysis.forecast_covariates.CovariateTerms`).
    """
    post = tree["posterior"].to_dataset()
    dyn = Dynamics(tree, spec, panel)
    n_total = post.sizes["chain"] * post.sizes["draw"]
    design = make_design(panel, spec)
    nuisance = {}
    for block in design.blocks:
        names = {p: f"{p}_{block.key}" for p in NUISANCE if f"{p}_{block.key}" in post}
        nuisance[block.key] = {p: _draws(post, name, post[name].dims[2:]) for p, name in names.items()}
    last = _draws(post, THETA, ("region", "period", "trait"))[:, :, -1]
    flat = last.reshape(n_total, -1)
    cov = np.cov(flat, rowvar=False).reshape(flat.shape[1], flat.shape[1]) + 1e-8 * np.eye(flat.shape[1])
    arrays = dict(chol=dyn.chol, country_scale=dyn.country_scale, region_scale=dyn.region_scale,
                  inv_sd=dyn.inv_sd, mean_over_sd=dyn.mean_over_sd, phi=dyn.phi,
                  loading=_draws(post, LOADING, ("indicator", "trait")),
                  intercept=_draws(post, INTERCEPT, ("indicator",)),
                  offset=(_draws(post, "country_offset", ("indicator", "country")) if "country_offset" in post
                          else None), **_terms(dyn, panel, z_new, gaps))
    if hold == "means":
        pick = lambda a: None if a is None else a.mean(axis=0, keepdims=True)   # noqa: E731
        source = np.array([-1])
        if TRAIT_CORR in post:   # the mean correlation's factor, not the mean of the factors
            corr = _draws(post, TRAIT_CORR, ("trait", "trait_")).mean(0)
            arrays["chol"] = np.broadcast_to(np.linalg.cholesky(corr), arrays["chol"].shape)
    else:
        source = np.unique(np.linspace(0, n_total - 1, min(n_held, n_total)).round().astype(int))
        pick = lambda a: None if a is None else a[source]                        # noqa: E731
    out = {name: pick(value) for name, value in arrays.items()}
    return Held(**out, last_mean=flat.mean(0), last_chol=np.linalg.cholesky(cov),
                region_country=np.asarray(panel.region_country),
                nuisance={k: {p: pick(v) for p, v in d.items()} for k, d in nuisance.items()},
                source_draws=source)


def _terms(dyn: Dynamics, panel: Panel, z_new: np.ndarray | None, gaps: np.ndarray | None) -> dict:
    """Each draw's covariate terms, (draw, region | country, period, trait) from the last two fitted periods on."""
    if dyn.covariates is None:
        return {"terms": None, "country_terms": None}
    times = np.asarray(panel.period_time, float)
    fitted, _, acc = dyn.covariates.fitted(dyn.decay(np.diff(times)), np.diff(times))
    out = [fitted[:, :, -2], fitted[:, :, -1]]
    for h, gap in enumerate(gaps):
        term, acc = dyn.covariates.future(z_new[:, h], acc, dyn.decay(np.array([gap]))[:, 0], gap)
        out.append(term)
    terms = np.stack(out, axis=2)
    return {"terms": terms, "country_terms": np.einsum("cr,srtk->sctk", dyn.covariates.average, terms)}


def update(tree: xr.DataTree, spec, panel: Panel, new, *, method: str = "filter", hold: str = "draws",
           n_held: int = N_HELD, n_particles: int = particles_.N_PARTICLES, settings: SamplerSpec | None = None,
           progress: bool = False, status=None, predictions: bool = True, proposal: str = "laplace",
           lag: int = particles_.LAG, covariates=None) -> tuple[xr.DataTree, Panel]:
    """Add new periods to a fit without a full refit (see the module docstring).

    Parameters
    ----------
    tree, spec, panel
        The fit's DataTree, spec and data.
    new : path or DataFrame
        The new rows (the main data's columns): the new periods alone, or with the fitted rows unchanged.
    covariates : path or DataFrame, optional
        A fit with ``[covariates]``: their values at the new periods for every fitted region (columns ``region``,
        ``period`` and the covariates; :func:`~nexusbayes.inference.update_inputs.new_covariates`).
    method : {"particles", "filter"}
        ``"filter"`` (default): one NUTS run of the new traits given held draws (:mod:`nexusbayes.model.update`;
        the fitted periods and parameters do not move). ``"particles"``: the fit's draws reweighted by their
        likelihood of the new rows and the new traits drawn by particles, in NumPy
        (:mod:`nexusbayes.inference.update_particles`; nothing compiled, everything a refit moves is moved by
        the weights, but only while the weights are reliable, Pareto k <= 0.7: a few new rows, not usually a
        whole new period).
    n_particles : int
        Particles per draw and country (``method="particles"``).
    proposal : {"laplace", "prior"}
        How the particles propose the new traits (``method="particles"``): from a Gaussian around their mode given
        each draw and the new rows (:mod:`nexusbayes.inference.update_laplace`), or from the fitted dynamics.
    lag : int
        Fitted periods whose traits the particles re-propose too (``method="particles"``), 0 to keep the fit's.
    hold : {"draws", "means"}
        Hold the parameters draw by draw (``n_held`` posterior draws, their mixture carrying the fit's
        uncertainty) or at their posterior means (one copy: faster, narrower).
    n_held : int
        Number of held draws (``hold="draws"``).
    settings : SamplerSpec, optional
        The filter's sampler settings (default: the spec's, with :func:`filter_draws` draws and
        :data:`FILTER_TUNE` tuning steps per chain).
    predictions : bool
        Add the predictive draws and observed data of all the data, as a fit has (the report reads them),
        computed with the fit's centring constants (kept in ``constant_data``, whence the log-likelihood's).

    Returns
    -------
    (xarray.DataTree, Panel)
        The posterior with the new periods appended, ``draws * n_held`` draws per chain (and ``sample_stats`` of
        the filter's run, ``draws`` per chain; for ``"particles"``, the fit's draws resampled, with
        ``sample_stats`` holding each one's ``source_draw`` and ``importance_weight`` only, see
        :data:`.update_particles.DIAGNOSTICS`), its attrs
        the fit's plus :data:`HELD_ATTR` and the filter's timings; and the data with the new rows.
    """
    if method not in METHODS:
        raise UpdateError(f"method = {method!r}: use one of {', '.join(map(repr, METHODS))}")
    if method == "particles":
        if n_particles < 1:
            raise UpdateError(f"n_particles = {n_particles}: use at least one particle per draw and country")
        refuse(spec, tree, panel, method)
        if covariates is not None:
            raise UpdateError("covariates were given but the fit's spec has no [covariates]: drop them")
        seed = (settings or spec.sampler).seed
        if proposal not in particles_.PROPOSALS:
            raise UpdateError(f"proposal = {proposal!r}: use one of {', '.join(map(repr, particles_.PROPOSALS))}")
        if not 0 <= lag < len(panel.periods) - 1:
            raise UpdateError(f"lag = {lag}: re-propose from 0 to {len(panel.periods) - 2} fitted periods")
        return _by_particles(tree, spec, panel, new, n_particles, 0 if seed is None else seed, predictions,
                             proposal, lag)
    if hold not in HOLD:
        raise UpdateError(f"hold = {hold!r}: use one of {', '.join(map(repr, HOLD))}")
    if n_held < 1:
        raise UpdateError(f"n_held = {n_held}: hold at least one draw")
    refuse(spec, tree, panel)
    start = time.perf_counter()
    model, combined, added, held, place = filter_model(tree, spec, panel, new, covariates, hold, n_held)
    n_old = len(panel.periods)
    settings = settings or spec.sampler.model_copy(update={"draws": filter_draws(hold), "tune": FILTER_TUNE})
    run = sample(model, settings, progress=progress, status=status, predictions=False)
    prepared = time.perf_counter()
    out = _appended(tree, run, held, hold, combined, n_old, place, settings.seed)
    if predictions:   # the fit's groups for the combined data, with the fit's centring constants
        full = Model(spec, combined)
        full.design = dataclasses.replace(full.design, centres=model.centres)
        out = full.add_predictions(out, settings.seed)
        out["prior_predictive"] = xr.DataTree(full.prior_predictive(seed=settings.seed))
    out.attrs.update({
        HELD_ATTR: held_description(hold, held, spec, [combined.regions[i] for i in place.new_index]),
        "update_hold": hold,
        "update_added_periods": ", ".join(map(str, combined.periods[n_old:])),
        "update_added_rows": int(len(added)), "update_base_chains": int(tree["posterior"].sizes["chain"]),
        "update_added_regions": ", ".join(combined.regions[i] for i in place.new_index),
        # the run facts a fit shows are the update's: its filter's compile and sampling, the rest as post-processing
        "seconds_compile": run.attrs["seconds_compile"], "seconds_sampling": run.attrs["seconds_sampling"],
        "seconds_postprocess": time.perf_counter() - prepared + (prepared - start - run.attrs["seconds_compile"]
                                                                 - run.attrs["seconds_sampling"]),
        **{f"update_{k}": run.attrs[k] for k in ("seconds_compile", "seconds_sampling", "draws", "tune", "chains",
                                                 "seed", "compile_source")}})
    return out, combined


def filter_model(tree: xr.DataTree, spec, panel: Panel, new, covariates, hold: str, n_held: int):
    """The filter's model of an update, nothing sampled: the :class:`~nexusbayes.model.update.UpdateModel` of ``new``.

    Returns ``(model, combined, added, held, place)``: the model, the fit's data with the new rows, the rows
    added, the held values and where the new regions go (:func:`update` samples the model).
    """
    combined, added = new_rows(panel, spec, new)
    combined, z_new = new_covariates(spec, panel, combined, covariates)
    place = regions_.Placement.of(panel, combined)
    if place.any and hold != "draws":
        raise UpdateError("new regions are placed with the parameters held draw by draw: use hold = \"draws\"")
    if place.any and ZeroSum.of(panel.region_country).n_contrast == 0:
        raise UpdateError("the fit has one region per country, so it learnt no region-level process to place the "
                          "new regions with; refit on all the data instead (nexusbayes fit)")
    n_old = len(panel.periods)
    times = np.asarray(combined.period_time, float)
    gaps = np.diff(times[n_old - 1:])
    held = held_values(tree, spec, panel, hold, n_held, z_new, gaps)
    frame = combined.frame[combined.frame["period_idx"].to_numpy() >= n_old]
    design = make_design(panel, spec)
    key_of = {name: (b.key, i) for b in design.blocks for i, name in enumerate(b.names)}
    family_of = {b.key: spec.indicator(b.names[0]).family for b in design.blocks}
    blocks = {}
    names = frame["indicator"].to_numpy()
    for key in dict.fromkeys(key_of[n][0] for n in names):
        where = np.flatnonzero([key_of[n][0] == key for n in names])
        sub = frame.iloc[where]
        exposure = sub["exposure"].to_numpy(float) if "exposure" in sub else np.ones(len(sub))
        trials = sub["trials"].to_numpy(float) if "trials" in sub else np.ones(len(sub))
        blocks[key] = (where, np.array([key_of[n][1] for n in sub["indicator"]]), sub["value"].to_numpy(float),
                       np.where(np.isfinite(exposure), exposure, 1.0), trials, sub["rater_idx"].to_numpy(int),
                       family_of[key])
    rows = NewRows(region=frame["region_idx"].to_numpy(), period=frame["period_idx"].to_numpy() - n_old,
                   country=frame["country_idx"].to_numpy(), indicator=frame["indicator_idx"].to_numpy(), blocks=blocks)
    coords = {"country": panel.countries, "region": combined.regions, "trait": spec.traits,
              "period": combined.periods[n_old:]}
    model = UpdateModel(held, rows, design.centres, design.normal, gaps, panel.region_country,
                        ZeroSum.of(panel.region_country).matrix(), spec.dynamics.kind, spec.dynamics.df, coords,
                        spec, combined, regions_.new_regions(place, held, times[:n_old]) if place.any else None)
    return model, combined, added, held, place


def _by_particles(tree: xr.DataTree, spec, panel: Panel, new, n_particles: int, seed: int,
                  predictions: bool, proposal: str, lag: int) -> tuple[xr.DataTree, Panel]:
    """The particle update (:mod:`nexusbayes.inference.update_particles`) as a fit's DataTree and data."""
    start, cpu = time.perf_counter(), time.process_time()
    combined, added = new_rows(panel, spec, new, regions=False)
    n_old = len(panel.periods)
    found = particles_.particles(tree, spec, panel, combined, n_particles, seed, lag=lag, proposal=proposal)
    weights, k, ess = particles_.importance(found.log_marginal)
    rng = np.random.default_rng([seed, 1])
    source, copy_no = particles_.resample(weights, len(weights), rng)
    posterior = particles_.appended(tree, found, source, copy_no, list(combined.periods), n_old - lag)
    # the fit's sampler statistics (divergences, energy, tree depth) belong to its MCMC transitions, not to these
    # resampled draws: what the draws carry instead is where each came from and its importance weight
    per_draw = ("chain", "draw"), posterior.sizes["chain"]
    stats = xr.Dataset({"source_draw": (per_draw[0], source.reshape(per_draw[1], -1)),
                        "importance_weight": (per_draw[0], weights[source].reshape(per_draw[1], -1))},
                       coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values})
    out = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    out.attrs.update({k_: v for k_, v in tree.attrs.items() if not k_.startswith("seconds_")})
    out.attrs.update({f"base_{k_}": v for k_, v in tree.attrs.items() if k_.startswith("seconds_")})
    seconds = time.perf_counter() - start
    if predictions:   # the fit's groups for the combined data, with the fit's centring constants
        full = Model(spec, combined)
        full.design = dataclasses.replace(full.design, centres=make_design(panel, spec).centres)
        out = full.add_predictions(out, seed)
        out["prior_predictive"] = xr.DataTree(full.prior_predictive(seed=seed))
    ess_particles = found.particle_ess
    out.attrs.update({
        HELD_ATTR: particles_.description(n_particles, k, ess, len(weights), proposal, lag),
        "update_method": "particles",
        "update_hold": "draws", "update_added_periods": ", ".join(map(str, combined.periods[n_old:])),
        "update_added_rows": int(len(added)), "update_base_chains": int(tree["posterior"].sizes["chain"]),
        "update_pareto_k": k, "update_ess": ess, "update_particles": int(n_particles),
        "update_proposal": proposal, "update_lag": int(lag),
        "update_distinct_draws": int(len(np.unique(source))),
        "update_particle_ess_min": float(ess_particles.min()), "update_particle_ess_median":
            float(np.median(ess_particles)), "update_seconds": seconds, "update_cpu_seconds": time.process_time() - cpu,
        "seconds_compile": 0.0, "seconds_sampling": seconds,
        "seconds_postprocess": time.perf_counter() - start - seconds, "update_seed": int(seed),
        "update_diagnostics": particles_.DIAGNOSTICS})
    return out, combined


def held_description(hold: str, held: Held, spec, new_regions: list | None = None) -> str:
    """What an update held fixed and how, in one sentence (for the output and the report)."""
    how = (f"at {held.size} posterior draws of the fit, draw by draw" if hold == "draws"
           else "at their posterior means (one copy: the held uncertainty is not carried)")
    effects = (" the covariate effects (the new periods' terms from their given covariates, on the fit's "
               "standardisation)," if spec.covariates is not None else "")
    return ("held fixed " + how + ": loadings, intercepts, cut-points, rater shifts, noise and dispersion, country "
            f"offsets,{effects} the {spec.dynamics.kind} process scales, persistence and trait correlation, the "
            "traits' standardisation (the new periods are on the fit's scale); sampled: the new periods' traits, and "
            "the last fitted period's from a normal approximation of their posterior (so the new data move them). The "
            "earlier periods keep the fit's posterior (the update filters; it does not smooth the past)"
            + (f". New regions ({', '.join(map(str, new_regions))}): their traits are their country's path plus a "
               "deviation from the region-level process with the held parameters, sampled at the last fitted period "
               "and after it, drawn from that process at the earlier periods (no data there); their countries' "
               "traits are then the mean of all their regions" if new_regions else ""))


def _appended(tree: xr.DataTree, run: xr.DataTree, held: Held, hold: str, panel: Panel, n_old: int,
              place: regions_.Placement, seed: int | None) -> xr.DataTree:
    """The fit's posterior with the new periods appended: per chain, one draw per (filter draw, held copy).

    Each copy's draws are paired with its held draw of the fit (``hold="draws"``; held at the means, with the
    fit's draws in turn), whose variables they take; the last fitted period's traits are the filter's (the new
    data move them), and that period's innovations are recomputed from them, so every draw still follows the
    fitted dynamics exactly (what :mod:`nexusbayes.analysis.forecast` reads). New regions (``place``) get their
    fitted periods from :func:`~nexusbayes.inference.update_regions.bridge` and their countries' paths and the
    innovations are recomputed (:func:`~nexusbayes.inference.update_regions.regroup`).
    """
    post = tree["posterior"].to_dataset()
    new = run["posterior"].to_dataset().stack(pair=("draw", HELD_DIM))
    n_chain, n_pair = new.sizes["chain"], new.sizes["pair"]
    copy = np.broadcast_to(new[HELD_DIM].values, (n_chain, n_pair))
    new = new.drop_vars(["pair", "draw", HELD_DIM]).rename(pair="draw")
    n_total = post.sizes["chain"] * post.sizes["draw"]
    source = (held.source_draws[copy] if hold == "draws" else
              np.linspace(0, n_total - 1, n_chain * n_pair).round().astype(int).reshape(n_chain, n_pair))
    stacked = post.stack(sample=("chain", "draw")).drop_vars(["sample", "chain", "draw"])
    periods = list(panel.periods)
    out = {}
    for name, var in stacked.data_vars.items():
        old = var.isel(sample=xr.DataArray(source, dims=("chain", "draw")))
        if name == THETA and place.any:   # the new regions' fitted periods: NaN until bridged below
            old = old.assign_coords(region=np.asarray(panel.regions)[place.old_index]).reindex(region=panel.regions)
        elif place.any and "region" in var.dims:
            raise UpdateError(f"the fit's posterior variable {name!r} runs over regions, which an update with new "
                              "regions does not extend; refit on all the data instead (nexusbayes fit)")
        if name in EXTENDED:
            dim = "period" if "period" in var.dims else "step"
            if name in (THETA, COUNTRY_THETA):   # the last fitted period, as the filter moved it
                old = old.copy()
                old[{dim: n_old - 1}] = new[f"{name}_last"].transpose(*old.isel({dim: 0}).dims).values
            fresh = new[name].assign_coords(period=periods[n_old:]).rename(period=dim)
            old = xr.concat([old, fresh.transpose(*old.dims)], dim=dim)
        elif "period" in var.dims or "step" in var.dims:
            raise UpdateError(f"the fit's posterior variable {name!r} runs over periods, which an update does not "
                              "extend; refit on all the data instead (nexusbayes fit)")
        out[name] = old.transpose("chain", "draw", *(d for d in var.dims if d != "sample"))
    posterior = xr.Dataset(out).assign_coords(chain=np.arange(n_chain), draw=np.arange(n_pair),
                                              period=periods, step=periods[1:])
    times = np.asarray(panel.period_time, float)
    if place.any:
        posterior = _placed(posterior, held, copy.ravel(), panel, times, n_old, place, seed)
    else:
        _restep(posterior, held, copy, hold, times, n_old)
    # the filter's own statistics (its draws, not repeated per copy: E-BFMI and divergences are the filter's)
    result = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": run["sample_stats"].to_dataset()})
    result.attrs.update({k: v for k, v in tree.attrs.items() if not k.startswith("seconds_")})
    result.attrs.update({f"base_{k}": v for k, v in tree.attrs.items() if k.startswith("seconds_")})
    result.attrs.pop("update_diagnostics", None)     # a particle update's (of the base): these are MCMC draws
    return result


def _restep(posterior: xr.Dataset, held: Held, copy: np.ndarray, hold: str, times: np.ndarray, n_old: int) -> None:
    """Recompute the innovations of the step into the last fitted period from its moved traits (in place)."""
    if hold != "draws" or "country_z" not in posterior:
        return
    k, span = copy.ravel(), times[n_old - 2:n_old]

    def last_step(name, terms):   # the raw step into the last fitted period, (sample, unit, 1, trait), its factor
        v = posterior[name].transpose("chain", "draw", ...).values
        v = v.reshape(-1, *v.shape[2:])[:, :, n_old - 2:n_old]
        return regions_.raw_steps(v if terms is None else v - terms[k][:, :, :2], held, k, span)

    def put(name, steps, scale):   # the step's innovations, into the stored ones
        var = posterior[name].transpose("chain", "draw", ...)
        z = var.values.copy()
        z[:, :, :, n_old - 2] = regions_.whiten(steps, scale[:, None, None] * factor, held, k)[:, :, 0].reshape(
            *z.shape[:3], z.shape[-1])
        posterior[name] = (var.dims, z)

    country, factor = last_step(COUNTRY_THETA, held.country_terms)
    put("country_z", country, held.country_scale[k])
    if "region_z" in posterior:
        put("region_z", regions_.contrasts(last_step(THETA, held.terms)[0], country, held.region_country),
            held.region_scale[k])


def _placed(posterior: xr.Dataset, held: Held, copy: np.ndarray, panel: Panel, times: np.ndarray, n_old: int,
            place: regions_.Placement, seed: int | None) -> xr.Dataset:
    """The new regions' fitted periods drawn given their last one, then the countries regrouped (all regions)."""
    theta = posterior[THETA].transpose("chain", "draw", "region", "period", "trait")
    country = posterior[COUNTRY_THETA].transpose("chain", "draw", "country", "period", "trait").values
    values = theta.values.copy()
    flat, c_flat = values.reshape(-1, *values.shape[2:]), country.reshape(-1, *country.shape[2:])
    inv_sd = held.inv_sd[copy][:, None]
    home = c_flat[:, place.new_country]                                          # (sample, new, period, k)
    last = (flat[:, place.new_index, n_old - 1] - home[:, :, n_old - 1]) / inv_sd
    rng = np.random.default_rng([0 if seed is None else seed, 25])
    dev = regions_.bridge(last, copy, held, place.share, times[:n_old], rng)
    flat[:, place.new_index, :n_old - 1] = home[:, :, :n_old - 1] + inv_sd[:, :, None] * dev[:, :, :-1]
    posterior[THETA] = (theta.dims, values)
    return regions_.regroup(posterior, held, copy, panel, times)

