"""Generate ``data/sbc_small.csv``: the SIMULATED shape for the simulation-based calibration spec.

``models/sbc_small.toml`` (both traits; normal, negative-binomial, binomial and ordinal indicators
with two raters) is calibrated with ``nexusbayes sbc models/sbc_small.toml --n-sims 100``. SBC draws
its own parameters and data from the prior; this file only supplies the *shape* it keeps: one country
with 5 regions x 6 periods (2000-2005), about 10% of the (region, period, indicator) cells missing,
exposures, trials and raters, and the values that set the fixed centring constants.

Run from anywhere (needs ``nexusbayes`` importable, e.g. ``.venv/bin/python``)::

    python data/generate_sbc_small.py

Deterministic (seed ``SEED``); writes only ``data/sbc_small.csv`` (to a temporary file, then moved).
"""

from pathlib import Path

from nexusbayes.files import atomic_write
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import load_spec

SEED = 2018   # Talts et al.
HERE = Path(__file__).resolve().parent


def main() -> None:
    spec, _ = load_spec(HERE.parent / "models" / "sbc_small.toml")
    sim = simulate(spec, n_regions=5, n_periods=6, missing=0.1, n_raters=2, seed=SEED)
    atomic_write(HERE / "sbc_small.csv", lambda tmp: sim.frame.to_csv(tmp, index=False, float_format="%.6g"))
    print(f"wrote {HERE / 'sbc_small.csv'}: {len(sim.frame)} rows")
    print(sim.frame.groupby("indicator").size().to_string())


if __name__ == "__main__":
    main()
