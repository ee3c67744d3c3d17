"""Scoring a simulation's refit against its truth: ranks, their uniformity tests, recovery and fit checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from nexusbayes.analysis.diagnostics import element_diagnostics
from nexusbayes.analysis.typology import eti

#: Family-wise error rate of the uniformity tests (after Holm's correction across parameters).
SBC_ALPHA = 0.01


#: Posterior draws kept per fit for the ranks (thinned to be roughly independent).
THIN_TO = 100


#: Number of theta elements ranked per run (drawn once from the seed).
N_THETA = 20


def scalar_draws(ds: xr.Dataset, names: list[str], keep: dict[str, np.ndarray] | None = None) -> dict:
    """Flatten variables to scalar elements: ``{"name[coord,...]": array over the sample dims}``.

    ``keep`` maps a variable name to a boolean mask over its flattened elements (default: all; for
    ``trait_corr`` the elements below the diagonal).
    """
    out = {}
    for name in names:
        da = ds[name]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        values = da.transpose(..., *dims).values
        lead = values.shape[:values.ndim - len(dims)]
        flat = values.reshape(*lead, -1)
        labels = _labels(da, dims)
        mask = (keep or {}).get(name)
        if mask is None and name == "trait_corr":
            n = da.sizes[dims[0]]
            mask = np.tril(np.ones((n, n), bool), -1).ravel()
        for i, label in enumerate(labels):
            if mask is None or mask[i]:
                out[label] = flat[..., i]
    return out


def _labels(da: xr.DataArray, dims: list[str]) -> list[str]:
    if not dims:
        return [da.name]
    grids = np.meshgrid(*[da[d].values for d in dims], indexing="ij")
    return [f"{da.name}[{','.join(str(g.ravel()[i]) for g in grids)}]" for i in range(grids[0].size)]


def thin(draws: np.ndarray, thin_to: int) -> np.ndarray:
    """Keep every k-th draw of each chain (``draws`` is (chain, draw)) so that about ``thin_to`` remain.

    Examples
    --------
    >>> thin(np.arange(800.0).reshape(2, 400), 100).shape
    (100,)
    """
    step = max(1, draws.size // thin_to)
    return draws[:, ::step].ravel()


def rank_of(truth: float, draws: np.ndarray) -> int:
    """Number of draws below the true value (0..len(draws)).

    Examples
    --------
    >>> rank_of(0.5, np.array([0.1, 0.7, 0.2]))
    2
    """
    return int(np.sum(draws < truth))


def pit_values(ranks: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Jittered PIT ``(rank + U) / (n_draws + 1)``: exactly uniform on (0, 1) when the ranks are uniform."""
    u = np.random.default_rng(seed).random(len(ranks))
    return ranks.assign(pit=(ranks["rank"].to_numpy() + u) / (ranks["n_draws"].to_numpy() + 1.0))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate).

    Examples
    --------
    >>> holm(np.array([0.01, 0.04, 0.03])).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]).clip(max=1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def uniformity_tests(ranks: pd.DataFrame, alpha: float = SBC_ALPHA, seed: int = 0) -> pd.DataFrame:
    """Test each parameter's ranks for uniformity; Holm-correct across parameters.

    Parameters
    ----------
    ranks : pandas.DataFrame
        Tidy ranks (``sim, parameter, kind, rank, n_draws``).
    alpha : float
        Family-wise level after Holm's correction.
    seed : int
        Seed of the PIT jitter.

    Returns
    -------
    pandas.DataFrame
        One row per parameter, sorted by kind and name: ``n_sims``, ``p_pot`` (the pointwise order
        test with Cauchy combination of arviz-stats on the jittered PIT), ``p_chi2`` (chi-square on
        equal-width PIT bins with at least 5 expected per bin), ``p_holm`` (Holm-adjusted ``p_pot``),
        ``passed`` (``p_holm >= alpha``), and ``coverage_50`` and ``coverage_90``: the share of
        simulations whose truth fell inside the central 50% and 90% posterior intervals.
    """
    from arviz_stats.base import array_stats

    pit = pit_values(ranks, seed)
    rows = []
    for (kind, name), sub in pit.groupby(["kind", "parameter"], sort=True):
        u = sub["pit"].to_numpy()
        n = len(u)
        p_pot = float(array_stats.uniformity_test(u, axis=-1, method="pot_c")[0])
        bins = int(np.clip(n // 5, 2, 20))
        counts = np.histogram(u, bins=bins, range=(0.0, 1.0))[0]
        q = sub["rank"].to_numpy() / sub["n_draws"].to_numpy()
        rows.append({"parameter": name, "kind": kind, "n_sims": n, "p_pot": p_pot,
                     "p_chi2": float(stats.chisquare(counts).pvalue),
                     "coverage_50": float(np.mean((q > 0.25) & (q < 0.75))),
                     "coverage_90": float(np.mean((q > 0.05) & (q < 0.95)))})
    table = pd.DataFrame(rows)
    table.insert(5, "p_holm", holm(table["p_pot"].to_numpy()))
    table.insert(6, "passed", table["p_holm"] >= alpha)
    return table


def fit_checks(post: xr.Dataset, tree: xr.DataTree, names: list[str]) -> dict:
    """Max R-hat over the ranked variables and theta (when the model has it), and the number of divergences."""
    checked = [*names, *(["theta"] if "theta" in post else [])]     # a regime model has no theta
    rhat = element_diagnostics(post, checked)["rhat"]   # constant elements (corr diagonal): NaN
    rhat = max([1.0, *(float(rhat[name].max()) for name in rhat.data_vars if rhat[name].notnull().any())])
    return {"max_rhat": rhat, "divergences": int(tree["sample_stats"]["diverging"].sum())}


def recovery(theta_post: np.ndarray, theta_true: np.ndarray) -> dict:
    """Correlation, bias, RMSE and 50%/90% central-interval coverage of all theta elements.

    ``theta_post`` holds the draws (chain, draw, element), ``theta_true`` the true elements, in the same order.
    """
    flat = theta_post.reshape(-1, theta_post.shape[-1])
    mean = flat.mean(axis=0)
    (low50, high50), (low90, high90) = eti(flat.T, 0.5), eti(flat.T, 0.9)
    return {"theta_correlation": float(np.corrcoef(mean, theta_true)[0, 1]),
            "theta_bias": float(np.mean(mean - theta_true)),
            "theta_rmse": float(np.sqrt(np.mean((mean - theta_true) ** 2))),
            "theta_coverage_50": float(np.mean((low50 <= theta_true) & (theta_true <= high50))),
            "theta_coverage_90": float(np.mean((low90 <= theta_true) & (theta_true <= high90)))}
