"""Predictive draws and log-likelihood: prior predictive from the PyMC graph, the rest in NumPy per family."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pymc as pm
import xarray as xr
from pytensor.compile.mode import Mode

from nexusbayes.constants import POSTPROCESS_CHUNK_VALUES, PRIOR_PREDICTIVE_DRAWS
from nexusbayes.data.panel import Panel
from nexusbayes.model.design import Design, block_index, term_key
from nexusbayes.model.families import FAMILIES, NUISANCE
from nexusbayes.model.heaping import block_inflation, logits_numpy, mix_draws, mix_logp
from nexusbayes.model.measurement import DRIFT, drift_layout, drift_sign
from nexusbayes.model.reporting import OBS_DIM, REPORTED, bernoulli_logp, reporting_cells, reporting_logit
from nexusbayes.spec.document import Spec


def forward_mode() -> Mode:
    """The PyTensor mode for forward sampling (prior and prior predictive draws): Python thunks, no C compiler.

    Forward sampling runs its graph a few hundred times at most, so compiling it to C, PyTensor's
    default, costs far more than it saves (see ``benchmarks/HISTORY.md``). The draws are the same up to
    rounding: NumPy draws the random variables either way.

    Examples
    --------
    >>> type(forward_mode().linker).__name__
    'PerformLinker'
    """
    return Mode(linker="py", optimizer="fast_compile")


def prior_draws(model: pm.Model, draws: int, seed: int | None, var_names: list[str] | None = None) -> xr.DataTree:
    """Forward draws from the prior: groups ``prior`` and ``prior_predictive`` (one chain of ``draws``).

    ``var_names`` limits the draws to those variables (default every variable); observed values are on
    the model's scale (ordinal ratings 0..K-1).
    """
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)    # not the INFO line listing every variable it draws
    try:
        with model:
            return pm.sample_prior_predictive(draws=draws, var_names=var_names, random_seed=seed,
                                              compile_kwargs={"mode": forward_mode()})
    finally:
        logger.setLevel(level)


def prior_predictive(model: pm.Model, panel: Panel, spec: Spec, draws: int = PRIOR_PREDICTIVE_DRAWS,
                     seed: int | None = None) -> xr.Dataset:
    """Draw observations from the prior predictive distribution (one chain of ``draws`` draws).

    Cheap: PyMC forward-samples the built model (no MCMC). Variables and dims are those of the
    ``posterior_predictive`` group (``y_<term>`` over ``obs_<term>``), ordinal ratings on their 1..K scale.

    Parameters
    ----------
    model : pymc.Model
        The PyMC model of ``panel`` under ``spec`` (:attr:`nexusbayes.model.build.Model.pymc`).
    panel : Panel
    spec : Spec
    draws : int
        Number of prior predictive draws.
    seed : int, optional
        Random seed.

    Returns
    -------
    xarray.Dataset
        Dims ``(chain, draw, obs_<term>)``.

    Examples
    --------
    >>> from nexusbayes.model.build import Model
    >>> from nexusbayes.model.simulate import simulate
    >>> sim = simulate(n_regions=3, n_periods=3, seed=2)
    >>> prior = prior_predictive(Model(sim.spec, sim.panel).pymc, sim.panel, sim.spec, draws=10, seed=1)
    >>> sorted(prior.data_vars)
    ['y_binomial', 'y_negbin', 'y_normal', 'y_ordinal']
    """
    drawn = prior_draws(model, draws, seed, var_names=[rv.name for rv in model.observed_RVs])
    out = drawn["prior_predictive"].to_dataset()
    ordinal = {f"y_{term_key(spec, n)}" for n in panel.indicators if spec.indicator(n).family == "ordinal"}
    for name in ordinal & set(out.data_vars):
        out[name] = out[name] + 1          # the model's 0..K-1 back to the data's 1..K
    return out.drop_attrs()


def draw_chunks(n_samples: int, n_obs: int) -> list[slice]:
    """Slices of the draws so that each holds at most :data:`POSTPROCESS_CHUNK_VALUES` draws × observations.

    A fixed budget, not the machine's free memory, so that the posterior predictive drawn from a
    seed does not depend on the machine.

    Examples
    --------
    >>> draw_chunks(4000, 500)
    [slice(0, 4000, None)]
    >>> [(c.start, c.stop) for c in draw_chunks(4000, 2000)]
    [(0, 2097), (2097, 4000)]
    """
    step = max(1, POSTPROCESS_CHUNK_VALUES // max(n_obs, 1))
    return [slice(start, min(start + step, n_samples)) for start in range(0, n_samples, step)]


def add_predictions(tree: xr.DataTree, design: Design, panel: Panel, spec: Spec, seed: int) -> xr.DataTree:
    """Add log-likelihood, posterior predictive, observed and constant data (NumPy, nothing to compile).

    Ordinal observations and predictions are on their 1..K scale. With informative indicators, the reporting
    model's ``reported`` (:mod:`nexusbayes.model.reporting`) is in the log-likelihood and the predictions (1:
    reported), not in the observed data, whose variables are the indicators' values. Computed over chunks of draws
    (:func:`draw_chunks`), so memory beyond the two results stays bounded on large panels, with each
    chunk's log-likelihood in a second thread beside its predictions.
    """
    post = tree["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]

    def flat(name):
        return post[name].values.reshape(n_chain * n_draw, *post[name].shape[2:])

    theta, loading, intercept = flat("theta"), flat("loading"), flat("intercept")
    offset = flat("country_offset") if "country_offset" in post else None
    shift, position = None, None
    if DRIFT in post:    # (sample, drifting + 1, period): sign * path, and a row of zeros for the steady indicators
        drifting, position = drift_layout(design, spec)
        path = flat(DRIFT) * drift_sign(spec, [panel.indicators[j] for j in drifting])[:, None]
        shift = np.concatenate([path, np.zeros_like(path[:, :1])], axis=1)
    rng = np.random.default_rng(seed)
    blocks = []
    # A chunk's log-likelihood is computed in a second thread while this one draws its predictions
    # (NumPy and SciPy release the GIL in their loops). The draws keep their order in the one stream,
    # so the predictions are those of a sequential run, and at most two chunks are in memory.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nexusbayes-loglik") as pool:
        pending = None
        for block in design.blocks:
            family = FAMILIES[spec.indicator(block.names[0]).family]
            idx = block_index(design, panel, block)
            params = {p: flat(f"{p}_{block.key}") for p in NUISANCE if f"{p}_{block.key}" in post}
            parts = block_inflation(spec, block, panel.indicators)
            inflation = {c: (flat(f"{c}_intercept"), flat(f"{c}_loading")) for c in parts}
            logp, drawn = np.empty((n_chain * n_draw, len(block.rows))), None
            for rows in draw_chunks(n_chain * n_draw, len(block.rows)):
                # the draws × observations temporaries of a chunk only (a whole block took several GB on large panels)
                eta = idx.centre + intercept[rows][:, idx.indicator] + np.einsum(
                    "snk,snk->sn", loading[rows][:, idx.indicator], theta[rows][:, idx.region, idx.period])
                if offset is not None:
                    eta += offset[rows][:, idx.indicator, idx.country]
                if shift is not None:
                    eta += shift[rows][:, position[idx.indicator], idx.period]
                chunk_params = {p: value[rows] for p, value in params.items()}
                logits = {c: logits_numpy(parts[c], a[rows], b[rows], theta[rows], idx.region, idx.period)
                          for c, (a, b) in inflation.items()}
                _store(pending)
                pending = (logp, rows, pool.submit(_logp, family, eta, idx.scale, block, chunk_params, parts, logits))
                simulated = family.simulate(rng, eta, idx.scale, block, chunk_params)
                if parts:    # quota heaping, structural zeros (see nexusbayes.model.heaping)
                    simulated = mix_draws(rng, simulated, parts, logits)
                if drawn is None:
                    drawn = np.empty(logp.shape, dtype=simulated.dtype)
                drawn[rows] = simulated
            blocks.append((block, logp, drawn))
        _store(pending)
    observed, predictive, loglik = {}, {}, {}
    for block, logp, drawn in blocks:
        name, coords = f"y_{block.key}", {block.dim: block.labels}
        dims = ("chain", "draw", block.dim)
        loglik[name] = xr.DataArray(logp.reshape(n_chain, n_draw, -1), dims=dims, coords=coords)
        predictive[name] = xr.DataArray(drawn.reshape(n_chain, n_draw, -1), dims=dims, coords=coords)
        observed[name] = xr.DataArray(block.y, dims=block.dim, coords=coords)
    cells = reporting_cells(spec, panel)
    if cells is not None:     # the reporting model: its log-likelihood and predictive draws, not an observed y
        logp, drawn = np.empty((n_chain * n_draw, len(cells.item))), np.empty((n_chain * n_draw, len(cells.item)), int)
        for rows in draw_chunks(n_chain * n_draw, len(cells.item)):
            logit = reporting_logit(lambda n: flat(n) if n in post else None, cells, len(panel.periods), rows)
            logp[rows] = bernoulli_logp(logit, cells.reported)
            drawn[rows] = rng.random(logit.shape) < 1.0 / (1.0 + np.exp(-logit))
        dims, coords = ("chain", "draw", OBS_DIM), {OBS_DIM: cells.labels}
        loglik[REPORTED] = xr.DataArray(logp.reshape(n_chain, n_draw, -1), dims=dims, coords=coords)
        predictive[REPORTED] = xr.DataArray(drawn.reshape(n_chain, n_draw, -1), dims=dims, coords=coords)
    sample_coords = {"chain": post["chain"].values, "draw": post["draw"].values}
    tree["log_likelihood"] = xr.DataTree(xr.Dataset(loglik).assign_coords(sample_coords))
    tree["posterior_predictive"] = xr.DataTree(xr.Dataset(predictive).assign_coords(sample_coords))
    tree["observed_data"] = xr.DataTree(xr.Dataset(observed))
    names = panel.indicators
    const = {"centre_loc": ("indicator", design.centres[:, 0]), "centre_scale": ("indicator", design.centres[:, 1]),
             "period_time": ("period", design.period_time),
             "region_country": ("region", np.array([panel.countries[c] for c in panel.region_country], dtype=object))}
    tree["constant_data"] = xr.DataTree(xr.Dataset(const, coords={"indicator": names, "period": panel.periods,
                                                                  "region": panel.regions}))
    return tree


def _logp(family, eta, scale, block, params, parts, logits) -> np.ndarray:
    """A chunk's pointwise log-likelihood: the family's, mixed with its inflation components when it has any."""
    honest = family.logp(eta, scale, block, params)
    return mix_logp(honest, block.y, parts, logits) if parts else honest


def _store(pending: tuple[np.ndarray, slice, Future] | None) -> None:
    """Wait for a chunk's log-likelihood and write it into its block's array (``(array, rows, future)``)."""
    if pending is not None:
        logp, rows, future = pending
        logp[rows] = future.result()
