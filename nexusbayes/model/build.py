"""build_model(panel, spec) -> pm.Model: the hierarchical dynamic latent-trait model (no sampling here).

The latent process
------------------
For trait k, region r in country c and period t (times tau_t in years, gaps d_t = tau_t - tau_{t-1})::

    theta_raw[r, t, k] = country_path[c, t, k] + region_path[r, t, k]
    path[., 0]  = initial_sd_k * (L z_0)_k
    path[., t]  = a_t * path[., t-1] + step_sd_{k,t} * (L z_t)_k

``L`` is the Cholesky factor of an LKJ-distributed trait correlation, ``z`` are standard normal
(Student-t for ``student_t_rw``) non-centred innovations. For a random walk ``a_t = 1`` and
``step_sd = innovation_sd * sqrt(d_t)``, so unequal periods get proportionally larger steps;
for AR(1) ``a_t = phi^d_t`` and ``step_sd = initial_sd * sqrt(1 - phi^(2 d_t))`` (stationary).
Region innovations are centred within each country (sum-to-zero region deviations, through the
orthonormal map :class:`ZeroSum`, whose cost is linear in the number of regions), so the country path
*is* the country's average and the split between levels is identified.

Under a random walk the countries' starts are sum-to-zero over countries (a single country starts at
0): a common shift of every start moves every ``theta_raw`` alike, which the standardisation below
removes, so that direction would be set by the prior alone. They are centred
(``country_start``, multivariate normal over traits with SD ``country_initial_sd``), because every
region of a country informs its start and the non-centred form is then a funnel. The medium
benchmark panel mixes since (see ``benchmarks/HISTORY.md``). With two or three
countries (one or two contrasts) ``country_initial_sd`` has a gamma prior that is 0 at 0 instead of
the half-normal (see :data:`FEW_CONTRASTS`).

Identification
--------------
* **Location and scale**: ``theta`` is ``theta_raw`` standardised per trait over the region-periods
  with data (mean 0, SD 1; all region-periods when none is empty). Region-periods without data
  (e.g. years before a unit exists, terms a justice did not serve) still get traits from the
  dynamics, but these extrapolations, whose spread grows with the distance to the data, do not set
  the scale. The likelihood depends on ``theta`` only, so its location and scale are
  fixed by construction; 0 is the average region-period with data. Since only ratios of the process scales
  reach ``theta``, the initial SD of region deviations is fixed at 1 (the country one when every
  country has a single region; the step SD when there is a single unit) and the others are relative
  to it, which leaves no scale direction that only the prior pins down.
* **Sign**: every trait has an anchor indicator (checked by the spec) whose loading has a fixed sign,
  or, when all its loadings are free, an orientation by regions, applied after sampling (the model
  is then symmetric under reflecting the trait; see :func:`nexusbayes.model.orient.orient`).
* **Rotation**: anchors load on their trait alone, i.e. have zero loadings on the other traits.
* **Between countries**: an indicator marked ``comparable = false`` gets a location per country
  (sum-to-zero offsets), so only comparable indicators tell the countries apart; every trait needs one.
* **Covariates**: their terms are added to ``theta_raw`` before it is standardised, so the standardisation
  cannot absorb them; the identified effect is the coefficient over the trait's SD (see
  :mod:`nexusbayes.model.covariates`).
* **Over periods**: an indicator with ``drift`` gets a location (or a log-loading) per period (a random walk summing
  to zero over its periods with data), so only indicators whose location does not drift tell a trait's trend from
  changing standards, and only those whose loading does not drift its spread in a period; the spec is refused
  unless they pin both down (:mod:`nexusbayes.model.drift`, :func:`nexusbayes.spec.indicators.trend_free_traits`).
* **Inflated counts**: an indicator with ``quota`` or ``zero_inflated`` is a mixture of its honest count and a
  point mass whose probability has its own intercept and trait loadings (:mod:`nexusbayes.model.heaping`).

The measurement model
---------------------
``eta_i = centre_j + intercept_j [+ offset_{j, c_i}] + sum_k loading[j, k] theta[r_i, t_i, k]``
(the country offset only for indicators not comparable across countries; ``+ drift[j, t_i]`` for an
indicator whose intercept drifts, ``- drift[j, t_i]`` for one whose cut-point centre does; the loadings times
``exp(loading_drift[j, t_i])`` for one whose loading drifts, see :mod:`nexusbayes.model.drift`) with one vectorised
likelihood term per family (per number of categories for ordinal) over all its observations,
gathered by integer indexing, so a gradient costs time linear in the number of observations.

Indicators with ``missing = "informative"`` add one Bernoulli likelihood ``reported`` over the region-periods at
which their series existed, whose logit loads on the traits (:mod:`nexusbayes.model.reporting`), so
non-reports inform the traits.
"""

from __future__ import annotations

from functools import cached_property

import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from nexusbayes.constants import PRIOR_PREDICTIVE_DRAWS
from nexusbayes.data.panel import Panel
from nexusbayes.model.centred import _centred_spans
from nexusbayes.model.covariates import add_covariates, standardised_effects
from nexusbayes.model.design import Design, block_index, make_design, observed_cells
from nexusbayes.model.drift import item_drift, loading_drift
from nexusbayes.model.families import FAMILIES
from nexusbayes.model.heaping import block_inflation, component_logits, inflated_likelihood, inflation_parameters
from nexusbayes.model.latent import _latent_process
from nexusbayes.model.measurement import _country_offsets, _linear_predictor, _measurement_parameters
from nexusbayes.model.orient import orient
from nexusbayes.model.predict import add_predictions, likelihood_terms, log_likelihood, prior_predictive
from nexusbayes.model.regime import regime_graph
from nexusbayes.model.regime_predict import add_regime_predictions, regime_prior_predictive
from nexusbayes.model.regime_predict import log_likelihood as regime_log_likelihood
from nexusbayes.model.reporting import reporting_likelihood
from nexusbayes.model.roles import COUNTRY_THETA, THETA, Roles, declare
from nexusbayes.spec.document import Spec


class Model:
    """The model of a spec on a panel: its design, its PyMC graph and the role of every variable.

    Built once and handed to everything downstream: :func:`nexusbayes.inference.sample.sample` samples it
    (the one sampling path), :func:`nexusbayes.fit.fit` wraps that in a :class:`~nexusbayes.fit.Fit`,
    and SBC, sweeps and sharing checks refit it to other data of the same structure (:meth:`with_data`).
    The PyMC graph is built on first use, so a model whose compiled form is cached costs only its design.

    Parameters
    ----------
    spec : Spec
    panel : Panel
        Validated observations (see :func:`nexusbayes.data.read.load_panel`).

    Attributes
    ----------
    spec, panel
    design : Design
        The panel as arrays (:func:`nexusbayes.model.design.make_design`), computed once.

    Examples
    --------
    >>> from nexusbayes.model.simulate import simulate
    >>> sim = simulate(n_regions=3, n_periods=4, seed=1)
    >>> model = Model(sim.spec, sim.panel)
    >>> sorted(model.pymc.named_vars_to_dims["theta"])
    ['period', 'region', 'trait']
    >>> model.roles["trait_corr"].ranked, model.roles["trait_chol"].ranked
    (True, False)
    """

    def __init__(self, spec: Spec, panel: Panel):
        self.spec = spec
        self.panel = panel
        self.design = make_design(panel, spec)

    def __repr__(self) -> str:
        return (f"Model(spec={self.spec.name!r}, {len(self.panel.regions)} regions x {len(self.panel.periods)} "
                f"periods, {self.panel.n_obs} observations)")

    @cached_property
    def pymc(self) -> pm.Model:
        """The PyMC model (built on first use; see :func:`build_model`, or :mod:`nexusbayes.model.regime`)."""
        if self.spec.is_regime:
            return regime_graph(self.design, self.panel, self.spec)
        return _graph(self.design, self.panel, self.spec)

    @cached_property
    def roles(self) -> Roles:
        """The role of every variable (:class:`nexusbayes.model.roles.Roles`)."""
        return Roles.of(self.pymc)

    def with_data(self, panel: Panel) -> Model:
        """The same spec on other data (a refit: new periods, simulated data, a sweep's variant)."""
        return Model(self.spec, panel)

    def prior_predictive(self, draws: int = PRIOR_PREDICTIVE_DRAWS, seed: int | None = None) -> xr.Dataset:
        """Observations drawn from the prior predictive (see :func:`nexusbayes.model.predict.prior_predictive`)."""
        if self.spec.is_regime:
            return regime_prior_predictive(self.pymc, self.design, self.panel, self.spec, draws, seed)
        return prior_predictive(self.pymc, self.panel, self.spec, draws=draws, seed=seed)

    def add_predictions(self, tree: xr.DataTree, seed: int) -> xr.DataTree:
        """Add posterior predictive, observed and constant data to a sampled tree (not the log-likelihood).

        For a regime model also the states (:func:`nexusbayes.model.regime_predict.add_regime_predictions`).
        """
        if self.spec.is_regime:
            return add_regime_predictions(tree, self.design, self.panel, self.spec, seed)
        return add_predictions(tree, self.design, self.panel, self.spec, seed)

    @property
    def likelihood_terms(self) -> list[str]:
        """The pointwise log-likelihood's variables, in order (``y_<term>``, then ``reported`` if any)."""
        if self.spec.is_regime:
            return [f"y_{block.key}" for block in self.design.blocks]
        return likelihood_terms(self.design, self.panel, self.spec)

    def log_likelihood(self, tree: xr.DataTree, terms: list[str] | None = None) -> xr.Dataset:
        """The pointwise log-likelihood of ``tree``'s posterior draws (see :func:`~.predict.log_likelihood`).

        ``terms``: those of :attr:`likelihood_terms` alone (default all). For a regime model, given the draws'
        sampled states (:func:`~.regime_predict.log_likelihood`).
        """
        if self.spec.is_regime:
            return regime_log_likelihood(tree, self.design, self.panel, self.spec, terms)
        return log_likelihood(tree, self.design, self.panel, self.spec, terms)

    def orient(self, tree: xr.DataTree) -> xr.DataTree:
        """Reflect draws of traits with an orientation (see :func:`nexusbayes.model.orient.orient`)."""
        return orient(tree, self.spec, self.panel, self.roles)


def build_model(panel: Panel, spec: Spec) -> pm.Model:
    """Build the PyMC model for ``panel`` under ``spec``; samples nothing (the graph of :class:`Model`).

    Parameters
    ----------
    panel : Panel
        Validated observations (see :func:`nexusbayes.data.read.load_panel`).
    spec : Spec
        Model specification.

    Returns
    -------
    pymc.Model
        With dims ``country, region, period, trait, indicator`` and one ``obs_<family>`` dim per
        likelihood term. Key variables: ``theta`` (region, period, trait), ``country_theta``
        (country, period, trait), ``loading`` (indicator, trait), ``intercept`` (indicator). Every
        value that comes from the data is a data container (``pm.Data``): the observations
        (``data_<key>``), the centring constants (``indicator_location``, ``indicator_scale``) and
        the families' inputs (``log_exposure_<key>``, ``trials_<key>``), so a compiled model serves
        any dataset of the same shape (nutpie's ``with_data``; see :mod:`nexusbayes.inference.compile_cache`).

    Examples
    --------
    >>> from nexusbayes.model.simulate import simulate
    >>> sim = simulate(n_regions=3, n_periods=4, seed=1)
    >>> model = build_model(sim.panel, sim.spec)
    >>> sorted(model.named_vars_to_dims["theta"])
    ['period', 'region', 'trait']
    """
    return Model(spec, panel).pymc


def _graph(design: Design, panel: Panel, spec: Spec) -> pm.Model:
    """The PyMC graph of the model, every variable declared with its role."""
    with pm.Model(coords=design.coords) as model:
        if spec.dynamics.centred:
            theta_raw, country_raw = _centred_spans(design, spec, panel)
        else:
            theta_raw, country_raw = _latent_process(design, spec)
        theta_raw, country_raw, beta = add_covariates(theta_raw, country_raw, spec, panel, design.period_time)
        # standardised over the region-periods with data (all of them when none is empty)
        seen = theta_raw.reshape((-1, len(spec.traits)))[observed_cells(panel)]
        mean = seen.mean(axis=0)
        sd = pt.sqrt(seen.var(axis=0) + 1e-12)  # the epsilon only matters at an all-zero start
        if beta is not None:
            standardised_effects(beta, sd, spec)
        theta = pm.Deterministic(THETA, (theta_raw - mean) / sd, dims=("region", "period", "trait"))
        declare(theta, "trait", reflect="trait")
        country_theta = pm.Deterministic(COUNTRY_THETA, (country_raw - mean) / sd, dims=("country", "period", "trait"))
        declare(country_theta, "trait", reflect="trait")
        loading, intercept = _measurement_parameters(design, spec)
        offset = _country_offsets(design, spec)
        drift, scaling = item_drift(design, spec, panel), loading_drift(design, spec, panel)
        # the centring constants are computed from the data, so they are data containers too
        location = pm.Data("indicator_location", design.centres[:, 0], dims="indicator")
        spread = pm.Data("indicator_scale", design.centres[:, 1], dims="indicator")
        linear_predictor = _linear_predictor(design, panel.n_obs, theta, loading, intercept, location, offset, drift,
                                             scaling)
        inflation = inflation_parameters(spec, design.coords["indicator"])
        cells = theta.reshape((-1, len(spec.traits)))
        for block in design.blocks:
            family = FAMILIES[spec.indicator(block.names[0]).family]
            idx = block_index(design, panel, block)
            eta = linear_predictor(idx)
            params = family.nuisance(block, spec.priors)
            observed = pm.Data(f"data_{block.key}", family.observed_values(block), dims=block.dim)
            inputs = {name: pm.Data(f"{name}_{block.key}", values, dims=block.dim)
                      for name, values in family.inputs(block).items()}
            parts = block_inflation(spec, block, design.coords["indicator"])
            if parts:     # quota heaping or structural zeros: a mixture (see nexusbayes.model.heaping)
                logits = component_logits(parts, inflation, cells, idx.region, idx.period,
                                          len(design.coords["region"]) * len(design.period_time),
                                          len(design.period_time))
                inflated_likelihood(family, block, eta, params, inputs, observed, parts, logits)
                continue
            family.likelihood(block, eta, (location[idx.indicator], spread[idx.indicator]), params, observed, inputs)
        reporting_likelihood(spec, panel, theta)
    return model
