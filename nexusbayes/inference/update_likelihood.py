"""The likelihood of an update's new rows per particle, with every measurement feature of the fit's indicators.

:class:`NewRowsLikelihood` evaluates the rows a particle update weighs (those at the new periods and at the
last ``lag`` fitted ones, :func:`new_blocks`) for given fit draws and given traits of those periods, through
the same NumPy code as a fit's log-likelihood (:mod:`nexusbayes.model.predict`): country offsets, the drift
paths of intercepts, cut-point centres and log loadings (``drift``), the inflation mixtures of quota heaping
and structural zeros (``quota``, ``zero_inflated``) and the reporting model's Bernoulli rows of indicators with
``missing = "informative"``. The drift paths at the new periods are not parameters of the fit: each draw's are
continued by their random walk (:meth:`NewRowsLikelihood.draw_aux`) and weighted with the rest.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nexusbayes.data.panel import Panel
from nexusbayes.inference.update_derivatives import family_derivatives, in_traits, logit_derivatives, mix_derivatives
from nexusbayes.model.design import block_index, make_design
from nexusbayes.model.drift import WALKS, posterior_tables
from nexusbayes.model.families import FAMILIES, NUISANCE
from nexusbayes.model.heaping import block_inflation
from nexusbayes.model.predict import FlatDraws, _logp, inflation_logits, linear_predictor
from nexusbayes.model.reporting import INTERCEPT as REPORTING_INTERCEPT
from nexusbayes.model.reporting import LOADING as REPORTING_LOADING
from nexusbayes.model.reporting import OFFSET as REPORTING_OFFSET
from nexusbayes.model.reporting import REPORTED, bernoulli_logp, reporting_cells, reporting_logit
from nexusbayes.model.roles import INTERCEPT, LOADING


def new_blocks(spec, panel: Panel, combined: Panel, lag: int = 0):
    """Per likelihood term, the rows the particles weigh as a block (cut from the combined data's), and its indices.

    The rows are those at the new periods and the last ``lag`` fitted ones. The indices carry the fit's
    centring constants (the held intercepts are relative to them).
    """
    fitted, both = make_design(panel, spec), make_design(combined, spec)
    if list(combined.indicators) != list(panel.indicators):
        raise ValueError("the combined data's indicators are not in the fit's order")   # new_rows refuses new ones
    both = dataclasses.replace(both, centres=fitted.centres)
    names = {b.key: b.names for b in fitted.blocks}
    n_old = len(panel.periods)
    period = combined.frame["period_idx"].to_numpy()
    out = []
    for block in both.blocks:
        keep = period[block.rows] >= n_old - lag
        if not keep.any():
            continue
        if names.get(block.key) != block.names:
            raise ValueError(f"likelihood term {block.key!r} holds other indicators than the fit's")
        sub = dataclasses.replace(block, rows=block.rows[keep], labels=block.labels[keep], local=block.local[keep],
                                  y=block.y[keep], exposure=block.exposure[keep], trials=block.trials[keep],
                                  rater=block.rater[keep], quota=block.quota[keep])
        out.append((sub, block_index(both, combined, sub), FAMILIES[spec.indicator(block.names[0]).family]))
    return out


class NewRowsLikelihood:
    """The pointwise log-likelihood of an update's rows, per particle (see the module docstring).

    Parameters
    ----------
    tree : xarray.DataTree
        The fit's (its ``posterior`` group is read).
    spec, panel
        The fit's spec and data.
    combined : Panel
        The fit's data with the new rows (:func:`nexusbayes.inference.update.new_rows`).
    lag : int
        The fitted periods re-proposed with the new ones (their rows are weighed too).

    Attributes
    ----------
    region, period, country : numpy.ndarray (n_rows,)
        Per row (the families' rows by likelihood term, then the reporting cells): its region, its period counted
        from the first re-proposed one (the last ``lag`` fitted periods, then the new ones) and its country.
    labels, term : numpy.ndarray (n_rows,)
        Its row label (the ``obs_<term>`` coordinate of a fit's log-likelihood) and its variable there
        (``y_<term>``, or ``reported``).
    """

    def __init__(self, tree, spec, panel: Panel, combined: Panel, lag: int = 0):
        post = tree["posterior"].to_dataset()
        self._flat, self._spec, self._panel = FlatDraws(post), spec, panel
        self._design = make_design(panel, spec)
        n_old = len(panel.periods)
        self.first, self.n_periods = n_old - lag, len(combined.periods) - n_old + lag
        self.lag = lag
        times = np.asarray(combined.period_time, float)
        self._gaps = np.diff(times[n_old - 1:])                                   # into each new period
        self._blocks, columns = [], []
        start = 0
        for block, idx, family in new_blocks(spec, panel, combined, lag):
            idx = dataclasses.replace(idx, period=idx.period - self.first)
            names = [f"{p}_{block.key}" for p in NUISANCE if f"{p}_{block.key}" in post]
            parts = block_inflation(spec, block, panel.indicators)
            cols = slice(start, start + len(block.y))
            start = cols.stop
            self._blocks.append((block, idx, family, names, parts, cols))
            columns.append((idx.region, idx.period, idx.country, block.labels, np.full(len(block.y), f"y_{block.key}")))
        cells = reporting_cells(spec, combined)
        self._cells = None
        if cells is not None:
            keep = cells.period >= self.first
            self._cells = dataclasses.replace(
                cells, item=cells.item[keep], region=cells.region[keep], period=cells.period[keep] - self.first,
                country=cells.country[keep], reported=cells.reported[keep], labels=cells.labels[keep])
            self._cells_cols = slice(start, start + int(keep.sum()))
            c = self._cells
            columns.append((c.region, c.period, c.country, c.labels, np.full(len(c.item), REPORTED)))
        self.region, self.period, self.country, self.labels, self.term = (
            np.concatenate([np.asarray(col[k]) for col in columns]) if columns else np.zeros(0, int)
            for k in range(5))
        self._walks = [w for w in WALKS if w.path in post]

    @property
    def draws(self) -> FlatDraws:
        """The fit's draws as this reads them, (sample, ...) in double precision: the update's one reader of them."""
        return self._flat

    @property
    def n_rows(self) -> int:
        """The number of rows weighed."""
        return len(self.region)

    def draw_aux(self, draws: np.ndarray, rng: np.random.Generator) -> dict:
        """Each draw's drift paths at the new periods, continued by their random walk from the last fitted period.

        Parameters
        ----------
        draws : numpy.ndarray (n,)
            Fit draws (positions over chains and draws, chains after one another).
        rng : numpy.random.Generator

        Returns
        -------
        dict
            Per walk present, ``<path>`` (n, drifting, new period), the path's values as the model's variable
            holds them (unsigned), and ``<z>`` (n, drifting, new period), their standard innovations; empty for a
            fit without drift.
        """
        draws = np.asarray(draws, int)
        out = {}
        for walk in self._walks:
            last = self._flat[walk.path][draws, :, -1]                             # (n, drifting)
            sd = self._flat[walk.sd][draws]
            z = rng.standard_normal((*last.shape, len(self._gaps)))
            steps = sd[:, :, None] * np.sqrt(self._gaps) * z
            out[walk.path], out[walk.z] = last[:, :, None] + np.cumsum(steps, axis=-1), z
        return out

    def logp(self, idx: np.ndarray, theta: np.ndarray, aux: dict) -> np.ndarray:
        """The log-likelihood (n, n_rows) of every row per particle.

        Parameters
        ----------
        idx : numpy.ndarray (n,)
            The fit draw of each particle.
        theta : numpy.ndarray (n, region, period, trait)
            The particles' traits at the re-proposed periods (the last ``lag`` fitted ones, then the new ones).
        aux : dict
            :meth:`draw_aux`'s arrays at the particles' draws (leading axis n).
        """
        out = np.empty((len(idx), self.n_rows))
        for block, bi, family, eta, params, parts, logits, cols, _ in self._terms(idx, theta, aux):
            out[:, cols] = _logp(family, eta, bi.scale, block, params, parts, logits)
        if self._cells is not None:
            out[:, self._cells_cols] = bernoulli_logp(self._reporting_logit(idx, theta)[0], self._cells.reported)
        return out

    def derivatives(self, idx: np.ndarray, theta: np.ndarray, aux: dict) -> tuple[np.ndarray, np.ndarray]:
        """Each row's gradient (n, n_rows, trait) and Hessian (n, n_rows, trait, trait) in its region-period's traits.

        Analytic (:mod:`nexusbayes.inference.update_derivatives`); arguments as :meth:`logp`'s.
        """
        n, n_trait = len(idx), theta.shape[-1]
        grad, hess = np.empty((n, self.n_rows, n_trait)), np.empty((n, self.n_rows, n_trait, n_trait))
        for block, bi, family, eta, params, parts, logits, cols, slopes in self._terms(idx, theta, aux, True):
            d1, d2 = family_derivatives(family, eta, bi.scale, block, params)
            g, h = in_traits(d1, d2, slopes["eta"])
            if parts:
                g, h = mix_derivatives(family.logp(eta, bi.scale, block, params), g, h, block.y, parts, logits,
                                       slopes)[1:]
            grad[:, cols], hess[:, cols] = g, h
        if self._cells is not None:
            logit, slope = self._reporting_logit(idx, theta)
            grad[:, self._cells_cols], hess[:, self._cells_cols] = in_traits(
                *logit_derivatives(logit, self._cells.reported), slope)
        return grad, hess

    def _terms(self, idx: np.ndarray, theta: np.ndarray, aux: dict, slopes: bool = False):
        """The blocks' linear predictors, evaluated as for :meth:`logp`.

        Per likelihood block: block, index, family, eta, nuisance parameters, inflation parts and logits, its
        columns, and (``slopes``) the slopes in the traits of eta and of each inflation logit (n, obs, trait).
        """
        flat = self._flat
        tables = {}
        for walk in self._walks:   # the fitted periods re-proposed at the draw's values, the new ones from aux
            tables[walk.path] = np.concatenate([flat[walk.path][idx][:, :, self.first:], aux[walk.path]], axis=-1)
        drift, scaling = posterior_tables(tables, tables, self._design, self._spec, self._panel)
        loading, intercept = flat[LOADING][idx], flat[INTERCEPT][idx]
        offset = flat["country_offset"][idx] if "country_offset" in flat else None
        for block, bi, family, names, parts, cols in self._blocks:
            eta = linear_predictor(bi, loading, intercept, theta, offset, drift, scaling)
            params = {name[:-len(block.key) - 1]: flat[name][idx] for name in names}
            inflation = {c: (flat[f"{c}_intercept"][idx], flat[f"{c}_loading"][idx]) for c in parts}
            logits = inflation_logits(parts, inflation, theta, bi)
            slope = None
            if slopes:   # d eta / d theta: the loadings, times exp(log-loading path) where it drifts
                slope = {"eta": loading[:, bi.indicator]}
                if scaling is not None:
                    slope["eta"] = slope["eta"] * np.exp(scaling[0][:, scaling[1][bi.indicator], bi.period])[..., None]
                slope.update({c: inflation[c][1][:, parts[c].member] for c in parts})
            yield block, bi, family, eta, params, parts, logits, cols, slope

    def _reporting_logit(self, idx: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The reporting cells' logits (n, cell) and their slopes in the traits (n, cell, trait)."""
        flat = self._flat
        given = {"theta": theta, **{name: flat[name][idx] for name in
                                    (REPORTING_INTERCEPT, REPORTING_LOADING, REPORTING_OFFSET) if name in flat}}
        logit = reporting_logit(given.get, self._cells, self.n_periods, slice(None))
        return logit, given[REPORTING_LOADING][:, self._cells.item]
