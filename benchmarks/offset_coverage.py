"""Coverage of planted non-comparable country offsets under ``[comparability] detect = true`` (issue 23, part 4).

The default six-indicator spec with detection on (regularised horseshoe on every indicator's sum-to-zero country
offsets) is fitted to panels simulated with offsets planted on seizures (a count on two traits) and
expert_willingness (ratings on one); the other four indicators are comparable (true offsets 0). Per seed it prints,
as one JSON line, the 90% interval coverage of the offsets (indicator x country) split by the truth: the planted
non-zero ones, the zero ones and all; the mean signed error of the non-zero ones towards their sign (negative =
shrunk towards zero), theta's coverage and correlation, the posterior mean of the horseshoe's global scale and the
CPU seconds of the fit, each indicator's largest P(|offset| > delta) and the countries' mean traits' error in
posterior SDs (:func:`country_bias`); then the coverage pooled over the seeds. With ``--modes all`` also, per seed,
detection off on the same data (the countries' bias) and both on the data without offsets (no harm, false
alarms): the slow tests' design (tests/analysis/test_comparability.py). One compiled model per mode serves every
seed (the same panel shape; :mod:`nexusbayes.inference.compile_cache`). Run::

    python -m benchmarks.offset_coverage [--countries 6] [--regions 6] [--periods 6] [--seeds 11,12,13]
        [--draws 300] [--slab 1.0] [--modes on|all]

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

from nexusbayes.analysis.recovery import correlation_by_trait, interval_covers

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
    return {"covered": interval_covers(offset, truth, 0.9).values.ravel(),
            "planted": np.abs(truth.values.ravel()) > 1e-12,
            "error": ((offset.mean(sample) - truth) * np.sign(truth)).values.ravel()}


def country_bias(theta: xr.DataArray, truth: xr.DataArray) -> dict:
    """Each country's mean trait (over its regions and periods) against the truth: error and its z-score.

    Parameters
    ----------
    theta : xarray.DataArray
        Posterior draws of ``theta`` (chain, draw, region, period, trait); regions are named ``country-...``.
    truth : xarray.DataArray
        True ``theta`` (region, period, trait).

    Returns
    -------
    dict
        ``error`` (country x trait: posterior mean minus truth), ``z`` (the error over the posterior SD of the
        country's mean trait) and ``covered`` (the truth inside the country mean's 90% interval), all arrays.
    """
    countries = [str(r).split("-")[0] for r in theta["region"].values]
    mean = theta.assign_coords(country=("region", countries)).groupby("country").mean(("region", "period"))
    target = truth.assign_coords(country=("region", countries)).groupby("country").mean(("region", "period"))
    sample = ("chain", "draw")
    error = (mean.mean(sample) - target).values
    return {"error": error, "z": error / mean.std(sample).values, "covered": interval_covers(mean, target, 0.9).values}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _fit(spec, panel, draws: int) -> tuple:
    """The fit (2 chains, fit seed 1, warnings silenced) and its CPU and wall seconds."""
    from nexusbayes.fit import fit

    cpu, wall = _cpu(), time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(spec, panel, draws=draws, tune=draws, chains=2, seed=1, progress=False, check=False)
    return result, round(_cpu() - cpu, 1), round(time.time() - wall, 1)


def _theta_figures(post, truth) -> dict:
    """The 90% coverage of theta and its correlation per trait with the truth, rounded for printing."""
    theta = post["theta"]
    r = correlation_by_trait(theta.mean(("chain", "draw")), truth)
    return {"theta_coverage": round(float(interval_covers(theta, truth, 0.9).mean()), 3),
            "theta_r": {k: round(v, 3) for k, v in r.items()}}


def _bias_figures(post, truth) -> dict:
    bias = country_bias(post["theta"], truth)
    return {"bias_max": round(float(np.abs(bias["error"]).max()), 3),
            "bias_rms": round(float(np.sqrt((bias["error"] ** 2).mean())), 3),
            "bias_z_rms": round(float(np.sqrt((bias["z"] ** 2).mean())), 3),
            "country_covered": f"{int(bias['covered'].sum())}/{bias['covered'].size}"}


def compare_modes(spec, off_spec, sim, clean, draws: int) -> dict:
    """Detection off on the planted data, and on / off on the clean data (``--modes all``): bias and no harm."""
    figures = {}
    off, figures["cpu_off"], _ = _fit(off_spec, sim.panel, draws)
    figures["off"] = {**_bias_figures(off.tree["posterior"], sim.truth["theta"]),
                      **_theta_figures(off.tree["posterior"], sim.truth["theta"])}
    clean_on, cpu_a, _ = _fit(spec, clean.panel, draws)
    clean_off, cpu_b, _ = _fit(off_spec, clean.panel, draws)
    figures["cpu_clean"] = round(cpu_a + cpu_b, 1)
    worst = clean_on.noncomparability().groupby("indicator", sort=False)["p_exceeds"].max()
    sample = ("chain", "draw")
    on_theta, off_theta = clean_on.tree["posterior"]["theta"], clean_off.tree["posterior"]["theta"]
    gap = abs(on_theta.mean(sample) - off_theta.mean(sample)) / off_theta.std(sample)
    figures["clean"] = {"p_exceeds": worst.round(2).to_dict(), "gap_mean": round(float(gap.mean()), 3),
                        "gap_max": round(float(gap.max()), 3),
                        "r_on_off": round(float(np.corrcoef(on_theta.mean(sample).values.ravel(),
                                                            off_theta.mean(sample).values.ravel())[0, 1]), 5)}
    return figures


def main() -> None:
    """Fit each seed, print one JSON line per seed and the pooled coverage."""
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
    parser.add_argument("--modes", choices=("on", "all"), default="on",
                        help="on: detection on, planted data; all: also detection off, and both on clean data")
    args = parser.parse_args()
    data = default_spec(comparability=Comparability(detect=True)).to_dict()
    data["priors"]["offset_slab_scale"] = args.slab
    spec, off_spec = Spec.from_dict(data), default_spec()
    pooled = []
    for seed in (int(s) for s in args.seeds.split(",")):
        shape = {"n_countries": args.countries, "n_regions": args.regions, "n_periods": args.periods, "seed": seed}
        sim = simulate(spec, offsets=PLANTED[args.countries], **shape)
        result, cpu, wall = _fit(spec, sim.panel, args.draws)
        post = result.tree["posterior"]
        cells = offset_coverage(post["country_offset"], sim.truth["country_offset"])
        pooled.append(cells)
        hit, nz = cells["covered"], cells["planted"]
        worst = result.noncomparability().groupby("indicator", sort=False)["p_exceeds"].max()
        line = {"seed": seed, "non_zero": f"{int(hit[nz].sum())}/{int(nz.sum())}",
                "zero": f"{int(hit[~nz].sum())}/{int((~nz).sum())}", "all": round(float(hit.mean()), 3),
                "error_non_zero": round(float(cells["error"][nz].mean()), 3),
                "sd_non_zero": round(float(post["country_offset"].std(("chain", "draw")).values.ravel()[nz].mean()),
                                     3),
                "p_exceeds": worst.round(2).to_dict(), **_theta_figures(post, sim.truth["theta"]),
                **_bias_figures(post, sim.truth["theta"]),
                "tau": round(float(post["offset_tau"].mean()), 3),
                "divergences": int(result.tree["sample_stats"]["diverging"].sum()),
                "cpu_s": cpu, "wall_s": wall, "load": open("/proc/loadavg").read().split()[0]}
        if args.modes == "all":
            line.update(compare_modes(spec, off_spec, sim, simulate(spec, **shape), args.draws))
        print(json.dumps(line), flush=True)
    hit = np.concatenate([c["covered"] for c in pooled])
    nz = np.concatenate([c["planted"] for c in pooled])
    error = np.concatenate([c["error"] for c in pooled])
    print(json.dumps({"pooled": {"non_zero": round(float(hit[nz].mean()), 3), "n_non_zero": int(nz.sum()),
                                 "zero": round(float(hit[~nz].mean()), 3), "n_zero": int((~nz).sum()),
                                 "all": round(float(hit.mean()), 3), "n": int(hit.size),
                                 "error_non_zero": round(float(error[nz].mean()), 3)}}))


if __name__ == "__main__":
    main()
