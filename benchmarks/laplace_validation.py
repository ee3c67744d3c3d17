"""The embedded Laplace approximation against full NUTS: ``python -m benchmarks.laplace_validation SIZE [--seed S]``.

SIZE is ``tiny`` (5 regions x 4 periods), ``small`` (8 x 6) or ``medium`` (15 x 10): one trait, centred
spans (``dynamics.centred``), four normal and two three-category ordinal indicators, simulated with the
seed. Both samplers run nutpie, 2 chains x (500 + 500), one after the other on one core: full NUTS on every
parameter, and NUTS on the hyperparameters with the walk's states integrated out
(:mod:`nexusbayes.inference.laplace`). Prints one JSON line: per sampler the CPU seconds (compile and
sampling apart), gradient evaluations, divergences, max R-hat of the hyperparameters; and the agreement:
theta's posterior means apart in full-NUTS SDs (max and share <= 0.1), SD ratio, coverage of the true
theta by each sampler's 90% intervals, P(theta > 0) per cell apart (max), and the same for the
hyperparameters (loadings, innovation SD, normal SDs, cut-points).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import arviz as az
import numpy as np

from nexusbayes.inference.laplace import EmbeddedLaplace, nutpie_model
from nexusbayes.inference.sample import sample_compiled
from nexusbayes.model.build import Model
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec

SIZES = {"tiny": (5, 4), "small": (8, 6), "medium": (15, 10)}
NAMES = ["theta", "loading", "intercept", "region_innovation_sd", "sigma_normal", "cutpoints_ordinal"]


def spec() -> Spec:
    """One trait, centred spans, four normal and two ordinal (3 categories) indicators."""
    items = {f"n{k}": {"family": "normal", "loads": {"ideology": "positive"}} for k in range(4)}
    items |= {f"o{k}": {"family": "ordinal", "categories": 3, "loads": {"ideology": "positive"}} for k in range(2)}
    return Spec.from_dict({"name": "laplace", "traits": ["ideology"], "dynamics": {"centred": True},
                           "indicators": items})


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rhat(draws: np.ndarray) -> float:
    """Max rank-normalised R-hat over the trailing axes of (chain, draw, ...)."""
    flat = draws.reshape(draws.shape[0], draws.shape[1], -1)
    return float(max(az.rhat(flat[:, :, i]) for i in range(flat.shape[2])))


def _agreement(approx: np.ndarray, full: np.ndarray, truth: np.ndarray | None = None) -> dict:
    """Means apart in full-NUTS SDs, SD ratio, 90% coverage of ``truth`` (chain, draw, ... arrays)."""
    a = approx.reshape(-1, *approx.shape[2:]).reshape(approx.shape[0] * approx.shape[1], -1)
    f = full.reshape(-1, *full.shape[2:]).reshape(full.shape[0] * full.shape[1], -1)
    sd = f.std(axis=0)
    varies = sd > 0                                 # centred normal items have intercept 0 in every draw
    a, f, sd = a[:, varies], f[:, varies], sd[varies]
    z = np.abs(a.mean(axis=0) - f.mean(axis=0)) / sd
    # Monte Carlo error alone moves the two means apart by about sqrt(1/ess_a + 1/ess_f) SDs
    ess = [np.array([float(az.ess(d.reshape(d.shape[0], d.shape[1], -1)[:, :, i])) for i in np.flatnonzero(varies)])
           for d in (approx, full)]
    noise = np.sqrt(1 / ess[0] + 1 / ess[1])
    out = {"max_mean_diff_sd": round(float(z.max()), 3), "share_within_0.1": round(float((z <= 0.1).mean()), 3),
           "mc_noise_sd_median": round(float(np.median(noise)), 3),
           "share_within_2_noise": round(float((z <= 2 * noise).mean()), 3),
           "sd_ratio_min": round(float((a.std(axis=0) / sd).min()), 3),
           "sd_ratio_max": round(float((a.std(axis=0) / sd).max()), 3)}
    if truth is not None:
        t = truth.ravel()[varies]
        for name, d in (("laplace", a), ("nuts", f)):
            lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
            out[f"coverage90_{name}"] = round(float(((t >= lo) & (t <= hi)).mean()), 3)
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run one size and seed; print and return the JSON record."""
    import nutpie

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=500)
    args = parser.parse_args(argv)
    n_regions, n_periods = SIZES[args.size]
    sim = simulate(spec(), n_regions=n_regions, n_periods=n_periods, seed=args.seed)
    model = Model(sim.spec, sim.panel).pymc
    names = [n for n in NAMES if n in model.named_vars]
    record = {"size": args.size, "seed": args.seed, "obs": sim.panel.n_obs, "load_before": os.getloadavg()[0]}

    print("full NUTS: compiling", file=sys.stderr, flush=True)
    cpu = _cpu()
    compiled = nutpie.compile_pymc_model(model)
    record["nuts_compile_cpu"] = round(_cpu() - cpu, 1)
    cpu, wall = _cpu(), time.time()
    full = sample_compiled(compiled, draws=args.draws, tune=args.draws, chains=2, seed=args.seed)
    stats = full.sample_stats
    record["nuts"] = {"cpu": round(_cpu() - cpu, 1), "wall": round(time.time() - wall, 1),
                      "grad_evals": int(stats["n_steps"].sum()), "divergences": int(stats["diverging"].sum()),
                      "rhat_max_hyper": round(max(_rhat(full.posterior[n].values) for n in names[1:]), 3)}

    print(f"full NUTS done {record['nuts']}; Laplace: compiling", file=sys.stderr, flush=True)
    cpu = _cpu()
    n_states = model.initial_point()["region_state_free"].size - 2
    laplace = EmbeddedLaplace(model, {"region_state_free": n_states})
    approx_model = nutpie_model(laplace, names)
    record["laplace_compile_cpu"] = round(_cpu() - cpu, 1)
    cpu, wall = _cpu(), time.time()
    approx = sample_compiled(approx_model, draws=args.draws, tune=args.draws, chains=2, seed=args.seed)
    stats = approx.sample_stats
    counts = laplace.counts
    record["laplace"] = {"cpu": round(_cpu() - cpu, 1), "wall": round(time.time() - wall, 1),
                         "grad_evals": int(stats["n_steps"].sum()), "divergences": int(stats["diverging"].sum()),
                         "rhat_max_hyper": round(max(_rhat(approx.posterior[n].values) for n in names[1:]), 3),
                         "n_latent": laplace.n_latent, "n_phi": laplace.n_phi,
                         "marginal_calls": counts.marginal, "newton_steps": counts.newton,
                         "cpu_mode": round(counts.seconds_mode, 1), "cpu_gradient": round(counts.seconds_gradient, 1)}
    record["load_after"] = os.getloadavg()[0]

    theta_a, theta_f = approx.posterior["theta"].values, full.posterior["theta"].values
    record["theta"] = _agreement(theta_a, theta_f, sim.truth["theta"].values)
    pa, pf = (theta_a > 0).mean(axis=(0, 1)), (theta_f > 0).mean(axis=(0, 1))
    record["theta"]["max_p_positive_diff"] = round(float(np.abs(pa - pf).max()), 3)
    for n in names[1:]:
        truth = sim.truth[n].values if n in sim.truth and sim.truth[n].size == approx.posterior[n][0, 0].size \
            else None
        record[n] = _agreement(approx.posterior[n].values, full.posterior[n].values, truth)
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
