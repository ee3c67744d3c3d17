"""A published-style panel with a changing standard: the θ gap between specs with and without cut-point drift.

The simulated panel is shaped like the latent human-rights scores (Fariss 2014): countries as units (each its own
only region), years as periods, one trait (``respect``, higher = more respect for physical integrity), and two kinds
of indicator. **Standards-based** items (rated from reports whose standard of accountability tightens as monitoring
improves, like the CIRI and Political Terror Scale items) are ordinal, and their cut-point centres all rise along one
common trend plus a small item-specific walk, so the same conduct is rated worse later. **Event-based** items (counts
of one-sided killings, a binary indicator of mass repression, an ordinal level of violence coded from event data) do
not drift; they pin the trait's own trend down. A share of cells is missing at random, as in the published panels.

Two specs are fitted to the same data: ``drift`` (``drift = "cutpoints"`` on every standards-based item) and
``constant`` (no drift: the standard is assumed unchanged). For each it prints the fit's R-hat and ESS, the Pearson
correlation of the posterior mean of θ with the true θ, the trend of the error over the years, the correlation of
θ's yearly means with the truth's and both trends per decade, and for
``drift`` the recovery of the planted cut-point paths (their correlation with the posterior means, 90% coverage,
the total drift over the span against the truth's). Run::

    python -m benchmarks.changing_standard [--units 60] [--years 25] [--draws 500] [--chains 4] [--seed 11]
        [--only drift|constant]

Figures of a run are in ``benchmarks/HISTORY.md`` (issue 23).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nexusbayes.spec.document import Spec

TRAIT = "respect"
#: Standards-based items: ordinal, categories, loading (logit scale), cut-point centre.
STANDARDS = {"ciri_torture": (3, 1.6, 0.0), "ciri_killing": (3, 1.8, -0.4), "ciri_disappear": (3, 1.5, -0.8),
             "pts_amnesty": (5, 1.7, 0.2), "pts_state": (5, 1.9, -0.2)}
TREND = 1.5           # the common rise of the standards-based cut-point centres over the span, in logits
ITEM_WALK = 0.05      # step SD per year of each standards item's own walk around the common trend
MISSING = 0.25        # share of cells missing at random


def spec(drift: bool) -> Spec:
    """The reviewer's spec: standards-based items with ``drift = "cutpoints"`` (or none), event-based without."""
    indicators = {name: {"family": "ordinal", "categories": k, "loads": {TRAIT: "positive"},
                         **({"drift": "cutpoints"} if drift else {})}
                  for name, (k, _, _) in STANDARDS.items()}
    indicators["killings"] = {"family": "negbin", "loads": {TRAIT: "negative"}}
    indicators["mass_repression"] = {"family": "bernoulli", "loads": {TRAIT: "negative"}}
    indicators["violence_level"] = {"family": "ordinal", "categories": 4, "loads": {TRAIT: "negative"}}
    return Spec.from_dict({"name": "changing_standard" + ("" if drift else "_constant"), "traits": [TRAIT],
                           "indicators": indicators, "dynamics": {"kind": "gaussian_rw"}})


def simulate(units: int, years: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The long table, the true θ (region, period, theta) and the true drift paths (indicator, period, drift).

    Drift paths are centred over the years (the model's convention: a path sums to zero over its periods with
    data), positive = the cut-points raised = the same conduct rated lower.
    """
    rng = np.random.default_rng(seed)
    names = [f"U{u + 1:03d}" for u in range(units)]
    period = np.arange(1990, 1990 + years)
    theta = rng.normal(0, 1, (units, 1)) + np.cumsum(rng.normal(0, 0.15, (units, years)), axis=1)
    theta = (theta - theta.mean()) / theta.std()
    common = TREND * (np.arange(years) / (years - 1) - 0.5)
    rows, paths = [], []
    for name, (k, load, centre) in STANDARDS.items():
        path = common + np.cumsum(np.r_[0, rng.normal(0, ITEM_WALK, years - 1)])
        path -= path.mean()
        cuts = centre + 1.3 * (np.arange(k - 1) - (k - 2) / 2)
        latent = load * theta + rng.logistic(size=theta.shape) - path[None, :]
        value = 1 + (latent[..., None] > cuts).sum(-1)
        rows.append((name, value))
        paths += [{"indicator": name, "period": int(p), "drift": d} for p, d in zip(period, path, strict=True)]
    mu = np.exp(1.0 - 1.2 * theta)
    rows.append(("killings", rng.negative_binomial(4.0, 4.0 / (4.0 + mu))))
    rows.append(("mass_repression", (rng.random(theta.shape) < 1 / (1 + np.exp(1.5 + 1.6 * theta))).astype(int)))
    latent = -1.4 * theta + rng.logistic(size=theta.shape)
    rows.append(("violence_level", 1 + (latent[..., None] > np.array([-1.0, 0.5, 2.0])).sum(-1)))
    u, t = np.meshgrid(np.arange(units), np.arange(years), indexing="ij")
    frame = pd.concat([pd.DataFrame({"country": np.array(names)[u.ravel()], "region": np.array(names)[u.ravel()],
                                     "period": period[t.ravel()], "indicator": ind, "value": v.ravel()})
                       for ind, v in rows], ignore_index=True)
    frame = frame[rng.random(len(frame)) >= MISSING].reset_index(drop=True)
    truth = pd.DataFrame({"region": np.array(names)[u.ravel()], "period": period[t.ravel()], "theta": theta.ravel()})
    return frame, truth, pd.DataFrame(paths)


def run(units: int = 60, years: int = 25, draws: int = 500, tune: int = 300, chains: int = 4, seed: int = 11,
        which: tuple[str, ...] = ("drift", "constant"), save: str | None = None) -> dict:
    """Fit the specs named in ``which`` to one simulated panel; the figures as a dict, each fit's printed when done."""
    from nexusbayes.fit import fit

    frame, truth, paths = simulate(units, years, seed)
    out = {"shape": {"units": units, "years": years, "observations": len(frame), "draws": draws, "tune": tune,
                     "chains": chains, "seed": seed}}
    for label in which:
        drift = label == "drift"
        wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
        result = fit(spec(drift), frame, draws=draws, tune=tune, chains=chains, seed=seed, progress=False,
                     check=False)
        wall, cpu = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
        if save:
            result.save(Path(save) / f"{label}.nc", overwrite=True)
        est = result.trait_summary()
        est = est[est["trait"] == TRAIT].merge(truth, on=["region", "period"])
        err = est["mean"] - est["theta"]
        diag = result.diagnostics
        figures = {"wall_s": round(wall, 1), "cpu_s_main_process": round(cpu, 1),
                   "load_1min": round(float(open("/proc/loadavg").read().split()[0]), 2),
                   "r_theta": round(float(np.corrcoef(est["mean"], est["theta"])[0, 1]), 4),
                   "coverage90_theta": round(float(((est["theta"] >= est["q05"]) & (est["theta"] <= est["q95"]))
                                                   .mean()), 3),
                   "error_trend_per_decade": round(float(np.polyfit(est["period"], err, 1)[0] * 10), 3),
                   **_yearly(est),
                   **_diagnostics(diag)}
        if drift:
            figures.update(_drift_recovery(result, paths))
        out[label] = figures
        print(json.dumps({label: figures}), flush=True)
    return out


def _yearly(est: pd.DataFrame) -> dict:
    """The trend over the years: correlation of the yearly means of θ with the truth's, and both slopes per decade.

    A standard that tightens unmodelled shows here first: θ's yearly mean falls where the truth's does not.
    """
    means = est.groupby("period")[["mean", "theta"]].mean()
    slope = {k: round(float(np.polyfit(means.index, means[k], 1)[0] * 10), 3) for k in ("mean", "theta")}
    return {"r_yearly_means": round(float(np.corrcoef(means["mean"], means["theta"])[0, 1]), 3),
            "trend_per_decade_fit": slope["mean"], "trend_per_decade_true": slope["theta"]}


def _diagnostics(diag) -> dict:
    """Max R-hat, min bulk ESS and divergences from a :class:`~nexusbayes.analysis.diagnostics.Diagnostics`."""
    value = diag.checks["value"]
    return {"max_rhat": round(float(value["rhat"]), 4), "min_ess_bulk": round(float(value["ess_bulk"])),
            "divergences": int(value["divergences"]), "passed": diag.passed}


def _drift_recovery(result, paths: pd.DataFrame) -> dict:
    """Correlation, 90% coverage and total-drift error of the fitted cut-point paths against the planted ones."""
    fitted = result.drift_paths()
    both = fitted.merge(paths, on=["indicator", "period"], suffixes=("_fit", ""))
    inside = (both["drift"] >= both["q05"]) & (both["drift"] <= both["q95"])
    ends = both.sort_values("period").groupby("indicator").agg(
        fit_total=("mean", lambda v: v.iloc[-1] - v.iloc[0]), true_total=("drift", lambda v: v.iloc[-1] - v.iloc[0]))
    return {"r_drift_paths": round(float(np.corrcoef(both["mean"], both["drift"])[0, 1]), 4),
            "coverage90_drift": round(float(inside.mean()), 3),
            "total_drift_fit_vs_true": {k: [round(float(a), 2), round(float(b), 2)]
                                        for k, a, b in ends.itertuples()}}


def main() -> None:
    """Command line: ``python -m benchmarks.changing_standard``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=60)
    parser.add_argument("--years", type=int, default=25)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--save", help="folder to save each fit in (<label>.nc)")
    parser.add_argument("--only", choices=["drift", "constant"], help="fit one spec (e.g. the two in parallel)")
    args = parser.parse_args()
    which = (args.only,) if args.only else ("drift", "constant")
    print(json.dumps(run(args.units, args.years, args.draws, args.tune, args.chains, args.seed, which,
                                args.save), indent=1))


if __name__ == "__main__":
    main()
