"""Reporting gaps that depend on the traits: the reporting model of indicators with ``missing = "informative"``.

For such an indicator j, every region-period at which its series existed is a **reporting cell**: one with a
value (however many raters) is reported (1), one with a non-report (``status = "not_reported"``, see
:mod:`nexusbayes.data.reporting`) is not (0); region-periods without a row are structurally absent and are not
cells. Over all cells of all informative indicators, one vectorised Bernoulli likelihood ``reported`` (dim
``obs_reported``), gathered by integer indexing::

    logit P(reported) = reporting_intercept_j [+ reporting_offset_{j, c}]
                        + sum_k reporting_loading_{j, k} theta_{r, t, k}

Loadings are **free** (normal, scale ``priors.reporting_loading``) on every trait, as the inflation ("absence")
discriminations of idealstan (Kubinec 2019) are: the direction of the dependence is what the model is asked to
learn (monitoring may raise reports where capability is low as well as lower them), a sign constraint would
pile posterior mass at zero where the dependence is weak and so undercover, and the traits' signs are already
fixed by the measurement model's anchors, so free reporting loadings add no reflection. The per-country offset
(sum-to-zero, non-centred, scale ``priors.country_offset``) is for indicators with ``comparable = false``: their
reporting rates may differ by country for reasons other than the traits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.data.panel import Panel
from nexusbayes.model.kernels import bernoulli_dist, bernoulli_kernel
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec

#: The observed variable, its dim, and the reporting model's parameters.
REPORTED, OBS_DIM = "reported", "obs_reported"
INTERCEPT, LOADING, OFFSET = "reporting_intercept", "reporting_loading", "reporting_offset"


@dataclass(frozen=True)
class ReportingCells:
    """The reporting cells of the informative indicators, one per (indicator, region, period).

    Attributes
    ----------
    names : list of str
        The informative indicators, in panel order (coord ``indicator_informative``).
    item, region, period, country : numpy.ndarray
        Each cell's informative indicator (position in ``names``), region, period and country codes.
    reported : numpy.ndarray
        1 for a cell with a value, 0 for a non-report.
    labels : numpy.ndarray
        The row label of each cell (its first row with a value, or the non-report's row).
    """

    names: list[str]
    item: np.ndarray
    region: np.ndarray
    period: np.ndarray
    country: np.ndarray
    reported: np.ndarray
    labels: np.ndarray

    def table(self, panel: Panel) -> pd.DataFrame:
        """The cells as a table: ``row, region, period, indicator, value`` (value 1 reported, 0 not)."""
        return pd.DataFrame({"row": self.labels, "region": np.asarray(panel.regions, dtype=object)[self.region],
                             "period": np.asarray(panel.periods, dtype=object)[self.period],
                             "indicator": np.asarray(self.names, dtype=object)[self.item],
                             "value": self.reported.astype(float)})


def informative(spec: Spec, panel: Panel) -> list[str]:
    """The panel's indicators with ``missing = "informative"``, in panel order."""
    return [n for n in panel.indicators if spec.indicator(n).missing == "informative"]


def reporting_cells(spec: Spec, panel: Panel) -> ReportingCells | None:
    """The reporting cells (see :class:`ReportingCells`), sorted by indicator, region and period; None without any.

    Examples
    --------
    >>> from nexusbayes.model.simulate import simulate, default_spec
    >>> spec = default_spec().model_copy(deep=True)
    >>> spec.indicators["seizures"].missing = "informative"
    >>> cells = reporting_cells(spec, simulate(spec, n_regions=3, n_periods=4, reporting=(0.5, 2.0), seed=1).panel)
    >>> cells.names, len(cells.reported), int(cells.reported.sum()) < 12
    (['seizures'], 12, True)
    """
    names = informative(spec, panel)
    if not names:
        return None
    code = {panel.indicators.index(n): i for i, n in enumerate(names)}
    frame = panel.frame[panel.frame["indicator_idx"].isin(list(code))]
    frame = frame.drop_duplicates(["indicator_idx", "region_idx", "period_idx"])    # several raters: one cell
    silent = panel.not_reported[panel.not_reported["indicator_idx"].isin(list(code))]
    both = pd.concat([frame.assign(reported=1), silent.assign(reported=0)], ignore_index=True)
    both["item"] = both["indicator_idx"].map(code)
    both = both.sort_values(["item", "region_idx", "period_idx"], kind="stable")
    return ReportingCells(names=names, item=both["item"].to_numpy(int), region=both["region_idx"].to_numpy(int),
                          period=both["period_idx"].to_numpy(int), country=both["country_idx"].to_numpy(int),
                          reported=both["reported"].to_numpy(int), labels=both["row"].to_numpy())


def reporting_likelihood(spec: Spec, panel: Panel, theta) -> None:
    """Add the reporting model (parameters with their roles, and the likelihood ``reported``) to the model in context.

    ``theta`` is the standardised traits (region, period, trait). Nothing is added without informative indicators.
    """
    cells = reporting_cells(spec, panel)
    if cells is None:
        return
    model = pm.Model.get_context()
    model.add_coord("indicator_informative", cells.names)
    model.add_coord(OBS_DIM, cells.labels)
    n_period, n_trait = len(panel.periods), len(spec.traits)
    intercept = declare(pm.Normal(INTERCEPT, 0.0, spec.priors.intercept, dims="indicator_informative"),
                        "intercept", prior="intercept")
    loading = declare(pm.Normal(LOADING, 0.0, spec.priors.reporting_loading, dims=("indicator_informative", "trait")),
                      "loading", prior="reporting_loading", reflect="trait")
    # from a dense (indicator, region-period) table, one flat gather per cell (and one scatter-add in the gradient)
    n_cell = len(panel.regions) * n_period
    table = intercept[:, None] + pt.dot(loading, theta.reshape((-1, n_trait)).T)
    logit = table.ravel()[cells.item * n_cell + cells.region * n_period + cells.period]
    local = [i for i, n in enumerate(cells.names) if not spec.indicator(n).comparable]
    if local and len(panel.countries) > 1:
        model.add_coord("indicator_reporting_local", [cells.names[i] for i in local])
        z = declare(pm.Normal("reporting_offset_z", 0.0, 1.0, dims=("country_contrast", "indicator_reporting_local")),
                    "latent")
        offsets = spec.priors.country_offset * ZeroSum.of(np.zeros(len(panel.countries), dtype=int))(z).T
        full = pt.set_subtensor(pt.zeros((len(cells.names), len(panel.countries)))[np.array(local)], offsets)
        offset = declare(pm.Deterministic(OFFSET, full, dims=("indicator_informative", "country")), "offset",
                         ranked=True)
        logit = logit + offset[cells.item, cells.country]
    observed = pm.Data(f"data_{REPORTED}", cells.reported, dims=OBS_DIM)
    pm.CustomDist(REPORTED, logit, dist=bernoulli_dist, logp=bernoulli_kernel, observed=observed, dims=OBS_DIM)


def reporting_logit(post, cells: ReportingCells, n_period: int, rows: slice) -> np.ndarray:
    """The reporting logits (sample, cell) of the draws ``rows`` of ``post`` (flat draws by variable name)."""
    theta = post("theta")[rows]
    flat = theta.reshape(theta.shape[0], -1, theta.shape[-1])[:, cells.region * n_period + cells.period]
    logit = post(INTERCEPT)[rows][:, cells.item] + np.einsum("snk,snk->sn", post(LOADING)[rows][:, cells.item], flat)
    if post(OFFSET) is not None:
        logit += post(OFFSET)[rows][:, cells.item, cells.country]
    return logit


def bernoulli_logp(logit: np.ndarray, reported: np.ndarray) -> np.ndarray:
    """Pointwise log P(reported = y) for logits (stable for large ones): ``-log(1 + exp(-(2y - 1) logit))``."""
    return -np.logaddexp(0.0, -(2.0 * reported - 1.0) * logit)
