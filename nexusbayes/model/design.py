"""The panel as arrays: likelihood blocks, their integer indices and the centring constants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nexusbayes.data.panel import Panel
from nexusbayes.errors import SpecError
from nexusbayes.model.families import FAMILIES, Block
from nexusbayes.model.heaping import inflation_tables
from nexusbayes.spec.document import Spec


@dataclass(frozen=True)
class Design:
    """Everything the model needs from the panel, as arrays: blocks per likelihood term and constants."""

    blocks: list[Block]
    families: list[str]                        # family of each indicator, in panel order
    centres: np.ndarray                        # (indicator, 2): location and scale, in panel order
    loading_sign: np.ndarray                   # (indicator, trait): 0 none, 1 positive, -1 negative, 2 free
    region_country: np.ndarray
    period_time: np.ndarray
    coords: dict

    @property
    def normal(self) -> np.ndarray:
        """Whether each indicator (panel order) is normal: centred on the data scale, not in ``eta``."""
        return np.array([family == "normal" for family in self.families])


SIGN_CODE = {"positive": 1, "negative": -1, "free": 2}


def term_key(spec: Spec, indicator: str) -> str:
    """Name of the likelihood term holding ``indicator``.

    Its family, or ``ordinal_k<K>`` when ordinal indicators with different numbers of categories
    need separate terms.
    """
    ind = spec.indicator(indicator)
    every = [*spec.indicators.values(), *([spec.item_bank] if spec.item_bank is not None else [])]
    ordinal_k = {i.categories for i in every if i.family == "ordinal"}
    if ind.family == "ordinal" and len(ordinal_k) > 1:
        return f"ordinal_k{ind.categories}"
    return ind.family


def make_design(panel: Panel, spec: Spec) -> Design:
    """Split the panel into likelihood blocks and compute the fixed constants.

    Raises
    ------
    SpecError
        When ``[comparability] detect = true`` and the data hold one country, or when the data hold several
        countries and a trait has no comparable indicator, so that the
        differences between countries in that trait would be set by the prior alone.
    """
    frame = panel.frame
    if spec.comparability.detect and len(panel.countries) < 2:
        raise SpecError(
            f"spec {spec.name!r}: [comparability] detect = true compares each indicator across countries, but the "
            f"data hold one country ({panel.countries[0]!r}); set detect = false, or fit data with several countries")
    if len(panel.countries) > 1:
        for trait in spec.traits:
            if not any(spec.indicator(n).comparable and trait in spec.indicator(n).loads
                       for n in panel.indicators):
                raise SpecError(
                    f"spec {spec.name!r}: the data hold {len(panel.countries)} countries but no indicator loading "
                    f"on {trait!r} is comparable across them, so how the countries differ in {trait!r} would be "
                    "set by the prior alone; mark at least one such indicator `comparable = true` (the default)")
    fam_of = {n: spec.indicator(n).family for n in panel.indicators}
    key_of = {n: term_key(spec, n) for n in panel.indicators}
    centres = np.tile([0.0, 1.0], (len(panel.indicators), 1))
    for j, sub in frame.groupby("indicator_idx", sort=True):   # one pass, however many indicators
        name = panel.indicators[j]
        exposure = sub["exposure"].to_numpy(float) if "exposure" in sub else np.full(len(sub), np.nan)
        exposure = np.where(np.isfinite(exposure), exposure, 1.0)
        trials = sub["trials"].to_numpy(float) if "trials" in sub else np.full(len(sub), np.nan)
        centres[j] = FAMILIES[fam_of[name]].centre(sub["value"].to_numpy(float), exposure, trials)

    keys: dict[str, list[str]] = {}
    for name in panel.indicators:
        keys.setdefault(key_of[name], []).append(name)

    blocks = []
    coords = {
        "country": panel.countries, "region": panel.regions, "period": panel.periods,
        "trait": spec.traits, "trait_": spec.traits, "indicator": panel.indicators,
    }
    if len(panel.periods) > 1:
        coords["step"] = panel.periods[1:]
    n_contrast = len(panel.regions) - len(panel.countries)
    if n_contrast > 0:
        coords["region_contrast"] = np.arange(n_contrast)
    if len(panel.countries) > 1:
        coords["country_contrast"] = np.arange(len(panel.countries) - 1)   # sum-to-zero contrasts of countries
    if panel.raters:
        coords["rater"] = panel.raters
    for key, names in keys.items():
        mask = frame["indicator"].isin(names).to_numpy()
        sub = frame[mask]
        exposure = sub["exposure"].to_numpy(float) if "exposure" in sub else np.full(len(sub), np.nan)
        trials = sub["trials"].to_numpy(float) if "trials" in sub else np.full(len(sub), np.nan)
        block = Block(
            key=key, names=names, rows=np.flatnonzero(mask), labels=sub["row"].to_numpy(),
            local=sub["indicator"].map({n: i for i, n in enumerate(names)}).to_numpy(int),
            y=sub["value"].to_numpy(float), exposure=np.where(np.isfinite(exposure), exposure, 1.0),
            trials=trials, rater=sub["rater_idx"].to_numpy(int),
            categories=spec.indicator(names[0]).categories, quota=_quotas(spec, sub),
        )
        blocks.append(block)
        coords[block.dim] = block.labels
        coords[f"indicator_{key}"] = names
        if block.categories is not None:
            coords[f"cut_{key}"] = np.arange(1, block.categories)

    sign = np.zeros((len(panel.indicators), len(spec.traits)), dtype=int)
    for j, name in enumerate(panel.indicators):
        for trait, s in spec.indicator(name).loads.items():
            sign[j, spec.traits.index(trait)] = SIGN_CODE[s]
    return Design(blocks=blocks, families=[fam_of[n] for n in panel.indicators], centres=centres,
                  loading_sign=sign, region_country=panel.region_country,
                  period_time=np.asarray(panel.period_time, dtype=float), coords=coords)


def _quotas(spec: Spec, rows) -> np.ndarray:
    """Each row's quota: its indicator's number or its value in the indicator's quota column; -1 without one."""
    out = np.full(len(rows), -1.0)
    for name, where in rows.groupby("indicator").indices.items():
        quota = spec.indicator(name).quota
        if quota is not None:
            out[where] = rows[quota].to_numpy(float)[where] if isinstance(quota, str) else float(quota)
    return out


@dataclass(frozen=True)
class BlockIndex:
    """Integer indices and constants of one likelihood block, aligned with its observations."""

    region: np.ndarray
    period: np.ndarray
    country: np.ndarray
    indicator: np.ndarray
    centre: np.ndarray                     # added to eta (0 for normal: handled on the data scale)
    scale: tuple[np.ndarray, np.ndarray]   # (location, scale) of the indicator, for normal


def block_index(design: Design, panel: Panel, block: Block) -> BlockIndex:
    """Indices into theta/loading/intercept for a block's observations (shared by model and predictions)."""
    frame = panel.frame
    rows = block.rows
    j = frame["indicator_idx"].to_numpy()[rows]
    loc, scale = design.centres[j, 0], design.centres[j, 1]
    centre = np.where(design.normal[j], 0.0, loc)
    return BlockIndex(region=frame["region_idx"].to_numpy()[rows], period=frame["period_idx"].to_numpy()[rows],
                      country=frame["country_idx"].to_numpy()[rows], indicator=j, centre=centre,
                      scale=(loc, scale))


def kernel_containers(design: Design, spec: Spec, key: str, y: np.ndarray) -> dict[str, np.ndarray]:
    """Values of the data containers that likelihood term ``key`` derives from observations ``y``, by name.

    Swap them in with ``data_<key>`` (nutpie's ``with_data``) when refitting a compiled model to new
    observations of the same structure (see :meth:`nexusbayes.model.families.Family.kernel_tables`). Empty for a
    term that is not a family's (the reporting model's ``reported``, whose container ``data_reported`` is all).
    """
    block = next((b for b in design.blocks if b.key == key), None)
    if block is None:
        return {}
    family = FAMILIES[spec.indicator(block.names[0]).family]
    tables = {**family.kernel_tables(block.local, np.asarray(y)),
              **inflation_tables(spec, block, design.coords["indicator"], family, y)}
    return {f"{name}_{key}": values for name, values in tables.items()}


def observed_cells(panel: Panel) -> np.ndarray:
    """Flat positions ``region * n_period + period`` of the region-periods with data (or a non-report), sorted.

    Examples
    --------
    >>> from nexusbayes.model.simulate import simulate
    >>> observed_cells(simulate(n_regions=2, n_periods=3, seed=1).panel).tolist()
    [0, 1, 2, 3, 4, 5]
    """
    frames = (panel.frame, panel.not_reported)    # a non-report of an informative indicator is data too
    return np.unique(np.concatenate([f["region_idx"].to_numpy(int) * len(panel.periods) + f["period_idx"].to_numpy(int)
                                     for f in frames]))
