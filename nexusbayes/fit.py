"""fit(spec, data) -> Fit: sample the model and hold the results; save and load them (netCDF, no pickle).

Examples
--------
>>> from nexusbayes.model.simulate import simulate
>>> sim = simulate(n_regions=3, n_periods=3, seed=2)
>>> result = fit(sim.spec, sim.frame, draws=100, tune=100, chains=2, progress=False,
...              check=False)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes import fit_file
from nexusbayes.analysis import covariates as covariate_analysis
from nexusbayes.analysis import forecast as forecasting
from nexusbayes.analysis import plausible, regime, typology
from nexusbayes.analysis.comparability import noncomparability_table
from nexusbayes.analysis.diagnostics import Diagnostics, diagnose
from nexusbayes.analysis.drift import drift_paths, drift_size
from nexusbayes.analysis.regime_forecast import regime_forecast
from nexusbayes.data.covariates import attach_covariates
from nexusbayes.data.panel import Panel, validate
from nexusbayes.data.resolve import resolve_covariates, resolve_panel, resolve_spec
from nexusbayes.errors import DataWarning, FitFileError, OutputExistsError, SpecError
from nexusbayes.files import atomic_write, content_digest
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model
from nexusbayes.model.roles import Roles
from nexusbayes.spec.document import Spec

FORMAT = fit_file.FORMAT


#: The fit's attribute naming the data file(s) given in place of those its spec names (``fit(spec, data)``,
#: ``nexusbayes fit --data``); the run's summary and report show it.
DATA_GIVEN_ATTR = "data_given"
#: The column of a saved fit's data that keeps each observation's label (its file and line).
ROW_LABEL = "row_label"
#: The root attribute holding the covariates' centre and scale (JSON): an updated fit keeps its base fit's.
STANDARDISATION = "nexusbayes_covariates_standardisation"


#: How every numeric variable is saved: zlib at level 1 with byte shuffling. Single-precision draws shrink
#: by ~10%, whole numbers (counts, ratings) to a fraction; higher levels save ~1% for 2x the time.
COMPRESSED = {"zlib": True, "complevel": 1, "shuffle": True}
#: Doubles that single precision holds exactly (draws a fit holds as doubles: a regime fit's expected theta,
#: fits loaded from files written before draws were held in single precision) are stored as such, with a
#: ``scale_factor`` of 1.0 that xarray reads back as doubles, lazily and exactly (CF packing; no fill value,
#: which would keep them single).
PACKED = {"dtype": "float32", "scale_factor": 1.0, "_FillValue": None}


@dataclass
class Fit:
    """A fitted model: the DataTree of draws, the spec and the data it came from.

    Attributes
    ----------
    tree : xarray.DataTree
        Groups ``posterior``, ``posterior_predictive``, ``prior_predictive``, ``observed_data``,
        ``constant_data`` and ``sample_stats`` (the log-likelihood is computed when asked:
        :meth:`log_likelihood`); dims ``country``, ``region``, ``period``, ``trait``, ``indicator`` and one
        ``obs_<family>`` per likelihood term. Posterior draws are held in single precision
        (:func:`~nexusbayes.model.predict.single_precision`), whole-number predictions as integers. A loaded
        fit's arrays are read from its file when first used.
    spec : Spec
    panel : Panel
    """

    tree: xr.DataTree
    spec: Spec
    panel: Panel
    _diagnostics: Diagnostics | None = field(default=None, repr=False)

    # ---- convergence ---------------------------------------------------------------------------
    @property
    def diagnostics(self) -> Diagnostics:
        """R-hat, ESS, divergences, E-BFMI and tree depth against their thresholds."""
        if self._diagnostics is None:
            self._diagnostics = diagnose(self.tree)
        return self._diagnostics

    @property
    def timings(self) -> dict[str, float]:
        """Seconds spent compiling, sampling and post-processing."""
        return {k.removeprefix("seconds_"): float(v) for k, v in self.tree.attrs.items() if k.startswith("seconds_")}

    # ---- capacity types ------------------------------------------------------------------------
    @property
    def region_country(self) -> dict[str, str]:
        """Country of each region."""
        return self.panel.country_of

    def type_probabilities(self, shift: tuple[float, float] = (0.0, 0.0)) -> xr.DataArray:
        """P(type) per region-period, dims (region, period, type).

        See :func:`nexusbayes.analysis.typology.type_probabilities` (a regime fit:
        :func:`nexusbayes.analysis.regime.type_probabilities`, which has no thresholds to ``shift``).
        """
        if self.spec.is_regime:
            if tuple(shift) != (0.0, 0.0):
                regime.refuse_thresholds(self.spec, "shift")
            return regime.type_probabilities(self.tree)
        return typology.type_probabilities(self.tree, self.spec, shift)

    def types_table(self) -> pd.DataFrame:
        """Tidy P(type) per region-period with the modal type and its probability."""
        return typology.types_table(self.type_probabilities(), self.region_country)

    def transitions(self) -> xr.DataArray:
        """P(type at t -> type at t+1) per region and step, dims (region, step, from, to)."""
        if self.spec.is_regime:
            return regime.transition_probabilities(self.tree)
        return typology.transition_probabilities(self.tree, self.spec)

    def transition_matrices(self, ci_prob: float | None = None) -> pd.DataFrame:
        """Pooled per-country transition matrices with credible intervals.

        A regime fit's are its transition matrix parameters (:func:`nexusbayes.analysis.regime.transition_matrices`).
        """
        kwargs = {} if ci_prob is None else {"ci_prob": ci_prob}
        if self.spec.is_regime:
            return regime.transition_matrices(self.tree, self.region_country, **kwargs)
        return typology.transition_matrices(self.tree, self.spec, self.region_country, **kwargs)

    def threshold_sensitivity(self, shifts=(-0.5, -0.25, 0.0, 0.25, 0.5)) -> pd.DataFrame:
        """Type shares as both thresholds shift (see :func:`nexusbayes.analysis.typology.threshold_sensitivity`)."""
        regime.refuse_thresholds(self.spec, "threshold_sensitivity")
        return typology.threshold_sensitivity(self.tree, self.spec, shifts)

    def group_era_summary(self) -> pd.DataFrame:
        """Type probabilities by the spec's region groups and eras."""
        return typology.group_era_summary(self.type_probabilities(), self.spec)

    def path_table(self) -> pd.DataFrame:
        """A regime fit's most probable type path per region (see :func:`nexusbayes.analysis.regime.path_table`)."""
        if not self.spec.is_regime:
            raise ValueError("path_table is a regime fit's (its most probable state path); for a trait fit use "
                             "types_table's modal_type")
        return regime.path_table(self.tree, self.region_country)

    def trait_summary(self, ci_prob: float | None = None) -> pd.DataFrame:
        """Posterior mean, SD and equal-tailed interval of every trait per region-period.

        See :func:`nexusbayes.analysis.typology.trait_summary`.
        """
        return typology.trait_summary(self.tree, self.region_country, ci_prob)

    # ---- covariates --------------------------------------------------------------------------
    def covariate_effects(self, ci_prob: float | None = None) -> pd.DataFrame:
        """The covariates' effects with intervals and P(effect > 0), per SD and per raw unit.

        See :func:`nexusbayes.analysis.covariates.covariate_effects`.
        """
        return covariate_analysis.covariate_effects(self.tree, self.spec, self.panel, ci_prob)

    def covariate_transitions(self, covariate: str, values: tuple[float, float] | None = None,
                              ci_prob: float | None = None) -> pd.DataFrame:
        """P(change of type | a step covariate at two values) per country.

        See :func:`nexusbayes.analysis.covariates.transition_contrast`.
        """
        return covariate_analysis.transition_contrast(self.tree, self.spec, self.panel, covariate, values, ci_prob)

    def noncomparability(self, ci_prob: float | None = None) -> pd.DataFrame:
        """Per indicator and country: the country offset's mean, interval and P(|offset| > delta).

        See :func:`nexusbayes.analysis.comparability.noncomparability_table` (``[comparability] detect = true``).
        """
        return noncomparability_table(self.tree, self.spec, *(() if ci_prob is None else (ci_prob,)))

    # ---- changing standards ----------------------------------------------------------------
    def drift_paths(self, ci_prob: float | None = None) -> pd.DataFrame:
        """Every drifting parameter's path over periods with 50% and ``ci_prob`` intervals (tidy; empty without).

        See :func:`nexusbayes.analysis.drift.drift_paths`.
        """
        return drift_paths(self.tree, self.spec, *(() if ci_prob is None else (ci_prob,)))

    def drift_size(self, ci_prob: float | None = None) -> pd.DataFrame:
        """Each drift's total change and step SD against the traits' movement, in trait SD units.

        See :func:`nexusbayes.analysis.drift.drift_size`.
        """
        return drift_size(self.tree, self.spec, *(() if ci_prob is None else (ci_prob,)))

    # ---- forecasts ---------------------------------------------------------------------------
    def forecast(self, periods: int | None = None, *, times=None, labels=None, seed: int = 0, covariates=None,
                 hold_covariates: bool = False) -> xr.DataTree:
        """The traits' predictive distribution ``periods`` ahead (default 1), per region and country, draw by draw.

        Groups ``forecast`` (``theta``: chain, draw, region, horizon, trait; ``country_theta``) and, with a
        typology, ``types`` (P(type) and transitions from the last fitted period). Named eras need ``times``;
        ``[covariates]`` their future values (``covariates``, a table) or ``hold_covariates=True``.
        See :func:`nexusbayes.analysis.forecast.forecast`; tables: :func:`~nexusbayes.analysis.forecast.forecast_table`
        and :func:`~nexusbayes.analysis.forecast.forecast_types_table`. A regime fit's forecast is its types'
        Markov chain run forward, exact per draw (:func:`nexusbayes.analysis.regime_forecast.regime_forecast`).
        """
        if self.spec.is_regime:   # the types' Markov chain run forward from the last filtered P(type)
            return regime_forecast(self.tree, self.spec, self.panel, periods, times=times, labels=labels, seed=seed)
        if self.tree.attrs.get("update_hold") == "means":
            raise forecasting.ForecastError("this fit was updated with its parameters held at their means, so its "
                                            "draws do not each follow one draw's dynamics; update it with "
                                            "hold=\"draws\" (the default) to forecast from it")
        return forecasting.forecast(self.tree, self.spec, self.panel, periods, times=times, labels=labels, seed=seed,
                                    covariates=covariates, hold_covariates=hold_covariates)

    # ---- a new period -----------------------------------------------------------------------------
    def update(self, new_data, *, method: str = "filter", particles: int | None = None, hold: str = "draws",
               n_held: int | None = None, draws: int | None = None, tune: int | None = None,
               chains: int | None = None, seed: int | None = None, progress: bool = False, status=None,
               predictions: bool = True, proposal: str = "laplace", lag: int = 0, covariates=None) -> Fit:
        """The fit with new periods added, without a full refit.

        ``method="filter"`` (default): one NUTS run of the new traits with the measurement parameters, process
        scales and last fitted period's traits held at ``n_held`` posterior draws (``hold="draws"``, default 100)
        or at their means (``hold="means"``); ``draws`` and ``tune`` are that filter's per chain.
        ``method="particles"``: the fit's draws reweighted by their likelihood of the new rows (importance
        sampling, PSIS; ``attrs["update_pareto_k"]`` above 0.7 warns that a refit is needed) and the new traits
        drawn by ``particles`` particles per draw and country (default 64) from a Laplace proposal given each draw
        (``proposal="prior"``: from the fitted dynamics), re-proposing the last ``lag`` fitted periods too, in
        NumPy: nothing is compiled, and the fitted periods and parameters move with the new data through the
        weights (reliable for a few new rows; a whole new period still usually gives k > 0.7, the fit's draws
        themselves not covering the new posterior). ``predictions`` adds
        the groups the report reads. New regions of the fit's countries are placed by the filter (their
        country's path plus a region-level deviation). A fit with ``[covariates]`` (by the filter) needs their
        values at the new periods, ``covariates`` (a table like the covariate table). ``attrs["update_held"]`` says
        what was held and how. See :mod:`nexusbayes.inference.update`.
        """
        from nexusbayes.inference import update as updating
        from nexusbayes.inference.update_particles import N_PARTICLES

        settings = self.spec.sampler.model_copy(update={"draws": draws or updating.filter_draws(hold),
                                                        "tune": tune or updating.FILTER_TUNE, **(
            {"chains": chains} if chains else {}), **({"seed": seed} if seed is not None else {})})
        tree, panel = updating.update(self.tree, self.spec, self.panel, new_data, method=method, hold=hold,
                                      n_held=updating.N_HELD if n_held is None else n_held,
                                      n_particles=N_PARTICLES if particles is None else particles,
                                      settings=settings, progress=progress, status=status, predictions=predictions,
                                      proposal=proposal, lag=lag, covariates=covariates)
        return Fit(tree=tree, spec=self.spec, panel=panel)

    # ---- draws for second-stage analyses -----------------------------------------------------------
    def plausible_values(self, n: int, seed: int = 0) -> plausible.PlausibleValues:
        """``n`` whole posterior draws of the traits (and types) per region-period, spread over the chains.

        ``.dataset`` is the xarray form (pv, region, period, trait), ``.table()`` the tidy one and
        ``.write(path)`` writes it as CSV or Parquet. Analyse each and combine by Rubin's rules
        (:func:`nexusbayes.analysis.second_stage.rubin`, or :func:`nexusbayes.regress` for regressions).
        See :mod:`nexusbayes.analysis.plausible`.
        """
        return plausible.plausible_values(self.tree, self.spec, self.panel, n, seed=seed)

    @property
    def roles(self) -> Roles:
        """The role of every model variable (stored with the draws; rebuilt from the model for older files)."""
        stored = Roles.from_attrs(self.tree.attrs)
        return stored if stored is not None else Model(self.spec, self.panel).roles

    def log_likelihood(self, terms: list[str] | None = None) -> xr.Dataset:
        """The pointwise log-likelihood of every draw (``y_<term>`` over chain, draw, ``obs_<term>``), computed now.

        No fit holds it (as large as the posterior predictive, read only for PSIS-LOO): computed from the
        posterior (a regime fit's: and its sampled states) in NumPy, nothing to compile, with the centring
        constants the fit was computed with (``constant_data``; an update's are its base fit's), so a fresh and
        a loaded fit give the same values. ``terms`` (of :attr:`likelihood_terms`) computes those alone, so a
        reader going term by term never holds the whole of it; default every term.
        """
        return self._numpy_model.log_likelihood(self.tree, terms)

    @property
    def likelihood_terms(self) -> list[str]:
        """The names of :meth:`log_likelihood`'s variables, in order (nothing computed)."""
        return self._numpy_model.likelihood_terms

    @cached_property
    def _numpy_model(self) -> Model:
        """The fit's model for its NumPy computations (its design; no PyMC graph), with the fit's centres."""
        model = Model(self.spec, self.panel)
        const = self.tree["constant_data"] if "constant_data" in self.tree.children else {}
        if "centre_loc" in const:
            centres = np.column_stack([const["centre_loc"].values, const["centre_scale"].values])
            model.design = dataclasses.replace(model.design, centres=centres.astype(float))
        return model

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fit to one netCDF file, with the spec and the data inside (written atomically).

        Every variable and attribute is covered by a SHA-256 digest (see :mod:`nexusbayes.fit_file`),
        which :func:`load` checks. Numeric variables are compressed (:data:`COMPRESSED`); no fit holds
        the log-likelihood (:meth:`log_likelihood` computes it).

        Parameters
        ----------
        path : path
            Target ``.nc`` file.
        overwrite : bool
            Replace an existing file; otherwise an existing file is an error.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
        tree = self.tree.copy()
        data = self.panel.data_table()
        stored = data.assign(**{ROW_LABEL: self.panel.row_labels()})
        tree["fit_data"] = xr.DataTree(xr.Dataset.from_dataframe(stored.rename_axis("row")))
        table = self.panel.covariates
        if table is not None:   # covered by the file's per-variable digests, like every group
            frame = table.frame.assign(period=table.frame["period"].astype(str))
            tree["fit_covariates"] = xr.DataTree(xr.Dataset.from_dataframe(frame.rename_axis("row")))
            tree.attrs["nexusbayes_covariates_source"] = table.source
            # the standardisation the effects are per SD of (an updated fit keeps its base fit's)
            tree.attrs[STANDARDISATION] = json.dumps({"centre": table.centre.tolist(), "scale": table.scale.tolist()})
        spec_text = self.spec.to_toml()
        tree.attrs.update({"nexusbayes_format": FORMAT, "nexusbayes_version": version("nexusbayes"),
                           "nexusbayes_spec": spec_text, "nexusbayes_sha256": content_digest(spec_text, data),
                           "nexusbayes_data_source": self.panel.source})
        encoding = {f"/{group}": {name: _encoding(var) for name, var in tree[group].data_vars.items()
                                  if var.dtype.kind in "biuf"} for group in tree.children}
        atomic_write(path, lambda tmp: (tree.to_netcdf(tmp, engine="h5netcdf", encoding=encoding),
                                        fit_file.seal(tmp)))
        return path


def _encoding(var: xr.DataArray) -> dict:
    """How :meth:`Fit.save` stores a numeric variable: compressed, and :data:`PACKED` when that loses nothing."""
    if var.dtype == np.float64:
        values = np.asarray(var.values)
        if np.array_equal(values.astype(np.float32), values, equal_nan=True):
            return {**COMPRESSED, **PACKED}
    return dict(COMPRESSED)


def load(path: str | Path) -> Fit:
    """Load a fit saved with :meth:`Fit.save`, checking that it is a complete, untampered nexusbayes file.

    The format, the digests of every variable and the posterior's finiteness (as :func:`fit` checks it)
    are checked with h5py in one read of the file before xarray opens it
    (:func:`nexusbayes.fit_file.verify`); then the run facts' types and the stored spec and data.
    The draws are not held in memory: each variable is read from the file when first used (and then
    kept), so a loaded fit keeps its file open; the log-likelihood is computed on demand
    (:meth:`Fit.log_likelihood`), as for a fresh fit.

    Raises
    ------
    FitFileError
        When the file is missing, not netCDF, truncated, not written by nexusbayes (or by an older
        format), incomplete, changed in any variable or attribute, or holds non-finite draws.
    """
    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"{path}: no such file")
    fit_file.verify(path)
    try:
        tree = xr.open_datatree(path, engine="h5netcdf")    # lazily: arrays are read when first used
    except Exception as exc:  # h5py/netCDF raise many types for damaged files
        raise FitFileError(f"{path}: not a readable netCDF file (truncated or corrupt?): {exc}") from None
    try:
        return _fit_of(tree, path)
    except BaseException:
        tree.close()
        raise


def _fit_of(tree: xr.DataTree, path: Path) -> Fit:
    """The :class:`Fit` of a verified file opened as ``tree``: its stored spec and data checked and read."""
    attrs = tree.attrs
    fit_file.check_contents(tree, path)
    try:
        spec = Spec.from_toml(attrs["nexusbayes_spec"], source=f"{path} (stored spec)")
    except SpecError as exc:
        raise FitFileError(str(exc)) from None
    data = tree["fit_data"].to_dataset().to_dataframe().reset_index(drop=True)
    labels = data.pop(ROW_LABEL).to_numpy()
    for col in ("country", "region", "indicator", "rater", "status"):
        if col in data:
            data[col] = data[col].astype(object).where(data[col].notna(), None)
    if content_digest(attrs["nexusbayes_spec"], data) != attrs.get("nexusbayes_sha256"):
        raise FitFileError(f"{path}: the stored spec or data do not match their SHA-256: the file was modified "
                           "after it was saved; refit from the original spec and data")
    panel = validate(data.set_axis(labels), spec, label=str(attrs.get("nexusbayes_data_source", path)),
                     row_kind="the row labels of the data as fitted")
    del tree["fit_data"]
    if "fit_covariates" in tree.children:
        table = tree["fit_covariates"].to_dataset().to_dataframe().reset_index(drop=True)
        panel = attach_covariates(panel, spec, table.astype({"region": object}))
        standardised = {k: np.array(v, float) for k, v in json.loads(attrs.pop(STANDARDISATION, "{}")).items()}
        panel = dataclasses.replace(panel, covariates=dataclasses.replace(
            panel.covariates, source=str(attrs.get("nexusbayes_covariates_source", path)), **standardised))
        del tree["fit_covariates"]
        del tree.attrs["nexusbayes_covariates_source"]
    for key in (fit_file.DIGESTS_ATTR, fit_file.DIGEST_ATTR):    # they describe the file, not the fit
        del tree.attrs[key]
    return Fit(tree=tree, spec=spec, panel=panel)


def data_given(spec: Spec, panel: Panel) -> str:
    """What a fit's ``data_given`` attr says of data read from other file(s) than the spec's ``data``."""
    return f"{panel.source}, in place of the spec's data = {spec.data_path!r}"


def fit(spec: Spec | str | Path, data: str | Path | pd.DataFrame | Panel | None = None, *,
        backend: str | None = None, draws: int | None = None, tune: int | None = None, chains: int | None = None,
        seed: int | None = None, until_converged: bool | None = None, progress: bool = True, check: bool = True,
        status: Callable[[str], None] | None = None, covariates: str | Path | pd.DataFrame | None = None,
        scheduler: str | None = None) -> Fit:
    """Fit a spec to data.

    Parameters
    ----------
    spec : Spec or path
        The model specification, or the path of a TOML spec (whose ``data`` is then the default data).
    data : path, DataFrame or Panel, optional
        The indicator table; default the spec's ``data`` file.
    backend : {"nutpie", "pymc"}, optional
        Sampler; default from the spec (``nutpie``).
    draws, tune, chains, seed : int, optional
        Override the spec's sampler settings.
    until_converged : bool, optional
        Override the spec's: sample until R-hat and ESS pass, ``draws`` being then the most per chain
        (see :class:`~nexusbayes.spec.sections.SamplerSpec`).
    progress : bool
        Show progress bars; where none can be seen (no terminal, e.g. a log), a line every
        :data:`~nexusbayes.inference.progress.PROGRESS_SECONDS` with the draws done and the time left,
        through ``status`` (default: standard error).
    check : bool
        Warn (:class:`~nexusbayes.analysis.diagnostics.SamplingWarning`) when a diagnostic fails.
    status : callable, optional
        Called with a one-line message when compiling and when sampling start, and with the progress lines
        (the CLI prints them).
    covariates : path or DataFrame, optional
        The covariate table of the spec's ``[covariates]``; default its ``covariates.path`` (relative to
        the spec file; see :mod:`nexusbayes.data.covariates`).
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``"tcp://10.0.0.5:8786"``): each chain runs as a task there,
        with a seed of its own derived from ``seed`` (see :mod:`nexusbayes.inference.dask_chains`). nutpie,
        fixed length.

    Returns
    -------
    Fit

    Raises
    ------
    SamplingError
        When the sampler cannot start (the log-density is not finite at the initial points) or the
        posterior holds NaN or infinite draws: no result is better than a wrong one.
    Interrupted
        When sampling was stopped (Ctrl-C, SIGTERM) before every draw was taken: partial traces are
        never returned as a fit.
    SpecError
        When a setting is invalid, or the draws would not fit in memory
        (see :func:`nexusbayes.inference.sample_checks.check_memory`).

    Warns
    -----
    DataWarning
        For each of ``panel.warnings`` (e.g. a trait no indicator measures in a country).
    """
    given = spec
    spec, data_path = resolve_spec(spec)
    overrides = {k: v for k, v in dict(backend=backend, draws=draws, tune=tune, chains=chains, seed=seed,
                                       until_converged=until_converged).items() if v is not None}
    # validated like the spec's own [sampler] table (model_copy would not check e.g. draws = 0)
    settings = Spec.from_dict({**spec.to_dict(), "sampler": {**spec.sampler.model_dump(), **overrides}},
                              source="sampler settings (spec and arguments)").sampler
    panel = resolve_panel(spec, data, data_path, covariates=resolve_covariates(given, spec, covariates))
    for message in panel.warnings:
        warnings.warn(message, DataWarning, stacklevel=2)
    tree = sample(Model(spec, panel), settings, progress=progress, status=status, scheduler=scheduler)
    if isinstance(data, str | Path | list) and spec.data_path is not None:    # not the file(s) the spec names
        tree.attrs[DATA_GIVEN_ATTR] = data_given(spec, panel)
    result = Fit(tree=tree, spec=spec, panel=panel)
    if check:
        result.diagnostics.warn()
    return result
