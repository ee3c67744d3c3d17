"""fit(spec, data) -> Fit: sample the model and hold the results; save and load them (netCDF, no pickle).

Examples
--------
>>> from nexusbayes.simulate import simulate
>>> sim = simulate(n_regions=3, n_periods=3, seed=2)
>>> result = fit(sim.spec, sim.frame, draws=100, tune=100, chains=2, progress=False,
...              check=False)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from nexusbayes import compile_cache, fit_file, interrupts, typology
from nexusbayes.constants import CI_PROB, POSTPROCESS_CHUNK_VALUES, PRIOR_PREDICTIVE_DRAWS
from nexusbayes.data import Panel, load_panel, validate
from nexusbayes.diagnostics import Diagnostics, diagnose
from nexusbayes.errors import DataWarning, FitFileError, Interrupted, OutputExistsError, SamplingError, SpecError
from nexusbayes.families import FAMILIES, NUISANCE
from nexusbayes.model import block_index, build_model, make_design, term_key
from nexusbayes.spec import Spec, load_spec

FORMAT = fit_file.FORMAT
#: The column of a saved fit's data that keeps each observation's label (its file and line).
ROW_LABEL = "row_label"
#: Groups saved compressed: their draws are whole numbers held as floats (counts, ratings), which zlib
#: with byte shuffling shrinks to a fraction at a small cost; other draws are random doubles and barely shrink.
COMPRESSED_GROUPS = ("posterior_predictive", "prior_predictive")
COMPRESSED = {"zlib": True, "complevel": 1, "shuffle": True}


@dataclass
class Fit:
    """A fitted model: the DataTree of draws, the spec and the data it came from.

    Attributes
    ----------
    tree : xarray.DataTree
        Groups ``posterior``, ``posterior_predictive``, ``prior_predictive``, ``log_likelihood``, ``observed_data``,
        ``constant_data`` and ``sample_stats``; dims ``country``, ``region``, ``period``,
        ``trait``, ``indicator`` and one ``obs_<family>`` per likelihood term.
    spec : Spec
    panel : Panel
    """

    tree: xr.DataTree
    spec: Spec
    panel: Panel
    _diagnostics: Diagnostics | None = field(default=None, repr=False)

    # ---- convergence ---------------------------------------------------------------------------
    @property
    def diagnostics(self) -> Diagnostics:
        """R-hat, ESS, divergences, E-BFMI and tree depth against their thresholds."""
        if self._diagnostics is None:
            self._diagnostics = diagnose(self.tree)
        return self._diagnostics

    @property
    def timings(self) -> dict[str, float]:
        """Seconds spent compiling, sampling and post-processing."""
        return {k.removeprefix("seconds_"): float(v) for k, v in self.tree.attrs.items() if k.startswith("seconds_")}

    # ---- capacity types ------------------------------------------------------------------------
    @property
    def region_country(self) -> dict[str, str]:
        """Country of each region."""
        return {r: self.panel.countries[c] for r, c in zip(self.panel.regions, self.panel.region_country,
                                                          strict=True)}

    def type_probabilities(self, shift: tuple[float, float] = (0.0, 0.0)) -> xr.DataArray:
        """P(type) per region-period, dims (region, period, type).

        See :func:`nexusbayes.typology.type_probabilities`.
        """
        return typology.type_probabilities(self.tree, self.spec, shift)

    def types_table(self) -> pd.DataFrame:
        """Tidy P(type) per region-period with the modal type and its probability."""
        return typology.types_table(self.type_probabilities(), self.region_country)

    def transitions(self) -> xr.DataArray:
        """P(type at t -> type at t+1) per region and step, dims (region, step, from, to)."""
        return typology.transition_probabilities(self.tree, self.spec)

    def transition_matrices(self, ci_prob: float | None = None) -> pd.DataFrame:
        """Pooled per-country transition matrices with credible intervals."""
        kwargs = {} if ci_prob is None else {"ci_prob": ci_prob}
        return typology.transition_matrices(self.tree, self.spec, self.region_country, **kwargs)

    def threshold_sensitivity(self, shifts=(-0.5, -0.25, 0.0, 0.25, 0.5)) -> pd.DataFrame:
        """Type shares as both thresholds shift (see :func:`nexusbayes.typology.threshold_sensitivity`)."""
        return typology.threshold_sensitivity(self.tree, self.spec, shifts)

    def group_era_summary(self) -> pd.DataFrame:
        """Type probabilities by the spec's region groups and eras."""
        return typology.group_era_summary(self.type_probabilities(), self.spec)

    def trait_summary(self, ci_prob: float | None = None) -> pd.DataFrame:
        """Posterior mean, SD and equal-tailed interval of every trait per region-period.

        Columns country, region, period, trait, mean, sd and the interval's quantiles
        (``q05``, ``q95`` for the default 90%: :func:`nexusbayes.typology.interval_names`).
        """
        return typology.trait_summary(self.tree, self.region_country, CI_PROB if ci_prob is None else ci_prob)

    # ---- the report ----------------------------------------------------------------------------
    def report(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the diagnostics report (``report.html`` with its figures and tables) into folder ``path``.

        See :func:`nexusbayes.report.write_report`; returns the path of ``report.html``.
        """
        from nexusbayes.report import write_report  # the report depends on the fit, not the reverse

        return write_report(self, path, overwrite=overwrite)

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fit to one netCDF file, with the spec and the data inside (written atomically).

        Every variable and attribute is covered by a SHA-256 digest (see :mod:`nexusbayes.fit_file`),
        which :func:`load` checks.

        Parameters
        ----------
        path : path
            Target ``.nc`` file.
        overwrite : bool
            Replace an existing file; otherwise an existing file is an error.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
        tree = self.tree.copy()
        data = self.panel.data_table()
        stored = data.assign(**{ROW_LABEL: self.panel.frame["row"].to_numpy()})
        tree["fit_data"] = xr.DataTree(xr.Dataset.from_dataframe(stored.rename_axis("row")))
        spec_text = self.spec.to_toml()
        tree.attrs.update({"nexusbayes_format": FORMAT, "nexusbayes_version": version("nexusbayes"),
                           "nexusbayes_spec": spec_text, "nexusbayes_sha256": content_digest(spec_text, data),
                           "nexusbayes_data_source": self.panel.source})
        encoding = {f"/{group}": {name: dict(COMPRESSED) for name in tree[group].data_vars}
                    for group in COMPRESSED_GROUPS if group in tree.children}
        atomic_write(path, lambda tmp: (tree.to_netcdf(tmp, engine="h5netcdf", encoding=encoding),
                                        fit_file.seal(tmp)))
        return path


def content_digest(spec_text: str, data: pd.DataFrame) -> str:
    """SHA-256 of a spec's TOML text and a data table (its CSV at full precision): what a fit is of."""
    buffer = io.StringIO()
    data.to_csv(buffer, index=False, float_format="%.17g")
    return hashlib.sha256((spec_text + "\n--\n" + buffer.getvalue()).encode()).hexdigest()


def temp_dir_beside(out_dir: Path) -> Path:
    """A new hidden temporary folder next to ``out_dir`` (to rename into place), with ordinary permissions.

    ``mkdtemp`` makes folders private (0700); an output folder is for reading, so it gets the umask's mode.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(path: Path, writer) -> None:
    """Call ``writer(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    An interruption leaves ``path`` as it was: either the old file or the complete new one. The file
    gets the umask's ordinary mode (``mkstemp`` alone would leave it private, 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: str | Path) -> Fit:
    """Load a fit saved with :meth:`Fit.save`, checking that it is a complete, untampered nexusbayes file.

    The format and the digests of every variable are checked with h5py before xarray reads any
    array (:func:`nexusbayes.fit_file.verify`); then the run facts' types, the posterior's
    finiteness (as :func:`fit` checks it) and the stored spec and data.

    Raises
    ------
    FitFileError
        When the file is missing, not netCDF, truncated, not written by nexusbayes (or by an older
        format), incomplete, changed in any variable or attribute, or holds non-finite draws.
    """
    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"{path}: no such file")
    fit_file.verify(path)
    try:
        with xr.open_datatree(path, engine="h5netcdf") as opened:  # read everything, then close the file
            tree = opened.load()
    except Exception as exc:  # h5py/netCDF raise many types for damaged files
        raise FitFileError(f"{path}: not a readable netCDF file (truncated or corrupt?): {exc}") from None
    attrs = tree.attrs
    fit_file.check_contents(tree, path)
    bad = non_finite(tree)
    if bad:
        raise FitFileError(f"{path}: the posterior holds non-finite draws ({'; '.join(bad)}), which Fit.save never "
                           "writes: the file was modified or damaged; refit from the original spec and data")
    try:
        spec = Spec.from_toml(attrs["nexusbayes_spec"], source=f"{path} (stored spec)")
    except SpecError as exc:
        raise FitFileError(str(exc)) from None
    data = tree["fit_data"].to_dataset().to_dataframe().reset_index(drop=True)
    labels = data.pop(ROW_LABEL).to_numpy()
    for col in ("country", "region", "indicator", "rater"):
        if col in data:
            data[col] = data[col].astype(object).where(data[col].notna(), None)
    if content_digest(attrs["nexusbayes_spec"], data) != attrs.get("nexusbayes_sha256"):
        raise FitFileError(f"{path}: the stored spec or data do not match their SHA-256: the file was modified "
                           "after it was saved; refit from the original spec and data")
    panel = validate(data.set_axis(labels), spec, label=str(attrs.get("nexusbayes_data_source", path)),
                     row_kind="the row labels of the data as fitted")
    del tree["fit_data"]
    for key in (fit_file.DIGESTS_ATTR, fit_file.DIGEST_ATTR):    # they describe the file, not the fit
        del tree.attrs[key]
    return Fit(tree=tree, spec=spec, panel=panel)


# ---- fitting -------------------------------------------------------------------------------------
def resolve_spec(spec: Spec | str | Path) -> tuple[Spec, Path | list[Path] | None]:
    """A spec and its data path(s): read from a TOML file, or as given (with no data path)."""
    return (spec, None) if isinstance(spec, Spec) else load_spec(spec)


def resolve_panel(spec: Spec, data, data_path, need: str = "pass data=... or set `data` in the spec") -> Panel:
    """The panel to fit: ``data`` (a Panel, a table or path(s)), else the spec's own data file(s)."""
    if isinstance(data, Panel):
        return data
    source = data if data is not None else data_path
    if source is None:
        raise SpecError(f"spec {spec.name!r} names no data file: {need}")
    return load_panel(source, spec)


def fit(spec: Spec | str | Path, data: str | Path | pd.DataFrame | Panel | None = None, *,
        backend: str | None = None, draws: int | None = None, tune: int | None = None, chains: int | None = None,
        seed: int | None = None, progress: bool = True, check: bool = True,
        status: Callable[[str], None] | None = None) -> Fit:
    """Fit a spec to data.

    Parameters
    ----------
    spec : Spec or path
        The model specification, or the path of a TOML spec (whose ``data`` is then the default data).
    data : path, DataFrame or Panel, optional
        The indicator table; default the spec's ``data`` file.
    backend : {"nutpie", "pymc"}, optional
        Sampler; default from the spec (``nutpie``).
    draws, tune, chains, seed : int, optional
        Override the spec's sampler settings.
    progress : bool
        Show progress bars; where none can be seen (no terminal, e.g. a log), a line every
        :data:`PROGRESS_SECONDS` with the draws done and the time left, through ``status`` (default: standard
        error).
    check : bool
        Warn (:class:`~nexusbayes.diagnostics.SamplingWarning`) when a diagnostic fails.
    status : callable, optional
        Called with a one-line message when compiling and when sampling start, and with the progress lines
        (the CLI prints them).

    Returns
    -------
    Fit

    Raises
    ------
    SamplingError
        When the sampler cannot start (the log-density is not finite at the initial points) or the
        posterior holds NaN or infinite draws: no result is better than a wrong one.
    Interrupted
        When sampling was stopped (Ctrl-C, SIGTERM) before every draw was taken: partial traces are
        never returned as a fit.
    SpecError
        When a setting is invalid, or the draws would not fit in memory (see :func:`check_memory`).

    Warns
    -----
    DataWarning
        For each of ``panel.warnings`` (e.g. a trait no indicator measures in a country).
    """
    spec, data_path = resolve_spec(spec)
    overrides = {k: v for k, v in dict(backend=backend, draws=draws, tune=tune, chains=chains, seed=seed).items()
                 if v is not None}
    # validated like the spec's own [sampler] table (model_copy would not check e.g. draws = 0)
    settings = Spec.from_dict({**spec.to_dict(), "sampler": {**spec.sampler.model_dump(), **overrides}},
                              source="sampler settings (spec and arguments)").sampler
    panel = resolve_panel(spec, data, data_path)
    for message in panel.warnings:
        warnings.warn(message, DataWarning, stacklevel=2)

    model = build_model(panel, spec)
    check_memory(model, panel, settings)
    say = status or (lambda message: None)
    start = time.perf_counter()
    try:
        if settings.backend == "nutpie":
            import nutpie

            if compile_cache.compiled_before(panel, spec):
                say(f"loading the compiled model ({settings.backend}) ...")
            else:
                say(f"compiling the model ({settings.backend}; a model not compiled on this machine before takes "
                    "one to three minutes) ...")
            compiled, compile_source = compile_cache.compile_nutpie(model, panel, spec)
            interrupts.check()   # a signal whose exception a compiler callback swallowed
            compiled_at = time.perf_counter()
            if compile_source != "compiled":
                say(f"(compiled model {compile_cache.SOURCES[compile_source]})")
            say(f"sampling {settings.chains} chain(s) x {settings.tune} tune + {settings.draws} draws ...")
            watch = ProgressLines(status) if progress and not _shows_a_bar() else None
            sampler = nutpie.sample(compiled, draws=settings.draws, tune=settings.tune, chains=settings.chains,
                                    seed=settings.seed, progress_bar=progress and watch is None,
                                    progress_callback=watch, target_accept=settings.target_accept,
                                    adaptation=settings.adaptation, save_warmup=False, blocking=False)
            try:
                if watch is not None:
                    watch.follow(sampler)
                tree = sampler.wait()
            except BaseException:
                # nutpie.sample(blocking=True) would turn Ctrl-C into a silently truncated trace
                sampler.cancel()
                raise
        else:
            compiled_at, compile_source = start, "compiled"
            say(f"sampling {settings.chains} chain(s) x {settings.tune} tune + {settings.draws} draws ...")
            with model:
                tree = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                                 random_seed=settings.seed, target_accept=settings.target_accept,
                                 progressbar=progress, compute_convergence_checks=False,
                                 nuts_sampler="pymc")
    except Exception as exc:
        raise SamplingError(_start_failure(model, settings.backend, exc, spec)) from exc
    interrupts.check()
    _check_complete(tree, settings)
    check_finite(tree)
    sampled_at = time.perf_counter()
    tree = orient(tree, spec, panel)
    tree = _postprocess(tree, panel, spec, settings.seed)
    tree["prior_predictive"] = xr.DataTree(prior_predictive(panel, spec, seed=settings.seed, model=model))
    done = time.perf_counter()
    tree.attrs.update({
        "seconds_compile": compiled_at - start, "seconds_sampling": sampled_at - compiled_at,
        "seconds_postprocess": done - sampled_at, "compile_source": compile_source, "sampler": settings.backend,
        "draws": settings.draws, "tune": settings.tune, "chains": settings.chains, "seed": settings.seed,
        "target_accept": settings.target_accept,
        "adaptation": settings.adaptation if settings.backend == "nutpie" else "pymc (jitter+adapt_diag)",
        **{f"version_{lib}": version(lib) for lib in ("pymc", "arviz", "nutpie", "numpy", "xarray")},
    })
    result = Fit(tree=tree, spec=spec, panel=panel)
    if check:
        result.diagnostics.warn()
    return result


def orient(tree: xr.DataTree, spec: Spec, panel: Panel) -> xr.DataTree:
    """Reflect each draw of the traits with an ``orientation`` so that they point the stated way.

    A trait whose loadings are all free has a posterior that is exactly symmetric under the
    reflection theta_k -> -theta_k with every loading on trait k changing sign (the likelihood
    depends on their product, and every prior involved is symmetric), so choosing one of the two
    mirror images after sampling changes nothing but the labelling (the label-switching fix of
    mixture models, applied to a sign). Per draw, the orientation score is the mean trait of the
    ``higher`` regions minus that of the ``lower`` ones, each region averaged over its
    region-periods with data; draws with a negative score are reflected. What is reflected: every
    posterior variable with a ``trait`` dimension (traits, loadings, non-centred innovations; both
    dimensions of a trait correlation or Cholesky factor, which keeps ``z @ chol.T`` consistent)
    and the free loadings on the trait, but not the scales (``*_sd``, ``ar_phi``), which are
    invariant. The share of reflected draws per chain goes to the tree's attrs
    (``orientation_reflected_<trait>``): each chain stays in one mirror image, so a share strictly
    between 0 and 1 means a chain crossed between them (or the orienting regions do not separate).
    """
    if not spec.orientation:
        return tree
    post = tree["posterior"].to_dataset()
    theta = post["theta"]
    cells = np.zeros((len(panel.regions), len(panel.periods)), dtype=bool)
    cells[panel.frame["region_idx"].to_numpy(), panel.frame["period_idx"].to_numpy()] = True
    mask = xr.DataArray(cells, dims=("region", "period"), coords={"region": panel.regions, "period": panel.periods})
    for trait, how in spec.orientation.items():
        per_region = theta.sel(trait=trait).where(mask).mean("period")            # (chain, draw, region)
        score = xr.zeros_like(per_region.isel(region=0, drop=True))
        if how.higher:
            score = score + per_region.sel(region=how.higher).mean("region")
        if how.lower:
            score = score - per_region.sel(region=how.lower).mean("region")
        flip = xr.where(score < 0, -1.0, 1.0)                                       # (chain, draw)
        trait_sign = xr.where(post["trait"] == trait, flip, 1.0)                   # (chain, draw, trait)
        for name in list(post.data_vars):
            var = post[name]
            if name.endswith("_sd") or name == "ar_phi" or var.dtype.kind != "f":
                continue
            if "trait" in var.dims:
                factor = trait_sign
                if "trait_" in var.dims:
                    factor = factor * trait_sign.rename(trait="trait_")
                post[name] = var * factor
            label_dims = [d for d in var.dims if d == "loading_free_label"]
            if label_dims:
                on_trait = np.array([str(lab).rsplit(":", 1)[-1] == trait for lab in var[label_dims[0]].values])
                factor = xr.where(xr.DataArray(on_trait, dims=label_dims[0]), flip, 1.0)
                post[name] = var * factor
        tree.attrs[f"orientation_reflected_{trait}"] = (flip < 0).mean("draw").values.tolist()
    tree["posterior"] = xr.DataTree(post)
    return tree


def prior_predictive(panel: Panel, spec: Spec, draws: int = PRIOR_PREDICTIVE_DRAWS, seed: int | None = None,
                     model: pm.Model | None = None) -> xr.Dataset:
    """Draw observations from the prior predictive distribution (one chain of ``draws`` draws).

    Cheap: PyMC forward-samples the built model (no MCMC). Variables and dims are those of the
    ``posterior_predictive`` group (``y_<term>`` over ``obs_<term>``), ordinal ratings on their 1..K scale.

    Parameters
    ----------
    panel : Panel
    spec : Spec
    draws : int
        Number of prior predictive draws.
    seed : int, optional
        Random seed.
    model : pymc.Model, optional
        The model built from ``panel`` and ``spec`` (built here when not given).

    Returns
    -------
    xarray.Dataset
        Dims ``(chain, draw, obs_<term>)``.

    Examples
    --------
    >>> from nexusbayes.simulate import simulate
    >>> sim = simulate(n_regions=3, n_periods=3, seed=2)
    >>> prior = prior_predictive(sim.panel, sim.spec, draws=10, seed=1)
    >>> sorted(prior.data_vars)
    ['y_binomial', 'y_negbin', 'y_normal', 'y_ordinal']
    """
    model = model if model is not None else build_model(panel, spec)
    names = [rv.name for rv in model.observed_RVs]
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)    # not the INFO line listing every variable it draws
    try:
        with model:
            drawn = pm.sample_prior_predictive(draws=draws, var_names=names, random_seed=seed,
                                               compile_kwargs={"mode": compile_cache.forward_mode()})
    finally:
        logger.setLevel(level)
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


def _postprocess(tree: xr.DataTree, panel: Panel, spec: Spec, seed: int) -> xr.DataTree:
    """Add log-likelihood, posterior predictive, observed and constant data (NumPy, nothing to compile).

    Ordinal observations and predictions are on their 1..K scale. Computed over chunks of draws
    (:func:`draw_chunks`), so memory beyond the two results stays bounded on large panels, with each
    chunk's log-likelihood in a second thread beside its predictions.
    """
    for group in [g for g in tree.children if g.startswith("warmup")]:
        del tree[group]
    stats = tree["sample_stats"].to_dataset()
    drop = [v for v in stats.data_vars if stats[v].dtype == object]
    if drop:
        tree["sample_stats"] = xr.DataTree(stats.drop_vars(drop))
    design = make_design(panel, spec)
    post = tree["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]

    def flat(name):
        return post[name].values.reshape(n_chain * n_draw, *post[name].shape[2:])

    theta, loading, intercept = flat("theta"), flat("loading"), flat("intercept")
    offset = flat("country_offset") if "country_offset" in post else None
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
            logp, drawn = np.empty((n_chain * n_draw, len(block.rows))), None
            for rows in draw_chunks(n_chain * n_draw, len(block.rows)):
                # the draws × observations temporaries of a chunk only (a whole block took 9 GB at 56,000 obs)
                eta = idx.centre + intercept[rows][:, idx.indicator] + np.einsum(
                    "snk,snk->sn", loading[rows][:, idx.indicator], theta[rows][:, idx.region, idx.period])
                if offset is not None:
                    eta += offset[rows][:, idx.indicator, idx.country]
                chunk_params = {p: value[rows] for p, value in params.items()}
                _store(pending)
                pending = (logp, rows, pool.submit(family.logp, eta, idx.scale, block, chunk_params))
                simulated = family.simulate(rng, eta, idx.scale, block, chunk_params)
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


def _store(pending: tuple[np.ndarray, slice, Future] | None) -> None:
    """Wait for a chunk's log-likelihood and write it into its block's array (``(array, rows, future)``)."""
    if pending is not None:
        logp, rows, future = pending
        logp[rows] = future.result()


def check_memory(model: pm.Model, panel: Panel, settings) -> None:
    """Refuse sampler settings whose draws would not fit in the memory available.

    The fit holds, per chain and draw, every posterior value (free variables and deterministics) plus
    a log-likelihood and a posterior-predictive value per observation, each 8 bytes; asking for more
    than the memory available ends in an allocation abort after compiling, or a panic in the sampler.
    """
    import psutil  # a dependency of dask's distributed
    import pytensor
    from pytensor.compile.mode import Mode

    variables = [*model.free_RVs, *model.deterministics]
    shapes = pytensor.function([], [v.shape for v in variables], mode=Mode(linker="py", optimizer="fast_compile"),
                               on_unused_input="ignore")()
    per_draw = sum(int(np.prod(s)) for s in shapes) + 2 * panel.n_obs
    need = settings.chains * settings.draws * per_draw * 8
    available = psutil.virtual_memory().available
    if need > available:
        most = max(available // (settings.chains * per_draw * 8), 0)
        raise SpecError(f"sampler settings: {settings.chains} chain(s) x {settings.draws:,} draws x {per_draw:,} "
                        f"values per draw x 8 bytes = {need / 1e9:,.1f} GB, more than the {available / 1e9:.1f} GB "
                        f"of memory available; lower `draws` (at most {most:,} with {settings.chains} chain(s)) "
                        "or `chains`")


def _priors_of(terms: list[str], spec: Spec) -> list[str]:
    """The ``priors.KEY = value`` settings of the model variables among ``terms`` ("name = logp")."""
    from nexusbayes.batch import PRIOR_SCALE_VARIABLES

    names = [t.split(" = ")[0] for t in terms]
    return [f"priors.{key} = {getattr(spec.priors, key):g}" for key, variables in PRIOR_SCALE_VARIABLES.items()
            if any(n.startswith(v) for n in names for v in variables)]


class ProgressLines:
    """Progress of a nutpie run as a line every :data:`PROGRESS_SECONDS`, where no progress bar can be shown.

    Without a terminal (a log file, CI, captured output) nutpie's bar prints nothing; this prints the draws
    done, the time elapsed and an estimate of the time left, through ``status`` (default: standard error).
    An instance is nutpie's ``progress_callback``: nutpie calls it with the progress of every chain.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> watch = ProgressLines(print)
    >>> watch([SimpleNamespace(finished_draws=650, total_draws=1300, tuning=False)] * 2)
    >>> watch.line(elapsed=60.0)
    'sampling: 1300 of 2600 draws (50%), 1 min 0 s elapsed, about 1 min 0 s left'
    """

    def __init__(self, status: Callable[[str], None] | None = None):
        self.status = status or (lambda message: print(message, file=sys.stderr, flush=True))
        self.chains: list = []

    def __call__(self, chains) -> None:
        """Keep the latest progress of every chain (nutpie calls this as it samples)."""
        self.chains = list(chains)

    def line(self, elapsed: float) -> str:
        """One line: draws done of all chains (tuning included), elapsed and remaining time."""
        done = sum(c.finished_draws for c in self.chains)
        total = sum(c.total_draws for c in self.chains)
        if not total:
            return f"sampling: starting, {_duration(elapsed)} elapsed"
        left = f"about {_duration(elapsed * (total - done) / done)} left" if done else "time left not known yet"
        tuning = ", tuning" if any(c.tuning for c in self.chains) else ""
        return f"sampling: {done} of {total} draws ({done / total:.0%}{tuning}), {_duration(elapsed)} elapsed, {left}"

    def follow(self, sampler) -> None:
        """Print a line every :data:`PROGRESS_SECONDS` until ``sampler`` (nutpie, non-blocking) has finished."""
        start = last = time.monotonic()
        while not _finished(sampler):
            time.sleep(0.2)
            if time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                self.status(self.line(last - start))


def _finished(sampler) -> bool:
    """Whether a non-blocking nutpie sampler has finished (nutpie 0.16 raises TimeoutError while it runs)."""
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


#: Seconds between two progress lines when no progress bar is shown (see :class:`ProgressLines`).
PROGRESS_SECONDS = 15.0


def _shows_a_bar() -> bool:
    """Whether nutpie's progress bar is seen: on a terminal (standard error) or in a notebook."""
    from nutpie.sample import in_notebook

    return sys.stderr.isatty() or in_notebook()


def _duration(seconds: float) -> str:
    """Seconds as ``"42 s"`` or ``"3 min 5 s"``."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _start_failure(model: pm.Model, backend: str, exc: Exception, spec: Spec | None = None) -> str:
    """Explain a sampler failure: which terms are not finite at the initial point, and what to try."""
    try:
        from pytensor.compile.mode import Mode

        # pure Python, lightly optimised: compiles in seconds, and speed does not matter for one point
        with np.errstate(all="ignore"):
            logps = model.point_logps(model.initial_point(random_seed=0), round_vals=6,
                                      mode=Mode(linker="py", optimizer="fast_compile"))
        bad = [f"{name} = {value}" for name, value in logps.items() if not np.isfinite(value)]
    except Exception:  # the report is a hint; the sampler's own error is kept below
        bad = []
    where = (f" Terms whose log-density is not finite at the initial point: {', '.join(bad)}." if bad else "")
    priors = _priors_of(bad, spec) if spec is not None else []
    if priors:
        where += f" Their prior scale(s) in the spec: {', '.join(priors)}."
    first = (str(exc).strip().splitlines() or [""])[0][:300]   # not a Rust backtrace: the full error is chained
    return (f"sampling failed to start or stopped with an error ({backend}: {type(exc).__name__}: {first})."
            f"{where} This usually means the log-density is -inf or NaN where the sampler starts "
            "(initialisation failure). What to try: look for extreme values in the data of the named terms "
            "(y_<family> are indicators of that family; e.g. counts far larger than the rest, exposures near 0, "
            "a constant indicator), check the spec's priors are not extreme, run `nexusbayes check SPEC`, "
            "or try the other backend (--backend pymc / nutpie) for a second opinion.")


def _check_complete(tree: xr.DataTree, settings) -> None:
    """Refuse a trace with fewer chains or draws than asked: the samplers return those when interrupted."""
    post = tree["posterior"]
    got = (int(post.sizes.get("chain", 0)), int(post.sizes.get("draw", 0)))
    if got != (settings.chains, settings.draws):
        raise Interrupted(f"sampling was interrupted: got {got[0]} chain(s) x {got[1]} draws of "
                          f"{settings.chains} x {settings.draws}; partial traces are not returned")


def check_finite(tree: xr.DataTree) -> None:
    """Raise :class:`SamplingError` when a posterior variable holds NaN or infinite draws.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), [[0.0, np.nan]])})})
    >>> check_finite(tree)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nexusbayes.errors.SamplingError: the posterior holds non-finite draws (mu: 1 NaN, 0 infinite ...
    """
    bad = non_finite(tree)
    if bad:
        raise SamplingError(
            f"the posterior holds non-finite draws ({'; '.join(bad)}); these results are not reported. "
            "The sampler left the region where the model is defined: look for extreme data values (run "
            "`nexusbayes check SPEC`), tighten the priors, or raise target_accept; then fit again")


def non_finite(tree: xr.DataTree) -> list[str]:
    """Each posterior variable holding NaN or infinite draws, with their counts (empty when all are finite)."""
    bad = []
    for name, da in tree["posterior"].to_dataset().data_vars.items():
        if da.dtype.kind not in "fc":
            continue
        values = np.asarray(da.values)
        n_nan, n_inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        if n_nan or n_inf:
            bad.append(f"{name}: {n_nan} NaN, {n_inf} infinite of {values.size}")
    return bad
