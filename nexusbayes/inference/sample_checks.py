"""The checks of :func:`nexusbayes.inference.sample.sample` before and after the sampler runs.

Before: the draws fit in memory (:func:`check_memory`). When the sampler cannot start: which terms are not
finite at the initial point (:func:`start_failure`). After: a complete trace (:func:`check_complete`) of finite
draws (:func:`check_finite`). None of them samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from nexusbayes.errors import Interrupted, SamplingError, SpecError
from nexusbayes.inference import run_length

if TYPE_CHECKING:
    import pymc as pm

    from nexusbayes.model.build import Model
    from nexusbayes.spec.sections import SamplerSpec


def check_memory(model: Model, settings: SamplerSpec, predictions: bool = True) -> None:
    """Refuse sampler settings whose draws would not fit in the memory available.

    The fit holds, per chain and draw, every posterior value (free variables and deterministics) plus,
    with ``predictions``, a log-likelihood and a posterior-predictive value per observation, each 8 bytes;
    asking for more than the memory available ends in an allocation abort after compiling, or a panic in
    the sampler. The sizes come from the variables' dims, so nothing is compiled.
    """
    import psutil  # a dependency of dask's distributed

    per_draw = sum(_size(model.pymc, v) for v in [*model.pymc.free_RVs, *model.pymc.deterministics])
    per_draw += 2 * model.panel.n_obs if predictions else 0
    need = settings.chains * settings.draws * per_draw * 8
    available = psutil.virtual_memory().available
    if need > available:
        most = max(available // (settings.chains * per_draw * 8), 0)
        raise SpecError(f"sampler settings: {settings.chains} chain(s) x {settings.draws:,} draws x {per_draw:,} "
                        f"values per draw x 8 bytes = {need / 1e9:,.1f} GB, more than the {available / 1e9:.1f} GB "
                        f"of memory available; lower `draws` (at most {most:,} with {settings.chains} chain(s)) "
                        "or `chains`")


def _size(model: pm.Model, variable) -> int:
    """Number of values of ``variable``: from its dims' lengths, else its static shape, else evaluated."""
    dims = model.named_vars_to_dims.get(variable.name)
    if dims and all(d is not None for d in dims):
        return int(np.prod([len(model.coords[d]) for d in dims]))
    if all(s is not None for s in variable.type.shape):
        return int(np.prod(variable.type.shape))
    return int(np.prod(variable.shape.eval()))


def start_failure(model: Model, backend: str, exc: Exception) -> str:
    """Explain a sampler failure: which terms are not finite at the initial point, and what to try."""
    try:
        from pytensor.compile.mode import Mode

        # pure Python, lightly optimised: compiles in seconds, and speed does not matter for one point
        with np.errstate(all="ignore"):
            logps = model.pymc.point_logps(model.pymc.initial_point(random_seed=0), round_vals=6,
                                           mode=Mode(linker="py", optimizer="fast_compile"))
        bad = [name for name, value in logps.items() if not np.isfinite(value)]
        shown = [f"{name} = {logps[name]}" for name in bad]
        priors = [f"priors.{key} = {getattr(model.spec.priors, key):g}" for key in model.roles.prior_fields(bad)]
    except Exception:  # the report is a hint; the sampler's own error is kept below
        shown, priors = [], []
    where = f" Terms whose log-density is not finite at the initial point: {', '.join(shown)}." if shown else ""
    if priors:
        where += f" Their prior scale(s) in the spec: {', '.join(priors)}."
    first = (str(exc).strip().splitlines() or [""])[0][:300]   # not a Rust backtrace: the full error is chained
    return (f"sampling failed to start or stopped with an error ({backend}: {type(exc).__name__}: {first})."
            f"{where} This usually means the log-density is -inf or NaN where the sampler starts "
            "(initialisation failure). What to try: look for extreme values in the data of the named terms "
            "(y_<family> are indicators of that family; e.g. counts far larger than the rest, exposures near 0, "
            "a constant indicator), check the spec's priors are not extreme, run `nexusbayes check SPEC`, "
            "or try the other backend (--backend pymc / nutpie) for a second opinion.")


def check_complete(tree: xr.DataTree, settings: SamplerSpec, draws: int | None = None) -> None:
    """Refuse a trace with fewer chains or draws than asked: the samplers return those when interrupted.

    ``draws`` is what a run by need (``until_converged``) kept, every chain cut to it (default
    ``settings.draws``); a trace with another length, or with a chain that stops short (nutpie pads it
    with NaN), is refused.
    """
    post = tree["posterior"]
    want = settings.draws if draws is None else draws
    got = (int(post.sizes.get("chain", 0)), int(post.sizes.get("draw", 0)))
    short = draws is not None and "sample_stats" in tree.children and "logp" in tree["sample_stats"] and \
        run_length.common_draws(tree) < got[1]
    if got != (settings.chains, want) or short:
        raise Interrupted(f"sampling was interrupted: got {got[0]} chain(s) x {got[1]} draws of "
                          f"{settings.chains} x {want}; partial traces are not returned")


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
