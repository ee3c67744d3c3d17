"""Covariate terms of a forecast: the fitted ones taken out of the traits, the future ones put back.

On the standardised traits' scale the covariate terms of :mod:`nexusbayes.model.covariates` are those of
the identified effects ``e = covariate_effect`` (``beta / sd``) and the standardised covariates ``z``::

    level:  e z[t]                        step:  acc[t] = a_t acc[t-1] + e z[t] d_t   (acc[0] = 0)

with ``a_t`` 1 for a random walk and ``phi ** d_t`` under AR(1); ``country_theta`` gains the average of its
regions' terms. The traits less these terms follow the fitted dynamics exactly, so the forecast continues them
as without covariates and adds the terms of the future covariate values: those of a table for the forecast
periods (:func:`future_values`), or each region's last values held (``hold = True``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.data.covariates import validate_covariates
from nexusbayes.data.panel import Panel
from nexusbayes.data.read import read_table
from nexusbayes.errors import NexusBayesError
from nexusbayes.model.covariates import EFFECT, EFFECT_DIM, EffectIndex
from nexusbayes.spec.document import Spec


def future_values(source: str | Path | pd.DataFrame, spec: Spec, panel: Panel, labels: list) -> np.ndarray:
    """The standardised covariates (region, horizon, covariate) of a table for the forecast periods.

    The table has the covariate table's columns (``region``, ``period``, optional ``country``, the
    covariates) and one row per region and forecast period; it is validated like the covariate table (errors
    name the file, the rows and the column) and standardised with the fit's centre and scale.
    """
    frame, label, lines = read_table(source)
    future = dataclasses.replace(panel, periods=list(labels), covariates=None)
    table = validate_covariates(frame, spec, future, f"{label} (future covariates)", lines, future=True)
    fitted = panel.covariates
    return (table.values - fitted.centre) / fitted.scale


class CovariateTerms:
    """The covariate terms of every posterior draw on the standardised traits' scale.

    Parameters
    ----------
    post : xarray.Dataset
        The posterior (with ``covariate_effect``).
    spec, panel
        The fit's spec and panel (with its covariate table).
    draws : callable
        ``draws(post, name, dims)``: a variable as (draw, *dims).
    """

    def __init__(self, post: xr.Dataset, spec: Spec, panel: Panel, draws):
        if panel.covariates is None:
            raise NexusBayesError("the fit's panel carries no covariate table: load the fit with its covariates")
        index = EffectIndex.of(spec)
        effect = draws(post, EFFECT, (EFFECT_DIM,))                                 # (draw, label)
        n_cov, n_trait = len(panel.covariates.names), len(spec.traits)
        self.level = np.zeros((effect.shape[0], n_cov, n_trait))
        self.step = np.zeros_like(self.level)
        for i in range(len(index.labels)):
            target = self.step if index.step[i] else self.level
            target[:, index.covariate[i], index.trait[i]] = effect[:, i]
        self.z = panel.covariates.standardised()                                    # (region, period, covariate)
        n_region = len(panel.regions)
        self.average = np.zeros((len(panel.countries), n_region))
        self.average[panel.region_country, np.arange(n_region)] = 1.0
        self.average /= self.average.sum(axis=1, keepdims=True)

    def _terms(self, z: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """(draw, region, time, trait) ``sum_c coef[draw, c, k] z[region, time, c]``."""
        return np.einsum("rtc,sck->srtk", z, coef)

    def fitted(self, decay: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fitted terms, the region's and the country's, and the last period's step accumulation.

        Shapes (draw, region, period, trait), (draw, country, period, trait) and (draw, region, trait);
        ``decay`` is (draw, step, trait) over the steps' ``gap`` years.
        """
        level = self._terms(self.z, self.level)
        increments = self._terms(self.z, self.step) * np.concatenate([[0.0], gap])[None, None, :, None]
        acc = np.zeros_like(increments)
        for t in range(1, acc.shape[2]):
            acc[:, :, t] = decay[:, None, t - 1] * acc[:, :, t - 1] + increments[:, :, t]
        total = level + acc
        return total, np.einsum("cr,srtk->sctk", self.average, total), acc[:, :, -1]

    def future(self, z: np.ndarray, acc: np.ndarray, decay: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
        """One forecast step: the terms (draw, region, trait) at covariates ``z`` and the new step accumulation.

        ``z`` is (region, covariate); the accumulation continues ``acc`` with ``decay`` (draw, trait) over ``gap``.
        """
        acc = decay[:, None] * acc + self._terms(z[:, None], self.step)[:, :, 0] * gap
        return self._terms(z[:, None], self.level)[:, :, 0] + acc, acc

    def country(self, region_terms: np.ndarray) -> np.ndarray:
        """(draw, country, trait): the average of each country's regions' terms (draw, region, trait)."""
        return np.einsum("cr,srk->sck", self.average, region_terms)
