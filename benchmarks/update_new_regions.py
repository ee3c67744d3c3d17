"""New regions in an update against a refit: why the type probabilities differed (issue 25, part 1).

``python -m benchmarks.update_new_regions copies independent [--draws 500 --held 40 --filter-draws 10]``

The small panel of ``tests/inference/test_update.py`` (2 countries, its last period held back), updated with the
last period and one new region per country, against a refit on all the data (2 chains). ``none``: no new region
(the baseline). ``copies``: the new regions repeat the new rows of each country's first region (``simulate(2, 2, 5,
seed=7)``, the test's old fixture). ``independent``: ``simulate(2, 3, 5, seed=7)``, the base fit without the third
region of each country and the last period, the update with the last period of all regions. Per case, at the added
period: the trait means' gap (update less refit, in refit posterior SDs; each run standardised per draw over all
its region-periods, as the test does) with its Monte Carlo floor ``sqrt(1/ESS + 1/ESS)``; the type probabilities'
mean and max difference on each run's own scale, and with both runs re-standardised per draw over the base fit's
region-periods (the fitted regions' fitted periods: the scale the update keeps), with the floor of a probability
difference ``sqrt(p (1 - p) (1/ESS + 1/ESS))`` (p the refit's, ESS of the type indicator); the refit's own types
against its re-standardised ones (the scale change alone).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats import ess

from nexusbayes.analysis.typology import classify
from nexusbayes.constants import TYPES
from nexusbayes.fit import fit
from nexusbayes.model.simulate import simulate

SAMPLE = ("chain", "draw")


def case(name: str):
    """(spec, base rows, update rows, all rows, fitted regions) of a case."""
    if name in ("copies", "none"):
        sim = simulate(n_countries=2, n_regions=2, n_periods=5, seed=7)
        last = sim.frame["period"].max()
        old, new = sim.frame[sim.frame["period"] < last], sim.frame[sim.frame["period"] == last]
        if name == "none":
            return sim.spec, old, new, sim.frame, sorted(old["region"].unique())
        first = new[new["region"].isin(["C1-R01", "C2-R01"])]
        new = pd.concat([new, first.assign(region=first["region"] + "-new")])
        return sim.spec, old, new, pd.concat([old, new]), sorted(old["region"].unique())
    sim = simulate(n_countries=2, n_regions=3, n_periods=5, seed=7)
    frame, last = sim.frame, sim.frame["period"].max()
    fitted = ~frame["region"].str.endswith("R03")
    old = frame[fitted & (frame["period"] < last)]
    new = frame[frame["period"] == last]
    return sim.spec, old, new, pd.concat([old, new]), sorted(old["region"].unique())


def restandardised(theta: xr.DataArray, regions, periods) -> xr.DataArray:
    """Each draw standardised over the given region-periods, per trait."""
    ref = theta.sel(region=regions, period=periods)
    return (theta - ref.mean(("region", "period"))) / ref.std(("region", "period"))


def own(theta: xr.DataArray) -> xr.DataArray:
    """Each draw standardised over all its region-periods (a refit's own scale), per trait."""
    return (theta - theta.mean(("region", "period"))) / theta.std(("region", "period"))


def codes(theta: xr.DataArray) -> xr.DataArray:
    """Type codes at latent thresholds 0 (the default spec's)."""
    return xr.apply_ufunc(classify, theta.sel(trait="capability"), theta.sel(trait="willingness"), 0.0, 0.0)


def probs(code: xr.DataArray) -> xr.DataArray:
    """P(type) per region from type codes."""
    return xr.concat([(code == k).mean(SAMPLE) for k in range(len(TYPES))], dim="type")


def type_floor(code_a, code_b, p) -> xr.DataArray:
    """Monte Carlo SD of a type probability difference, per cell and type, from both runs' indicator ESS."""
    out = []
    for k in range(len(TYPES)):
        e_a = ess((code_a == k).astype(float)).clip(min=1.0)
        e_b = ess((code_b == k).astype(float)).clip(min=1.0)
        out.append(np.sqrt(p.isel(type=k) * (1 - p.isel(type=k)) * (1 / e_a + 1 / e_b)))
    return xr.concat(out, dim="type").fillna(0.0)


def compare(refit, updated, fitted_regions, fitted_periods) -> dict:
    """The figures of the module docstring for one case."""
    a_theta, b_theta = refit.tree["posterior"]["theta"], updated.tree["posterior"]["theta"]
    last = a_theta["period"].values[-1]
    a, b = own(a_theta).sel(period=last), own(b_theta).sel(period=last)
    gap = np.abs(a.mean(SAMPLE) - b.mean(SAMPLE)) / a.std(SAMPLE)
    out = {"gap_mean": float(gap.mean()), "gap_max": float(gap.max()),
           "floor": float(np.sqrt(1 / ess(a) + 1 / ess(b)).mean()),
           "width": float((b.std(SAMPLE) / a.std(SAMPLE)).mean())}
    for label, scale in (("own", own), ("base", lambda t: restandardised(t, fitted_regions, fitted_periods))):
        ca, cb = codes(scale(a_theta).sel(period=last)), codes(scale(b_theta).sel(period=last))
        pa, pb = probs(ca), probs(cb)
        diff = np.abs(pa - pb)
        where = diff.max("type").argmax().item()
        out[f"types_{label}_mean"], out[f"types_{label}_max"] = float(diff.mean()), float(diff.max())
        out[f"types_{label}_at"] = str(diff["region"].values[where])
        fl = type_floor(ca, cb, pa)
        out[f"types_{label}_floor_mean"], out[f"types_{label}_floor_max"] = float(fl.mean()), float(fl.max())
        out[f"types_{label}_z_max"] = float((diff / fl.where(fl > 0)).max())
        out[f"types_{label}_by_region"] = " ".join(f"{r}={v:.3f}" for r, v in
                                                   zip(diff["region"].values, diff.max("type").values, strict=True))
        ga, gb = scale(a_theta).sel(period=last), scale(b_theta).sel(period=last)
        g = (gb.mean(SAMPLE) - ga.mean(SAMPLE)) / ga.std(SAMPLE)
        out[f"gap_{label}_by_region"] = " ".join(f"{r}={v[0]:+.2f},{v[1]:+.2f}" for r, v in
                                                 zip(g["region"].values, g.transpose("region", "trait").values,
                                                     strict=True))
    own_codes = codes(own(a_theta).sel(period=last))
    base_codes = codes(restandardised(a_theta, fitted_regions, fitted_periods).sel(period=last))
    scale_only = np.abs(probs(own_codes) - probs(base_codes))
    out["refit_scale_only_mean"], out["refit_scale_only_max"] = float(scale_only.mean()), float(scale_only.max())
    ref = a_theta.sel(region=fitted_regions, period=fitted_periods)
    out["refit_base_cells_mean"] = float(np.abs(ref.mean(("region", "period"))).mean())
    out["refit_base_cells_sd"] = float(ref.std(("region", "period")).mean())
    return out


def main(argv=None) -> None:
    """Run the cases and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+", choices=("copies", "independent", "none"))
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--held", type=int, default=40)
    parser.add_argument("--filter-draws", type=int, default=10)
    parser.add_argument("--refit-seed", type=int, default=3)
    parser.add_argument("--keep", help="a folder to save the three fits in")
    args = parser.parse_args(argv)
    for name in args.cases:
        spec, old, new, both, fitted_regions = case(name)
        fitted_periods = sorted(old["period"].unique())
        cpu = time.process_time()
        base = fit(spec, old, draws=300, tune=300, chains=2, seed=3, progress=False, check=False)
        updated = base.update(new, n_held=args.held, chains=2, seed=4, draws=args.filter_draws)
        refit = fit(spec, both, draws=args.draws, tune=300, chains=2, seed=args.refit_seed, progress=False,
                    check=False)
        if args.keep:
            for label, result in (("base", base), ("updated", updated), ("refit", refit)):
                result.save(f"{args.keep}/{name}-{label}.nc")
        row = compare(refit, updated, fitted_regions, fitted_periods)
        print(name, f"draws={args.draws} held={args.held} filter_draws={args.filter_draws} "
              f"cpu_s={time.process_time() - cpu:.0f}", flush=True)
        for key, value in row.items():
            print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}", flush=True)


if __name__ == "__main__":
    main()
