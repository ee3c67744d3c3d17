"""A fit updated with new periods by particles over its saved draws: nothing compiled, nothing sampled by MCMC.

For each posterior draw ``s`` of the fit and each country ``c``, ``M`` particles of the country's new traits
(all its regions, every new period) are drawn given draw ``s``'s last-period traits and process parameters
(:class:`nexusbayes.analysis.forecast.Dynamics`, as a forecast continues them): by default from a Gaussian
(Laplace) approximation of their conditional posterior given the new rows
(:mod:`nexusbayes.inference.update_laplace`), or (``proposal="prior"``) from the fitted dynamics. Each is
weighted by the likelihood of the country's new rows under draw ``s``'s measurement parameters
(:class:`~nexusbayes.inference.update_likelihood.NewRowsLikelihood`, in chunks of draws: the fit's own
pointwise log-likelihood, every measurement feature included) times its prior over its proposal density. The
drift paths at the new periods are drawn once per draw from their random walk and shared by its particles, so
given ``s`` and them the countries' new steps are independent, and the particles of one country carry its
weight alone:

* one particle per (``s``, ``c``) chosen by its weight is a draw of the new traits given ``s`` and the new
  data (sampling importance resampling, exact as ``M`` grows);
* ``prod_c mean_m w[s, c, m]`` is an unbiased estimate of draw ``s``'s likelihood of the new rows (given its
  drift paths, themselves drawn from their prior given ``s``: unbiased over both), so
  weighting the fit's draws by it is importance sampling of the posterior given the old and the new data,
  with the fit's posterior as proposal. Unlike a filter, this moves everything a refit moves: the fitted
  periods, the measurement parameters and the process parameters (by reweighting; no new values of them
  are created). The weights are Pareto-smoothed (PSIS); their Pareto ``k`` and effective sample size say
  whether the fit's draws cover the new posterior (``k > 0.7``: they do not, refit).

The output draws are the fit's draws resampled by those weights (as many as the fit had), each with new
traits chosen among its particles (and its drift paths continued). What stays as the fit had it: the traits'
standardisation (the new periods are on the fit's scale; a refit re-standardises over all periods) and the
values of every parameter (only their weights change).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
from scipy.special import logsumexp

from nexusbayes.analysis.forecast import Dynamics
from nexusbayes.constants import PARETO_K_MAX
from nexusbayes.data.panel import Panel
from nexusbayes.inference import update_laplace
from nexusbayes.inference.update_likelihood import NewRowsLikelihood
from nexusbayes.model.drift import WALKS
from nexusbayes.model.roles import COUNTRY_THETA, THETA

#: Particles per draw and country by default.
N_PARTICLES = 64
#: How the new traits are proposed: a Laplace (Gaussian) approximation given each draw, or the dynamics prior.
PROPOSALS = ("laplace", "prior")
#: Fitted periods re-proposed by default (see :func:`particles`).
LAG = 0
#: Candidate particles kept per (draw, country): the copies of a draw resampled more than once take different ones.
N_KEEP = 8
#: Above this Pareto k the fit's draws do not cover the posterior given the new data: refit.
K_MAX = PARETO_K_MAX
#: Draws x particles x new observations evaluated at once (memory bound of a chunk).
CHUNK_VALUES = 4_000_000


class UpdateWarning(UserWarning):
    """The update's importance weights are unreliable (Pareto k above :data:`K_MAX`): a full refit is needed."""


@dataclasses.dataclass(frozen=True)
class Particles:
    """What the particle update gives, per draw ``s`` of the fit (S draws, ``N_KEEP`` candidates each).

    Attributes
    ----------
    theta, country_theta : ndarray (S, keep, region | country, new period, trait)
        Candidate new traits, each chosen by its weight among the draw's particles (country by country).
    z_country, z_region : ndarray (S, keep, country | contrast, new period, trait)
        Their standard innovations (``z_region`` None without region deviations).
    log_marginal : ndarray (S,)
        Log of each draw's estimated likelihood of the new rows.
    particle_ess : ndarray (S, country)
        Effective number of particles per draw and country (``M`` for a country without new rows).
    aux : dict
        Each draw's auxiliaries at the new periods (:meth:`NewRowsLikelihood.draw_aux`: the drift paths and their
        innovations, (S, drifting, new period)), shared by its candidates.
    """

    theta: np.ndarray
    country_theta: np.ndarray
    z_country: np.ndarray
    z_region: np.ndarray | None
    log_marginal: np.ndarray
    particle_ess: np.ndarray
    aux: dict = dataclasses.field(default_factory=dict)


def _view(dyn: Dynamics, idx: np.ndarray) -> Dynamics:
    """``dyn`` with its per-draw arrays taken at ``idx`` (one row per particle)."""
    view = copy.copy(dyn)
    for name in ("chol", "country_scale", "region_scale", "inv_sd", "mean_over_sd", "phi"):
        value = getattr(dyn, name)
        setattr(view, name, None if value is None else value[idx])
    return view


def path(dyn: Dynamics, theta: np.ndarray, country: np.ndarray, gaps: np.ndarray, z_c: np.ndarray,
         z_r: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The traits (n, region | country, step, trait) from the last period's over ``gaps``, given the innovations.

    ``dyn`` has one row per particle; ``theta`` (n, region, trait), ``country`` (n, country, trait),
    ``z_c`` (n, country, step, trait), ``z_r`` (n, contrast, step, trait) or None. The same arithmetic as
    :meth:`Dynamics.simulate`: affine in the innovations.
    """
    out_r, out_c = [], []
    for h, gap in enumerate(gaps):
        g = np.array([gap])
        c_step, r_step = (s[:, :, 0] for s in dyn.raw_steps(z_c[:, :, h:h + 1],
                                                             None if z_r is None else z_r[:, :, h:h + 1], g))
        a = dyn.decay(g)[:, 0][:, None]
        pull, inv = (a - 1.0) * dyn.mean_over_sd[:, None], dyn.inv_sd[:, None]
        country = a * country + pull + inv * c_step
        theta = a * theta + pull + inv * (c_step[:, dyn.region_country] + r_step)
        out_r.append(theta)
        out_c.append(country)
    return np.stack(out_r, axis=2), np.stack(out_c, axis=2)


def propagate(dyn: Dynamics, theta: np.ndarray, country: np.ndarray, gaps: np.ndarray, rng: np.random.Generator):
    """The new traits drawn from the fitted dynamics: theta, country theta, z_country, z_region (see :func:`path`)."""
    n, n_trait = theta.shape[0], theta.shape[-1]
    n_country, n_contrast, n_new = country.shape[1], dyn.q.shape[1], len(gaps)
    draw = (lambda size: rng.standard_t(dyn.df, size)) if dyn.kind == "student_t_rw" else rng.standard_normal
    z_c = draw((n, n_country, n_new, n_trait))
    z_r = draw((n, n_contrast, n_new, n_trait)) if dyn.has_regions else None
    return (*path(dyn, theta, country, gaps, z_c, z_r), z_c, z_r)


def particles(tree, spec, panel: Panel, combined: Panel, n_particles: int = N_PARTICLES, seed: int = 0,
              n_keep: int = N_KEEP, lag: int = LAG, proposal: str = "laplace") -> Particles:
    """Propose, weight and choose the new traits for every draw of the fit (see the module docstring).

    ``proposal="laplace"`` (default) draws each (draw, country)'s innovations from a Gaussian around their
    conditional mode given the rows (:mod:`nexusbayes.inference.update_laplace`); ``"prior"`` from the fitted
    dynamics. With ``lag > 0`` the particles start ``lag`` periods earlier and redraw the last ``lag`` fitted
    periods' traits too (weighted by their rows as well), each draw then weighted by the ratio of two estimates:
    of the likelihood of all these rows and of the last fitted periods' rows alone, given the draw's traits
    before them. ``proposal`` is one of :data:`PROPOSALS` (:func:`nexusbayes.inference.update.update` checks it).
    """
    dyn = Dynamics(tree, spec, panel)
    n_old, m = len(panel.periods), n_particles
    times = np.asarray(combined.period_time, float)
    first = n_old - lag                                                        # the first period the particles draw
    gaps = np.diff(times[first - 1:])
    lik = NewRowsLikelihood(tree, spec, panel, combined, lag)
    last = lik.draws[THETA][:, :, first - 1]                         # the draws as the likelihood reads them
    country_last = lik.draws[COUNTRY_THETA][:, :, first - 1]
    n_draw, n_country = last.shape[0], country_last.shape[1]
    n_obs = lik.n_rows
    contrast_country = (panel.region_country[np.argmax(np.abs(dyn.q), axis=0)] if dyn.has_regions
                        else np.zeros(0, int))
    layout = update_laplace.Layout.of(contrast_country, n_country)
    per_draw = m * max(n_obs, last.shape[1] * len(gaps) * last.shape[2])
    if proposal == "laplace":   # the Jacobian's and the stencil's arrays, per draw
        per_draw = max(per_draw, layout.valid.size * len(gaps) * last.shape[2] * last.shape[1] * len(gaps) * 3,
                       10 * n_obs)
    step = max(1, CHUNK_VALUES // per_draw)
    rng = np.random.default_rng(seed)
    one_hot = np.eye(n_country)[lik.country]                                    # (row, country)
    lagged = lik.period < lag
    df = dyn.df if dyn.kind == "student_t_rw" else None
    # one draw of the auxiliaries (drift paths at the new periods) per fit draw, shared by its particles: given the
    # draw and them, the countries' rows stay independent, so each country's particles still carry its weight alone
    aux_all = lik.draw_aux(np.arange(n_draw), rng)
    out = {"theta": [], "country_theta": [], "z_country": [], "z_region": [], "log_marginal": [], "ess": []}
    for start in range(0, n_draw, step):
        s = np.arange(start, min(start + step, n_draw))
        aux = {k: v[s] for k, v in aux_all.items()}

        def loglik(local, theta, aux=aux, s=s):   # local: positions in the chunk
            return lik.logp(s[local], theta, {k: v[local] for k, v in aux.items()})

        def derivatives(local, theta, aux=aux, s=s):
            return lik.derivatives(s[local], theta, {k: v[local] for k, v in aux.items()})

        if proposal == "prior":
            local = np.repeat(np.arange(len(s)), m)                            # particle row -> chunk draw
            theta, country, z_c, z_r = propagate(_view(dyn, s[local]), last[s[local]], country_last[s[local]],
                                                 gaps, rng)
            logp = loglik(local, theta)
            logw = (logp @ one_hot).reshape(len(s), m, n_country)
            log_mean = logsumexp(logw, axis=1) - np.log(m)
            log_old = logsumexp(((logp * lagged) @ one_hot).reshape(len(s), m, n_country), axis=1) - np.log(m)
        else:
            theta, country, z_c, z_r, logw, log_mean, log_old = _laplace(
                dyn, layout, s, last, country_last, gaps, (loglik, derivatives), lik, lag, m, one_hot, df, rng)
        # p(new rows | draw's earlier traits and parameters, the last fitted periods' rows): a ratio of estimates
        out["log_marginal"].append((log_mean - log_old).sum(-1))
        w = np.exp(logw - logsumexp(logw, axis=1)[:, None])
        out["ess"].append(1.0 / (w**2).sum(1))
        # n_keep candidates per (draw, country), each chosen by its weight
        u = (rng.random((len(s), n_keep, n_country)) + np.arange(n_keep)[None, :, None]) / n_keep   # stratified
        pick = np.minimum((np.cumsum(w, 1)[:, None] < u[:, :, None]).sum(2), m - 1)   # (draws, keep, country)
        row = (np.arange(len(s)) * m)[:, None, None] + pick                           # particle rows
        region_row = row[:, :, panel.region_country]                                   # (draws, keep, region)
        out["theta"].append(theta[region_row, np.arange(theta.shape[1])])
        out["country_theta"].append(country[row, np.arange(n_country)])
        out["z_country"].append(z_c[row, np.arange(n_country)])
        if z_r is not None:
            out["z_region"].append(z_r[row[:, :, contrast_country], np.arange(len(contrast_country))])
    cat = {k: (np.concatenate(v) if v else None) for k, v in out.items()}
    return Particles(theta=cat["theta"], country_theta=cat["country_theta"], z_country=cat["z_country"],
                     z_region=cat["z_region"], log_marginal=cat["log_marginal"], particle_ess=cat["ess"], aux=aux_all)


def _laplace(dyn, layout, s, last, country_last, gaps, rows, lik, lag, m, one_hot, df, rng):
    """The Laplace proposal's particles for chunk draws ``s`` (:mod:`nexusbayes.inference.update_laplace`).

    ``rows`` is ``(loglik, derivatives)``: the rows' log-likelihood and their analytic derivatives in the traits,
    both ``(local, theta)`` with ``local`` the positions in the chunk.

    Returns theta, country theta, z_country, z_region (one row per particle), the log-weights (draw, m, country),
    the log mean weights and those of the lagged rows alone (draw, country; 0 without lag).
    """
    n_trait, n_step = last.shape[-1], len(gaps)

    def traits_over(steps):
        def traits(z, local=None):
            local = np.arange(len(s)) if local is None else local
            z_c, z_r = layout.split(z, dyn.has_regions)
            return path(_view(dyn, s[local]), last[s[local]], country_last[s[local]], gaps[:steps], z_c, z_r)
        return traits

    def padded(local, theta, of=0):   # the rows of later periods read zeros (they are masked out)
        full = np.zeros((*theta.shape[:2], n_step, n_trait))
        full[:, :, :theta.shape[2]] = theta
        return rows[of](local, full)

    def run(steps, mask, draws):
        prop = update_laplace.Proposal(traits_over(steps), padded, layout, dyn.region_country, len(s), steps,
                                       n_trait, lik.region, np.minimum(lik.period, steps - 1), mask, df,
                                       lambda local, theta: padded(local, theta, 1))
        mode, chol = prop.fit()
        z, log_ratio = prop.sample(mode, chol, draws, rng)
        z = z.reshape(len(s) * draws, *prop.shape)
        local = np.repeat(np.arange(len(s)), draws)
        theta, country = prop.traits(z, local)
        logw = ((padded(local, theta) * mask) @ one_hot).reshape(len(s), draws, -1) + log_ratio
        return theta, country, z, logw, prop.log_mean_weight(logw)

    theta, country, z, logw, log_mean = run(n_step, np.ones(len(lik.region), bool), m)
    log_old = run(lag, lik.period < lag, m)[-1] if lag else np.zeros_like(log_mean)
    z_c, z_r = layout.split(z, dyn.has_regions)
    return theta, country, z_c, z_r, logw, log_mean, log_old


def importance(log_marginal: np.ndarray, r_eff: float = 1.0) -> tuple[np.ndarray, float, float]:
    """PSIS-smoothed normalised weights of the fit's draws, their Pareto k, and the ESS after weighting."""
    from arviz_stats.base import array_stats

    log_marginal = np.asarray(log_marginal, float)
    if np.ptp(log_marginal) == 0.0:    # no new row weighs on the draws: the fit's draws as they are
        return np.full(len(log_marginal), 1.0 / len(log_marginal)), float("-inf"), float(len(log_marginal))
    # psislw smooths the weights of leave-one-out, 1 / likelihood: it takes a log-likelihood and negates it, so the
    # log-weights given here (likelihood of the new rows) go in negated
    log_w, k = array_stats.psislw(-log_marginal, r_eff=r_eff)
    w = np.exp(log_w - logsumexp(log_w))
    k = float(k)
    if not np.isfinite(k) or k > K_MAX:
        warnings.warn(f"the update's importance weights have Pareto k = {k:.2f} > {K_MAX}: the fit's draws do not "
                      "cover the posterior given the new data, so the updated draws are unreliable; refit on all "
                      "the data (nexusbayes fit)", UpdateWarning, stacklevel=3)
    return w, k, float(1.0 / (w**2).sum())


def resample(weights: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws by systematic resampling: the source draw of each, and which copy of its draw it is."""
    u = (rng.random() + np.arange(n)) / n
    source = np.minimum(np.searchsorted(np.cumsum(weights), u), len(weights) - 1)
    rng.shuffle(source)
    order = np.argsort(source, kind="stable")
    copy_no = np.empty(n, int)
    sorted_source = source[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_source)) + 1]
    counts = np.diff(np.r_[first, n])
    copy_no[order] = np.arange(n) - np.repeat(first, counts)
    return source, copy_no


def appended(tree, found: Particles, source: np.ndarray, copy_no: np.ndarray, periods: list, first: int):
    """The fit's posterior at the resampled draws ``source``, its periods from ``first`` on the particles'.

    ``first`` is the fit's number of periods less the particles' ``lag``; the chains are shaped as the fit's.
    Copy ``j`` of a draw takes its candidate ``j mod keep`` of the new traits and innovations. The drift paths
    and their innovations keep the fit's fitted periods and get the new ones from the draw's auxiliaries
    (:attr:`Particles.aux`). Any other variable over periods or steps is refused (the update cannot extend it).
    """
    import xarray as xr

    post = tree["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    n_old = post.sizes["period"]
    shape = (n_chain, n_draw)
    keep = copy_no % found.theta.shape[1]
    stacked = post.stack(sample=("chain", "draw")).drop_vars(["sample", "chain", "draw"])
    # per variable: its new values at the resampled draws (sample, unit, new period[, trait]), its dims, the
    # position of its first new period
    fresh = {THETA: (found.theta, ("region", "period", "trait")),
             COUNTRY_THETA: (found.country_theta, ("country", "period", "trait")),
             "country_z": (found.z_country, ("country", "step", "trait")),
             "region_z": (found.z_region, ("region_contrast", "step", "trait"))}
    fresh = {name: (None if v is None else v[source, keep], dims, first) for name, (v, dims) in fresh.items()}
    for walk in WALKS:
        if walk.path in found.aux:
            fresh[walk.path] = (found.aux[walk.path][source], (walk.dim, "period"), n_old)
            fresh[walk.z] = (found.aux[walk.z][source], (walk.dim, "step"), n_old)
    out = {}
    for name, var in stacked.data_vars.items():
        old = var.isel(sample=xr.DataArray(source.reshape(shape), dims=("chain", "draw")))
        if name in fresh and fresh[name][0] is not None:
            values, dims, start = fresh[name]
            dim = dims[1]
            new = xr.DataArray(values.reshape(*shape, *values.shape[1:]), dims=("chain", "draw", *dims),
                               coords={dim: periods[start:]})
            old = old.isel({dim: slice(0, start if dim == "period" else start - 1)})
            old = xr.concat([old, new.transpose(*old.dims)], dim=dim)
        elif "period" in var.dims or "step" in var.dims:
            raise ValueError(f"the fit's posterior variable {name!r} runs over periods, which an update does not "
                             "extend; refit on all the data instead (nexusbayes fit)")
        out[name] = old.transpose("chain", "draw", *(d for d in var.dims if d != "sample"))
    return xr.Dataset(out).assign_coords(chain=np.arange(n_chain), draw=np.arange(n_draw), period=periods,
                                         step=periods[1:])


#: Which diagnostics apply to a particle update's draws (the output says so; ``analysis.diagnostics`` acts on it).
DIAGNOSTICS = (
    "the draws are the fit's draws resampled by importance weights, not MCMC transitions: their checks are the "
    f"weights' Pareto k (<= {K_MAX}) and the ESS after weighting; divergences, E-BFMI and tree depth do "
    "not apply (the fit's own sampler statistics are not carried over), and R-hat and ESS of the resampled draws "
    "count repeated draws (the distinct draws are fewer)")


def description(n_particles: int, k: float, ess: float, n_draws: int, proposal: str = "laplace", lag: int = 0) -> str:
    """What the particle update held and how, in one sentence (for the output and the report)."""
    drawn = ("from a Gaussian (Laplace) approximation of their posterior given each draw and the new rows"
             if proposal == "laplace" else "from the fitted dynamics given each draw")
    redrawn = f", the last {lag} fitted period(s) redrawn with them" if lag else ""
    verdict = ("reliable" if k <= K_MAX else
               "UNRELIABLE: the fit's draws do not cover the new posterior, refit on all the data")
    return (f"nothing re-sampled by MCMC: the fit's {n_draws} draws (all parameters and the fitted periods' traits) "
            f"reweighted by their likelihood of the new rows (importance sampling, PSIS: Pareto k = {k:.2f}, "
            f"{verdict}; ESS after weighting {ess:.0f}) and resampled, the new periods' traits drawn {drawn}{redrawn} "
            f"and weighted ({n_particles} particles per draw and country). "
            "Held as the fit had them: the values of every parameter (only their weights change, no new values "
            "are explored) and the traits' standardisation (the new periods are on the fit's scale)")
