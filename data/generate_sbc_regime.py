"""Generate ``data/sbc_regime.csv``: the SIMULATED shape for ``models/sbc_regime.toml``.

SBC draws its own parameters and data from the prior; this file only supplies the *shape* it keeps (2 countries
x 3 regions x 6 periods, 2000-2005; trials and exposures) and the
values that set the fixed centring constants.

Run from anywhere (needs ``nexusbayes`` importable, e.g. ``.venv/bin/python``)::

    python data/generate_sbc_regime.py

Deterministic (seed ``SEED``); writes only ``data/sbc_regime.csv`` (to a temporary file, then moved).
"""

from pathlib import Path

from nexusbayes.files import atomic_write
from nexusbayes.model.simulate import simulate_regime
from nexusbayes.spec.document import load_spec

SEED = 26   # issue 26
HERE = Path(__file__).resolve().parent


def main() -> None:
    spec, _ = load_spec(HERE.parent / "models" / "sbc_regime.toml")
    sim = simulate_regime(spec, n_countries=2, n_regions=3, n_periods=6, seed=SEED)
    atomic_write(HERE / "sbc_regime.csv", lambda tmp: sim.frame.to_csv(tmp, index=False, float_format="%.6g"))
    print(f"wrote {HERE / 'sbc_regime.csv'}: {len(sim.frame)} rows")
    print(sim.frame.groupby("indicator").size().to_string())


if __name__ == "__main__":
    main()
