"""A validated region-period table of covariates, as arrays (read by :mod:`nexusbayes.data.covariates`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CovariateTable:
    """The covariates of a panel, on its grid of regions and periods.

    Attributes
    ----------
    names : list of str
        The covariates, in spec order.
    values : numpy.ndarray
        (region, period, covariate) raw values, in the panel's region and period order; NaN where the model
        does not use them (the first period of a covariate acting on steps only).
    needed : numpy.ndarray
        (region, period, covariate) bool: the cells the model uses.
    centre, scale : numpy.ndarray
        (covariate,) the mean and SD (ddof 0) of each covariate over the cells used: the model takes
        ``(x - centre) / scale``, so an effect per SD is an effect per ``scale`` raw units.
    frame : pandas.DataFrame
        The table as validated (``region``, ``period``, ``country`` if given, and the covariates), kept for
        saving with a fit.
    source : str
        Where it came from (a path or ``"<DataFrame>"``).
    """

    names: list[str]
    values: np.ndarray
    needed: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    frame: pd.DataFrame
    source: str

    def standardised(self) -> np.ndarray:
        """(region, period, covariate) ``(x - centre) / scale``, 0 where the model does not use the cell."""
        z = (self.values - self.centre) / self.scale
        return np.where(self.needed, z, 0.0)
