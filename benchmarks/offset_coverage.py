"""Coverage of planted non-comparable country offsets under ``[comparability] detect = true`` (issue 23, part 4).

The default six-indicator spec with detection on (regularised horseshoe on every indicator's sum-to-zero country
offsets) is fitted to panels simulated with offsets planted on seizures (a count on two traits) and
expert_willingness (ratings on one); the other four indicators are comparable (true offsets 0). Per seed it prints,
as one JSON line, the 90% interval coverage of the offsets (indicator x country) split by the truth: the planted
non-zero ones, the zero ones and all; the mean signed error of the non-zero ones towards their sign (negative =
shrunk towards zero), theta's coverage and correlation, the posterior mean of the horseshoe's global scale and the
CPU seconds of the fit; then the coverage pooled over the seeds. One compiled model serves every seed (the same
panel shape; :mod:`nexusbayes.inference.compile_cache`). Run::

    python -m benchmarks.offset_coverage [--countries 6] [--regions 6] [--periods 6] [--seeds 11,12,13]
        [--draws 300] [--slab 1.0]

Figures of a run are in ``benchmarks/HISTORY.md`` and ``benchmarks/results/comparability_detection.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings

import numpy as np
import xarray as xr

#: Planted offsets by number of countries (centred by the simulation; every value non-zero from 5 countries on).
PLANTED = {3: {"seizures": [1.2, -1.0, -0.2], "expert_willingness": [-1.2, 0.2, 1.0]},
           5: {"seizures": [1.2, -1.0, 0.6, -0.6, -0.2], "expert_willingness": [-1.2, 0.2, 1.0, -0.6, 0.6]},
           6: {"seizures": [1.2, -1.0, 0.6, -0.6, 0.3, -0.5],
               "expert_willingness": [-1.2, 0.2, 1.0, -0.4, 0.8, -0.4]}}


def offset_coverage(offset: xr.DataArray, truth: xr.DataArray) -> dict:
    """90% coverage and signed error of the offsets (chain, draw, indicator, country) against the true ones.

    Parameters
    ----------
    offset : xarray.DataArray
        Posterior draws of ``country_offset``.
    truth : xarray.DataArray
        True offsets (indicator, country), e.g. ``Simulation.truth["country_offset"]``.

    Returns
    -------
    dict
        ``covered`` and ``planted`` (bool arrays over indicator x country), and ``error`` (posterior mean minus
        truth, times the truth's sign: negative = shrunk towards zero).
    """
    sample = ("chain", "draw")
    truth = truth.sel(indicator=offset["indicator"], country=offset["country"])
    lower, upper = offset.quantile(0.05, sample).drop_vars("quantile"), offset.quantile(0.95, sample).drop_vars(
        "quantile")
    covered = ((lower <= truth) & (truth <= upper)).values.ravel()
    return {"covered": covered, "planted": np.abs(truth.values.ravel()) > 1e-12,
            "error": ((offset.mean(sample) - truth) * np.sign(truth)).values.ravel()}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    """Fit each seed, print one JSON line per seed and the pooled coverage."""
    from nexusbayes.fit import fit
    from nexusbayes.model.simulate import default_spec, simulate
    from nexusbayes.spec.document import Spec
    from nexusbayes.spec.sections import Comparability

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--countries", type=int, default=6, choices=sorted(PLANTED))
    parser.add_argument("--regions", type=int, default=6)
    parser.add_argument("--periods", type=int, default=6)
    parser.add_argument("--seeds", default="11,12,13")
    parser.add_argument("--draws", type=int, default=300, help="draws and tuning steps per chain (2 chains)")
    parser.add_argument("--slab", type=float, default=1.0, help="priors.offset_slab_scale")
    args = parser.parse_args()
    data = default_spec(comparability=Comparability(detect=True)).to_dict()
    data["priors"]["offset_slab_scale"] = args.slab
    spec = Spec.from_dict(data)
    pooled = []
    for seed in (int(s) for s in args.seeds.split(",")):
        sim = simulate(spec, n_countries=args.countries, n_regions=args.regions, n_periods=args.periods,
                       offsets=PLANTED[args.countries], seed=seed)
        cpu, wall = _cpu(), time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(spec, sim.panel, draws=args.draws, tune=args.draws, chains=2, seed=1, progress=False,
                         check=False)
        cpu, wall = _cpu() - cpu, time.time() - wall
        post = result.tree["posterior"]
        cells = offset_coverage(post["country_offset"], sim.truth["country_offset"])
        pooled.append(cells)
        theta, truth = post["theta"], sim.truth["theta"]
        sample = ("chain", "draw")
        inside = (theta.quantile(0.05, sample) <= truth) & (truth <= theta.quantile(0.95, sample))
        mean = theta.mean(sample)
        r = {str(k): round(float(np.corrcoef(mean.sel(trait=k).values.ravel(), truth.sel(trait=k).values.ravel())
                                 [0, 1]), 3) for k in truth["trait"].values}
        hit, nz = cells["covered"], cells["planted"]
        print(json.dumps({"seed": seed, "non_zero": f"{int(hit[nz].sum())}/{int(nz.sum())}",
                          "zero": f"{int(hit[~nz].sum())}/{int((~nz).sum())}", "all": round(float(hit.mean()), 3),
                          "error_non_zero": round(float(cells["error"][nz].mean()), 3),
                          "theta_coverage": round(float(inside.mean()), 3), "theta_r": r,
                          "tau": round(float(post["offset_tau"].mean()), 3),
                          "divergences": int(result.tree["sample_stats"]["diverging"].sum()),
                          "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                          "load": open("/proc/loadavg").read().split()[0]}), flush=True)
    hit = np.concatenate([c["covered"] for c in pooled])
    nz = np.concatenate([c["planted"] for c in pooled])
    error = np.concatenate([c["error"] for c in pooled])
    print(json.dumps({"pooled": {"non_zero": round(float(hit[nz].mean()), 3), "n_non_zero": int(nz.sum()),
                                 "zero": round(float(hit[~nz].mean()), 3), "n_zero": int((~nz).sum()),
                                 "all": round(float(hit.mean()), 3), "n": int(hit.size),
                                 "error_non_zero": round(float(error[nz].mean()), 3)}}))


if __name__ == "__main__":
    main()
