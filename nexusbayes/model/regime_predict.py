"""After sampling the regime model: the states and predictions, draw by draw in NumPy; the log-likelihood.

Per posterior draw, every observation's full log-density under each state (:meth:`Family.logp`, with
the terms the sampler's kernels leave out) is summed onto (region, period, state); forward-backward
(:mod:`nexusbayes.model.hmm`) then gives each region's marginal log-likelihood (its whole series, the
states summed out), the smoothed P(type) per region-period, a draw of the state path from p(states | y)
(forward filtering, backward sampling) and the draw's most probable (Viterbi) path. The pointwise
log-likelihood, ``y_<key>`` (chain, draw, obs_<key>), is each observation's log-density given the draw's sampled
states, as the trait model's is given the draw's theta: both condition on their latent variables drawn from
the posterior, so PSIS-LOO leaves out one observation in both on the same footing. It is not added to the tree:
:func:`log_likelihood` computes it from the stored ``regime.type_state`` when needed (the report's LOO and
:func:`nexusbayes.analysis.model_choice.compare_models` ask :meth:`nexusbayes.fit.Fit.log_likelihood`).
Added to the tree:

* ``regime.region_loglik`` (chain, draw, region): each region's whole series with the states summed out, the
  marginal likelihood per region (for leaving a region's series out; the trait model has no counterpart
  until its theta path is integrated out too);
* ``posterior.theta`` (chain, draw, region, period, trait): the expected level E[level | y] per draw (plus the
  region's ``region_deviation`` with ``[model] region_deviation = true``), and
  ``posterior.country_theta`` its mean over each country's regions, for consumers of the trait model's theta;
* group ``regime``: ``type_probability`` (chain, draw, region, period, type), ``type_state`` (chain, draw,
  region, period; codes into TYPES) and ``modal_path`` (region, period): per region the Viterbi path most
  frequent among the draws;
* ``posterior_predictive.y_<key>``: observations drawn given each draw's sampled states.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr
from scipy import sparse

from nexusbayes.constants import POSTPROCESS_CHUNK_VALUES, TYPES
from nexusbayes.data.panel import Panel
from nexusbayes.model import hmm
from nexusbayes.model.covariates import EFFECT
from nexusbayes.model.design import Design, block_index
from nexusbayes.model.families import FAMILIES, NUISANCE
from nexusbayes.model.predict import LOG_LIKELIHOOD_DTYPE, FlatDraws, prior_draws, store_draws
from nexusbayes.model.regime import DEVIATION, INITIAL, TRANSITION, levels, step_multiples
from nexusbayes.model.regime_covariates import log_transitions, transition_values
from nexusbayes.spec.document import Spec


def state_etas(post: Mapping[str, np.ndarray], design: Design, spec: Spec, idx, rows) -> np.ndarray:
    """Each observation's linear predictor in each state, (draw, obs, state), for draws ``rows``."""
    loading, intercept = post["loading"][rows], post["intercept"][rows]          # (draw, indicator, trait)
    by_state = intercept[..., None] + loading @ levels(spec.traits).T            # (draw, indicator, state)
    eta = idx.centre[None, :, None] + by_state[:, idx.indicator]
    if "country_offset" in post:
        eta = eta + post["country_offset"][rows][:, idx.indicator, idx.country][..., None]
    if DEVIATION in post:       # within-state region deviations: the same shift in every state
        eta = eta + (loading[:, idx.indicator] * post[DEVIATION][rows][:, idx.region]).sum(-1)[..., None]
    return eta


def log_probabilities(post: Mapping[str, np.ndarray], design: Design, rows,
                      x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log initial (draw, region, state) and log transition (draw, region, step, state, state) probabilities.

    ``x``: the transition covariates' standardised values (:func:`~nexusbayes.model.regime_covariates.
    transition_values`), with ``covariate_effect`` in ``post``.
    """
    rc = design.region_country
    _, multiples = step_multiples(design.period_time)
    trans = post[TRANSITION][rows]                                               # (draw, country, S, S)
    if x is not None and len(multiples):
        return np.log(post[INITIAL][rows])[:, rc], log_transitions(trans, rc, multiples, x, post[EFFECT][rows])
    steps = np.stack([np.linalg.matrix_power(trans, int(m)) for m in multiples], axis=2) if len(multiples) else \
        np.zeros((*trans.shape[:2], 0, *trans.shape[2:]))
    with np.errstate(divide="ignore"):
        return np.log(post[INITIAL][rows])[:, rc], np.log(steps)[:, rc]


def emissions(post: Mapping[str, np.ndarray], design: Design, panel: Panel, spec: Spec, rows) -> np.ndarray:
    """Log-likelihood of each region-period's observations under each state, (draw, region, period, state)."""
    n_region, n_period = len(panel.regions), len(panel.periods)
    n_draw = len(range(*rows.indices(len(post["loading"]))))
    total = np.zeros((n_draw, n_region * n_period, len(TYPES)))
    for block in design.blocks:
        family = FAMILIES[spec.indicator(block.names[0]).family]
        idx = block_index(design, panel, block)
        params = {p: post[f"{p}_{block.key}"][rows] for p in NUISANCE if f"{p}_{block.key}" in post}
        eta = state_etas(post, design, spec, idx, rows)
        cell = idx.region * n_period + idx.period
        to_cells = sparse.csr_matrix((np.ones(len(cell)), (np.arange(len(cell)), cell)),
                                     shape=(len(cell), n_region * n_period))
        for s in range(len(TYPES)):
            total[:, :, s] += to_cells.T.dot(family.logp(eta[..., s], idx.scale, block, params).T).T
    return total.reshape(n_draw, n_region, n_period, len(TYPES))


def state_log_likelihood(post: FlatDraws, states: np.ndarray, design: Design, panel: Panel,
                         spec: Spec, terms: list[str] | None = None) -> xr.Dataset:
    """Each observation's log-density given the draw's state path: ``y_<key>`` over (chain, draw, obs_<key>).

    ``states`` (sample, region, period) are the draws' sampled paths (``regime.type_state``), which a fit keeps,
    so the values are computed when needed (:func:`log_likelihood`); ``terms``: those ``y_<key>`` alone.
    """
    step = max(1, POSTPROCESS_CHUNK_VALUES // max(panel.n_obs * len(TYPES), 1))
    out = {}
    for block in design.blocks:
        if terms is not None and f"y_{block.key}" not in terms:
            continue
        family = FAMILIES[spec.indicator(block.names[0]).family]
        idx = block_index(design, panel, block)
        logp = np.empty((post.n_samples, len(block.rows)), dtype=LOG_LIKELIHOOD_DTYPE)
        for begin in range(0, post.n_samples, step):
            rows = slice(begin, min(begin + step, post.n_samples))
            params = {p: post[f"{p}_{block.key}"][rows] for p in NUISANCE if f"{p}_{block.key}" in post}
            eta = np.take_along_axis(state_etas(post, design, spec, idx, rows),
                                     states[rows][:, idx.region, idx.period, None].astype(np.intp), -1)[..., 0]
            logp[rows] = family.logp(eta, idx.scale, block, params)
        out[f"y_{block.key}"] = xr.DataArray(logp.reshape(post.n_chain, post.n_draw, -1),
                                             dims=("chain", "draw", block.dim), coords={block.dim: block.labels})
    return xr.Dataset(out).assign_coords(chain=post.post["chain"].values, draw=post.post["draw"].values)


def log_likelihood(tree: xr.DataTree, design: Design, panel: Panel, spec: Spec,
                   terms: list[str] | None = None) -> xr.Dataset:
    """The pointwise log-likelihood of a regime fit's draws, computed from its posterior and sampled states.

    ``terms`` (``y_<key>`` names; default all) as :func:`nexusbayes.model.predict.log_likelihood`'s.
    """
    known = [f"y_{block.key}" for block in design.blocks]
    unknown = [t for t in terms or () if t not in known]
    if unknown:
        raise ValueError(f"no likelihood term(s) {unknown}; this model's are {known}")
    post = FlatDraws(tree["posterior"].to_dataset())
    states = tree["regime"]["type_state"].transpose("chain", "draw", "region", "period").values
    return state_log_likelihood(post, states.reshape(post.n_samples, *states.shape[2:]), design, panel, spec, terms)


def add_regime_predictions(tree: xr.DataTree, design: Design, panel: Panel, spec: Spec, seed: int) -> xr.DataTree:
    """Add the states, the per-region log-likelihood and the predictions to a sampled regime tree (module docstring)."""
    post = FlatDraws(tree["posterior"].to_dataset())
    n_chain, n_draw, n_sample = post.n_chain, post.n_draw, post.n_samples
    n_region, n_period, n_state = len(panel.regions), len(panel.periods), len(TYPES)
    rng = np.random.default_rng(seed)
    loglik = np.empty((n_sample, n_region))
    smoothed = np.empty((n_sample, n_region, n_period, n_state), dtype=np.float32)
    states = np.empty((n_sample, n_region, n_period), dtype=np.int8)
    paths = np.empty((n_sample, n_region, n_period), dtype=np.int8)
    step = max(1, POSTPROCESS_CHUNK_VALUES // max(panel.n_obs * n_state + n_region * n_period * n_state**2, 1))
    for start in range(0, n_sample, step):
        rows = slice(start, min(start + step, n_sample))
        log_init, log_trans = log_probabilities(post, design, rows, transition_values(spec, panel))
        emission = emissions(post, design, panel, spec, rows)
        alpha = hmm.forward(log_init, log_trans, emission)
        beta = hmm.backward(log_trans, emission)
        loglik[rows] = hmm.logsumexp(alpha[:, :, -1], axis=-1)
        smoothed[rows] = np.exp(alpha + beta - loglik[rows][:, :, None, None])
        states[rows] = hmm.sample_states(rng, log_trans, alpha)
        paths[rows] = hmm.viterbi(log_init, log_trans, emission)
    theta = smoothed.astype(float) @ levels(spec.traits)                       # (sample, region, period, trait)
    if DEVIATION in post:
        theta = theta + post[DEVIATION][:, :, None, :]
    average = np.zeros((len(panel.countries), n_region))
    average[design.region_country, np.arange(n_region)] = 1.0
    average /= average.sum(axis=1, keepdims=True)
    country_theta = np.einsum("cr,srtk->sctk", average, theta)

    def shaped(values, dims, **coords):
        return xr.DataArray(values.reshape(n_chain, n_draw, *values.shape[1:]), dims=("chain", "draw", *dims),
                            coords={"chain": tree["posterior"]["chain"].values,
                                    "draw": tree["posterior"]["draw"].values, **coords})

    where = {"region": panel.regions, "period": panel.periods}
    posterior = tree["posterior"].to_dataset()
    # the expected levels held in single precision, as the sampled draws are (predict.single_precision)
    posterior["theta"] = shaped(theta.astype(np.float32), ("region", "period", "trait"), **where, trait=spec.traits)
    posterior["country_theta"] = shaped(country_theta.astype(np.float32), ("country", "period", "trait"),
                                        country=panel.countries, period=panel.periods, trait=spec.traits)
    tree["posterior"] = xr.DataTree(posterior)
    tree["regime"] = xr.DataTree(xr.Dataset({
        "type_probability": shaped(smoothed, ("region", "period", "type"), **where, type=list(TYPES)),
        "type_state": shaped(states, ("region", "period"), **where),
        "modal_path": xr.DataArray(hmm.modal_paths(paths), dims=("region", "period"), coords=where),
        "region_loglik": shaped(loglik, ("region",), region=panel.regions),
    }, attrs={"time_unit_years": step_multiples(design.period_time)[0]}))
    predictive, observed = {}, {}
    for block in design.blocks:
        family = FAMILIES[spec.indicator(block.names[0]).family]
        idx = block_index(design, panel, block)
        drawn = None
        for begin in range(0, n_sample, step):
            rows = slice(begin, min(begin + step, n_sample))
            params = {p: post[f"{p}_{block.key}"][rows] for p in NUISANCE if f"{p}_{block.key}" in post}
            eta = np.take_along_axis(state_etas(post, design, spec, idx, rows),
                                     states[rows][:, idx.region, idx.period, None].astype(np.intp), -1)[..., 0]
            drawn = store_draws(drawn, rows, family.simulate(rng, eta, idx.scale, block, params),
                                family.draw_dtype(block), n_sample)
        coords = {block.dim: block.labels}
        predictive[f"y_{block.key}"] = shaped(drawn, (block.dim,), **coords)
        observed[f"y_{block.key}"] = xr.DataArray(block.y, dims=block.dim, coords=coords)
    tree["posterior_predictive"] = xr.DataTree(xr.Dataset(predictive))
    tree["observed_data"] = xr.DataTree(xr.Dataset(observed))
    const = {"centre_loc": ("indicator", design.centres[:, 0]), "centre_scale": ("indicator", design.centres[:, 1]),
             "period_time": ("period", design.period_time),
             "region_country": ("region", np.array([panel.countries[c] for c in panel.region_country], dtype=object))}
    tree["constant_data"] = xr.DataTree(xr.Dataset(const, coords={"indicator": panel.indicators,
                                                                  "period": panel.periods, "region": panel.regions}))
    return tree


def markov_paths(rng: np.random.Generator, log_init: np.ndarray, log_trans: np.ndarray) -> np.ndarray:
    """State paths drawn forward from the chain, (draw, region, period) (int8), given its log probabilities."""
    n_draw, n_region, n_state = log_init.shape
    n_period = log_trans.shape[2] + 1
    draws, regions = np.meshgrid(np.arange(n_draw), np.arange(n_region), indexing="ij")
    states = np.empty((n_draw, n_region, n_period), dtype=np.int8)
    p = np.exp(log_init)
    for t in range(n_period):
        if t > 0:
            p = np.exp(log_trans[draws, regions, t - 1, states[:, :, t - 1]])
        u = rng.random((n_draw, n_region, 1))
        states[:, :, t] = np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), n_state - 1)
    return states


def regime_prior_predictive(model, design: Design, panel: Panel, spec: Spec, draws: int,
                            seed: int | None) -> xr.Dataset:
    """Observations drawn from the regime model's prior predictive (one chain of ``draws``), ordinal on 1..K.

    The parameters are PyMC's forward draws from the prior; the states are drawn forward from each draw's chain
    and the observations given them (the model's likelihood is a potential, which PyMC cannot draw from).
    """
    _, data = regime_prior_draws(model, design, panel, spec, draws, seed)
    ordinal = {f"y_{b.key}" for b in design.blocks if spec.indicator(b.names[0]).family == "ordinal"}
    return data.assign({name: data[name] + 1 for name in ordinal & set(data.data_vars)})


def regime_prior_draws(model, design: Design, panel: Panel, spec: Spec, draws: int,
                       seed: int | None) -> tuple[xr.Dataset, xr.Dataset]:
    """Joint draws from the regime model's prior: (parameters, observations), each one chain of ``draws``.

    The parameters are PyMC's forward draws of every free variable and deterministic (group ``prior``); the
    observations ``y_<key>`` are drawn given each draw's state paths and are on the model's scale (ordinal
    codes 0..K-1, as the data containers hold them), so that simulation-based calibration can refit to them.
    """
    names = [v.name for v in [*model.free_RVs, *model.deterministics]]
    with warnings.catch_warnings():   # the potential is the likelihood: the prior draws rightly ignore it
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
        prior = prior_draws(model, draws, seed, var_names=names)["prior"].to_dataset()
    post = FlatDraws(prior)
    rng = np.random.default_rng(seed)
    rows = slice(0, draws)
    states = markov_paths(rng, *log_probabilities(post, design, rows, transition_values(spec, panel)))
    out = {}
    for block in design.blocks:
        family = FAMILIES[spec.indicator(block.names[0]).family]
        idx = block_index(design, panel, block)
        params = {p: post[f"{p}_{block.key}"] for p in NUISANCE if f"{p}_{block.key}" in post}
        eta = np.take_along_axis(state_etas(post, design, spec, idx, rows),
                                 states[:, idx.region, idx.period, None].astype(np.intp), -1)[..., 0]
        y = family.simulate(rng, eta, idx.scale, block, params)
        if family.name == "ordinal":
            y = y - 1                      # the data's 1..K to the model's codes 0..K-1
        out[f"y_{block.key}"] = xr.DataArray(y[None], dims=("chain", "draw", block.dim),
                                             coords={block.dim: block.labels})
    return prior, xr.Dataset(out)
