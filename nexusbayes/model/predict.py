"""Predictive draws and log-likelihood: prior predictive from the PyMC graph, the rest in NumPy per family."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import numpy as np
import pymc as pm
import xarray as xr
from pytensor.compile.mode import Mode

from nexusbayes.constants import POSTPROCESS_CHUNK_VALUES, PRIOR_PREDICTIVE_DRAWS
from nexusbayes.data.panel import Panel
from nexusbayes.model.design import BlockIndex, Design, block_index, term_key
from nexusbayes.model.drift import posterior_tables
from nexusbayes.model.families import FAMILIES, NUISANCE
from nexusbayes.model.heaping import block_inflation, logits_numpy, mix_draws, mix_logp
from nexusbayes.model.reporting import OBS_DIM, REPORTED, bernoulli_logp, informative, reporting_cells, reporting_logit
from nexusbayes.spec.document import Spec

#: The pointwise log-likelihood (:func:`log_likelihood`, computed when needed) is given in single precision:
#: computed in double precision and rounded (at most 6e-8 of each value, far below the Monte Carlo error of
#: PSIS-LOO), half the memory. Its readers (:func:`nexusbayes.report.checks.loo`, model choice) compute in double
#: precision.
LOG_LIKELIHOOD_DTYPE = np.float32


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


def single_precision(data: xr.Dataset) -> xr.Dataset:
    """``data`` with its double-precision values rounded to the nearest single-precision ones, in single precision.

    The posterior is rounded so after sampling (a lean trace's as it is computed) and held in single precision:
    the rounding is at most 6e-8 of each value (24 significant bits), some 10^5 times below the Monte Carlo
    error of 1,000 effective draws; half the memory, and :meth:`nexusbayes.fit.Fit.save` stores the values as
    they are (a loaded fit equals the fit as sampled). The predictive draws are stored so as they are drawn
    (:func:`store_draws`). Readers that compute on the draws (:class:`FlatDraws`) widen them to doubles.

    Examples
    --------
    >>> rounded = single_precision(xr.Dataset({"x": ("i", [0.1, 3.0])}))["x"]
    >>> rounded.dtype, float(rounded[0])
    (dtype('float32'), 0.10000000149011612)
    """
    doubles = [name for name, var in data.data_vars.items() if var.dtype == np.float64]
    return data.assign({name: data[name].astype(np.float32) for name in doubles})


def store_draws(drawn: np.ndarray | None, rows: slice, simulated: np.ndarray, dtype: np.dtype,
                n_samples: int) -> np.ndarray:
    """Write a chunk of predictive draws into ``drawn`` (allocated on the first chunk); return the array.

    Whole numbers are stored as integers of ``dtype`` (the family's :meth:`~nexusbayes.model.families.Family.
    draw_dtype`), the same values; a chunk beyond that type's range widens the whole array to int64.
    Continuous values are rounded to single precision as they are stored.
    """
    if drawn is None:
        drawn = np.empty((n_samples, simulated.shape[-1]), dtype=dtype)
    if drawn.dtype.kind == "i" and simulated.size and np.max(simulated) > np.iinfo(drawn.dtype).max:
        drawn = drawn.astype(np.int64)
    drawn[rows] = simulated
    return drawn


def _predictors(post: xr.Dataset, design: Design, panel: Panel, spec: Spec):
    """Per likelihood block: ``(block, family, eta, params, mixture)`` for the draws' rows given.

    ``eta(rows)`` is ``(linear predictor, scale)`` and ``mixture(rows)`` ``(parts, logits)`` of the block's
    inflation components (quota heaping, structural zeros; empty without them). The draws are read in double
    precision (single-precision draws exactly), so the log-likelihood of a saved fit recomputed on load equals
    the one computed after sampling.
    """
    flat = FlatDraws(post)
    loading, intercept = flat["loading"], flat["intercept"]
    offset = flat["country_offset"] if "country_offset" in post else None
    # (sample, drifting + 1, period): sign * path (log loading), and a row of zeros for the steady indicators
    drift, scaling = posterior_tables(flat, post, design, spec, panel)
    for block in design.blocks:
        family = FAMILIES[spec.indicator(block.names[0]).family]
        idx = block_index(design, panel, block)
        params = {p: flat[f"{p}_{block.key}"] for p in NUISANCE if f"{p}_{block.key}" in post}
        parts = block_inflation(spec, block, panel.indicators)
        inflation = {c: (flat[f"{c}_intercept"], flat[f"{c}_loading"]) for c in parts}

        def eta(rows, idx=idx):
            # the draws × observations temporaries of a chunk only (a whole block took several GB on large panels)
            theta = flat.rows("theta", rows)       # the largest variable: only a chunk of it in double precision
            return linear_predictor(idx, loading[rows], intercept[rows], theta,
                                    None if offset is None else offset[rows], _rows_of(drift, rows),
                                    _rows_of(scaling, rows)), idx.scale

        def mixture(rows, idx=idx, parts=parts, inflation=inflation):
            theta = flat.rows("theta", rows) if inflation else None
            return parts, inflation_logits(parts, {c: (a[rows], b[rows]) for c, (a, b) in inflation.items()},
                                           theta, idx)

        yield block, family, eta, params, mixture


def linear_predictor(idx: BlockIndex, loading: np.ndarray, intercept: np.ndarray, theta: np.ndarray,
                     offset: np.ndarray | None = None, drift: tuple | None = None,
                     scaling: tuple | None = None) -> np.ndarray:
    """The linear predictor (sample, obs) of a block's observations ``idx`` from draws of its parts.

    ``loading`` (sample, indicator, trait), ``intercept`` (sample, indicator), ``theta`` (sample, region, period,
    trait), ``offset`` (sample, indicator, country); ``drift`` and ``scaling`` are the location and log-loading
    tables of :func:`~nexusbayes.model.drift.posterior_tables`, ``(table (sample, drifting + 1, period), row of
    each indicator)``. The periods of ``idx`` index the period axes of ``theta`` and the tables, so a caller
    evaluating some periods only (the particle update's) gives them over those periods.
    """
    out = np.einsum("snk,snk->sn", loading[:, idx.indicator], theta[:, idx.region, idx.period])
    if scaling is not None:
        out *= np.exp(scaling[0][:, scaling[1][idx.indicator], idx.period])
    out += idx.centre + intercept[:, idx.indicator]
    if offset is not None:
        out += offset[:, idx.indicator, idx.country]
    if drift is not None:
        out += drift[0][:, drift[1][idx.indicator], idx.period]
    return out


def inflation_logits(parts: dict, inflation: dict, theta: np.ndarray, idx: BlockIndex) -> dict:
    """Per inflation component of a block, its logits (sample, component's obs) from draws of its parameters.

    ``inflation`` is ``{component: (intercept (sample, member), loading (sample, member, trait))}``; ``theta``
    and the periods of ``idx`` as in :func:`linear_predictor`.
    """
    return {c: logits_numpy(parts[c], a, b, theta, idx.region, idx.period) for c, (a, b) in inflation.items()}


def _rows_of(table: tuple | None, rows) -> tuple | None:
    """A drift table's draws ``rows`` (the indicators' rows of it unchanged), or None."""
    return None if table is None else (table[0][rows], table[1])


class FlatDraws(Mapping):
    """A posterior's variables as (sample, ...) arrays, chains after one another, by name.

    Floating-point variables are read in double precision (single-precision draws exactly), each on first use
    and kept; the trait model's predictions and the regime model's (:mod:`nexusbayes.model.regime_predict`)
    read their draws through it.

    Examples
    --------
    >>> post = xr.Dataset({"a": (("chain", "draw", "k"), np.arange(12, dtype=np.float32).reshape(2, 3, 2))})
    >>> flat = FlatDraws(post)
    >>> flat["a"].shape, flat["a"].dtype, flat.n_chain, flat.n_draw, "a" in flat
    ((6, 2), dtype('float64'), 2, 3, True)
    """

    def __init__(self, post: xr.Dataset):
        self.post = post
        self.n_chain, self.n_draw = post.sizes["chain"], post.sizes["draw"]
        self.n_samples = self.n_chain * self.n_draw
        self._read: dict[str, np.ndarray] = {}
        self._stored: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._read:
            values = self._stored.pop(name, None)
            values = self._as_stored(name) if values is None else values
            self._read[name] = values.astype(np.float64, copy=False) if values.dtype.kind == "f" else values
        return self._read[name]

    def rows(self, name: str, rows: slice) -> np.ndarray:
        """Draws ``rows`` of ``name`` in double precision, without a double copy of the whole variable.

        The same values as ``self[name][rows]``; for the largest variables (theta), widened chunk by chunk from
        the stored values, read once.
        """
        if name in self._read:
            return self._read[name][rows]
        if name not in self._stored:
            self._stored[name] = self._as_stored(name)
        values = self._stored[name][rows]
        return values.astype(np.float64) if values.dtype.kind == "f" else values

    def _as_stored(self, name: str) -> np.ndarray:
        """``name``'s draws as (sample, ...) in their stored precision (a view where the posterior is in memory)."""
        values = self.post[name].transpose("chain", "draw", ...).values
        return values.reshape(self.n_samples, *values.shape[2:])

    def __contains__(self, name: object) -> bool:
        return name in self.post.data_vars

    def __iter__(self) -> Iterator[str]:
        return iter(self.post.data_vars)

    def __len__(self) -> int:
        return len(self.post.data_vars)


def _logp(family, eta, scale, block, params, parts, logits) -> np.ndarray:
    """A chunk's pointwise log-likelihood: the family's, mixed with its inflation components when it has any."""
    honest = family.logp(eta, scale, block, params)
    return mix_logp(honest, block.y, parts, logits) if parts else honest


def _reporting(post: xr.Dataset, spec: Spec, panel: Panel, rng: np.random.Generator | None = None):
    """The reporting model's pointwise log-likelihood, or with ``rng`` its predictive draws; None without one."""
    cells = reporting_cells(spec, panel)
    if cells is None:
        return None
    flat = FlatDraws(post)
    n_samples = flat.n_samples
    out = np.empty((n_samples, len(cells.item)), dtype=LOG_LIKELIHOOD_DTYPE if rng is None else np.int8)
    for rows in draw_chunks(n_samples, len(cells.item)):
        logit = reporting_logit(lambda n: flat[n] if n in flat else None, cells, len(panel.periods), rows)
        if rng is None:
            out[rows] = bernoulli_logp(logit, cells.reported)
        else:
            out[rows] = rng.random(logit.shape) < 1.0 / (1.0 + np.exp(-logit))
    values = xr.DataArray(out.reshape(post.sizes["chain"], post.sizes["draw"], -1), dims=("chain", "draw", OBS_DIM),
                          coords={OBS_DIM: cells.labels})
    return values.assign_coords({"chain": post["chain"].values, "draw": post["draw"].values})


def _by_term(post: xr.Dataset, arrays: list[tuple]) -> xr.Dataset:
    """``y_<term>`` over (chain, draw, obs_<term>) from ``(block, values)`` pairs of (sample, obs) arrays."""
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    out = {f"y_{block.key}": xr.DataArray(values.reshape(n_chain, n_draw, -1), dims=("chain", "draw", block.dim),
                                          coords={block.dim: block.labels}) for block, values in arrays}
    return xr.Dataset(out).assign_coords({"chain": post["chain"].values, "draw": post["draw"].values})


def likelihood_terms(design: Design, panel: Panel, spec: Spec) -> list[str]:
    """The log-likelihood's variables in order: ``y_<term>`` per likelihood block, then the reporting model's."""
    names = [f"y_{block.key}" for block in design.blocks]
    return names + [REPORTED] if informative(spec, panel) else names


def log_likelihood(tree: xr.DataTree, design: Design, panel: Panel, spec: Spec,
                   terms: list[str] | None = None) -> xr.Dataset:
    """The pointwise log-likelihood of every posterior draw: ``y_<term>`` over (chain, draw, obs_<term>).

    Computed when needed, never stored with a fresh fit (:meth:`nexusbayes.fit.Fit.log_likelihood`), in double
    precision over chunks of draws and rounded to :data:`LOG_LIKELIHOOD_DTYPE`. ``terms`` (names of
    :func:`likelihood_terms`) computes those alone, so a reader can hold one term at a time; default every term.
    """
    known = likelihood_terms(design, panel, spec)
    wanted = known if terms is None else list(terms)
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise ValueError(f"no likelihood term(s) {unknown}; this model's are {known}")
    post = tree["posterior"].to_dataset()
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    arrays = []
    for block, family, eta, params, mixture in _predictors(post, design, panel, spec):
        if f"y_{block.key}" not in wanted:
            continue
        logp = np.empty((n_samples, len(block.rows)), dtype=LOG_LIKELIHOOD_DTYPE)
        for rows in draw_chunks(n_samples, len(block.rows)):
            value, scale = eta(rows)
            logp[rows] = _logp(family, value, scale, block, {p: v[rows] for p, v in params.items()}, *mixture(rows))
        arrays.append((block, logp))
    out = _by_term(post, arrays)
    reporting = _reporting(post, spec, panel) if REPORTED in wanted else None
    return out if reporting is None else out.assign({REPORTED: reporting})


def add_predictions(tree: xr.DataTree, design: Design, panel: Panel, spec: Spec, seed: int) -> xr.DataTree:
    """Add posterior predictive, observed and constant data (NumPy, nothing to compile).

    Ordinal observations and predictions are on their 1..K scale; whole-number predictions as integers,
    continuous ones in single precision (:func:`store_draws`). With informative indicators, the reporting
    model's ``reported`` (:mod:`nexusbayes.model.reporting`) is in the predictions (1: reported), not in the
    observed data, whose variables are the indicators' values. Computed over chunks of draws
    (:func:`draw_chunks`), so memory beyond the result stays bounded on large panels. The pointwise
    log-likelihood is not added: :func:`log_likelihood` computes it when needed (per term if asked), as large
    as the predictive and needed only for PSIS-LOO.
    """
    post = tree["posterior"].to_dataset()
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    rng = np.random.default_rng(seed)
    blocks = []
    for block, family, eta, params, mixture in _predictors(post, design, panel, spec):
        drawn = None
        for rows in draw_chunks(n_samples, len(block.rows)):
            value, scale = eta(rows)
            chunk_params = {p: v[rows] for p, v in params.items()}
            parts, logits = mixture(rows)
            simulated = family.simulate(rng, value, scale, block, chunk_params)
            if parts:    # quota heaping, structural zeros (see nexusbayes.model.heaping)
                simulated = mix_draws(rng, simulated, parts, logits)
            drawn = store_draws(drawn, rows, simulated, family.draw_dtype(block), n_samples)
        blocks.append((block, drawn))
    predictive = _by_term(post, blocks)
    reporting = _reporting(post, spec, panel, rng)
    if reporting is not None:     # the reporting model's predictive draws, not an observed y
        predictive = predictive.assign({REPORTED: reporting})
    tree["posterior_predictive"] = xr.DataTree(predictive)     # its doubles rounded chunk by chunk above
    tree["observed_data"] = xr.DataTree(xr.Dataset(
        {f"y_{block.key}": xr.DataArray(block.y, dims=block.dim, coords={block.dim: block.labels})
         for block, _ in blocks}))
    names = panel.indicators
    const = {"centre_loc": ("indicator", design.centres[:, 0]), "centre_scale": ("indicator", design.centres[:, 1]),
             "period_time": ("period", design.period_time),
             "region_country": ("region", np.array([panel.countries[c] for c in panel.region_country], dtype=object))}
    tree["constant_data"] = xr.DataTree(xr.Dataset(const, coords={"indicator": names, "period": panel.periods,
                                                                  "region": panel.regions}))
    return tree

