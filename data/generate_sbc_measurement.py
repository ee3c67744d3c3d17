"""Generate ``data/sbc_measurement.csv``: the SIMULATED shape for ``models/sbc_measurement.toml``.

SBC draws its own parameters and data from the prior; this file only supplies the *shape* it keeps (2 countries
x 3 regions x 5 periods, 2000-2004; seizures' non-reported region-periods, the quota, trials and exposures) and the
values that set the fixed centring constants.

Run from anywhere (needs ``nexusbayes`` importable, e.g. ``.venv/bin/python``)::

    python data/generate_sbc_measurement.py

Deterministic (seed ``SEED``); writes only ``data/sbc_measurement.csv`` (to a temporary file, then moved).
"""

from pathlib import Path

from nexusbayes.files import atomic_write
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import load_spec

SEED = 2023   # Modrák et al.
HERE = Path(__file__).resolve().parent


def main() -> None:
    spec, _ = load_spec(HERE.parent / "models" / "sbc_measurement.toml")
    sim = simulate(spec, n_countries=2, n_regions=3, n_periods=5, seed=SEED)
    atomic_write(HERE / "sbc_measurement.csv", lambda tmp: sim.frame.to_csv(tmp, index=False, float_format="%.6g"))
    print(f"wrote {HERE / 'sbc_measurement.csv'}: {len(sim.frame)} rows")
    print(sim.frame.groupby("indicator").size().to_string())


if __name__ == "__main__":
    main()
