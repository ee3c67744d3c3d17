"""The benchmark's sizes and data: the bundled Kyrgyzstan example and two simulated panels with known truth.

========  ===========================================================  ============================
size      data                                                         shape
========  ===========================================================  ============================
small     ``models/kyrgyzstan.toml`` (its bundled data)                1 country x 7 regions x 26 years
medium    simulated, 8 indicators, 10% of cells missing                10 x 8 x 10 x 8
large     simulated, 8 indicators, 30% of cells missing                40 x 10 x 25 x 8
item_panel simulated item panel: 4 + 7 ordinal items (3 categories),  1 x 190 x 30 x 11
          one per trait, 10% of cells missing (issue 24)
========  ===========================================================  ============================

The item panel is shaped like real expert-coded item panels (V-Dem style): one country, 190 units,
30 periods, two traits measured by 4 and 7 three-category ordinal items, one observation per item and
unit-period. Issue 24's target: converged (max R-hat <= 1.01, bulk and tail ESS >= 400, no
divergences) in <= 300 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from nexusbayes.data.panel import Panel
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec, load_spec
from nexusbayes.spec.indicators import Indicator

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("small", "medium", "large", "item_panel")
#: (countries, regions per country, periods, share of cells missing) of the simulated sizes.
SHAPES = {"medium": (10, 8, 10, 0.1), "large": (40, 10, 25, 0.3)}
SEED = 20261129
#: (units, periods, items per trait, categories, share of cells missing) of the item panel (one country).
ITEM_PANEL = (190, 30, (4, 7), 3, 0.1)


def bench_spec() -> Spec:
    """Eight indicators of the four families, both traits, like the memo's sources."""
    cap, will = "capability", "willingness"
    return Spec(name="benchmark", indicators={
        "staff": Indicator(family="normal", loads={cap: "positive"}, label="log staff per capita"),
        "budget": Indicator(family="normal", loads={cap: "positive"}, label="log budget per capita"),
        "seizures": Indicator(family="negbin", loads={cap: "positive", will: "positive"}, label="drug seizures"),
        "arrests": Indicator(family="negbin", loads={will: "positive"}, label="trafficking arrests"),
        "abuse": Indicator(family="negbin", loads={will: "negative"}, label="abuse reports"),
        "quota": Indicator(family="binomial", loads={will: "positive"}, label="months quota met"),
        "expert_capability": Indicator(family="ordinal", categories=5, loads={cap: "positive"}),
        "expert_willingness": Indicator(family="ordinal", categories=5, loads={will: "positive"}),
    })


def item_panel_spec(items: tuple[int, ...] = ITEM_PANEL[2], categories: int = ITEM_PANEL[3]) -> Spec:
    """Ordinal items of ``categories`` categories, each loading positively on one trait alone (an anchor)."""
    cap, will = "capability", "willingness"
    indicators = {f"{trait[:3]}_item{i + 1}": Indicator(family="ordinal", categories=categories,
                                                         loads={trait: "positive"})
                  for trait, n in zip((cap, will), items, strict=True) for i in range(n)}
    return Spec(name="item_panel", indicators=indicators)


@dataclass(frozen=True)
class Case:
    """One size: the spec, the panel, and the true traits when the data are simulated."""

    size: str
    spec: Spec
    panel: Panel
    theta: xr.DataArray | None     # true traits (region, period, trait), standardised like the model's
    spec_path: Path | None = None  # the spec file, for the sizes a user runs from the command line

    @property
    def shape(self) -> str:
        """Countries x regions x periods x indicators."""
        p = self.panel
        return f"{len(p.countries)}x{len(p.regions) // len(p.countries)}x{len(p.periods)}x{len(p.indicators)}"


def make_case(size: str) -> Case:
    """The spec and data of ``size`` (simulated data are the same on every run: fixed seed)."""
    if size == "small":
        from nexusbayes.data.read import load_panel

        spec_path = ROOT / "models" / "kyrgyzstan.toml"
        spec, path = load_spec(spec_path)
        return Case(size, spec, load_panel(path, spec), None, spec_path)
    if size == "item_panel":
        units, periods, _, _, missing = ITEM_PANEL
        sim = simulate(item_panel_spec(), n_countries=1, n_regions=units, n_periods=periods, missing=missing,
                       seed=SEED)
        return Case(size, sim.spec, sim.panel, sim.truth["theta"])
    if size not in SHAPES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    countries, regions, periods, missing = SHAPES[size]
    sim = simulate(bench_spec(), n_countries=countries, n_regions=regions, n_periods=periods, missing=missing,
                   seed=SEED)
    return Case(size, sim.spec, sim.panel, sim.truth["theta"])
