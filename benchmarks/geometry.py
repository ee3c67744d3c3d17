"""The posterior's shape as a diagonal mass matrix sees it: ``python -m benchmarks.geometry SIZE``.

NUTS with a diagonal mass matrix rescales every unconstrained coordinate to unit posterior SD. What is
left is the posterior's correlation matrix: its smallest eigenvalue sets the step size (the narrowest
direction), its largest the distance a trajectory must travel (the widest), so the square root of
their ratio, the condition number, is roughly the number of leapfrog steps a draw needs. This samples
SIZE's model (see :mod:`benchmarks.cases`) with nutpie, keeps the unconstrained draws, and prints one
JSON line: steps per draw, step size, the condition number, and for the narrowest and widest
directions their eigenvalues and which variables make them up (share of the direction's squared
length). That is how the 63 steps per draw of every benchmark panel were traced to the random walk's
slow directions, and why moving them did not help (``benchmarks/HISTORY.md``, 2026-11-30 10:15).

Examples
--------
``python -m benchmarks.geometry small --draws 500 --tune 500``
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pymc as pm
import xarray as xr


def unconstrained_draws(tree: xr.DataTree, model: pm.Model) -> tuple[np.ndarray, list[str]]:
    """Draws of every free variable on the sampler's (unconstrained) scale, as (draw, coordinate), and names.

    Transformed variables come from nutpie's ``unconstrained_posterior`` group (``store_unconstrained=True``),
    the others from ``posterior``; coordinates are labelled ``value_var[i]`` in flattened order.
    """
    groups = tree.children
    unconstrained = tree["unconstrained_posterior"] if "unconstrained_posterior" in groups else None
    columns, names = [], []
    for rv in model.free_RVs:
        name = model.rvs_to_values[rv].name
        if unconstrained is not None and name in unconstrained.data_vars:
            values = unconstrained[name].values
        elif name == rv.name:                     # no transform: the posterior holds the sampler's values
            values = tree["posterior"][name].values
        else:
            raise KeyError(f"{name!r} is transformed but the tree has no unconstrained draws of it: sample with "
                           "nutpie's store_unconstrained=True")
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        columns.append(flat)
        names += [f"{name}[{i}]" for i in range(flat.shape[1])]
    return np.concatenate(columns, axis=1), names


def geometry(draws: np.ndarray, names: list[str], directions: int = 3) -> dict:
    """Eigen-analysis of the draws' correlation matrix (what is left after a diagonal mass matrix).

    Parameters
    ----------
    draws : numpy.ndarray
        (draw, coordinate).
    names : list of str
        Coordinate labels ``variable[i]``.
    directions : int
        How many of the narrowest and of the widest directions to describe.

    Returns
    -------
    dict
        ``condition_number`` and ``sqrt_condition_number``; ``narrowest`` and ``widest``: per direction its
        eigenvalue and the variables that make up at least 5% of it (shares of its squared length).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal(20000)
    >>> x = np.column_stack([a, 0.9 * a + np.sqrt(1 - 0.81) * rng.standard_normal(20000), rng.standard_normal(20000)])
    >>> g = geometry(x, ["a[0]", "b[0]", "c[0]"], directions=1)
    >>> round(g["condition_number"]), g["narrowest"][0]["variables"]
    (19, {'a': 0.5, 'b': 0.5})
    """
    keep = draws.std(axis=0) > 0                                  # constant coordinates have no width
    scaled = draws[:, keep]
    scaled = (scaled - scaled.mean(axis=0)) / scaled.std(axis=0)
    labels = [n for n, k in zip(names, keep, strict=True) if k]
    values, vectors = np.linalg.eigh(np.cov(scaled, rowvar=False))
    variable = np.array([n.split("[")[0] for n in labels])

    def describe(i):
        share = {str(v): float((vectors[variable == v, i] ** 2).sum()) for v in dict.fromkeys(variable)}
        big = {v: round(s, 2) for v, s in sorted(share.items(), key=lambda kv: -kv[1]) if s >= 0.05}
        return {"eigenvalue": round(float(values[i]), 4), "variables": big}

    condition = float(values[-1] / values[0])
    return {"coordinates": int(keep.sum()), "condition_number": round(condition, 1),
            "sqrt_condition_number": round(float(np.sqrt(condition)), 1),
            "narrowest": [describe(i) for i in range(directions)],
            "widest": [describe(len(values) - 1 - i) for i in range(directions)]}


def main(argv: list[str] | None = None) -> None:
    """Command line: sample SIZE once and print its geometry as one JSON line."""
    from benchmarks.cases import make_case
    from nexusbayes.inference.sample import sample
    from nexusbayes.model.build import Model

    parser = argparse.ArgumentParser(prog="python -m benchmarks.geometry", description=__doc__.split("\n\n")[0])
    parser.add_argument("size")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    case = make_case(args.size)
    model = Model(case.spec, case.panel)
    settings = case.spec.sampler.model_copy(update={"draws": args.draws, "tune": args.tune, "chains": args.chains,
                                                     "seed": args.seed, "backend": "nutpie"})
    tree = sample(model, settings, progress=False, predictions=False,
                  sampler_options={"store_unconstrained": True})
    seconds = float(tree.attrs["seconds_sampling"])
    stats = tree["sample_stats"]
    draws, names = unconstrained_draws(tree, model.pymc)
    print(json.dumps({"size": args.size, "draws": args.draws, "tune": args.tune, "chains": args.chains,
                      "seed": args.seed, "sampling_s": round(seconds, 1),
                      "steps_per_draw": round(float(stats["n_steps"].mean()), 1),
                      "step_size": round(float(stats["step_size"].mean()), 4), **geometry(draws, names)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
