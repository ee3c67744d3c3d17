"""Quota heaping and structural zeros: count indicators whose reports are a mixture (issue 23, part 3).

For an indicator with ``quota`` (a number, or a data column giving it per row) the reported count of
observation i is the quota with probability ``pi_i`` and the honest count ``f`` (its family's negative
binomial or binomial) otherwise; with ``zero_inflated = true`` it is 0 with probability ``pi0_i`` and that
first mixture otherwise::

    P(y) = pi0 1[y = 0] + (1 - pi0) ((1 - pi) f(y) + pi 1[y = quota])

Each probability has its own intercept and loadings on every trait, as an indicator's linear predictor has::

    logit(pi_i)  = heap_intercept_j + sum_k heap_loading[j, k] theta[r_i, t_i, k]
    logit(pi0_i) = zero_intercept_j + sum_k zero_loading[j, k] theta[r_i, t_i, k]

**Sign convention.** The loadings enter with a plus sign and are constrained to be at most 0
(``heap_loading = -heap_loading_size``, half-normal sizes): reports pile up at the quota (or at 0) more where the
traits are low, the memo's reading that gaming ("barely meet quota") and unrecorded series are signs of low
capability or willingness. The constraint is for identification, not taste: with free loadings the heap alone can
order the traits, and a reflected mode appears in which the indicators' own loadings collapse to 0 and the heap,
with its loadings' signs flipped, sets the traits upside down (on the simulated panel of
``tests/model/test_heaping.py``, seed 5, one chain of four sat there, its traits correlating -0.90 with the truth).
With the sign fixed, the heap points the same way as the anchors and that mode is gone. A heap that does not
depend on the traits is a size of 0, inside the prior's support. The report gives each loading's interval.

In log space, with ``l = log f(y)`` and ``u = logit(pi)``, the heap's mixture is
``l - softplus(u) + 1[y = quota] softplus(u - l)`` (``log((1 - pi) f + pi) = log(1 - pi) + l + log(1 + e^(u - l))``):
the logsumexp of the two components without a difference of exponentials, and zero inflation applies the same to
that result. A component's logits and its ``log(1 - pi) = -softplus(u)`` are computed over its own observations
alone (rows split by indicator once, at build time), and the second softplus at those whose count is the inflated
value alone (their positions are a data container, ``at_<c>_<key>``, of whatever length the data give, so a
refit to new counts swaps it); both are added into the block's log mass by constant-index increments (the cost:
``benchmarks/features.py``). The logits come from a dense (indicator, region-period) table, one flat
gather per observation. ``f`` must be the full log mass here (the sampler's kernels leave out the terms
that depend on the data alone, ``log y!`` and ``log n-choose-k``; :meth:`nexusbayes.model.families.Family.data_only`
adds them back), since the heap's point mass is not scaled by them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import logit

from nexusbayes.model.families import Block, Family
from nexusbayes.model.kernels import softplus
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec

#: Prior mean of the heap and structural-zero intercepts: logit 0.1, a report in ten at the inflated value.
HEAP_PRIOR_LOGIT = float(logit(0.1))

#: The inflation components: (name, its indicators' coordinate, what marks an indicator as having it).
COMPONENTS = (("heap", "indicator_heaped"), ("zero", "indicator_zero_inflated"))


def component_indicators(spec: Spec, indicators: list[str]) -> dict[str, list[str]]:
    """The indicators with each inflation component, in panel order (components without any left out)."""
    out = {"heap": [n for n in indicators if spec.indicator(n).quota is not None],
           "zero": [n for n in indicators if spec.indicator(n).zero_inflated]}
    return {c: names for c, names in out.items() if names}


@dataclass(frozen=True)
class Inflation:
    """The observations of a likelihood block that one inflation component covers.

    ``rows`` are their positions in the block, ``member`` each one's indicator among the component's
    (``indicator_heaped`` or ``indicator_zero_inflated``) and ``value`` the value inflated (the quota, or 0).
    """

    rows: np.ndarray
    member: np.ndarray
    value: np.ndarray

    def at(self, y: np.ndarray) -> np.ndarray:
        """1.0 where the observed count is the inflated value, else 0.0 (over the component's observations)."""
        return (np.asarray(y)[self.rows] == self.value).astype("float64")

    def positions(self, y: np.ndarray) -> np.ndarray:
        """Positions among the component's observations of those whose count is the inflated value (int64)."""
        return np.flatnonzero(np.asarray(y)[self.rows] == self.value).astype("int64")

    def spread(self, values: np.ndarray, n_obs: int) -> np.ndarray:
        """``values`` of the component's observations placed in a block of ``n_obs``, 0 elsewhere."""
        out = np.zeros(n_obs)
        out[self.rows] = values
        return out


def block_inflation(spec: Spec, block: Block, indicators: list[str]) -> dict[str, Inflation]:
    """The inflation components of ``block`` (``indicators``: the panel's, in order), by component name."""
    members = component_indicators(spec, indicators)
    out = {}
    for comp, names in members.items():
        position = {n: i for i, n in enumerate(names)}
        own = np.array([position.get(n, -1) for n in block.names])[block.local]
        rows = np.flatnonzero(own >= 0)
        if rows.size:
            value = block.quota[rows] if comp == "heap" else np.zeros(rows.size)
            out[comp] = Inflation(rows=rows, member=own[rows], value=value.astype("int64"))
    return out


def _tables(parts: dict[str, Inflation], family: Family, block: Block, y: np.ndarray) -> dict[str, np.ndarray]:
    """``data_only`` (the family's terms of the data alone, see :meth:`Family.data_only`) and ``at_<component>``.

    ``at_<component>``: the positions, among the component's observations, of those at its inflated value.
    """
    y = np.asarray(y, dtype=float)
    return {"data_only": family.data_only(block, y),
            **{f"at_{comp}": part.positions(y) for comp, part in parts.items()}}


def inflation_tables(spec: Spec, block: Block, indicators: list[str], family: Family,
                     y: np.ndarray) -> dict[str, np.ndarray]:
    """The data containers an inflated block's kernel derives from observations ``y``, by name without key.

    Empty for a block without inflation; whoever swaps in new observations swaps these too
    (:func:`nexusbayes.model.design.kernel_containers`).
    """
    parts = block_inflation(spec, block, indicators)
    return _tables(parts, family, block, y) if parts else {}


def inflation_parameters(spec: Spec, indicators: list[str]) -> dict[str, tuple]:
    """Intercepts and loadings of each component present: ``{component: (intercept, loading, its indicators)}``.

    ``<c>_intercept`` (indicator_<c>) normal around :data:`HEAP_PRIOR_LOGIT` with scale ``priors.heap_intercept``;
    ``<c>_loading`` (indicator_<c>, trait) = ``-<c>_loading_size``, half-normal with scale ``priors.heap_loading``
    (at most 0: see the sign convention in the module's notes).
    """
    model = pm.Model.get_context()
    out = {}
    for comp, dim in COMPONENTS:
        names = component_indicators(spec, indicators).get(comp)
        if not names:
            continue
        model.add_coord(dim, names)
        intercept = declare(pm.Normal(f"{comp}_intercept", HEAP_PRIOR_LOGIT, spec.priors.heap_intercept, dims=dim),
                            "intercept", prior="heap_intercept")
        size = declare(pm.HalfNormal(f"{comp}_loading_size", spec.priors.heap_loading, dims=(dim, "trait")),
                       "loading", prior="heap_loading")
        loading = declare(pm.Deterministic(f"{comp}_loading", -size, dims=(dim, "trait")), "loading",
                          reflect="trait")
        out[comp] = (intercept, loading, len(names))
    return out


def inflated_likelihood(family: Family, block: Block, eta, params: dict, inputs: dict, observed,
                        parts: dict[str, Inflation], logits: dict):
    """The observed variable of an inflated block: its family's kernel mixed with each component's point mass.

    ``logits`` holds, per component, the logit of its probability over the component's observations
    (``parts[c].rows``, as :func:`component_logits` gives them). The kernel tables (``data_only_<key>``,
    ``at_<c>_<key>``) and the inflated values (``<c>_value_<key>``, over the component's observations) are data
    containers made here.
    """
    args, dist, kernel = family.kernel(block, eta, params, inputs)
    comps, n_args, n_obs = list(parts), len(args), len(block.y)
    tables = {name: pm.Data(f"{name}_{block.key}", v) for name, v in _tables(parts, family, block, block.y).items()}
    extra = [tables["data_only"]]
    for comp in comps:
        extra += [logits[comp], tables[f"at_{comp}"],
                  pm.Data(f"{comp}_value_{block.key}", parts[comp].value.astype("int64"))]
    rows = {comp: part.rows for comp, part in parts.items()}
    whole = {comp: len(part.rows) == n_obs for comp, part in parts.items()}    # then rows is 0..n-1

    def logp(value, *rest):
        out = kernel(value, *rest[:n_args]) + rest[n_args]
        for i, comp in enumerate(comps):
            u, at = rest[n_args + 1 + 3 * i], rest[n_args + 2 + 3 * i]
            # where the count is the inflated value: + log(1 + e^(u - l)), l the log mass before this component
            where = at if whole[comp] else pt.as_tensor(rows[comp])[at]
            lift = softplus(u[at] - out[where])
            out = out - softplus(u) if whole[comp] else pt.inc_subtensor(out[rows[comp]], -softplus(u))
            out = pt.inc_subtensor(out[where], lift)
        return out

    def random(*rest):
        rest, size = rest[:-1], rest[-1]
        y = dist(*rest[:n_args], size=size)
        for i, comp in enumerate(comps):           # the heap first, then the structural zeros over it
            u, inflated = rest[n_args + 1 + 3 * i], rest[n_args + 3 + 3 * i]
            own = y[..., rows[comp]]
            y = pt.set_subtensor(own, pt.switch(pt.gt(pm.Bernoulli.dist(logit_p=u), 0), inflated, own))
        return y

    # one observation per draw, but the components' inputs are vectors of their own lengths, not broadcast
    signature = ",".join(["()"] * (n_args + 1) + [f"(c{i}),(a{i}),(c{i})" for i in range(len(comps))]) + "->()"
    return pm.CustomDist(f"y_{block.key}", *args, *extra, dist=random, logp=logp, observed=observed,
                         dims=block.dim, signature=signature)


def component_logits(parts: dict[str, Inflation], inflation: dict, cells, region: np.ndarray, period: np.ndarray,
                     n_cell: int, n_period: int) -> dict:
    """Per component, the logit of its probability over the component's observations (PyTensor).

    ``cells`` is theta as (region-period, trait), ``n_cell`` of them; ``region``/``period`` the block's
    observations' indices. The logits come from a dense (member, cell) table, one flat gather per observation (and
    one scatter-add in the gradient) rather than a gather of each term: the component's indicators are listed
    ones, a few.
    """
    out = {}
    for comp, part in parts.items():
        intercept, loading, _ = inflation[comp]
        table = intercept[:, None] + pt.dot(loading, cells.T)                   # (member, cell)
        out[comp] = table.ravel()[part.member * n_cell + region[part.rows] * n_period + period[part.rows]]
    return out


# ---- NumPy: the fit's log-likelihood and predictive draws, and the simulator -------------------------------
def logits_numpy(part: Inflation, intercept: np.ndarray, loading: np.ndarray, theta: np.ndarray,
                 region: np.ndarray, period: np.ndarray) -> np.ndarray:
    """The logits of a component over its observations, per draw: ``(..., n)`` from draws of its parameters.

    ``intercept`` (..., member), ``loading`` (..., member, trait), ``theta`` (..., region, period, trait).
    """
    r, t = region[part.rows], period[part.rows]
    return intercept[..., part.member] + np.einsum("...nk,...nk->...n", loading[..., part.member, :],
                                                   theta[..., r, t, :])


def mix_logp(honest: np.ndarray, y: np.ndarray, parts: dict[str, Inflation], logits: dict) -> np.ndarray:
    """The mixture's full log mass from the honest one, ``honest`` (..., obs), with ``np.logaddexp``.

    Examples
    --------
    A heap at 3 with probability 0.2 over a count whose honest mass at 3 is 0.1:

    >>> part = Inflation(rows=np.array([0]), member=np.array([0]), value=np.array([3]))
    >>> out = mix_logp(np.log([0.1]), np.array([3.0]), {"heap": part}, {"heap": np.log([0.2 / 0.8])})
    >>> round(float(np.exp(out[0])), 6)    # 0.8 * 0.1 + 0.2
    0.28
    """
    out = np.array(honest, dtype=float, copy=True)
    for comp in ("heap", "zero"):
        if comp not in parts:
            continue
        part, u = parts[comp], logits[comp]
        at = part.at(y).astype(bool)
        log_pi, log_rest = -np.logaddexp(0.0, -u), -np.logaddexp(0.0, u)
        kept = out[..., part.rows] + log_rest
        out[..., part.rows] = np.where(at, np.logaddexp(kept, log_pi), kept)
    return out


def mix_draws(rng: np.random.Generator, honest: np.ndarray, parts: dict[str, Inflation], logits: dict) -> np.ndarray:
    """Reported counts from honest draws (..., obs): each replaced by its heap, then by a structural zero."""
    out = np.array(honest, dtype=float, copy=True)
    for comp in ("heap", "zero"):
        if comp not in parts:
            continue
        part = parts[comp]
        hit = rng.random(np.shape(logits[comp])) < 1.0 / (1.0 + np.exp(-logits[comp]))
        out[..., part.rows] = np.where(hit, part.value, out[..., part.rows])
    return out
