"""One small class per likelihood family.

Each family knows its link (how the linear predictor of the latent traits maps to the
observation), its nuisance parameters, its centring constant (so default priors are on a unit
scale whatever the indicator's units), how to add one vectorised likelihood term over all of its
observations, how to simulate, and how to invert its expected response for anchored thresholds.

The linear predictor of observation i of indicator j is
``eta_i = centre_j + intercept_j + sum_k loading[j, k] * theta[region_i, period_i, k]``.

The observed values reach the likelihood as a data container (``pm.Data`` named ``data_<key>``,
holding :meth:`Family.observed_values`), so a compiled model can be refitted to new values of the
same shape without compiling again (simulation-based calibration, :mod:`nexusbayes.workflows.sbc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import stats
from scipy.special import expit, gammaln, logit

from nexusbayes.model.kernels import (
    bernoulli_dist,
    bernoulli_kernel,
    between_cuts,
    binomial_dist,
    binomial_kernel,
    negbin_dist,
    negbin_kernel,
    normal_dist,
    normal_kernel,
    ordinal_dist,
    ordinal_kernel,
)
from nexusbayes.model.roles import cutpoints_name, declare
from nexusbayes.spec.sections import Priors


@dataclass(frozen=True)
class Block:
    """The observations of one likelihood term, as arrays aligned with each other.

    ``local`` indexes the indicator within the term's own indicator list ``names``.
    """

    key: str
    names: list[str]
    rows: np.ndarray       # positions in the panel frame
    labels: np.ndarray     # row labels (file lines) for the obs coordinate
    local: np.ndarray
    y: np.ndarray
    exposure: np.ndarray
    trials: np.ndarray
    rater: np.ndarray
    categories: int | None = None
    quota: np.ndarray | None = None    # each observation's quota (-1 where its indicator has none)

    @property
    def dim(self) -> str:
        """Name of the observation dimension of this term."""
        return f"obs_{self.key}"


class Family:
    """Base class: identity link with a centring constant of 0."""

    name: ClassVar[str]
    has_intercept: ClassVar[bool] = True

    def centre(self, y: np.ndarray, exposure: np.ndarray, trials: np.ndarray) -> tuple[float, float]:
        """Location and scale constants for one indicator (data-derived, fixed)."""
        return 0.0, 1.0

    def nuisance(self, block: Block, priors: Priors) -> dict:
        """Create the family's nuisance parameters (inside a model context)."""
        return {}

    def observed_values(self, block: Block) -> np.ndarray:
        """The block's observations as the likelihood takes them (float here; integer codes for discrete families)."""
        return block.y.astype("float64")

    def inputs(self, block: Block) -> dict[str, np.ndarray]:
        """Per-observation values other than the observations that come with the data (none here).

        The model holds each as a data container ``<name>_<key>`` (e.g. ``log_exposure_negbin``),
        so that a compiled model serves any dataset of the same shape.
        """
        return {}

    def kernel_tables(self, local: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Tables that the log-density kernel derives from the observed values ``y`` (none here).

        ``local`` is each observation's indicator within the block. The model holds each table as a
        data container ``<name>_<key>``: whoever swaps in new observations (``data_<key>``) must swap
        these too (:func:`nexusbayes.model.design.kernel_containers` makes them).
        """
        return {}

    def kernel(self, block: Block, eta, params: dict, inputs: dict):
        """``(args, dist, logp)`` of the likelihood's CustomDist (counts; the mixtures of :mod:`~.heaping` wrap it)."""
        raise NotImplementedError(f"{self.name} observations cannot be inflated")

    def data_only(self, block: Block, y: np.ndarray) -> np.ndarray:
        """The terms of the full log mass that depend on the data alone, which :meth:`kernel` leaves out."""
        raise NotImplementedError(f"{self.name} observations cannot be inflated")

    def likelihood(self, block: Block, eta, scale, params: dict, observed, inputs: dict):
        """Add the observed variable ``y_<key>`` over all of the block's observations.

        ``observed`` is the tensor of observed values (the ``data_<key>`` container, holding
        :meth:`observed_values`) and ``inputs`` the tensors of :meth:`inputs` by name, so that
        all of them can be swapped after compiling.
        """
        raise NotImplementedError

    def simulate(self, rng: np.random.Generator, eta: np.ndarray, scale: np.ndarray, block: Block,
                 params: dict) -> np.ndarray:
        """Draw observations given the linear predictor (NumPy; leading draw dimensions broadcast)."""
        raise NotImplementedError

    def draw_dtype(self, block: Block) -> np.dtype:
        """The dtype the posterior predictive's draws of ``block`` are stored in (whole numbers as integers).

        The smallest integer type that holds every value the family can draw for the block (int16 where its
        range allows, int32 for unbounded counts), single precision for continuous values.
        """
        raise NotImplementedError

    def logp(self, eta: np.ndarray, scale, block: Block, params: dict) -> np.ndarray:
        """Pointwise log-likelihood of the block's observations (NumPy; leading draw dims broadcast)."""
        raise NotImplementedError

    def latent_at(self, value: float, eta_offset: np.ndarray, loading: np.ndarray, centre: tuple[float, float],
                  params: dict, j: int) -> np.ndarray:
        """Latent trait value at which the expected response equals ``value`` (per draw)."""
        raise NotImplementedError


class Normal(Family):
    """Normal indicator, modelled as ``y = m + s * (eta + sigma * e)`` with data mean m and SD s."""

    name = "normal"

    def centre(self, y, exposure, trials):
        """Mean and SD of the indicator's values."""
        sd = float(np.std(y)) if len(y) > 1 else 1.0
        return float(np.mean(y)), (sd if sd > 1e-12 else 1.0)

    def nuisance(self, block, priors):
        """Residual SD per indicator, on the standardised scale."""
        return {"sigma": declare(pm.HalfNormal(f"sigma_{block.key}", priors.noise_sd, dims=f"indicator_{block.key}"),
                                 "nuisance", prior="noise_sd")}

    def likelihood(self, block, eta, scale, params, observed, inputs):
        """Normal likelihood on the data scale (its kernel: :func:`normal_kernel`)."""
        loc, sd = scale
        sigma = params["sigma"]                   # its log and precision computed per indicator, then gathered
        return pm.CustomDist(f"y_{block.key}", eta, loc, sd, sigma[block.local], (1.0 / sigma**2)[block.local],
                             pt.log(sigma)[block.local], dist=normal_dist, logp=normal_kernel, observed=observed,
                             dims=block.dim)

    def draw_dtype(self, block):
        """Single precision (the draws are rounded to it as stored)."""
        return np.dtype(np.float32)

    def simulate(self, rng, eta, scale, block, params):
        """Normal draws."""
        loc, sd = scale
        return loc + sd * (eta + params["sigma"][..., block.local] * rng.standard_normal(eta.shape))

    def logp(self, eta, scale, block, params):
        """Normal log density on the data scale."""
        loc, sd = scale
        return stats.norm.logpdf(block.y, loc + sd * eta, sd * params["sigma"][..., block.local])

    def latent_at(self, value, eta_offset, loading, centre, params, j):
        """Solve ``m + s * (offset + loading * theta) = value``."""
        loc, sd = centre
        return ((value - loc) / sd - eta_offset) / loading


class NegBin(Family):
    """Negative-binomial count with log link and log-exposure offset; centred on the overall log rate."""

    name = "negbin"

    def centre(self, y, exposure, trials):
        """Log of the pooled rate per unit of exposure."""
        return float(np.log((y.sum() + 0.5) / exposure.sum())), 1.0

    def nuisance(self, block, priors):
        """Inverse dispersion per indicator (0 is Poisson), half-normal: shrinks towards Poisson."""
        return {"inv_dispersion": declare(pm.HalfNormal(f"inv_dispersion_{block.key}", priors.inv_dispersion,
                                                        dims=f"indicator_{block.key}"), "nuisance",
                                          prior="inv_dispersion")}

    def observed_values(self, block):
        """Counts as int64."""
        return block.y.astype("int64")

    def inputs(self, block):
        """``log_exposure``: the offset of the log rate."""
        return {"log_exposure": np.log(block.exposure)}

    def kernel_tables(self, local, y):
        """The distinct (indicator, count) pairs, and the pair of each observation.

        ``lgamma(y + alpha)`` and its gradient, ``digamma``, the costliest special function while
        sampling, then run once per pair rather than once per count: counts repeat.

        Examples
        --------
        >>> t = NegBin().kernel_tables(np.array([0, 0, 1, 0]), np.array([3.0, 5.0, 3.0, 3.0]))
        >>> t["pair_indicator"].tolist(), t["pair_count"].tolist(), t["pair"].tolist()
        ([0, 0, 1], [3, 5, 3], [0, 1, 2, 0])
        """
        pairs, pair = np.unique(np.column_stack([local, y]).astype(np.int64), axis=0, return_inverse=True)
        return {"pair_indicator": pairs[:, 0], "pair_count": pairs[:, 1], "pair": pair.reshape(-1)}

    def likelihood(self, block, eta, scale, params, observed, inputs):
        """Negative-binomial likelihood with mean ``exp(eta) * exposure``."""
        args, dist, kernel = self.kernel(block, eta, params, inputs)
        return pm.CustomDist(f"y_{block.key}", *args, dist=dist, logp=kernel, observed=observed, dims=block.dim)

    def data_only(self, block, y):
        """``-log y!``."""
        return -gammaln(y + 1.0)

    def kernel(self, block, eta, params, inputs):
        """The kernel's inputs (:func:`negbin_kernel`), its draws and the kernel."""
        log_mu = eta + inputs["log_exposure"]
        alpha = 1.0 / params["inv_dispersion"]                        # per indicator: the special functions
        terms = (alpha * pt.log(alpha) - pt.gammaln(alpha))[block.local]   # run once per indicator, not per count
        table = {name: pm.Data(f"{name}_{block.key}", values)
                 for name, values in self.kernel_tables(block.local, block.y).items()}
        lgamma_y = pt.gammaln(table["pair_count"] + alpha[table["pair_indicator"]])[table["pair"]]   # once per pair
        return (log_mu, alpha[block.local], pt.log(alpha)[block.local], terms, lgamma_y), negbin_dist, negbin_kernel

    def draw_dtype(self, block):
        """int32: counts have no upper bound (a draw beyond it is stored as int64, see ``store_draws``)."""
        return np.dtype(np.int32)

    def simulate(self, rng, eta, scale, block, params):
        """Gamma-Poisson draws."""
        mu = np.exp(eta) * block.exposure
        inv = np.broadcast_to(params["inv_dispersion"][..., block.local], mu.shape)
        rate = rng.gamma(1.0 / inv, mu * inv)
        return rng.poisson(rate).astype(float)

    def logp(self, eta, scale, block, params):
        """Negative-binomial log mass, mean mu and variance mu + inv_dispersion * mu^2.

        Computed as the model's kernel is: ``lgamma(y + alpha)`` once per (indicator, count) pair and draw
        (:meth:`kernel_tables`), ``lgamma(alpha)`` and ``log(alpha)`` once per indicator and draw, and
        ``log(mu + alpha) = log(alpha) + softplus(log(mu) - log(alpha))`` (accurate near the Poisson limit).
        """
        alpha = 1.0 / params["inv_dispersion"]                 # (..., indicator)
        log_alpha = np.log(alpha)
        table = self.kernel_tables(block.local, block.y)
        lgamma_y = gammaln(table["pair_count"] + alpha[..., table["pair_indicator"]])[..., table["pair"]]
        log_mu = eta + np.log(block.exposure)
        a, log_a = alpha[..., block.local], log_alpha[..., block.local]
        softplus = np.logaddexp(0.0, log_mu - log_a)           # log(mu + alpha) - log(alpha)
        return (lgamma_y - gammaln(alpha)[..., block.local] - gammaln(block.y + 1.0) - a * softplus
                + block.y * (log_mu - log_a - softplus))

    def latent_at(self, value, eta_offset, loading, centre, params, j):
        """Solve ``offset + loading * theta = log(rate)``."""
        return (np.log(value) - eta_offset) / loading


class Binomial(Family):
    """Binomial successes out of ``trials`` with logit link, centred on the pooled proportion."""

    name = "binomial"

    def centre(self, y, exposure, trials):
        """Logit of the pooled proportion."""
        return float(logit((y.sum() + 0.5) / (trials.sum() + 1.0))), 1.0

    def observed_values(self, block):
        """Successes as int64."""
        return block.y.astype("int64")

    def inputs(self, block):
        """``trials``: the number of trials of each observation (int64)."""
        return {"trials": block.trials.astype("int64")}

    def likelihood(self, block, eta, scale, params, observed, inputs):
        """Binomial likelihood."""
        args, dist, kernel = self.kernel(block, eta, params, inputs)
        return pm.CustomDist(f"y_{block.key}", *args, dist=dist, logp=kernel, observed=observed, dims=block.dim)

    def kernel(self, block, eta, params, inputs):
        """The kernel's inputs (:func:`binomial_kernel`), its draws and the kernel."""
        return (eta, inputs["trials"]), binomial_dist, binomial_kernel

    def data_only(self, block, y):
        """``log C(n, y)``."""
        return gammaln(block.trials + 1.0) - gammaln(y + 1.0) - gammaln(block.trials - y + 1.0)

    def draw_dtype(self, block):
        """int16 when every observation's trials fit in it (successes never exceed the trials), else int32."""
        small = len(block.trials) == 0 or np.max(block.trials) <= np.iinfo(np.int16).max
        return np.dtype(np.int16 if small else np.int32)

    def simulate(self, rng, eta, scale, block, params):
        """Binomial draws."""
        return rng.binomial(block.trials.astype(int), expit(eta)).astype(float)

    def logp(self, eta, scale, block, params):
        """Binomial log mass, with log expit(+-eta) as log-sigmoids (stable for large |eta|, as the kernel's)."""
        n, k = block.trials, block.y
        log_choose = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
        return log_choose - k * np.logaddexp(0.0, -eta) - (n - k) * np.logaddexp(0.0, eta)

    def latent_at(self, value, eta_offset, loading, centre, params, j):
        """Solve ``expit(offset + loading * theta) = proportion``."""
        return (logit(value) - eta_offset) / loading


class Bernoulli(Binomial):
    """Binary indicator with logit link."""

    name = "bernoulli"

    def centre(self, y, exposure, trials):
        """Logit of the proportion of ones."""
        return float(logit((y.sum() + 0.5) / (len(y) + 1.0))), 1.0

    def inputs(self, block):
        """None: every observation is one trial."""
        return {}

    def kernel(self, block, eta, params, inputs):
        """The kernel's input (:func:`bernoulli_kernel`: one softplus per observation), its draws and the kernel."""
        return (eta,), bernoulli_dist, bernoulli_kernel

    def simulate(self, rng, eta, scale, block, params):
        """Bernoulli draws."""
        return (rng.random(eta.shape) < expit(eta)).astype(float)

    def logp(self, eta, scale, block, params):
        """Bernoulli log mass (log-sigmoid, stable for large |eta|)."""
        return -np.logaddexp(0.0, np.where(block.y == 1, -eta, eta))


class Ordinal(Family):
    """Ordered-logit rating 1..K with ordered cut-points per indicator, shifted per rater.

    Cut-points are a centre plus cumulated positive gaps (Gamma(3, 2.5), mean 1.2), centred, so
    they are ordered by construction. No intercept (the cut-points carry the location). With a
    ``rater`` column, each rater's cut-points are the indicator's shifted by
    ``rater_sd * z[indicator, rater]``: partial pooling of rater severity. Observed values enter as
    0..K-1 and are reported as 1..K.
    """

    name = "ordinal"
    has_intercept = False

    def nuisance(self, block, priors):
        """Ordered cut-points per indicator (centre + cumulated gaps), and rater shifts when there are raters."""
        dims = (f"indicator_{block.key}", f"cut_{block.key}")
        centre = declare(pm.Normal(f"cut_centre_{block.key}", 0.0, priors.cutpoint, dims=f"indicator_{block.key}"),
                         "cutpoint", prior="cutpoint")
        gaps = declare(pm.Gamma(f"cut_gap_{block.key}", alpha=3.0, beta=2.5, dims=dims), "cutpoint")   # mean 1.2 logits
        steps = pt.cumsum(gaps, axis=-1)
        cut = declare(pm.Deterministic(cutpoints_name(block.key),
                                       centre[:, None] + steps - steps.mean(axis=-1, keepdims=True), dims=dims),
                      "cutpoint")
        params = {"cutpoints": cut}
        if (block.rater >= 0).any():
            params["rater_sd"] = declare(pm.HalfNormal(f"rater_sd_{block.key}", priors.rater_sd), "scale",
                                         prior="rater_sd")
            z = declare(pm.Normal(f"rater_z_{block.key}", 0.0, 1.0, dims=(f"indicator_{block.key}", "rater")), "latent")
            params["rater_shift"] = declare(pm.Deterministic(f"rater_shift_{block.key}", params["rater_sd"] * z,
                                                             dims=(f"indicator_{block.key}", "rater")), "cutpoint")
        return params

    @staticmethod
    def _shift(block, params):
        """Each observation's rater shift of the cut-points (0 without a rater)."""
        if "rater_shift" not in params:
            return np.zeros(len(block.local))
        has = block.rater >= 0
        return params["rater_shift"][..., block.local, np.where(has, block.rater, 0)] * has

    @classmethod
    def _cuts(cls, block, params):
        """Each observation's cut-points, (..., obs, K - 1)."""
        return params["cutpoints"][..., block.local, :] + cls._shift(block, params)[..., None]

    def observed_values(self, block):
        """Ratings 1..K as the int64 codes 0..K-1."""
        return (block.y - 1).astype("int64")

    def likelihood(self, block, eta, scale, params, observed, inputs):
        """Ordered-logistic likelihood on the codes 0..K-1."""
        shift = self._shift(block, params)
        local, last = block.local, block.categories - 1

        def kernel(value, eta, cut_obs, cut, shift):
            # flat gathers from the small (indicator, K - 1) and (indicator, K) tables (a 1-d gather and
            # scatter-add are the fast ones): the gradient scatters into them, not into (obs, K)
            flat = cut.ravel()
            lower = flat[local * last + pt.maximum(value - 1, 0)]
            upper = flat[local * last + pt.minimum(value, last - 1)]
            between = between_cuts(cut).ravel()[local * (last + 1) + value]
            return ordinal_kernel(eta - shift, lower, upper, between, pt.eq(value, 0), pt.eq(value, last))

        return pm.CustomDist(f"y_{block.key}", eta, self._cuts(block, params), params["cutpoints"], shift,
                             dist=ordinal_dist, logp=kernel, observed=observed, dims=block.dim)

    def draw_dtype(self, block):
        """int16: ratings 1..K."""
        return np.dtype(np.int16)

    def simulate(self, rng, eta, scale, block, params):
        """Ordered-logit draws on 1..K: one plus the number of (shifted) cut-points below the latent value."""
        latent = eta + rng.logistic(size=eta.shape) - self._shift(block, params)
        rating = np.ones_like(latent)
        for j in range(block.categories - 1):          # a cut-point at a time: (draws, obs), not (draws, obs, K - 1)
            rating += latent > params["cutpoints"][..., block.local, j]
        return rating

    def logp(self, eta, scale, block, params):
        """Ordered-logit log mass: log(expit(eta - c_{y-1}) - expit(eta - c_y)) with c_0 = -inf, c_K = inf."""
        k, n_cut = block.y.astype(int), block.categories - 1      # ratings 1..K
        cut, shift = params["cutpoints"], self._shift(block, params)   # gathered per observation: (..., obs)
        lower = np.where(k == 1, -np.inf, cut[..., block.local, np.maximum(k - 2, 0)] + shift)
        upper = np.where(k == n_cut + 1, np.inf, cut[..., block.local, np.minimum(k - 1, n_cut - 1)] + shift)
        # log(expit(eta - lower) - expit(eta - upper)), computed on the log scale
        log_a = -np.logaddexp(0.0, -(eta - lower))
        log_b = -np.logaddexp(0.0, -(eta - upper))
        # log(1 - exp(x)) for x = log_b - log_a <= 0: log(-expm1(x)) near 0, where 1 - exp(x) would cancel
        x = log_b - log_a
        with np.errstate(divide="ignore"):
            return log_a + np.where(x > -np.log(2.0), np.log(-np.expm1(np.minimum(x, 0.0))), np.log1p(-np.exp(x)))

    def latent_at(self, value, eta_offset, loading, centre, params, j):
        """Trait at which the expected rating ``1 + sum_m expit(loading*theta - c_m)`` equals ``value``.

        Solved by bisection, draw by draw (the expected rating is monotone in theta).
        """
        cut = params["cutpoints"]  # (draws, K-1) for this indicator
        lo = np.full(loading.shape, -50.0)
        hi = np.full(loading.shape, 50.0)
        for _ in range(80):
            mid = (lo + hi) / 2
            expected = 1.0 + expit(loading[:, None] * mid[:, None] - cut).sum(axis=1)
            above = expected > value
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid)
        return (lo + hi) / 2


#: Nuisance parameter names; the posterior holds them as ``<name>_<term key>``.
NUISANCE = ("sigma", "inv_dispersion", "cutpoints", "rater_shift")

FAMILIES: dict[str, Family] = {f.name: f for f in (Normal(), NegBin(), Binomial(), Bernoulli(), Ordinal())}
