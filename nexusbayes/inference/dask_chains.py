"""A fit's chains as tasks on a Dask cluster: each worker samples one chain, the lead joins them.

:func:`nexusbayes.inference.sample.sample` with ``scheduler=ADDRESS`` comes here instead of running every
chain in its own process. Each chain is one task: the worker builds the model from the spec (as a dict) and the
panel (tables and arrays), loads or compiles it through :mod:`nexusbayes.inference.compile_cache` (a worker
keeps it for the next chain; a new worker process finds the compiled callbacks on its machine's disk cache),
samples one chain with the seed :func:`chain_seed` gives and returns its groups as arrays
(``xarray.Dataset.to_dict``). No model object crosses the network: Dask serialises the task's arguments and
result, which are the spec's dict, the panel's data frames and arrays, and the draws' arrays. The lead joins the
chains along ``chain`` in the order of their index, into the tree a local run returns, and :func:`sample`'s own
checks and post-processing follow.

A chain's draws depend only on the fit's seed and the chain's index, never on the number of workers or the
order in which chains finish. They are not the local run's draws: nutpie derives its chains' random streams
from one seed inside a run, and offers no way to run its chain ``k`` alone, so each task is a one-chain run
(nutpie's chain 0) with its own seed: chain ``k``'s draws are those of a local one-chain run seeded
``chain_seed(seed, k)``. Without further sampler options the worker compiles the lean model and samples it as a
local fixed-length run does (:mod:`nexusbayes.inference.lean_trace`): the draws of the free variables alone cross
nutpie's trace, the rest is computed from them on the worker.

Examples
--------
>>> [chain_seed(2024, k) for k in range(2)] == [chain_seed(2024, k) for k in range(2)]
True
>>> chain_seed(2024, 0) != chain_seed(2024, 1) and chain_seed(2024, 0) != chain_seed(2025, 0)
True
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import xarray as xr

from nexusbayes.cluster import connect
from nexusbayes.errors import SpecError
from nexusbayes.model.build import Model
from nexusbayes.spec.sections import SamplerSpec

#: The worst of the chains' ``compile_source`` (:data:`nexusbayes.inference.compile_cache.SOURCES`) first: the
#: fit's is the one that cost the most.
SOURCE_ORDER = ("compiled", "disk", "process")


def chain_seed(seed: int, chain: int) -> int:
    """The sampler seed of chain ``chain`` of a fit seeded ``seed``: a function of those two numbers only.

    :class:`numpy.random.SeedSequence` mixes them into a well-spread 32-bit seed, independent from chain to chain.
    """
    return int(np.random.SeedSequence([int(seed), int(chain)]).generate_state(1, dtype=np.uint32)[0])


def sample_chains(model: Model, settings: SamplerSpec, scheduler: str, work: Callable[..., dict], options: dict,
                  say: Callable[[str], None]) -> tuple[xr.DataTree, dict]:
    """Sample ``settings.chains`` chains of ``model`` as Dask tasks, one per chain, and join them.

    Parameters
    ----------
    model : Model
        The spec's own model (not an update's filter, which has no spec to rebuild it from).
    settings : SamplerSpec
        Draws, tune, chains, seed, target acceptance and adaptation.
    scheduler : str
        Address of a running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    work : callable
        ``work(spec_dict, panel, sampler_dict, seed, options) -> dict``, run on a worker: one chain
        (:func:`nexusbayes.inference.sample.sample_chain`, the one module that calls the sampler).
    options : dict
        Further keyword arguments of ``nutpie.sample`` (e.g. ``save_warmup``); none for the lean trace.
    say : callable
        Called with a line when the tasks are sent and one per finished chain.

    Returns
    -------
    tree : xarray.DataTree
        The chains' groups joined along ``chain`` (0 to chains - 1).
    attrs : dict
        For the tree's attrs: ``scheduler``, ``chain_seeds``, ``compile_source`` (the worst of the chains'),
        ``seconds_compile`` (the longest of the workers' loads or compiles), ``lean`` (every chain's trace was
        lean: its posterior is rounded to single precision already), and per chain ``chain_seconds_compile``,
        ``chain_seconds_sampling`` and ``chain_workers``.

    Raises
    ------
    SpecError
        For a model that is not a spec's own.
    SettingsError
        When no scheduler answers at ``scheduler``.
    """
    from distributed import as_completed

    if getattr(model, "cache_salt", ""):
        raise SpecError("chains on a Dask cluster (scheduler=...) need a spec's own model; this one (an update's "
                        "filter) is sampled locally: leave out the scheduler")
    seeds = [chain_seed(settings.seed, k) for k in range(settings.chains)]
    sampler = settings.model_dump()
    with connect(scheduler) as client:
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        say(f"sampling {settings.chains} chain(s) x {settings.tune} tune + {settings.draws} draws as tasks on the "
            f"Dask cluster at {scheduler} ({workers} worker(s); each loads or compiles the model) ...")
        spec, panel = client.scatter([model.spec.to_dict(), model.panel], hash=False)
        futures = {client.submit(work, spec, panel, sampler, seed, options, pure=False,
                                 key=f"nexusbayes-chain-{k}-{seed}-{time.time_ns()}"): k
                   for k, seed in enumerate(seeds)}
        results: dict[int, dict] = {}
        try:
            for future in as_completed(futures):
                k = futures[future]
                results[k] = result = future.result()
                say(f"chain {k + 1} of {settings.chains} done ({len(results)} of {settings.chains}) on "
                    f"{result['worker']}: {result['seconds_sampling']:.1f} s sampling, {result['divergences']} "
                    f"divergence(s), model {_SOURCE_WORDS[result['compile_source']]} in "
                    f"{result['seconds_compile']:.1f} s")
        except BaseException:
            client.cancel(list(futures))     # a chain that is running finishes on its worker, unread
            raise
    chains = [results[k] for k in range(settings.chains)]
    attrs = {"scheduler": scheduler, "chain_seeds": seeds,
             "compile_source": min((c["compile_source"] for c in chains), key=SOURCE_ORDER.index),
             "seconds_compile": max(c["seconds_compile"] for c in chains), "lean": all(c["lean"] for c in chains),
             "chain_seconds_compile": [c["seconds_compile"] for c in chains],
             "chain_seconds_sampling": [c["seconds_sampling"] for c in chains],
             "chain_workers": [c["worker"] for c in chains]}
    return join_chains([c["groups"] for c in chains], seeds), attrs


_SOURCE_WORDS = {"compiled": "compiled", "disk": "loaded from the disk cache", "process": "reused"}


def chain_groups(tree: xr.DataTree) -> dict[str, dict]:
    """A one-chain tree's groups as dicts of arrays (:meth:`xarray.Dataset.to_dict`): what a chain task returns."""
    return {name: tree[name].to_dataset().to_dict(data="array") for name in tree.children}


def join_chains(chains: list[dict[str, dict]], seeds: list[int]) -> xr.DataTree:
    """The tree of the chains' groups (:func:`chain_groups`, in chain order), joined along ``chain``.

    The attrs of each group are the first chain's; nutpie's settings in ``sample_stats`` name the number of
    chains and each chain's seed (``chain_seeds``) instead of the first chain's.

    Examples
    --------
    >>> one = xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), [[0.0, 1.0]])},
    ...                                                      coords={"chain": [0], "draw": [0, 1]})})
    >>> tree = join_chains([chain_groups(one), chain_groups(one)], [1, 2])
    >>> tree["posterior"]["mu"].sizes["chain"], tree["posterior"]["chain"].values.tolist()
    (2, [0, 1])
    """
    groups = {}
    for name in chains[0]:
        parts = [xr.Dataset.from_dict(chain[name]).assign_coords(chain=[k]) for k, chain in enumerate(chains)]
        groups[name] = xr.concat(parts, dim="chain", data_vars="all", coords="different", compat="equals",
                                 join="exact", combine_attrs="override")
    settings = groups.get("sample_stats", xr.Dataset()).attrs.get("inference_library_settings")
    if settings:
        raw = json.loads(settings)
        raw.get("settings", {}).update({"num_chains": len(chains), "seed": None})
        groups["sample_stats"].attrs["inference_library_settings"] = json.dumps({**raw, "chain_seeds": seeds})
    return xr.DataTree.from_dict(groups)
