"""The one place that calls a sampler: nutpie, PyMC or numpyro, with its checks before and after.

:func:`sample` turns a :class:`~nexusbayes.model.build.Model` into a DataTree of draws. Every fit
samples through it (:func:`nexusbayes.fit.fit`, SBC, sweeps and sharing checks through ``fit``, the
benchmarks), so each run gets the same checks: memory before compiling, signals after compiling and
after sampling, a complete trace (an interrupted sampler returns a short one), finite draws, the
orientation of the traits, and the roles registry stored with the draws.

Examples
--------
>>> from nexusbayes.model.build import Model
>>> from nexusbayes.model.simulate import simulate
>>> from nexusbayes.spec.sections import SamplerSpec
>>> sim = simulate(n_regions=3, n_periods=3, seed=2)
>>> tree = sample(Model(sim.spec, sim.panel), SamplerSpec(draws=100, tune=100, chains=2),
...               progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib.metadata import version

import numpy as np
import pymc as pm
import xarray as xr

from nexusbayes import interrupts
from nexusbayes.data.panel import Panel
from nexusbayes.errors import SamplingError, SettingsError, SpecError
from nexusbayes.inference import compile_cache, dask_chains, lean_trace, run_length, warm_start
from nexusbayes.inference.progress import ProgressLines, shows_a_bar
from nexusbayes.inference.sample_checks import check_complete, check_finite, check_memory, start_failure
from nexusbayes.model.build import Model
from nexusbayes.model.predict import single_precision
from nexusbayes.model.roles import TREE_ATTR
from nexusbayes.spec.document import Spec
from nexusbayes.spec.sections import SamplerSpec

#: The samplers :func:`sample` runs: nutpie (the default), PyMC's NUTS, and numpyro through PyMC (benchmarks).
BACKENDS = ("nutpie", "pymc", "numpyro")


def sample(model: Model, settings: SamplerSpec, *, progress: bool = True,
           status: Callable[[str], None] | None = None, values: dict[str, np.ndarray] | None = None,
           predictions: bool = True, backend: str | None = None, sampler_options: dict | None = None,
           gates: run_length.Gates | None = None, scheduler: str | None = None) -> xr.DataTree:
    """Sample ``model`` with ``settings``: the one sampling path of the package.

    Parameters
    ----------
    model : Model
        The model of a spec on a panel.
    settings : SamplerSpec
        Backend, draws, tune, chains, seed, target acceptance and nutpie's adaptation.
    progress : bool
        Show the sampler's progress bar; where none can be seen (a log, CI), a line every
        :data:`nexusbayes.inference.progress.PROGRESS_SECONDS` through ``status``.
    status : callable, optional
        Called with one-line messages (compiling, sampling, progress lines).
    values : dict of str to numpy.ndarray, optional
        Values of data containers to swap in (``with_data``) instead of the panel's: a refit to simulated
        data of the same structure (SBC). nutpie only.
    predictions : bool
        Add posterior and prior predictive, observed and constant data (a fit's groups; the log-likelihood is
        computed when asked, :meth:`nexusbayes.fit.Fit.log_likelihood`); SBC, which reads only the posterior,
        leaves them out.
    backend : {"nutpie", "pymc", "numpyro"}, optional
        Default ``settings.backend``; numpyro (through PyMC and JAX) is for the benchmarks.
    sampler_options : dict, optional
        Further keyword arguments of ``nutpie.sample`` or ``pm.sample`` (e.g. ``store_unconstrained=True``,
        ``save_warmup=True``; benchmarks).
    gates : run_length.Gates, optional
        What ``settings.until_converged`` waits for; default the diagnostics' thresholds (tests lower them).
    scheduler : str, optional
        Address of a running Dask scheduler: each chain is a task there (:mod:`.dask_chains`), sampled with
        its own seed (:func:`.dask_chains.chain_seed`). nutpie only, fixed length.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (its draws in single precision, see
        :func:`~nexusbayes.model.predict.single_precision`) and ``sample_stats`` (and with ``predictions``
        those above); attrs with the
        timings (``seconds_compile``, ``seconds_sampling``, ``seconds_postprocess``), the settings, the
        library versions and the roles registry. ``draws`` is the draws kept per chain; a run with
        ``until_converged`` also records ``draws_cap``, ``check_every``, ``stopped_by`` (``"gates"`` or
        ``"cap"``) and ``seconds_checks`` (of ``seconds_sampling``; see :mod:`nexusbayes.inference.run_length`).
        A run with ``scheduler`` records the chains' seeds and workers (see :func:`.dask_chains.sample_chains`);
        its ``seconds_compile`` is the longest of the workers' and ``seconds_sampling`` the rest of the run.
        ``init`` is the chains' starts (``settings.init``); with ``"advi"`` also ``init_evaluations`` and
        ``seconds_init`` (of ``seconds_sampling``; see :mod:`nexusbayes.inference.warm_start`).

    Raises
    ------
    SpecError
        When the draws would not fit in memory (:func:`.sample_checks.check_memory`), or ``values`` or
        ``until_converged`` are given to another backend than nutpie, or ``scheduler`` with ``values``,
        ``until_converged``, ``init = "advi"`` or another backend.
    SettingsError
        When no Dask scheduler answers at ``scheduler``.
    SamplingError
        When the sampler cannot start or stops with an error, or the posterior holds non-finite draws.
    Interrupted
        When a signal arrived, or the sampler returned fewer draws than asked.
    """
    backend = backend or settings.backend
    if backend not in BACKENDS:
        raise SpecError(f"sampler backend {backend!r} is not one of {', '.join(BACKENDS)}")
    options = dict(sampler_options or {})
    if values is not None and backend != "nutpie":
        raise SpecError("swapping data into a compiled model (values=...) needs the nutpie backend")
    if settings.until_converged and backend != "nutpie":
        raise SpecError(f"sampler settings: until_converged stops nutpie's sampler when the diagnostics pass; the "
                        f"{backend} backend samples a fixed length: use the nutpie backend or until_converged = false")
    if scheduler is not None and (backend != "nutpie" or values is not None or settings.until_converged
                                  or settings.init != "prior"):
        raise SpecError("chains on a Dask cluster (scheduler=...) run nutpie from prior starts for a fixed number "
                        "of draws on the spec's data: leave out the scheduler, or use the nutpie backend with "
                        "until_converged = false and init = \"prior\"")
    check_memory(model, settings, predictions)
    say = status or (lambda message: None)
    start = time.perf_counter()
    compile_source, run, cluster, init_attrs, rounded = "compiled", None, {}, {}, False
    # nutpie's trace without the deterministics (recomputed after sampling: lean_trace) where nothing else is asked
    # of it: a run by need reads the trace as it grows, and options such as save_warmup want nutpie's own groups
    lean = not settings.until_converged and not options
    try:
        if scheduler is not None:
            tree, cluster = dask_chains.sample_chains(model, settings, scheduler, sample_chain, options, say)
            compile_source, compiled_at = cluster["compile_source"], start + cluster["seconds_compile"]
            rounded = cluster.pop("lean")
        elif backend == "nutpie":
            compiled, compile_source = _compiled(model, values, say, lean=lean)
            rounded = lean_trace.is_lean(compiled)
            interrupts.check()   # a signal whose exception a compiler callback swallowed
            compiled_at = time.perf_counter()
            if settings.init == "advi":
                say(f"fitting ADVI on the compiled model for the chains' starts ({settings.init_iterations} "
                    "iterations) ...")
                approx = warm_start.compiled_advi(compiled, n=settings.init_iterations, seed=settings.seed)
                compiled = warm_start.started_from(compiled, approx.mean, approx.std)
                init_attrs = {"init_evaluations": approx.evaluations, "seconds_init": time.perf_counter() - compiled_at}
            options = {"save_warmup": False, **options}
            if settings.until_converged:
                run = _nutpie_by_need(compiled, settings, progress, status, say, options, model, gates)
                tree = run.tree
            else:
                tree = _nutpie(compiled, settings, progress, status, say, options)
        else:
            compiled_at = start
            say(f"sampling {settings.chains} chain(s) x {settings.tune} tune + {settings.draws} draws ...")
            with model.pymc:
                tree = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                                 random_seed=settings.seed, target_accept=settings.target_accept,
                                 progressbar=progress, compute_convergence_checks=False,
                                 nuts_sampler=backend, **options)
    except (SettingsError, SpecError):
        raise
    except Exception as exc:
        raise SamplingError(start_failure(model, backend, exc)) from exc
    interrupts.check()
    check_complete(tree, settings, draws=run.draws if run else None)
    check_finite(tree)
    sampled_at = time.perf_counter()
    tree = model.orient(_tidy(tree, keep_warmup=bool(options.get("save_warmup"))))
    if not rounded:       # a lean trace's posterior is rounded as it is computed
        tree["posterior"] = xr.DataTree(single_precision(tree["posterior"].to_dataset()))  # before anything reads it
    if predictions:
        tree = model.add_predictions(tree, settings.seed)
        tree["prior_predictive"] = xr.DataTree(model.prior_predictive(seed=settings.seed))
    done = time.perf_counter()
    tree.attrs.update({
        "seconds_compile": compiled_at - start, "seconds_sampling": sampled_at - compiled_at,
        "seconds_postprocess": done - sampled_at, "compile_source": compile_source, "sampler": backend,
        "draws": run.draws if run else settings.draws, "tune": settings.tune, "chains": settings.chains,
        "seed": settings.seed, "target_accept": settings.target_accept, "init": settings.init, **init_attrs,
        "adaptation": settings.adaptation if backend == "nutpie" else f"{backend} (jitter+adapt_diag)",
        **{f"version_{lib}": version(lib) for lib in ("pymc", "arviz", "nutpie", "numpy", "xarray")},
        TREE_ATTR: model.roles.to_attr(), **{k: v for k, v in cluster.items() if k != "seconds_compile"},
    })
    if run:
        tree.attrs.update({"draws_cap": settings.draws, "check_every": settings.check_every,
                           "stopped_by": run.stopped_by, "seconds_checks": run.seconds_checks,
                           "seconds_checks_full": run.seconds_full, "checks_cheap": sum(c.cheap for c in run.checks),
                           "checks_full": sum(not c.cheap for c in run.checks)})
    return tree


def _compiled(model: Model, values: dict[str, np.ndarray] | None, say: Callable[[str], None], lean: bool = False):
    """The nutpie-compiled model with the panel's data or ``values``, and where it came from.

    ``lean``: its trace holds the unconstrained draws alone (:mod:`.lean_trace`).
    """
    panel, spec = model.panel, model.spec
    salt = getattr(model, "cache_salt", "")     # a model that is not the spec's own graph (an update's filter)
    if values is not None:
        compiled = compile_cache.lookup(panel, spec, values, lean=lean)
        if compiled is not None:
            return compiled, "process"
    if compile_cache.compiled_before(panel, spec, salt, lean=lean):
        say("loading the compiled model (nutpie) ...")
    else:
        say("compiling the model (nutpie; a model not compiled on this machine before takes one to three "
            "minutes) ...")
    compiled, source = compile_cache.compile_nutpie(model.pymc, panel, spec, salt, lean=lean)
    if source != "compiled":
        say(f"(compiled model {compile_cache.SOURCES[source]})")
    if values is not None:
        overflow = compile_cache.misfits(values, compile_cache.data_values(model.pymc))
        if overflow:   # e.g. a prior draw with counts beyond the container's int32: refused, not wrapped
            raise ValueError(f"the values do not fit their data containers: {overflow}")
        compiled = compiled.with_data(**values)
    return compiled, source


_COMPILING = threading.Lock()


def sample_chain(spec: dict, panel: Panel, sampler: dict, seed: int, options: dict) -> dict:
    """Sample one chain where it is called (a Dask worker): the task of :func:`.dask_chains.sample_chains`.

    Parameters
    ----------
    spec : dict
        The spec (:meth:`~nexusbayes.spec.document.Spec.to_dict`); the model is built from it and ``panel``,
        then loaded or compiled through :mod:`.compile_cache` (one compile at a time in a process: a second
        chain on the same worker waits and reuses it).
    panel : Panel
    sampler : dict
        The :class:`~nexusbayes.spec.sections.SamplerSpec` fields: draws, tune, target_accept, adaptation.
    seed : int
        This chain's seed.
    options : dict
        Further keyword arguments of ``nutpie.sample``; without any, the model is compiled lean and the chain
        runs as :func:`sample` runs a fixed-length chain locally (:func:`_nutpie`), so its draws are a local
        one-chain run's with the seed ``seed``.

    Returns
    -------
    dict
        ``groups`` (:func:`.dask_chains.chain_groups` of the chain's tree, tidied as :func:`sample` tidies),
        ``compile_source``, ``seconds_compile``, ``seconds_sampling``, ``divergences``, ``lean`` (the trace was
        lean, its posterior already rounded to single precision: :mod:`.lean_trace`) and ``worker`` (its
        address, or ``"local"`` outside a worker).
    """
    start = time.perf_counter()
    settings = SamplerSpec(**sampler).model_copy(update={"chains": 1, "seed": seed})
    model = Model(Spec.from_dict(spec, source="the spec sent to a Dask worker"), panel)
    with _COMPILING:
        compiled, source = compile_cache.compile_nutpie(model.pymc, panel, model.spec, lean=not options)
    compiled_at = time.perf_counter()
    tree = _nutpie(compiled, settings, False, None, lambda message: None, {"save_warmup": False, **options})
    tree = _tidy(tree, keep_warmup=bool(options.get("save_warmup")))
    return {"groups": dask_chains.chain_groups(tree), "compile_source": source,
            "seconds_compile": compiled_at - start, "seconds_sampling": time.perf_counter() - compiled_at,
            "divergences": int(tree["sample_stats"]["diverging"].sum()), "lean": lean_trace.is_lean(compiled),
            "worker": _worker_address()}


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:   # not on a Dask worker
        return "local"


def _arguments(settings: SamplerSpec) -> dict:
    """The keyword arguments of ``nutpie.sample`` from the sampler settings: of every nutpie run here.

    The local fixed-length run and a Dask chain (:func:`_nutpie`) and the run by need (:func:`_nutpie_by_need`).
    """
    return {"draws": settings.draws, "tune": settings.tune, "chains": settings.chains, "seed": settings.seed,
            "target_accept": settings.target_accept, "adaptation": settings.adaptation, "blocking": False}


def _nutpie(compiled, settings: SamplerSpec, progress: bool, status, say, options: dict) -> xr.DataTree:
    """Run nutpie without blocking, so that Ctrl-C cancels it instead of truncating the trace silently.

    A lean model's raw trace is turned into the tree here (:func:`.lean_trace.to_tree`), nutpie's own
    conversion otherwise. Locally (:func:`sample`) and for one chain on a Dask worker (:func:`sample_chain`).
    """
    import nutpie

    say(f"sampling {settings.chains} chain(s) x {settings.tune} tune + {settings.draws} draws ...")
    watch = ProgressLines(status) if progress and not shows_a_bar() else None
    lean = lean_trace.is_lean(compiled)
    sampler = nutpie.sample(compiled, **_arguments(settings), progress_bar=progress and watch is None,
                            progress_callback=watch, **({"return_raw_trace": True} if lean else {}), **options)
    try:
        if watch is not None:
            watch.follow(sampler)
        trace = sampler.wait()
    except BaseException:
        # nutpie.sample(blocking=True) would turn Ctrl-C into a silently truncated trace
        sampler.cancel()
        raise
    if not lean:
        return trace
    draw_batches, stat_batches = trace.get_arrow_trace()
    del trace, sampler
    return lean_trace.to_tree(draw_batches, stat_batches, compiled)


def _nutpie_by_need(compiled, settings: SamplerSpec, progress: bool, status, say, options: dict, model: Model,
                    gates: run_length.Gates | None) -> run_length.Outcome:
    """Run nutpie for at most ``settings.draws`` draws, stopping when the gates pass (:mod:`.run_length`)."""
    import nutpie

    say(f"sampling {settings.chains} chain(s) x {settings.tune} tune + draws until R-hat and ESS pass (checked "
        f"every {settings.check_every}, at most {settings.draws}) ...")
    watch = ProgressLines(status)        # the chains' progress tells when a check point is reached
    lines = progress and not shows_a_bar()
    # every chain at once (nutpie's default runs one per core, the rest after them; the draws are the same):
    # a check needs every chain's draws, and the first chains would otherwise run to the cap alone
    sampler = nutpie.sample(compiled, **_arguments(settings), progress_bar=progress and not lines,
                            progress_callback=watch, **{"cores": settings.chains, **options})
    try:
        run = run_length.until_converged(sampler, settings.draws, settings.check_every, settings.tune, watch,
                                         gates=gates, prepare=lambda tree: model.orient(_posterior_only(tree)),
                                         quick=_cheap_draws(sampler, compiled, model), status=say,
                                         show_progress=lines)
    except BaseException:
        sampler.cancel()   # as in _nutpie: Ctrl-C must not leave a trace that looks finished
        raise
    say(f"stopped after {run.draws} draws per chain: "
        + ("R-hat and ESS pass" if run.stopped_by == "gates" else f"the cap of {settings.draws} draws was reached"))
    return run


def _cheap_draws(sampler, compiled, model: Model) -> Callable[[int, xr.DataTree | None], xr.Dataset | None] | None:
    """The cheap check's draws (:func:`.run_length.arrow_posterior`), or None for a sampler not nutpie's.

    The free variables' draws alone, or, when traits are oriented after sampling (the reflection is
    decided on theta), every variable's, oriented. Without them (tests' stand-ins) every check is full.
    """
    if run_length.raw_sampler(sampler) is None:
        return None
    names = [v.name for v in model.pymc.free_RVs]
    oriented = bool(model.spec.orientation)
    if oriented:
        names += [v.name for v in model.pymc.deterministics]
    coords = {k: np.asarray(v) for k, v in (getattr(compiled, "coords", None) or {}).items()}

    def draws(k: int, finished: xr.DataTree | None = None) -> xr.Dataset | None:
        if finished is not None:
            posterior = finished["posterior"].to_dataset()[names].isel(draw=slice(0, k))
        else:
            posterior = run_length.arrow_posterior(sampler, k, names, coords)
        if posterior is None or not oriented:
            return posterior
        return model.orient(xr.DataTree.from_dict({"posterior": posterior}))["posterior"].to_dataset()
    return draws


def _posterior_only(tree: xr.DataTree) -> xr.DataTree:
    """A new tree holding a copy of ``tree``'s posterior (what the orientation reads and may change)."""
    return xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset().copy()})


def _tidy(tree: xr.DataTree, keep_warmup: bool = False) -> xr.DataTree:
    """Drop warm-up groups (unless asked for) and the sampler statistics that are Python objects.

    netCDF cannot hold Python objects.
    """
    for group in [g for g in tree.children if g.startswith("warmup") and not keep_warmup]:
        del tree[group]
    stats = tree["sample_stats"].to_dataset()
    drop = [v for v in stats.data_vars if stats[v].dtype == object]
    if drop:
        tree["sample_stats"] = xr.DataTree(stats.drop_vars(drop))
    return tree


def sample_compiled(compiled, *, draws: int, tune: int, chains: int, seed: int,
                    cores: int | None = 1) -> xr.DataTree:
    """Sample an already compiled nutpie model at nutpie's defaults, without the checks of :func:`sample`.

    For experiments that compare samplers on models built outside :class:`~nexusbayes.model.build.Model`
    (the embedded Laplace approximation's, :func:`nexusbayes.inference.laplace.nutpie_model`, whose Python
    functions keep state per chain, hence one core by default; the benchmarks' straightforward model,
    ``cores=None``: every core, as ``pm.sample(nuts_sampler="nutpie")``), so that they too sample here.
    Returns nutpie's raw trace.
    """
    import nutpie

    return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, cores=cores, progress_bar=False)
