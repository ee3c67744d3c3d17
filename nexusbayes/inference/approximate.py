"""A fast, approximate look (variational inference): labelled approximate, and measured against NUTS.

:func:`approximate` fits the same model with automatic differentiation variational inference
(mean-field ADVI by default, full-rank on request) and draws from the fitted approximation. It
takes seconds where NUTS takes minutes, which is what a first look at new data or a new spec needs;
it is **not** a substitute for :func:`nexusbayes.fit.fit`:

* there are no convergence diagnostics (no chains to compare, no divergences to count), only the
  ELBO history;
* mean-field ADVI ignores posterior correlations and typically makes intervals too narrow, so
  P(type) near 0.5 is overconfident.

:func:`distance` says how far an approximation is from a NUTS fit of the same spec and data (the
benchmark reports it for every size).

Examples
--------
>>> from nexusbayes.model.simulate import simulate
>>> sim = simulate(n_regions=3, n_periods=4, seed=1)
>>> quick = approximate(sim.spec, sim.panel, n=3000, seed=1, progress=False)  # doctest: +SKIP
>>> print(quick.text())  # doctest: +SKIP
APPROXIMATE (advi, 3000 iterations): variational inference, no convergence diagnostics, ...

(Skipped as doctests: compiling ADVI takes about a minute; ``tests/inference/test_approximate.py`` runs the same.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from nexusbayes.analysis import typology
from nexusbayes.analysis.recovery import interval_covers
from nexusbayes.constants import CI_PROB
from nexusbayes.data.panel import Panel
from nexusbayes.data.resolve import resolve_covariates, resolve_panel, resolve_spec
from nexusbayes.errors import SpecError
from nexusbayes.model.build import Model
from nexusbayes.spec.document import Spec

METHODS = ("advi", "fullrank_advi")


@dataclass
class Approximation:
    """Draws from a variational approximation of the posterior, with what is needed to read them.

    Attributes
    ----------
    tree : xarray.DataTree
        Group ``posterior`` (one chain) and attrs ``approximate`` (the method), ``iterations``,
        ``seconds_compile_and_fit``, ``seconds_draws`` and ``final_loss`` (mean negative ELBO over the last
        10% of iterations).
    spec : Spec
    panel : Panel
    loss : numpy.ndarray
        Negative ELBO per iteration.
    """

    tree: xr.DataTree
    spec: Spec
    panel: Panel
    loss: np.ndarray

    @property
    def method(self) -> str:
        """The variational family: ``advi`` (mean-field) or ``fullrank_advi``."""
        return str(self.tree.attrs["approximate"])

    def banner(self) -> str:
        """The one-line label every printed approximate result carries."""
        return (f"APPROXIMATE ({self.method}, {self.tree.attrs['iterations']} iterations): variational "
                "inference, no convergence diagnostics, intervals usually too narrow; for quick looks only, "
                "confirm with `nexusbayes fit`")

    def type_probabilities(self) -> xr.DataArray:
        """Approximate P(type) per region-period (see :func:`nexusbayes.analysis.typology.type_probabilities`)."""
        return typology.type_probabilities(self.tree, self.spec)

    def types_table(self) -> pd.DataFrame:
        """Tidy approximate P(type) per region-period with the modal type."""
        return typology.types_table(self.type_probabilities(), self.panel.country_of)

    def group_era_summary(self) -> pd.DataFrame:
        """Approximate type probabilities by the spec's region groups and eras."""
        return typology.group_era_summary(self.type_probabilities(), self.spec)

    def text(self) -> str:
        """What ``nexusbayes quick`` prints: the banner, the data, the time and the types by group and era."""
        from nexusbayes.constants import TYPES

        panel, attrs = self.panel, self.tree.attrs
        lines = [self.banner(),
                 f"{self.spec.name!r}: {panel.n_obs} observations, {len(panel.regions)} regions, "
                 f"{len(panel.periods)} periods; compile and fit {attrs['seconds_compile_and_fit']:.1f} s, "
                 f"draws {attrs['seconds_draws']:.1f} s; final loss (negative ELBO) {attrs['final_loss']:.1f}"]
        if self.spec.has_typology:
            groups = self.group_era_summary()
            if len(groups):
                shown = groups[["group", "era", *TYPES, "modal_type"]].copy()
                shown[list(TYPES)] = shown[list(TYPES)].round(2)
                lines += ["\nApproximate type probabilities by region group and era:", shown.to_string(index=False)]
            else:
                counts = self.types_table()["modal_type"].value_counts().reindex(list(TYPES), fill_value=0)
                lines.append("Approximate modal types over region-periods: "
                             + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return "\n".join(lines)

    def trait_summary(self) -> pd.DataFrame:
        """Approximate posterior mean and equal-tailed interval of every trait per region-period."""
        return typology.trait_summary(self.tree, self.panel.country_of)


def approximate(spec: Spec | str, data=None, *, method: str = "advi", n: int = 20_000, draws: int = 1000,
                seed: int | None = None, progress: bool = True) -> Approximation:
    """Fit a variational approximation of the posterior (ADVI) and draw from it.

    Parameters
    ----------
    spec : Spec or path
    data : path, DataFrame or Panel, optional
        Default: the spec's ``data``.
    method : {"advi", "fullrank_advi"}
        Mean-field (fast, ignores correlations) or full-rank (slower, captures them) ADVI.
    n : int
        Optimisation iterations.
    draws : int
        Draws from the fitted approximation.
    seed : int, optional
        Default: the spec's sampler seed.
    progress : bool
        Show the optimisation's progress bar.

    Returns
    -------
    Approximation
    """
    if method not in METHODS:
        raise SpecError(f"unknown approximation {method!r}; choose one of {', '.join(METHODS)}")
    if n < 100 or draws < 10:
        raise SpecError(f"n = {n} iterations and draws = {draws}: use at least 100 iterations and 10 draws")
    given = spec
    spec, data_path = resolve_spec(spec)
    panel = resolve_panel(spec, data, data_path, covariates=resolve_covariates(given, spec))
    seed = spec.sampler.seed if seed is None else seed
    model = Model(spec, panel)
    start = time.perf_counter()
    with model.pymc:
        approx = pm.fit(n=n, method=method, random_seed=seed, progressbar=progress)
    fitted = time.perf_counter()
    tree = approx.sample(draws=draws, random_seed=seed + 1, return_inferencedata=True)
    posterior = tree["posterior"].to_dataset()
    tree = xr.DataTree.from_dict({"posterior": posterior})
    tree = model.orient(tree)
    loss = np.asarray(approx.hist, dtype=float)
    tree.attrs.update({"approximate": method, "iterations": n, "seconds_compile_and_fit": fitted - start,
                       "seconds_draws": time.perf_counter() - fitted, "seed": seed,
                       "final_loss": float(np.mean(loss[-max(1, n // 10):]))})
    return Approximation(tree=tree, spec=spec, panel=panel, loss=loss)


def distance(approx: Approximation, reference) -> dict:
    """How far an approximation is from a NUTS fit (``reference``, a :class:`~nexusbayes.fit.Fit`) of the same data.

    Both are compared on the traits and types.

    Returns
    -------
    dict
        ``theta_mean_error_sd``: mean over region-period-traits of |mean difference| / NUTS SD, and its
        ``..._max``; ``theta_sd_ratio``: median approximate SD / NUTS SD (< 1: too narrow);
        ``theta_coverage``: share of NUTS posterior means inside the approximation's central
        ``CI_PROB`` interval; ``type_max_abs_diff``: largest |P(type) difference|; ``modal_type_agreement``:
        share of region-periods with the same modal type.
    """
    a = approx.tree["posterior"]["theta"]
    b = reference.tree["posterior"]["theta"]
    dims = ("chain", "draw")
    sd_b = b.std(dims)
    error = np.abs(a.mean(dims) - b.mean(dims)) / sd_b
    out = {"theta_mean_error_sd": float(error.mean()), "theta_mean_error_sd_max": float(error.max()),
           "theta_sd_ratio": float((a.std(dims) / sd_b).median()),
           "theta_coverage": float(interval_covers(a, b.mean(dims), CI_PROB, dims).mean())}
    if approx.spec.has_typology:
        pa, pb = approx.type_probabilities(), reference.type_probabilities()
        out["type_max_abs_diff"] = float(np.abs(pa - pb).max())
        out["modal_type_agreement"] = float((pa.argmax("type") == pb.argmax("type")).mean())
    return out
