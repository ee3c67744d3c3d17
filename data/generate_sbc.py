"""Generate the SIMULATED shapes of the simulation-based calibration specs: ``data/sbc_<name>.csv``.

SBC draws its own parameters and data from the prior; each file only supplies the *shape* its spec keeps and
the values that set the fixed centring constants:

* ``sbc_small`` (``models/sbc_small.toml``): one country with 5 regions x 6 periods (2000-2005), about 10% of
  the (region, period, indicator) cells missing, exposures, trials and two raters;
* ``sbc_measurement`` (``models/sbc_measurement.toml``, issue 23's options): 2 countries x 3 regions x 5
  periods (2000-2004), seizures' non-reported region-periods, the quota, trials and exposures;
* ``sbc_loading_drift`` (``models/sbc_loading_drift.toml``, issue 23's drifting loadings): the same 2 x 3 x 5
  shape (2000-2004), five indicators;
* ``sbc_regime`` (``models/sbc_regime.toml``, the regime kind): 2 countries x 3 regions x 6 periods
  (2000-2005), drawn from the regime model.

Run from anywhere (needs ``nexusbayes`` importable, e.g. ``.venv/bin/python``)::

    python data/generate_sbc.py                  # all four
    python data/generate_sbc.py sbc_regime       # one

Deterministic (one seed per file); writes only those files (each to a temporary file, then moved).
"""

import sys
from pathlib import Path

from nexusbayes.files import atomic_write
from nexusbayes.model.simulate import simulate, simulate_regime
from nexusbayes.spec.document import load_spec

HERE = Path(__file__).resolve().parent
#: name -> (simulator, its shape, seed)
SHAPES = {
    "sbc_small": (simulate, {"n_regions": 5, "n_periods": 6, "missing": 0.1, "n_raters": 2}, 2018),  # Talts et al.
    "sbc_measurement": (simulate, {"n_countries": 2, "n_regions": 3, "n_periods": 5}, 2023),         # Modrák et al.
    "sbc_loading_drift": (simulate, {"n_countries": 2, "n_regions": 3, "n_periods": 5}, 231),      # issue 23, part 1
    "sbc_regime": (simulate_regime, {"n_countries": 2, "n_regions": 3, "n_periods": 6}, 26),         # issue 26
}


def generate(name: str) -> None:
    """Write ``data/<name>.csv`` from its spec's indicators and its shape."""
    simulator, shape, seed = SHAPES[name]
    spec, _ = load_spec(HERE.parent / "models" / f"{name}.toml")
    sim = simulator(spec, **shape, seed=seed)
    atomic_write(HERE / f"{name}.csv", lambda tmp: sim.frame.to_csv(tmp, index=False, float_format="%.6g"))
    print(f"wrote {HERE / f'{name}.csv'}: {len(sim.frame)} rows")
    print(sim.frame.groupby("indicator").size().to_string())


if __name__ == "__main__":
    names = sys.argv[1:] or list(SHAPES)
    unknown = sorted(set(names) - set(SHAPES))
    if unknown:
        sys.exit(f"unknown data set(s) {unknown}: choose from {list(SHAPES)}")
    for name in names:
        generate(name)
