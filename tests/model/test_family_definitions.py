"""Every copy of every family against its one definition, the plain PyMC distribution (issue 22).

Each family is written four times: the PyMC likelihood the sampler differentiates (``Family.likelihood``,
a CustomDist with a fast kernel but for Bernoulli), a NumPy ``logp`` and a NumPy ``simulate``. The
reference for all of them is PyMC's own distribution with the family's link, evaluated by PyTensor:

* normal: ``pm.Normal(mu=loc + sd * eta, sigma=sd * sigma)``
* negbin: ``pm.NegativeBinomial(mu=exp(eta) * exposure, alpha=1 / inv_dispersion)``
* binomial: ``pm.Binomial(n=trials, logit_p=eta)``
* bernoulli: ``pm.Bernoulli(logit_p=eta)``
* ordinal: ``pm.OrderedLogistic(eta, cutpoints + rater shift)`` on the codes 0..K-1 (ratings 1..K)

For every family and every case of :data:`CASES` (a grid of parameter ranges):

1. ``test_kernel``: the model's log-density (built by ``Family.likelihood`` exactly as
   :func:`nexusbayes.model.build.build_model` does) is the reference's up to the data-only terms the kernels
   leave out (:func:`dropped`), and its gradient with respect to ``eta`` and every nuisance parameter
   is the reference's (``pytensor.grad`` of both);
2. ``test_numpy_logp``: ``Family.logp`` is the reference's, with a leading draw dimension;
3. ``test_simulate``: ``Family.simulate`` draws (fixed seed) lie in the support and have the
   reference's distribution: each draw's randomised probability integral transform under the reference
   CDF (``pm.logcdf``) is uniform exactly when the draws follow the reference, so a chi-square test of
   the transforms in 10 equal bins per observation (all observations pooled into one statistic) must
   not reject at p = 1e-4.

Tolerances: values and gradients agree entry by entry to a relative 1e-8 (``RTOL``), with an absolute
floor of 1e-12 times the largest entry compared (``ATOL``) for entries that are all but 0, where no
relative comparison is meaningful. The grid stops where double precision itself, not the copies, limits
the agreement (see the comments at the normal ``data_scale_extreme`` and negbin ``dispersion_tiny`` cases).

Where PyMC's ordered-logistic formula, a difference of two cumulative probabilities, itself loses digits
(a rating far above its expectation: both near 1), the reference is evaluated on the reflected scale
(``-eta``, ``-cutpoints`` reversed, code ``K - 1 - k``), the same distribution, where that difference is of
two small numbers (:func:`_ordinal_reference`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats
from scipy.special import gammaln

from nexusbayes.model.families import FAMILIES, Block

RTOL = 1e-8
ATOL = 1e-12          # absolute floor, times the largest entry compared (see _close)
N_DRAWS = 4000        # simulation draws per observation
N_BINS = 10           # PIT bins per observation
P_MIN = 1e-4          # smallest acceptable chi-square p-value


@dataclass
class Case:
    """One family with one set of observations and parameters (NumPy)."""

    family: str
    name: str
    block: Block
    eta: np.ndarray
    params: dict = field(default_factory=dict)
    loc: np.ndarray | None = None        # normal: the indicator's data mean and SD, per observation
    sd: np.ndarray | None = None

    @property
    def id(self) -> str:
        return f"{self.family}-{self.name}"

    @property
    def scale(self):
        return None if self.loc is None else (self.loc, self.sd)


def _block(key, local, y, *, exposure=None, trials=None, rater=None, categories=None) -> Block:
    n = len(y)
    local = np.asarray(local, dtype=int)
    return Block(key=key, names=[f"i{j}" for j in range(local.max() + 1)], rows=np.arange(n), labels=np.arange(n),
                 local=local, y=np.asarray(y, dtype=float),
                 exposure=np.ones(n) if exposure is None else np.asarray(exposure, dtype=float),
                 trials=np.full(n, np.nan) if trials is None else np.asarray(trials, dtype=float),
                 rater=np.full(n, -1) if rater is None else np.asarray(rater, dtype=int), categories=categories)


# ---- the grid of cases --------------------------------------------------------------------------------------


def _normal(name, seed, sigma, loc, sd, eta_sd, eta_mean=0.0, n=60):
    rng = np.random.default_rng(seed)
    local = np.arange(n) % len(sigma)
    eta = eta_mean + eta_sd * rng.standard_normal(n)
    z = rng.choice([-8.0, -3.0, -1.0, 0.0, 0.5, 2.0, 6.0], n)     # residuals out to 8 sigma
    loc, sd, sigma = np.asarray(loc)[local], np.asarray(sd)[local], np.asarray(sigma, dtype=float)
    y = loc + sd * (eta + sigma[local] * z)
    return Case("normal", name, _block("normal", local, y), eta, {"sigma": sigma}, loc, sd)


def _negbin(name, seed, inv, eta_mean, eta_sd, exposure=(1.0, 1.0), n=60):
    rng = np.random.default_rng(seed)
    inv = np.asarray(inv, dtype=float)
    local = np.arange(n) % len(inv)
    eta = eta_mean + eta_sd * rng.standard_normal(n)
    expo = np.exp(rng.uniform(np.log(exposure[0]), np.log(exposure[1]), n))
    mu, alpha = np.exp(eta) * expo, 1.0 / inv[local]
    # the counts: a typical one, 0, and far quantiles on both sides
    q = rng.choice([1e-9, 0.01, 0.5, 0.99, 1 - 1e-9], n)
    y = stats.nbinom.ppf(q, alpha, alpha / (alpha + mu))
    y[::7] = 0
    return Case("negbin", name, _block("negbin", local, y, exposure=expo), eta, {"inv_dispersion": inv})


def _binomial(name, seed, eta, trials, family="binomial"):
    rng = np.random.default_rng(seed)
    eta, trials = np.asarray(eta, dtype=float), np.asarray(trials, dtype=float)
    # successes from 0 to n, including the very improbable
    y = np.floor(rng.uniform(0, 1, len(eta)) * (trials + 1))
    y[::5], y[1::5] = 0, trials[1::5]
    return Case(family, name, _block(family, np.zeros(len(eta)), y, trials=trials), eta)


def _ordinal(name, seed, cutpoints, eta, *, rater_shift=None):
    """Every eta crossed with every rating 1..K, per indicator; with shifts, each observation a random rater or none."""
    rng = np.random.default_rng(seed)
    cut = np.asarray(cutpoints, dtype=float)
    n_ind, k = cut.shape[0], cut.shape[1] + 1
    local, y, eta_obs = (np.array(v) for v in zip(*[(j, r, e) for j in range(n_ind) for e in eta
                                                    for r in range(1, k + 1)], strict=True))
    params = {"cutpoints": cut}
    rater = None
    if rater_shift is not None:
        params["rater_shift"] = np.asarray(rater_shift, dtype=float)
        rater = rng.integers(-1, params["rater_shift"].shape[1], len(y))     # -1: no rater
    return Case("ordinal", name, _block("ordinal", local, y, rater=rater, categories=k), eta_obs.astype(float),
                params)


def _cuts(k, seed, spread=1.0):
    """Ordered cut-points as the model makes them: a centre plus centred cumulated gamma gaps."""
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.gamma(3.0, spread / 2.5, (2, k - 1)), axis=1)
    return rng.normal(0.0, 1.0, (2, 1)) + steps - steps.mean(axis=1, keepdims=True)


ETA_ORD = np.array([-6.0, -2.0, -0.5, 0.0, 0.7, 3.0, 6.0])

CASES = [
    _normal("moderate", 1, sigma=[0.5, 1.3], loc=[0.0, 50.0], sd=[1.0, 20.0], eta_sd=1.5),
    _normal("sigma_small", 2, sigma=[1e-3, 2e-2], loc=[3.0, -7.0], sd=[2.0, 0.5], eta_sd=1.0),
    _normal("sigma_large", 3, sigma=[40.0, 1e3], loc=[3.0, -7.0], sd=[2.0, 0.5], eta_sd=1.0),
    _normal("eta_large", 4, sigma=[0.3, 2.0], loc=[0.0, 1.0], sd=[1.0, 1.0], eta_sd=5.0, eta_mean=200.0),
    # values 1e4 times their SD, and an SD of 1e4: a double holds such values to ~1e-12 of the SD (at 1e9 times
    # their SD, to 1e-7: the data, not the copies, then limit the agreement)
    _normal("data_scale_extreme", 5, sigma=[0.5, 1.0], loc=[1e3, -4.0], sd=[0.1, 1e4], eta_sd=2.0),
    _negbin("moderate", 11, inv=[0.5, 1.0, 2.0], eta_mean=1.0, eta_sd=1.0),
    # near the Poisson limit: at 1e-6 the gradient in inv_dispersion, -alpha^2 (digamma(y + alpha) - digamma(alpha)
    # + ...), cancels to eps alpha^2 in double precision in the reference as in the kernel (both off by ~1e-5 of
    # the 50-digit value), so 1e-4 is as near as a relative 1e-8 is meaningful
    _negbin("dispersion_tiny", 12, inv=[1e-4, 1e-3, 1e-2], eta_mean=2.0, eta_sd=1.0),
    _negbin("dispersion_huge", 13, inv=[20.0, 100.0, 1e3], eta_mean=1.0, eta_sd=1.0),
    _negbin("eta_small", 14, inv=[0.3, 3.0], eta_mean=-7.0, eta_sd=2.0),
    _negbin("eta_large", 15, inv=[0.05, 0.5], eta_mean=10.0, eta_sd=1.5),
    _negbin("exposures", 16, inv=[0.2, 1.0], eta_mean=0.0, eta_sd=1.0, exposure=(1e-3, 1e3)),
    _binomial("trials_1", 21, np.linspace(-5, 5, 40), np.ones(40)),
    _binomial("trials_many", 22, np.linspace(-4, 4, 40), np.tile([50.0, 1e3, 1e4, 1e5], 10)),
    _binomial("trials_mixed", 23, np.linspace(-3, 3, 40), np.tile([1.0, 2.0, 5.0, 30.0, 300.0], 8)),
    _binomial("eta_extreme", 24, np.tile([-35.0, -20.0, -10.0, 10.0, 20.0, 35.0], 6),
              np.repeat([1.0, 10.0, 100.0], 12)),
    _binomial("moderate", 31, np.linspace(-5, 5, 40), np.ones(40), family="bernoulli"),
    _binomial("eta_extreme", 32, np.tile([-40.0, -20.0, -10.0, 10.0, 20.0, 40.0], 6), np.ones(36),
              family="bernoulli"),
    *(_ordinal(f"k{k}", 40 + k, _cuts(k, 40 + k), ETA_ORD) for k in range(2, 8)),
    _ordinal("cutpoints_wide", 51, [[-30.0, -10.0, 10.0, 30.0], [-60.0, -59.0, 58.0, 60.0]],
             np.array([-70.0, -40.0, -20.0, 0.0, 5.0, 20.0, 40.0, 70.0])),
    _ordinal("cutpoints_close", 52, [[0.0, 1e-3, 2e-3, 3e-3], [-2.0, -1.99, 25.0, 25.001]],
             np.array([-30.0, -3.0, -1.995, 0.0, 0.0015, 1.0, 12.0, 25.0005, 40.0])),
    _ordinal("eta_extreme", 53, _cuts(4, 53), np.array([-40.0, -25.0, -15.0, 15.0, 25.0, 40.0])),
    _ordinal("rater_shifts", 54, _cuts(5, 54), ETA_ORD, rater_shift=[[-1.5, 0.4, 2.0], [0.8, -0.3, 0.0]]),
    _ordinal("rater_shifts_extreme", 55, _cuts(3, 55, spread=3.0), np.array([-20.0, -3.0, 0.0, 3.0, 20.0]),
             rater_shift=[[-25.0, 12.0], [18.0, -0.5]]),
]
IDS = [c.id for c in CASES]


def test_the_grid_covers_every_family():
    assert {c.family for c in CASES} == set(FAMILIES)
    assert {c.block.categories for c in CASES if c.family == "ordinal"} >= set(range(2, 8))


# ---- the reference: plain PyMC distributions -----------------------------------------------------------------
# One compiled function per family (value and gradients), its inputs the observations, the per-observation
# constants and the parameters as the model holds them (per indicator), so that cases share it.

PARAMS = {"normal": ("sigma",), "negbin": ("inv_dispersion",), "binomial": (), "bernoulli": (),
          "ordinal": ("cutpoints", "rater_shift")}
DATA = {"normal": ("y", "loc", "sd", "local"), "negbin": ("y", "exposure", "local"), "binomial": ("y", "trials"),
        "bernoulli": ("y",), "ordinal": ("y", "local", "rater", "has", "reflect")}
INTEGER = {"y", "local", "trials", "rater"}


def _ordinal_reference(eta, cut, code, reflect):
    """``pm.OrderedLogistic`` log mass of ``code`` (0..K-1) given each observation's cut-points ``cut``.

    Where ``reflect`` holds (the observation lies below the middle of its category's interval, so that
    PyMC's difference of two cumulative probabilities near 1 would cancel), evaluated as the same
    distribution reflected: P(code k | eta, c) = P(code K-1-k | -eta, -reversed c). Each branch gets a
    harmless eta (inside the interval) where it is not used, so that no gradient meets an infinite log.
    """
    rows = pt.arange(code.shape[0])
    lower = pt.concatenate([pt.full((cut.shape[0], 1), -np.inf), cut], axis=1)[rows, code]
    upper = pt.concatenate([cut, pt.full((cut.shape[0], 1), np.inf)], axis=1)[rows, code]
    inside = pt.switch(pt.isinf(lower), upper - 1.0, pt.switch(pt.isinf(upper), lower + 1.0, (lower + upper) / 2))
    direct = pm.logp(pm.OrderedLogistic.dist(eta=pt.switch(reflect, inside, eta), cutpoints=cut, compute_p=False),
                     code)
    mirrored = pm.logp(pm.OrderedLogistic.dist(eta=-pt.switch(reflect, eta, inside), cutpoints=-cut[:, ::-1],
                                               compute_p=False), cut.shape[1] - code)
    return pt.switch(reflect, mirrored, direct)


def _reference_graph(family, eta, d, p):
    """The reference pointwise log-density, from symbolic eta, data ``d`` and parameters ``p``."""
    if family == "normal":
        return pm.logp(pm.Normal.dist(mu=d["loc"] + d["sd"] * eta, sigma=d["sd"] * p["sigma"][d["local"]]), d["y"])
    if family == "negbin":
        return pm.logp(pm.NegativeBinomial.dist(mu=pt.exp(eta) * d["exposure"],
                                                alpha=1.0 / p["inv_dispersion"][d["local"]]), d["y"])
    if family == "binomial":
        return pm.logp(pm.Binomial.dist(n=d["trials"], logit_p=eta), d["y"])
    if family == "bernoulli":
        return pm.logp(pm.Bernoulli.dist(logit_p=eta), d["y"])
    cut = p["cutpoints"][d["local"]] + (p["rater_shift"][d["local"], d["rater"]] * d["has"])[:, None]
    return _ordinal_reference(eta, cut, d["y"], d["reflect"])


@cache
def reference_fn(family: str):
    """Compiled ``(eta, *data, *params) -> [logp, d logp / d eta, d sum(logp) / d param...]`` of the reference."""
    eta = pt.dvector("eta")
    integer = INTEGER - ({"y"} if family == "normal" else set())
    d = {name: pt.lvector(name) if name in integer else pt.bvector(name) if name == "reflect" else pt.dvector(name)
         for name in DATA[family]}
    p = {name: pt.dmatrix(name) if name in ("cutpoints", "rater_shift") else pt.dvector(name)
         for name in PARAMS[family]}
    logp = _reference_graph(family, eta, d, p)
    grads = pytensor.grad(logp.sum(), [eta, *p.values()])
    return pytensor.function([eta, *d.values(), *p.values()], [logp, *grads])


def _ordinal_reflect(code, eta, cut_obs):
    """Whether to evaluate the reference reflected (see :func:`_ordinal_reference`)."""
    k, rows = cut_obs.shape[1] + 1, np.arange(len(code))
    lower = np.where(code == 0, -np.inf, cut_obs[rows, np.maximum(code - 1, 0)])
    upper = np.where(code == k - 1, np.inf, cut_obs[rows, np.minimum(code, k - 2)])
    with np.errstate(invalid="ignore"):
        middle = (lower + upper) / 2
    return np.where(code == 0, False, np.where(code == k - 1, True, eta < middle))


def _cut_obs(block, params):
    """Each observation's cut-points: its indicator's, shifted by its rater's shift (NumPy)."""
    cut = params["cutpoints"][block.local]
    if "rater_shift" not in params:
        return cut
    has = block.rater >= 0
    return cut + (params["rater_shift"][block.local, np.where(has, block.rater, 0)] * has)[:, None]


def reference(case, eta, params, y=None):
    """The reference at ``eta`` and ``params`` (NumPy): [logp, gradient in eta, gradient in each parameter]."""
    b = case.block
    y = b.y if y is None else y
    p = dict(params)
    data = {"y": y, "local": b.local, "loc": case.loc, "sd": case.sd, "exposure": b.exposure, "trials": b.trials}
    if case.family == "ordinal":
        data["y"] = y - 1                                      # ratings 1..K as codes 0..K-1
        p.setdefault("rater_shift", np.zeros((len(p["cutpoints"]), 1)))
        data["rater"], data["has"] = np.maximum(b.rater, 0), (b.rater >= 0).astype(float)
        data["reflect"] = _ordinal_reflect(data["y"].astype(int), eta, _cut_obs(b, params)).astype("int8")
    integer = INTEGER - ({"y"} if case.family == "normal" else set())
    args = [np.asarray(data[name]).astype("int64" if name in integer else data[name].dtype) for name in
            DATA[case.family]]
    out = reference_fn(case.family)(eta, *args, *(p[name] for name in PARAMS[case.family]))
    names = ["eta", *PARAMS[case.family]]
    return out[0], {name: g for name, g in zip(names, out[1:], strict=True) if name == "eta" or name in params}


def dropped(case):
    """The data-only terms a kernel leaves out: reference = kernel + dropped."""
    b, y = case.block, case.block.y
    if case.family == "normal":
        return -np.log(case.sd) - 0.5 * np.log(2 * np.pi)
    if case.family == "negbin":
        return -gammaln(y + 1.0)
    if case.family == "binomial":
        return gammaln(b.trials + 1.0) - gammaln(y + 1.0) - gammaln(b.trials - y + 1.0)
    return np.zeros(len(y))


def _close(got, want, what):
    """Each entry to a relative ``RTOL``, with a floor of ``ATOL`` times the array's largest entry.

    The floor is for entries that are all but 0 (a gradient at a residual of 0, a log mass of -1e-14):
    they come from terms as large as the array's others, whose last bits cancel, so no relative comparison
    of them is meaningful.
    """
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, what
    assert np.isfinite(want).all(), f"{what}: the reference is not finite"
    floor = ATOL * max(1.0, np.abs(want).max())
    bad = ~(np.abs(got - want) <= RTOL * np.abs(want) + floor)
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} differ; at {np.flatnonzero(bad.ravel())[:5]}: "
                           f"got {got.ravel()[bad.ravel()][:5]}, want {want.ravel()[bad.ravel()][:5]}")


# ---- 1. the model's kernel --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_kernel(case):
    """The likelihood the model builds: value (up to the dropped data-only terms) and gradient."""
    family, b = FAMILIES[case.family], case.block
    eta = pt.dvector("eta")
    params = {name: pt.tensor(name, shape=(None,) * np.ndim(v), dtype="float64") for name, v in case.params.items()}
    with pm.Model(coords={b.dim: b.labels}) as model:         # as build_model does
        observed = pm.Data(f"data_{b.key}", family.observed_values(b), dims=b.dim)
        inputs = {name: pm.Data(f"{name}_{b.key}", values, dims=b.dim) for name, values in family.inputs(b).items()}
        scale = None if case.loc is None else (pt.as_tensor(case.loc), pt.as_tensor(case.sd))
        rv = family.likelihood(b, eta, scale, params, observed, inputs)
    kernel = model.logp(vars=[rv], sum=False)[0]
    wrt = [eta, *params.values()]
    got = pytensor.function(wrt, [kernel, *pytensor.grad(kernel.sum(), wrt)])(case.eta, *case.params.values())
    want, want_grad = reference(case, case.eta, case.params)
    _close(got[0] + dropped(case), want, "log-density")
    for name, g in zip(["eta", *params], got[1:], strict=True):
        assert np.isfinite(g).all(), f"gradient in {name} not finite"
        _close(g, want_grad[name], f"gradient in {name}")


# ---- 2. the NumPy log-density -----------------------------------------------------------------------------


def _perturbed(case):
    """A second parameter draw: eta moved, nuisance parameters scaled (for a leading draw dimension)."""
    params = {}
    for name, v in case.params.items():
        params[name] = v * 1.3 if name in ("sigma", "inv_dispersion", "rater_shift") else v * 1.1 - 0.2
    return case.eta + 0.37, params


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_numpy_logp(case):
    """``Family.logp`` is the reference, draw by draw, given two draws at once."""
    family = FAMILIES[case.family]
    draws = [(case.eta, case.params), _perturbed(case)]
    eta_draws = np.stack([e for e, _ in draws])
    params_draws = {name: np.stack([p[name] for _, p in draws]) for name in case.params}
    got = family.logp(eta_draws, case.scale, case.block, params_draws)
    assert got.shape == eta_draws.shape
    for d, (e, p) in enumerate(draws):
        _close(got[d], reference(case, e, p)[0], f"log-density of draw {d}")


# ---- 3. the NumPy simulation ------------------------------------------------------------------------------


@cache
def cdf_fn(family: str):
    """Compiled reference CDF ``(value, *per-observation parameters) -> F(value)`` (not ordinal)."""
    value, a, b = pt.dvector("value"), pt.dvector("a"), pt.dvector("b")
    dist = {"normal": lambda: pm.Normal.dist(mu=a, sigma=b),
            "negbin": lambda: pm.NegativeBinomial.dist(mu=a, alpha=b),
            "binomial": lambda: pm.Binomial.dist(n=b, logit_p=a),
            "bernoulli": lambda: pm.Bernoulli.dist(logit_p=a)}[family]()
    return pytensor.function([value, a, b], pt.exp(pm.logcdf(dist, value)), on_unused_input="ignore")


def _reference_cdf(case, y):
    """Reference CDF at ``y`` (draws, obs), each observation's own parameters (NumPy)."""
    b, eta, params = case.block, case.eta, case.params
    if case.family == "ordinal":
        # cumulative sums of the reference probabilities of each observation's categories
        k = b.categories
        probs = np.stack([np.exp(reference(case, eta, params, np.full(len(eta), r, float))[0])
                          for r in range(1, k + 1)], axis=1)
        cdf = np.concatenate([np.zeros((len(eta), 1)), np.cumsum(probs, axis=1)], axis=1)   # cdf[:, r] = F(r)
        return cdf[np.arange(len(eta))[None, :], np.clip(y.astype(int), 0, k)]
    if case.family == "normal":
        a, scale = case.loc + case.sd * eta, case.sd * params["sigma"][b.local]
    elif case.family == "negbin":
        a, scale = np.exp(eta) * b.exposure, 1.0 / params["inv_dispersion"][b.local]
    else:
        a, scale = eta, b.trials if case.family == "binomial" else np.ones(len(eta))
    rep = lambda v: np.broadcast_to(v, y.shape).reshape(-1)     # noqa: E731  per observation -> per draw
    return cdf_fn(case.family)(y.reshape(-1), rep(a), rep(scale)).reshape(y.shape)


def _support(case, draws):
    b, k = case.block, case.block.categories
    assert np.isfinite(draws).all()
    if case.family == "normal":
        return
    assert (draws == np.round(draws)).all(), "draws not integral"
    assert (draws >= (1 if case.family == "ordinal" else 0)).all()
    if case.family == "ordinal":
        assert (draws <= k).all()
    if case.family in ("binomial", "bernoulli"):
        assert (draws <= (b.trials if case.family == "binomial" else 1)).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_simulate(case):
    """``Family.simulate`` draws lie in the support and follow the reference distribution (chi-square of the PIT)."""
    family, b = FAMILIES[case.family], case.block
    rng = np.random.default_rng(20260 + IDS.index(case.id))     # a fixed seed per case
    n = len(case.eta)
    eta = np.broadcast_to(case.eta, (N_DRAWS, n))
    params = {name: np.broadcast_to(v, (N_DRAWS, *np.shape(v))) for name, v in case.params.items()}   # draw dims
    draws = family.simulate(rng, eta, case.scale, b, params)
    assert draws.shape == (N_DRAWS, n)
    _support(case, draws)
    if case.family == "normal":
        u = _reference_cdf(case, draws)
    else:
        # randomised PIT: F(y - 1) + V (F(y) - F(y - 1)) is uniform exactly when y ~ F
        upper, lower = _reference_cdf(case, draws), _reference_cdf(case, draws - 1.0)
        u = lower + rng.uniform(size=draws.shape) * (upper - lower)
    counts = np.stack([np.bincount(np.minimum((u[:, i] * N_BINS).astype(int), N_BINS - 1), minlength=N_BINS)
                       for i in range(n)])
    expected = N_DRAWS / N_BINS
    statistic = ((counts - expected) ** 2 / expected).sum()
    p = stats.chi2.sf(statistic, n * (N_BINS - 1))
    assert p > P_MIN, f"chi-square {statistic:.1f} on {n * (N_BINS - 1)} df, p = {p:.2g}"


# ---- 4. inflated counts: quota heaping and structural zeros (issue 23, part 3) ------------------------------
# The mixture P(y) = pi0 1[y = 0] + (1 - pi0) ((1 - pi) f(y) + pi 1[y = quota]) over a count family f, checked
# against a direct computation: the log of the sum of its three components (logsumexp), f being the reference.

INFLATED = [c for c in CASES if c.id in ("negbin-moderate", "negbin-eta_small", "negbin-exposures",
                                         "binomial-trials_many", "binomial-trials_mixed", "binomial-eta_extreme")]


def _inflation(case):
    """Heap at a per-observation quota on every observation, structural zeros on every other one, and logits."""
    from nexusbayes.model.heaping import Inflation

    b, n = case.block, len(case.block.y)
    rng = np.random.default_rng(IDS.index(case.id))
    quota = np.where(np.arange(n) % 3 == 0, b.y, np.maximum(b.y - 1, 1))     # a third of the counts at their quota
    if case.family == "binomial":
        quota = np.minimum(quota, b.trials)
    parts = {"heap": Inflation(rows=np.arange(n), member=b.local, value=quota.astype("int64")),
             "zero": Inflation(rows=np.arange(0, n, 2), member=b.local[::2], value=np.zeros(len(range(0, n, 2)),
                                                                                             dtype="int64"))}
    logits = {"heap": rng.normal(-1.0, 2.0, n), "zero": rng.normal(-1.5, 2.0, len(parts["zero"].rows))}
    return parts, logits


def _direct(case, honest, parts, logits):
    """log[pi0 1[y = 0] + (1 - pi0)((1 - pi) f + pi 1[y = q])], as one logsumexp of the three components."""
    from scipy.special import expit, logsumexp

    y, n = case.block.y, len(case.block.y)
    pi, pi0 = np.zeros(n), np.zeros(n)
    pi[parts["heap"].rows] = expit(logits["heap"])
    pi0[parts["zero"].rows] = expit(logits["zero"])
    q = np.full(n, -1.0)
    q[parts["heap"].rows] = parts["heap"].value
    with np.errstate(divide="ignore"):
        terms = np.stack([np.log1p(-pi0) + np.log1p(-pi) + honest,
                          np.where(y == q, np.log1p(-pi0) + np.log(pi), -np.inf),
                          np.where(y == 0, np.log(pi0), -np.inf)])
    return logsumexp(terms, axis=0)


@pytest.mark.parametrize("case", INFLATED, ids=[c.id for c in INFLATED])
def test_inflated_numpy_logp(case):
    """:func:`nexusbayes.model.heaping.mix_logp` over ``Family.logp`` is the direct mixture."""
    from nexusbayes.model.heaping import mix_logp

    parts, logits = _inflation(case)
    honest = FAMILIES[case.family].logp(case.eta, case.scale, case.block, case.params)
    want = _direct(case, reference(case, case.eta, case.params)[0], parts, logits)
    assert (case.block.y == parts["heap"].value).sum() >= len(case.block.y) // 3     # heaps, zeros, and the rest
    _close(mix_logp(honest, case.block.y, parts, logits), want, "mixture log mass")


KERNEL_CASES = [c for c in INFLATED if c.id in ("negbin-moderate", "binomial-trials_mixed", "binomial-eta_extreme")]


@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c.id for c in KERNEL_CASES])
def test_inflated_kernel(case):
    """The mixture the model builds (:func:`nexusbayes.model.heaping.inflated_likelihood`): its full log mass."""
    from nexusbayes.model.heaping import inflated_likelihood

    family, b = FAMILIES[case.family], case.block
    parts, logits = _inflation(case)
    eta = pt.dvector("eta")
    params = {name: pt.tensor(name, shape=(None,) * np.ndim(v), dtype="float64") for name, v in case.params.items()}
    u = {c: pt.dvector(f"u_{c}") for c in parts}       # over each component's own observations
    with pm.Model(coords={b.dim: b.labels}) as model:
        observed = pm.Data(f"data_{b.key}", family.observed_values(b), dims=b.dim)
        inputs = {name: pm.Data(f"{name}_{b.key}", values, dims=b.dim) for name, values in family.inputs(b).items()}
        rv = inflated_likelihood(family, b, eta, params, inputs, observed, parts, u)
    kernel = model.logp(vars=[rv], sum=False)[0]
    wrt = [eta, *u.values()]
    got = pytensor.function([*wrt, *params.values()], [kernel, *pytensor.grad(kernel.sum(), wrt)])(
        case.eta, *logits.values(), *case.params.values())
    _close(got[0], _direct(case, reference(case, case.eta, case.params)[0], parts, logits), "mixture log mass")
    for name, g in zip(["eta", *u], got[1:], strict=True):
        assert np.isfinite(g).all(), f"gradient in {name} not finite"
    # the gradient in the heap's logit, d/du log((1 - s(u)) f + s(u) 1[y = q]) at the heaped and other counts
    step = 1e-6
    shifted = dict(logits, heap=logits["heap"] + step)
    numeric = (_direct(case, reference(case, case.eta, case.params)[0], parts, shifted)
               - _direct(case, reference(case, case.eta, case.params)[0], parts, logits)) / step
    np.testing.assert_allclose(got[2], numeric, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", KERNEL_CASES[:2], ids=[c.id for c in KERNEL_CASES[:2]])
def test_inflated_simulate(case):
    """:func:`nexusbayes.model.heaping.mix_draws` over ``Family.simulate`` follows the mixture (PIT chi-square)."""
    from scipy.special import expit

    from nexusbayes.model.heaping import mix_draws

    family, b = FAMILIES[case.family], case.block
    parts, logits = _inflation(case)
    rng = np.random.default_rng(30260 + IDS.index(case.id))
    n = len(case.eta)
    params = {name: np.broadcast_to(v, (N_DRAWS, *np.shape(v))) for name, v in case.params.items()}
    honest = family.simulate(rng, np.broadcast_to(case.eta, (N_DRAWS, n)), case.scale, b, params)
    draws = mix_draws(rng, honest, parts, {c: np.broadcast_to(u, (N_DRAWS, len(u))) for c, u in logits.items()})
    pi, pi0, q = np.zeros(n), np.zeros(n), np.full(n, np.inf)
    pi[parts["heap"].rows], q[parts["heap"].rows] = expit(logits["heap"]), parts["heap"].value
    pi0[parts["zero"].rows] = expit(logits["zero"])

    def cdf(y):      # the mixture's CDF from the reference's
        return (1 - pi0) * ((1 - pi) * _reference_cdf(case, y) + pi * (y >= q)) + pi0 * (y >= 0)

    u = cdf(draws - 1.0) + rng.uniform(size=draws.shape) * (cdf(draws) - cdf(draws - 1.0))
    counts = np.stack([np.bincount(np.minimum((u[:, i] * N_BINS).astype(int), N_BINS - 1), minlength=N_BINS)
                       for i in range(n)])
    statistic = ((counts - N_DRAWS / N_BINS) ** 2 / (N_DRAWS / N_BINS)).sum()
    assert stats.chi2.sf(statistic, n * (N_BINS - 1)) > P_MIN, f"chi-square {statistic:.1f}"
