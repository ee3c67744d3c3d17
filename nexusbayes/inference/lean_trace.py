"""nutpie's trace without the deterministics: every variable computed from the unconstrained draws afterwards.

A model compiled ``lean`` (:func:`nexusbayes.inference.nutpie_callbacks.compile_model`) has nutpie store
the unconstrained draw alone, about half the values per draw of the trait model (its deterministics, theta
first, are the other half), warm-up included. :func:`to_tree` then turns nutpie's raw trace into the
DataTree its own conversion would give, chain by chain: each chain's unconstrained draws go through the
model's full expand callback, the one nutpie calls in a full compile (made or loaded from PyTensor's cache
on first use, shared with the full compile of the structure), so every variable has the values a full
trace would hold; they are rounded to single precision at once and held so
(:func:`~nexusbayes.model.predict.single_precision`, which the fit applies anyway). Nothing of the warm-up
is converted, and no double-precision copy of the posterior is made besides the result.

Examples
--------
>>> from nexusbayes.model.simulate import simulate
>>> from nexusbayes.model.build import build_model
>>> from nexusbayes.inference.nutpie_callbacks import compile_model
>>> sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
>>> compiled = compile_model(build_model(sim.panel, sim.spec), lean=True)
>>> is_lean(compiled), int(compiled.n_expanded) == int(compiled.n_dim)
(True, True)
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.inference.nutpie_callbacks import full_expand

#: nutpie's sampler statistics its own conversion leaves out unless their storing was asked for (its
#: ``_BackgroundSampler._extract``); the lean path runs with nutpie's defaults, which store none of them.
OPTIONAL_STATS = ("gradient", "unconstrained_draw", "mass_matrix_inv", "mass_matrix_eigvals", "mass_matrix_stds",
                  "divergence_start", "divergence_end", "divergence_momentum", "divergence_start_gradient",
                  "transformed_position", "transformed_gradient", "transformation_mu")


def is_lean(compiled) -> bool:
    """Whether nutpie's trace of ``compiled`` holds fewer variables than the model has (a lean compile)."""
    shapes = getattr(compiled, "shapes", None)
    return bool(shapes) and list(shapes) != list(compiled.shape_info[0])


def layout(compiled) -> list[tuple[str, slice, tuple[int, ...]]]:
    """Each variable of the expand function's output: name, its slice of the flat output, its shape."""
    out, start = [], 0
    for name, shape in compiled.shapes.items():
        size = int(np.prod(shape, dtype=np.int64))
        out.append((name, slice(start, start + size), tuple(shape)))
        start += size
    return out


def to_tree(draw_batches: list, stat_batches: list, compiled) -> xr.DataTree:
    """The DataTree of a lean trace: posterior (single precision) and sampler statistics.

    Parameters
    ----------
    draw_batches, stat_batches : list of pyarrow.RecordBatch
        nutpie's raw trace, one batch per chain (``get_arrow_trace()``); each chain's draw batch is
        released from the list once converted.
    compiled : nutpie CompiledPyMCModel
        Compiled lean (:func:`is_lean`), with the data it sampled (``with_data``).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` and ``sample_stats`` as nutpie's own conversion gives them from a full trace
        (``save_warmup=False``); chains that stopped short are padded with NaN, as nutpie pads them.
    """
    import arviz
    import pyarrow
    from nutpie.sample import _arrow_to_arviz

    coords = {name: pd.Index(values) for name, values in compiled.coords.items()}
    tuning = [int(pyarrow.array(s.column("tuning")).to_numpy(zero_copy_only=False).sum()) for s in stat_batches]
    n_draws = max(batch.num_rows - n for batch, n in zip(draw_batches, tuning, strict=True))
    # the statistics through nutpie's own conversion (one draw column, dropped: the posterior is built here)
    first = compiled.shape_info[0][0]
    tree = _arrow_to_arviz([batch.select([first]) for batch in draw_batches], stat_batches,
                           skip_vars=list(OPTIONAL_STATS), reparameterized_names=[], coords=coords,
                           save_warmup=False, attrs={"sample_stats": {
                               "inference_library": "nutpie", "inference_library_version": version("nutpie")}})
    dropped = set(compiled.reparameterized_names or [])   # the transformed values, as nutpie drops them
    full = layout(compiled)
    n_expanded = full[-1][1].stop
    variables = [entry for entry in full if entry[0] not in dropped]
    posterior = {name: np.full((len(draw_batches), n_draws, *shape), np.nan, dtype=np.float32)
                 for name, _, shape in variables}
    expand = _expand(compiled, n_expanded)
    for chain, n_tune in enumerate(tuning):
        points = unconstrained(draw_batches[chain].slice(n_tune), compiled)
        draw_batches[chain] = None       # this chain's Arrow draws are no longer needed
        values = np.empty((len(points), n_expanded), dtype=np.float32)
        for i, point in enumerate(points):
            values[i] = expand(point)    # rounded to single precision as it is stored
        del points
        for name, part, shape in variables:
            posterior[name][chain, :len(values)] = values[:, part].reshape(len(values), *shape)
        del values
    dims = {name: list(dims) for name, dims in (compiled.dims or {}).items() if name in posterior}
    tree["posterior"] = arviz.from_dict({"posterior": posterior}, dims=dims, coords=coords)["posterior"]
    return tree


def _expand(compiled, n_expanded: int):
    """Every variable of the model at an unconstrained point, as a full compile's expand callback gives them.

    That callback (:func:`~nexusbayes.inference.nutpie_callbacks.full_expand`, made or loaded on first use),
    else the PyTensor function it calls, with the same data arrays: the same numbers either way.
    """
    callback = full_expand(compiled)
    if callback is not None:
        out = np.empty(n_expanded)

        def expand(point: np.ndarray) -> np.ndarray:
            callback(point, out)
            return out

        return expand
    function = compiled.expand_func.vm.jit_fn
    shared = [compiled.shared_data[compiled.shared_var_keys[v]] for v in compiled.expand_func.get_shared()]
    return lambda point: function(point, *shared)[0]


def unconstrained(batch, compiled) -> np.ndarray:
    """The unconstrained draws of a lean trace's Arrow batch: (draws, ``compiled.n_dim``), nutpie's layout."""
    import pyarrow

    points = np.empty((batch.num_rows, compiled.n_dim))
    for name, part in zip(compiled.shape_info[0], compiled.shape_info[1], strict=True):
        column = pyarrow.array(batch.column(name))
        flat = column.flatten() if hasattr(column, "flatten") else column
        points[:, part] = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=float).reshape(batch.num_rows, -1)
    return points
