"""Plausible values: a few whole posterior draws of the traits (and types), for analyses outside nexusbayes.

Large-scale assessments (PISA, TIMSS, NAEP) publish a handful of draws of each respondent's latent
proficiency instead of one score, so that secondary analysts carry the measurement uncertainty into their
own analyses: run the analysis once per plausible value and combine the results by Rubin's rules
(:func:`nexusbayes.analysis.second_stage.rubin`). Here a plausible value is one posterior draw of every
region-period's traits (and, with a typology, its type), so each keeps the draw's dependence across regions,
periods and traits. Draws are picked at random without replacement, spread evenly over the chains (a chain
stuck elsewhere shows in the spread of the plausible values, not in one of them alone).

Examples
--------
>>> chain, draw = pick_draws(2, 5, n=4, seed=1)
>>> chain.tolist()
[0, 0, 1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.analysis import typology
from nexusbayes.constants import TYPES
from nexusbayes.data.panel import Panel
from nexusbayes.errors import NexusBayesError, OutputExistsError
from nexusbayes.files import atomic_write, write_csv
from nexusbayes.model.roles import THETA
from nexusbayes.spec.document import Spec

#: The dim of the plausible values (0, 1, ..., n - 1).
PV = "pv"

#: File formats :meth:`PlausibleValues.write` knows, by extension.
FORMATS = (".csv", ".parquet")


class PlausibleValuesError(NexusBayesError, ValueError):
    """Plausible values that cannot be drawn or written as asked (the message says what to change)."""


def pick_draws(n_chain: int, n_draw: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct (chain, draw) pairs: as even a share of each chain as ``n`` allows, draws at random.

    The first ``n % n_chain`` chains give one draw more. Sorted by chain, then draw.
    """
    total = n_chain * n_draw
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= total:
        raise PlausibleValuesError(f"n = {n!r} plausible values: give a whole number from 1 to {total} (the fit's "
                                   f"{n_chain} chain(s) x {n_draw} draws); 5 to 20 is usual, more only adds "
                                   "computing time")
    rng = np.random.default_rng(seed)
    share = np.full(n_chain, n // n_chain) + (np.arange(n_chain) < n % n_chain)
    chains, draws = [], []
    for c, k in enumerate(share):
        chains.append(np.full(k, c))
        draws.append(np.sort(rng.choice(n_draw, size=k, replace=False)))
    return np.concatenate(chains), np.concatenate(draws)


@dataclass(frozen=True)
class PlausibleValues:
    """Plausible values of a fit's traits and types.

    Attributes
    ----------
    dataset : xarray.Dataset
        ``theta`` (pv, region, period, trait) and, with a typology, ``type`` (pv, region, period; the type's
        name); coordinates ``chain`` and ``draw`` on ``pv`` (which posterior draw each is) and ``country`` on
        ``region``.
    """

    dataset: xr.Dataset

    @property
    def n(self) -> int:
        """The number of plausible values."""
        return int(self.dataset.sizes[PV])

    def table(self) -> pd.DataFrame:
        """Tidy: one row per plausible value and region-period.

        Columns ``pv``, ``country``, ``region``, ``period``, one per trait (e.g. ``capability``,
        ``willingness``) and, with a typology, ``type``.
        """
        ds = self.dataset
        wide = ds[THETA].to_dataset(dim="trait")
        if "type" in ds:
            wide["type"] = ds["type"]
        table = wide.drop_vars(["chain", "draw"]).to_dataframe().reset_index()
        traits = [str(t) for t in ds["trait"].values]
        table.columns = [str(c) for c in table.columns]
        return table[[PV, "country", "region", "period", *traits, *(["type"] if "type" in ds else [])]]

    def write(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write :meth:`table` as CSV or Parquet (by the extension), atomically.

        Raises
        ------
        PlausibleValuesError
            When the extension is neither ``.csv`` nor ``.parquet``.
        OutputExistsError
            When ``path`` exists and ``overwrite`` is false.
        """
        path = Path(path)
        check_target(path, overwrite)
        table = self.table()
        if path.suffix.lower() == ".parquet":
            atomic_write(path, lambda tmp: table.to_parquet(tmp, engine="pyarrow", index=False))
        else:
            atomic_write(path, lambda tmp: write_csv(table, tmp))
        return path


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse an unknown extension, a folder, or an existing file without ``overwrite`` (before any work)."""
    if path.suffix.lower() not in FORMATS:
        raise PlausibleValuesError(f"{path}: unknown format {path.suffix!r}; name the file *.csv or *.parquet")
    if path.is_dir():
        raise PlausibleValuesError(f"{path} is a folder; give a file name ending .csv or .parquet")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")


def plausible_values(tree: xr.DataTree, spec: Spec, panel: Panel, n: int, seed: int = 0) -> PlausibleValues:
    """``n`` posterior draws of every region-period's traits and types (see the module docstring).

    Parameters
    ----------
    tree : xarray.DataTree
        A fit's DataTree (its ``posterior``).
    spec, panel
        The fit's spec and data.
    n : int
        How many plausible values (at most the fit's chains x draws).
    seed : int
        Seed of the choice of draws (the same seed gives the same plausible values).

    Returns
    -------
    PlausibleValues
    """
    theta = tree["posterior"][THETA]
    chain_idx, draw_idx = pick_draws(theta.sizes["chain"], theta.sizes["draw"], n, seed)
    pick = {"chain": xr.DataArray(chain_idx, dims=PV), "draw": xr.DataArray(draw_idx, dims=PV)}
    picked = theta.isel(pick).transpose(PV, "region", "period", "trait")
    countries = [panel.countries[c] for c in panel.region_country]
    ds = xr.Dataset({THETA: picked.drop_vars(["chain", "draw"])})
    if spec.has_typology:
        codes = typology.type_codes(tree, spec).isel(pick).transpose(PV, "region", "period")
        ds["type"] = ((PV, "region", "period"), np.asarray(TYPES)[codes.values])
    coords = {PV: np.arange(n), "chain": (PV, theta["chain"].values[chain_idx]),
              "draw": (PV, theta["draw"].values[draw_idx]), "country": ("region", countries)}
    ds = ds.assign_coords(coords)
    ds.attrs.update({"seed": seed, "n_posterior_draws": int(theta.sizes["chain"] * theta.sizes["draw"])})
    return PlausibleValues(ds)
