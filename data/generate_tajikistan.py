"""Generate the bundled Tajikistan example: SIMULATED regional indicator series, with the truth kept.

Companion of ``generate_kyrgyzstan.py`` for the two-country example ``models/central_asia.toml``.
The memo describes Tajikistan only by contrast with Kyrgyzstan: drug trafficking and organised
crime were consolidated and gradually incorporated into the state apparatus after the civil war
(1992-1997), so that it is "closer to a narco-state"; it is "more permeated by corruption" and
less open to free media and civil society watchdogs, but stronger in strategic and operational
capacity (a 50-person strategic analysis unit against Kyrgyzstan's 10). This script turns that
into hand-set trajectories for Tajikistan's five first-level regions over 1991-2016, **on the
Kyrgyz latent scale** (the raw Kyrgyz trajectories' mean and SD), and draws every indicator with
the same measurement parameters as the Kyrgyz data, except the two indicators that are not
comparable across the countries (``staff`` and ``quota``; see ``data/README.md``).

Run from anywhere (needs ``nexusbayes`` importable, e.g. ``.venv/bin/python``)::

    python data/generate_tajikistan.py

It is deterministic (seed ``SEED``) and overwrites only its own outputs, ``data/tajikistan.csv``
and ``data/tajikistan_truth.csv`` (each written to a temporary file first, then moved into place).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_kyrgyzstan as kg  # noqa: E402  (the sibling script: shared measurement model)

SEED = 20162
HERE = Path(__file__).resolve().parent
OUT_DATA = HERE / "tajikistan.csv"
OUT_TRUTH = HERE / "tajikistan_truth.csv"

COUNTRY = "Tajikistan"
YEARS = kg.YEARS
REGIONS = ["Dushanbe", "GBAO", "Khatlon", "RRP", "Sughd"]
# GBAO: Gorno-Badakhshan Autonomous Region; RRP: Districts of Republican Subordination (Rasht valley).

# Segments: 1991, civil war 1992-96, consolidation 1997-2004, 2005-09, 2010-15, 2016. Raw values on
# the scale of generate_kyrgyzstan.TARGETS. Every region is failed in the civil war (Khatlon and the
# Rasht valley, its main theatres, the most), then captured: capability above Kyrgyzstan's from the
# late 1990s on (strategic analysis, the counterpart Drug Control Agency), willingness below it
# (trafficking incorporated into the state). Sughd, on the opiate route to Osh, is the most captured;
# Dushanbe, the seat of the apparatus, the most capable.
TARGETS = {
    #              capability                              willingness
    "Dushanbe": ([0.00, -1.50, 1.20, 1.60, 1.80, 2.00], [0.20, -1.50, -1.30, -1.40, -1.30, -1.00]),
    "Sughd":    ([0.00, -0.80, 1.00, 1.40, 1.50, 1.70], [0.30, -0.90, -1.50, -1.60, -1.50, -1.20]),
    "Khatlon":  ([-0.30, -1.80, 0.60, 1.10, 1.20, 1.40], [0.10, -1.60, -1.20, -1.30, -1.20, -1.00]),
    "RRP":      ([-0.30, -1.90, 0.30, 0.80, 0.90, 1.10], [0.00, -1.70, -1.00, -1.10, -1.00, -0.80]),
    "GBAO":     ([-0.50, -1.70, 0.20, 0.70, 0.60, 0.80], [0.20, -1.40, -1.10, -1.20, -1.30, -1.00]),
}
BOUNDARIES = [1992, 1997, 2005, 2010, 2016]

# Exposures (assumptions, not in the memo): population in 100,000 (approximate 2010 census), grown at
# 2.2% a year; route volume: the Afghan border regions and Sughd (the route to Osh) carry most;
# NGO monitoring coverage: thinner than in Kyrgyzstan ("less open to ... civil society watchdogs").
POP_2010 = {"Dushanbe": 7.2, "GBAO": 2.1, "Khatlon": 27.0, "RRP": 17.2, "Sughd": 22.3}
POP_GROWTH = 0.022
ROUTE = {"Dushanbe": 2.0, "GBAO": 3.0, "Khatlon": 4.0, "RRP": 1.5, "Sughd": 4.5}
NGO_COVERAGE = (0.12, 0.20)          # before 2005, from 2005
WAR_ADMIN_GAP = {"Khatlon": (1992, 1994), "RRP": (1992, 1997), "GBAO": (1992, 1994)}   # no admin series

# Indicators not comparable across the countries: national definitions and quota regimes differ.
# Their Tajik parameters differ from the Kyrgyz ones; the model gives them a location per country.
NOT_COMPARABLE = {
    "staff": {"loc": np.log(420.0)},     # Tajik staff series count the Drug Control Agency too
    "quota": {"base": 2.3},              # quotas reported as met more often
}


def true_theta(rng: np.random.Generator) -> np.ndarray:
    """Tajik trajectories (region, year, trait) on the Kyrgyz standardised scale."""
    kg_raw = kg.true_theta(np.random.default_rng(kg.SEED), standardise=False)
    mean, sd = kg_raw.mean(axis=(0, 1)), kg_raw.std(axis=(0, 1))
    theta = np.zeros((len(REGIONS), len(YEARS), len(kg.TRAITS)))
    for r, region in enumerate(REGIONS):
        for k in range(len(kg.TRAITS)):
            target = TARGETS[region][k]
            path = np.full(len(YEARS), target[0])
            for i, b in enumerate(BOUNDARIES):
                path = path + (target[i + 1] - target[i]) * expit((YEARS - (b - 0.5)) / kg.TRANSITION_WIDTH)
            noise = np.zeros(len(YEARS))
            eps = rng.standard_normal(len(YEARS)) * kg.NOISE_SD
            for t in range(len(YEARS)):
                noise[t] = (kg.NOISE_PHI * noise[t - 1] if t else 0.0) + eps[t]
            theta[r, :, k] = path + noise
    return (theta - mean) / sd


def population(region: str, year: np.ndarray) -> np.ndarray:
    """Population in units of 100,000."""
    return POP_2010[region] * np.exp(POP_GROWTH * (year - 2010))


def tajik_exposure(name, r, t):
    """Exposure of the Tajik cells (region index, year index) for indicator ``name`` (1 if none)."""
    regions, years = [REGIONS[i] for i in r], YEARS[t]
    pop = np.array([population(g, y) for g, y in zip(regions, years, strict=True)])
    if name == "seizures":
        return np.array([ROUTE[g] for g in regions])
    if name == "trafficking_officers":
        return pop
    if name == "abuse_reports":
        return np.where(years < 2005, NGO_COVERAGE[0], NGO_COVERAGE[1]) * pop
    return np.ones(len(r))


def main() -> int:
    rng = np.random.default_rng(SEED)
    theta = true_theta(rng)
    kg_theta = kg.true_theta(np.random.default_rng(kg.SEED))
    base = {name: (spec.get("base") or 0.0) for name, spec in kg.INDICATORS.items()}
    base["trafficking_officers"] = kg.officers_base(kg_theta)     # the Kyrgyz rate: comparable
    for name, override in NOT_COMPARABLE.items():
        base[name] = override.get("base", base[name])

    n_r, n_t = len(REGIONS), len(YEARS)
    r_all, t_all = (a.ravel() for a in np.meshgrid(np.arange(n_r), np.arange(n_t), indexing="ij"))
    rows = []
    for name, spec in kg.INDICATORS.items():
        if spec["family"] == "ordinal":
            r = np.tile(r_all, len(kg.RATERS))
            t = np.tile(t_all, len(kg.RATERS))
            rater = np.repeat(np.arange(len(kg.RATERS)), len(r_all))
            keep = rng.random(len(r)) >= kg.RATER_MISSING
        else:
            r, t, rater = r_all, t_all, np.full(len(r_all), -1)
            keep = np.ones(len(r), dtype=bool)
            if name in kg.ADMIN:
                keep &= rng.random(len(r)) >= kg.ADMIN_MISSING
                for region, (start, end) in WAR_ADMIN_GAP.items():
                    keep &= ~((r == REGIONS.index(region)) & (YEARS[t] >= start) & (YEARS[t] < end))
        r, t, rater = r[keep], t[keep], rater[keep]
        overrides = {k: v for k, v in NOT_COMPARABLE.get(name, {}).items() if k != "base"}
        y, exposure, trials = kg.simulate_indicator(rng, name, base[name], theta, (r, t, rater),
                                                    exposure_of=tajik_exposure, overrides=overrides)
        rows.extend(kg.csv_rows(COUNTRY, REGIONS, name, (r, t, rater), y, exposure, trials))
    order = {n: i for i, n in enumerate(kg.INDICATORS)}
    rows.sort(key=lambda d: (d["region"], d["period"], order[d["indicator"]], d["rater"]))
    columns = ["country", "region", "period", "indicator", "value", "exposure", "trials", "rater"]
    kg._write(OUT_DATA, columns, rows)

    types = kg.type_of(theta[..., 0], theta[..., 1])
    truth = [{"region": REGIONS[r], "period": int(YEARS[t]), "trait": kg.TRAITS[k],
              "value": f"{theta[r, t, k]:.6f}", "type": types[r, t]}
             for r in range(n_r) for t in range(n_t) for k in range(len(kg.TRAITS))]
    kg._write(OUT_TRUTH, ["region", "period", "trait", "value", "type"], truth)

    print(f"wrote {OUT_DATA.name}: {len(rows)} rows; {OUT_TRUTH.name}: {theta.size} rows (seed {SEED})")
    print("true traits on the Kyrgyz scale, country mean by era (Kyrgyzstan | Tajikistan):")
    for era, start, end in [("1992-1997", 1992, 1997), *kg.ERAS[1:], ("2016", 2016, 2017)]:
        sel = (YEARS >= start) & (YEARS < end)
        tj, kgm = theta[:, sel].mean(axis=(0, 1)), kg_theta[:, sel].mean(axis=(0, 1))
        print(f"  {era}: capability {kgm[0]:+.2f} | {tj[0]:+.2f}   willingness {kgm[1]:+.2f} | {tj[1]:+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
