"""The filtering model of an update: the traits of new periods given a fit's held parameters (no sampling here).

A fit updated with new periods (:func:`nexusbayes.inference.update.update`) keeps its measurement
parameters (loadings, intercepts, cut-points, rater shifts, noise and dispersion, country offsets), its
process scales, persistence, trait correlation and standardisation *held* at ``K`` posterior draws (or at
one summary of them). The traits of the last fitted period get a normal approximation of their posterior
as prior (mean and covariance over the fit's draws), so the new data can move them, as a refit would:
without it, each copy would start from one fixed draw of them that the new data could not reweight, and
the new traits' posterior would come out too wide. Given held draw ``k`` the new traits
follow the fitted dynamics one step at a time, exactly as :mod:`nexusbayes.analysis.forecast` continues them::

    theta[k, h] = a_h theta[k, h-1] + (a_h - 1) mean_over_sd[k] + inv_sd[k] (country step + region step)

(``a_h = 1`` for a random walk, ``phi ** gap`` for AR(1); the steps non-centred, ``scale * factor * L z`` with
``z`` standard normal, Student-t for ``student_t_rw``, the region steps summing to zero within each country).
With ``[covariates]`` it is the traits less their covariate terms (``Held.terms``: the held effects times the
fit's and the new periods' covariates) that follow these dynamics, the terms added back at each new period.
Only the new observations enter the likelihood, through the held measurement parameters. The ``K``
copies of the new innovations (dim ``held_draw``) are independent given the held draws, so one NUTS run
samples all of them: copy ``k`` is a draw of the new traits given held draw ``k``, and over ``k`` the
draws carry the held parameters' uncertainty (the posterior of the new traits given the old data, under
the approximation that the new data do not move what is held).

The likelihood is one ``pm.Potential`` per likelihood term (``y_<key>``) over the new observations and the
held draws, by the kernels of :mod:`nexusbayes.model.kernels` (the terms that depend on the data alone
are left out, as there).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import gammaln

from nexusbayes.model.kernels import binomial_kernel, negbin_kernel, normal_kernel, ordinal_kernel
from nexusbayes.model.roles import COUNTRY_THETA, THETA, Roles, declare

#: The dim of the held copies.
HELD_DIM = "held_draw"


@dataclass(frozen=True)
class Held:
    """What an update holds fixed, each array with a leading held-draw axis ``K``.

    Attributes
    ----------
    last_mean : ndarray (region * trait,)
    last_chol : ndarray (region * trait, region * trait)
        Mean and Cholesky factor of the covariance of the traits in the last fitted period over the fit's
        draws: their prior here (a normal approximation of their posterior), so the new data can move them.
    region_country : ndarray (region,)
        Each fitted region's country (the fit's ``panel.region_country``); :attr:`country_average` is built from it.
    chol : ndarray (K, trait, trait)
        Cholesky factor of the trait correlation.
    country_scale, region_scale, inv_sd, mean_over_sd : ndarray (K, trait)
        See :class:`nexusbayes.analysis.forecast.Dynamics`.
    phi : ndarray (K, trait) or None
        AR(1) persistence.
    loading : ndarray (K, indicator, trait)
    intercept : ndarray (K, indicator)
    offset : ndarray (K, indicator, country) or None
        Country offsets.
    nuisance : dict
        Per likelihood term key, the family's parameters by name (``sigma``, ``inv_dispersion``,
        ``cutpoints``, ``rater_shift``), each (K, indicator of the term, ...).
    source_draws : ndarray (K,)
        The held draws' positions in the fit's stacked (chain, draw) posterior (-1 for a summary).
    terms, country_terms : ndarray (K, region | country, 2 + new period, trait) or None
        With ``[covariates]``: the covariate terms of the traits (the held effects times the covariates) at the
        last two fitted periods and the new ones; the traits less them follow the dynamics.
    """

    last_mean: np.ndarray
    last_chol: np.ndarray
    region_country: np.ndarray
    chol: np.ndarray
    country_scale: np.ndarray
    region_scale: np.ndarray
    inv_sd: np.ndarray
    mean_over_sd: np.ndarray
    phi: np.ndarray | None
    loading: np.ndarray
    intercept: np.ndarray
    offset: np.ndarray | None
    nuisance: dict
    source_draws: np.ndarray
    terms: np.ndarray | None = None
    country_terms: np.ndarray | None = None

    @property
    def size(self) -> int:
        """``K``, the number of held copies."""
        return self.inv_sd.shape[0]

    @property
    def country_average(self) -> np.ndarray:
        """(country, region): each country's traits as the average of its regions' (the model's country path)."""
        groups = np.asarray(self.region_country)
        member = (groups[None, :] == np.arange(groups.max() + 1)[:, None]).astype(float)
        return member / member.sum(1, keepdims=True)


@dataclass(frozen=True)
class NewRegions:
    """Regions new to the fit, in its countries (see :mod:`nexusbayes.inference.update_regions`).

    Attributes
    ----------
    old_index : ndarray (fitted region,)
        Each fitted region's position among the combined regions (the model's ``region`` coordinate).
    new_index, new_country : ndarray (new region,)
        Each new region's position and its country.
    share : ndarray (new region,)
        The variance factor of its deviation from the held country path.
    last_chol : ndarray (K, trait, trait)
        Cholesky factor of a region deviation's marginal covariance at the last fitted period, per held copy.
    """

    old_index: np.ndarray
    new_index: np.ndarray
    new_country: np.ndarray
    share: np.ndarray
    last_chol: np.ndarray


@dataclass(frozen=True)
class NewRows:
    """The new observations as arrays: indices into the fit's coordinates and each term's values.

    ``period`` counts the new periods from 0; ``blocks`` maps a term key to (rows, local indicator, y,
    exposure, trials, rater, family name) of its observations.
    """

    region: np.ndarray
    period: np.ndarray
    country: np.ndarray
    indicator: np.ndarray
    blocks: dict


class UpdateModel:
    """The filtering model of new periods given held draws: what :func:`nexusbayes.inference.sample.sample` needs.

    Parameters
    ----------
    held : Held
    rows : NewRows
    centres : ndarray (indicator, 2)
        The fit's centring constants (its own data's, not the new data's: the held intercepts are relative to them).
    normal : ndarray (indicator,) bool
        Whether each indicator is normal (centred on the data scale).
    gaps : ndarray (new period,)
        Years from each period to the next, the first from the last fitted period.
    region_country : ndarray (region,)
    zero_sum : ndarray (region, contrast)
        The fit's orthonormal sum-to-zero map of region deviations (empty with one region per country).
    kind : str
        The dynamics' kind; ``df`` its Student-t degrees of freedom.
    coords : dict
        ``country``, ``region``, ``trait`` and ``period`` (the new periods' labels).
    spec, panel
        The fit's spec and the new rows' panel (for the sampler's checks and messages).
    regions : NewRegions, optional
        Regions new to the fit; ``coords["region"]`` are then the combined data's regions, and ``region_country``
        and ``zero_sum`` stay the fit's.
    """

    def __init__(self, held: Held, rows: NewRows, centres, normal, gaps, region_country, zero_sum, kind: str,
                 df: float, coords: dict, spec, panel, regions: NewRegions | None = None):
        self.held, self.rows, self.centres, self.normal = held, rows, np.asarray(centres), np.asarray(normal)
        self.gaps, self.region_country, self.zero_sum = np.asarray(gaps, float), np.asarray(region_country), zero_sum
        self.kind, self.df, self.coords = kind, df, coords
        self.spec, self.panel, self.regions = spec, panel, regions
        self._pymc = None

    @property
    def cache_salt(self) -> str:
        """What besides the new rows' structure the compiled model depends on (the values held as constants too).

        The held values are data containers (``held_*``), swapped into a compiled model of the same shapes. The new
        observations (values, exposures, trials, raters) and the fit's centring constants are constants in the
        graph (:meth:`_likelihood`), so their values are in the key: new data with the rows of an earlier update
        (a corrected value, say) compile a model of their own instead of reusing one that holds the old values.
        """
        digest = hashlib.sha256(f"nexusbayes update {self.kind} {self.df} {self.held.phi is None} "
                                f"{self.held.terms is None}".encode())
        for value in (self.held.last_chol, self.held.loading, self.held.country_average, self.zero_sum,
                      self.held.terms, self.held.country_terms,
                      self.centres, *(v for term in self.held.nuisance.values() for v in term.values())):
            digest.update(str(np.shape(value)).encode())
        digest.update(np.ascontiguousarray(self.gaps).tobytes() + np.ascontiguousarray(self.zero_sum).tobytes()
                      + np.ascontiguousarray(self.held.country_average).tobytes())
        for key, (_, local, y, exposure, trials, rater, family) in self.rows.blocks.items():
            digest.update(f"{key} {family}".encode())
            for value in (local, y, exposure, trials, rater):
                digest.update(np.ascontiguousarray(value).tobytes())
        for value in (self.centres, self.normal):
            digest.update(np.ascontiguousarray(value).tobytes())
        if self.regions is not None:
            for value in (self.regions.old_index, self.regions.new_index, self.regions.new_country, self.regions.share):
                digest.update(np.ascontiguousarray(value).tobytes())
        return digest.hexdigest()

    @property
    def pymc(self) -> pm.Model:
        """The PyMC model (built on first use)."""
        if self._pymc is None:
            self._pymc = self._graph()
        return self._pymc

    @property
    def roles(self) -> Roles:
        """The role of every variable."""
        return Roles.of(self.pymc)

    def orient(self, tree):
        """Nothing to orient: the held loadings fix the new traits' signs."""
        return tree

    def _innovations(self, name: str, dims: tuple[str, ...]):
        if self.kind == "student_t_rw":
            return declare(pm.StudentT(name, nu=self.df, mu=0.0, sigma=1.0, dims=dims), "latent", reflect="trait")
        return declare(pm.Normal(name, 0.0, 1.0, dims=dims), "latent", reflect="trait")

    def _graph(self) -> pm.Model:
        held, n_new = self.held, len(self.gaps)
        coords = {HELD_DIM: np.arange(held.size), **self.coords}
        has_regions = self.zero_sum.shape[1] > 0
        if has_regions:
            coords["region_contrast"] = np.arange(self.zero_sum.shape[1])
        with pm.Model(coords=coords) as model:
            chol = pm.Data("held_chol", held.chol)                                 # (K, trait, trait)
            z_c = self._innovations("country_z", (HELD_DIM, "country", "period", "trait"))
            c_steps = (z_c[..., None, :] * chol[:, None, None]).sum(-1)          # L z per copy
            if has_regions:
                z_r = self._innovations("region_z", (HELD_DIM, "region_contrast", "period", "trait"))
                r_steps = (z_r[..., None, :] * chol[:, None, None]).sum(-1)
                r_steps = pt.tensordot(self.zero_sum, r_steps, axes=[[1], [1]]).dimshuffle(1, 0, 2, 3)
            fitted = list(self.coords["region"])
            if self.regions is not None:
                fitted = [fitted[i] for i in self.regions.old_index]
            n_region, n_trait = len(fitted), len(self.coords["trait"])
            model.add_coord("last_cell", [f"{r}:{k}" for r in fitted for k in self.coords["trait"]])
            z_last = declare(pm.Normal("last_z", 0.0, 1.0, dims=(HELD_DIM, "last_cell")), "latent", reflect="trait")
            last_chol = pm.Data("held_last_chol", held.last_chol)
            theta = pm.Data("held_last_mean", held.last_mean) + pt.dot(z_last, last_chol.T)
            theta = theta.reshape((held.size, n_region, n_trait))
            country = (held.country_average[None, :, :, None] * theta[:, None, :, :]).sum(axis=2)
            inv_sd = pm.Data("held_inv_sd", held.inv_sd)[:, None, :]
            new = self._new_regions(model, chol, country, inv_sd)
            declare(pm.Deterministic("theta_last", new.combine(theta, 0), dims=(HELD_DIM, "region", "trait")),
                    "trait", reflect="trait")
            declare(pm.Deterministic("country_theta_last", country, dims=(HELD_DIM, "country", "trait")), "trait",
                    reflect="trait")
            terms = country_terms = None                                   # the covariate terms, if any
            if held.terms is not None:
                terms = pm.Data("held_terms", held.terms)
                country_terms = pm.Data("held_country_terms", held.country_terms)
                theta, country = theta - terms[:, :, 1], country - country_terms[:, :, 1]   # these follow the dynamics
            pull = pm.Data("held_mean_over_sd", held.mean_over_sd)[:, None, :]
            country_scale = pm.Data("held_country_scale", held.country_scale)
            region_scale = pm.Data("held_region_scale", held.region_scale)
            phi = None if held.phi is None else pm.Data("held_phi", held.phi)
            out_r, out_c = [], []
            for h, gap in enumerate(self.gaps):
                if phi is None:
                    a, factor = 1.0, np.sqrt(gap)
                else:
                    a = (phi ** gap)[:, None, :]
                    factor = pt.sqrt(1.0 - (phi ** gap) ** 2)
                step_c = (country_scale * factor)[:, None, :] * c_steps[:, :, h]
                step_r = step_c[:, self.region_country]
                if has_regions:
                    step_r = step_r + (region_scale * factor)[:, None, :] * r_steps[:, :, h]
                country = a * country + (a - 1.0) * pull + inv_sd * step_c
                theta = a * theta + (a - 1.0) * pull + inv_sd * step_r
                new.step(h, a, (region_scale * factor)[:, None, :], country)
                out_r.append(new.combine(theta if terms is None else theta + terms[:, :, h + 2], h + 1))
                out_c.append(country if terms is None else country + country_terms[:, :, h + 2])
            theta = declare(pm.Deterministic(THETA, pt.stack(out_r, axis=2), dims=(HELD_DIM, "region", "period",
                                                                                 "trait")), "trait", reflect="trait")
            declare(pm.Deterministic(COUNTRY_THETA, pt.stack(out_c, axis=2),
                                     dims=(HELD_DIM, "country", "period", "trait")), "trait", reflect="trait")
            assert n_new == len(out_r)
            self._likelihood(theta)
        return model

    def _new_regions(self, model: pm.Model, chol, country, inv_sd) -> _Placed:
        """The new regions' deviations (:class:`_Placed`): their last fitted period's value and their steps."""
        if self.regions is None:
            return _Placed(None, None, None, None, None, None)
        nr = self.regions
        model.add_coord("new_region", [self.coords["region"][i] for i in nr.new_index])
        root = np.sqrt(nr.share)[None, :, None]
        z_last = declare(pm.Normal("new_region_z_last", 0.0, 1.0, dims=(HELD_DIM, "new_region", "trait")), "latent",
                         reflect="trait")
        dev = root * (z_last[..., None, :] * pm.Data("held_new_region_chol", nr.last_chol)[:, None]).sum(-1)
        z = self._innovations("new_region_z", (HELD_DIM, "new_region", "period", "trait"))
        steps = root[..., None, :] * (z[..., None, :] * chol[:, None, None]).sum(-1)        # (K, new, period, k)
        order = np.argsort(np.concatenate([nr.old_index, nr.new_index]))
        return _Placed(nr.new_country, order, inv_sd, steps, [dev], [country[:, nr.new_country] + inv_sd * dev])

    def _likelihood(self, theta) -> None:
        """One potential per likelihood term: the new observations' log-density under every held draw."""
        held, rows = self.held, self.rows
        for key, (where, local, y, exposure, trials, rater, family) in rows.blocks.items():
            j, r, t, c = rows.indicator[where], rows.region[where], rows.period[where], rows.country[where]
            eta = held.intercept[:, j] + np.where(self.normal[j], 0.0, self.centres[j, 0])
            if held.offset is not None:
                eta = eta + held.offset[:, j, c]
            data = lambda name, value, key=key: pm.Data(f"held_{name}_{key}", value)   # noqa: E731
            eta = data("eta", eta) + (data("loading", held.loading[:, j]) * theta[:, r, t]).sum(-1)   # (K, obs)
            params = held.nuisance.get(key, {})
            if family == "normal":
                sigma = params["sigma"][:, local]
                logp = normal_kernel(y, eta, self.centres[j, 0], self.centres[j, 1], data("sigma", sigma),
                                     data("precision", 1.0 / sigma**2), data("log_sigma", np.log(sigma)))
            elif family == "negbin":
                alpha = 1.0 / params["inv_dispersion"][:, local]
                logp = negbin_kernel(y, eta + np.log(exposure), data("alpha", alpha), data("log_alpha", np.log(alpha)),
                                     data("terms", alpha * np.log(alpha) - gammaln(alpha)),
                                     data("lgamma_y", gammaln(y + alpha)))
            elif family in ("binomial", "bernoulli"):
                logp = binomial_kernel(y, eta, trials if family == "binomial" else 1.0)
            else:
                lower, upper, between, first, last = _ordinal_bounds(params, local, y, rater)
                logp = ordinal_kernel(eta, data("lower", lower), data("upper", upper), data("between", between),
                                      first, last)
            pm.Potential(f"y_{key}", logp.sum())


@dataclass
class _Placed:
    """The new regions' traits in the graph, period by period (all None without new regions)."""

    country: np.ndarray | None
    order: np.ndarray | None       # the combined regions from [fitted regions, new regions]
    inv_sd: object
    steps: object                  # (K, new, period, k) correlated steps, before their scale
    dev: list | None               # raw deviations from the held country path, per period from the last fitted
    theta: list | None

    def step(self, h: int, a, scale, country) -> None:
        """Carry the deviations one step (``scale`` the held region scale times the step's factor)."""
        if self.order is not None:
            self.dev.append(a * self.dev[-1] + scale * self.steps[:, :, h])
            self.theta.append(country[:, self.country] + self.inv_sd * self.dev[-1])

    def combine(self, theta, h: int):
        """The fitted regions' traits with the new ones' at position ``h`` (0: the last fitted period)."""
        if self.order is None:
            return theta
        return pt.concatenate([theta, self.theta[h]], axis=1)[:, self.order]


def _ordinal_bounds(params: dict, local: np.ndarray, y: np.ndarray, rater: np.ndarray):
    """The held cut-points around each rating, (K, obs): lower, upper, their ``between`` term, first, last."""
    cut = params["cutpoints"][:, local]                                     # (K, obs, K_cat - 1)
    if "rater_shift" in params:
        has = rater >= 0
        cut = cut + (params["rater_shift"][:, local, np.where(has, rater, 0)] * has)[..., None]
    code = y.astype(int) - 1                                                # 0..K_cat-1
    n_cut = cut.shape[-1]
    first, last = code == 0, code == n_cut
    lower = np.take_along_axis(cut, np.maximum(code - 1, 0)[None, :, None], axis=-1)[..., 0]
    upper = np.take_along_axis(cut, np.minimum(code, n_cut - 1)[None, :, None], axis=-1)[..., 0]
    with np.errstate(divide="ignore"):
        between = np.where(first | last, 0.0, np.log(-np.expm1(np.minimum(lower - upper, -1e-300))))
    return lower, upper, between, first, last
