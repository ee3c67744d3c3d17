"""Convergence verdicts: R-hat, bulk and tail ESS, divergences, E-BFMI and tree depth, each against a threshold.

Computed with arviz-stats on the fit's DataTree after every fit; a failing check is a
:class:`SamplingWarning` that says what it means and what to try.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.constants import BFMI_MIN, ESS_MIN, RHAT_MAX, TREEDEPTH_MAX_SHARE


class SamplingWarning(UserWarning):
    """A convergence diagnostic failed: the posterior summaries may not be trustworthy."""


ADVICE = {
    "rhat": "chains disagree: run longer (more tune and draws) or look for multimodality in the trace plots",
    "ess_bulk": "too few effective draws for the posterior centre: increase draws",
    "ess_tail": "too few effective draws in the tails: increase draws before trusting intervals",
    "divergences": "the sampler hit regions of high curvature, so the posterior there may be missed: raise "
                   "target_accept (e.g. 0.95) or tighten the priors on scale parameters",
    "bfmi": "momentum resampling explores the energy poorly (heavy tails or funnels): reparametrise or "
            "tighten the scale priors",
    "treedepth": "trajectories are cut short at the maximum tree depth: the posterior is badly scaled; "
                 "try dense mass-matrix adaptation or more informative priors",
}


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of one fit.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per posterior variable: ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail`` and the
        element where each is worst.
    divergences : int
        Number of divergent transitions after warm-up.
    bfmi : numpy.ndarray
        E-BFMI per chain.
    treedepth_share : float
        Share of draws that hit the maximum tree depth.
    n_draws : int
        Post-warm-up draws over all chains.
    """

    table: pd.DataFrame
    divergences: int
    bfmi: np.ndarray
    treedepth_share: float
    n_draws: int

    @property
    def checks(self) -> pd.DataFrame:
        """Each check with its value, threshold and verdict."""
        t = self.table
        rhat, rhat_at = _extreme(t["max_rhat"], "max", "R-hat needs at least 2 chains")
        bulk, bulk_at = _extreme(t["min_ess_bulk"], "min", "no ESS could be computed")
        tail, tail_at = _extreme(t["min_ess_tail"], "min", "no ESS could be computed")
        rows = [
            ("rhat", "max R-hat", rhat, f"<= {RHAT_MAX}", rhat <= RHAT_MAX, rhat_at),
            ("ess_bulk", "min bulk ESS", bulk, f">= {ESS_MIN}", bulk >= ESS_MIN, bulk_at),
            ("ess_tail", "min tail ESS", tail, f">= {ESS_MIN}", tail >= ESS_MIN, tail_at),
            ("divergences", "divergences", self.divergences, "= 0", self.divergences == 0, ""),
            ("bfmi", "min E-BFMI", float(np.min(self.bfmi)), f">= {BFMI_MIN}", bool(np.min(self.bfmi) >= BFMI_MIN),
             f"chain {int(np.argmin(self.bfmi))}"),
            ("treedepth", "max tree depth hit", self.treedepth_share, f"<= {TREEDEPTH_MAX_SHARE:.0%}",
             self.treedepth_share <= TREEDEPTH_MAX_SHARE, ""),
        ]
        out = pd.DataFrame(rows, columns=["check", "label", "value", "threshold", "passed", "worst"])
        out["passed"] = out["passed"].astype(bool)
        return out.set_index("check")

    @property
    def passed(self) -> bool:
        """True when every check passes."""
        return bool(self.checks["passed"].all())

    def failures(self) -> list[str]:
        """One sentence per failing check: the value, the threshold, the worst variable and what to try."""
        out = []
        for key, row in self.checks.iterrows():
            if not row["passed"]:
                where = f" (worst: {row['worst']})" if row["worst"] else ""
                out.append(f"{row['label']} = {_fmt(row['value'])}, needs {row['threshold']}{where}: {ADVICE[key]}")
        return out

    def text(self) -> str:
        """A short plain-text verdict."""
        lines = [f"Diagnostics ({self.n_draws} draws): {'PASS' if self.passed else 'FAIL'}"]
        for _, row in self.checks.iterrows():
            mark = "ok  " if row["passed"] else "FAIL"
            lines.append(f"  [{mark}] {row['label']:<20} {_fmt(row['value']):>10}  (needs {row['threshold']})")
        return "\n".join(lines)

    def warn(self) -> None:
        """Emit one :class:`SamplingWarning` listing every failing check (nothing when all pass)."""
        failures = self.failures()
        if failures:
            warnings.warn("Sampling diagnostics FAILED, do not trust these results yet:\n  - "
                          + "\n  - ".join(failures), SamplingWarning, stacklevel=3)


def _fmt(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _worst(da: xr.DataArray, pick) -> tuple[float, str]:
    values = da.values
    if values.ndim == 0:
        return float(values), da.name
    flat = np.nan_to_num(values.ravel(), nan=np.inf if pick is np.nanargmin else -np.inf)
    pos = np.unravel_index(int(pick(flat)), values.shape)
    label = ", ".join(str(da[d].values[i]) if d in da.coords else str(i) for d, i in zip(da.dims, pos, strict=True))
    return float(values[pos]), f"{da.name}[{label}]"


def diagnose(tree: xr.DataTree, var_names: list[str] | None = None) -> Diagnostics:
    """Compute the convergence diagnostics of a fit.

    Parameters
    ----------
    tree : xarray.DataTree
        With ``posterior`` and ``sample_stats`` groups (nutpie or PyMC).
    var_names : list of str, optional
        Posterior variables to check (default: all).

    Returns
    -------
    Diagnostics
    """
    posterior = tree["posterior"].to_dataset()
    names = var_names or [v for v in posterior.data_vars if posterior[v].dtype.kind == "f"]
    # elements that never vary (structural zeros and ones) have no R-hat or ESS: they are skipped
    sub = posterior[names]
    with np.errstate(invalid="ignore", divide="ignore"):  # constant elements (e.g. a Cholesky diagonal) give NaN
        rhat = az.rhat(sub)
        bulk = az.ess(sub, method="bulk")
        tail = az.ess(sub, method="tail")
    rows = {}
    for name in names:
        r, r_at = _worst(rhat[name].rename(name), np.nanargmax)
        b, b_at = _worst(bulk[name].rename(name), np.nanargmin)
        t, t_at = _worst(tail[name].rename(name), np.nanargmin)
        rows[name] = {"max_rhat": r, "rhat_at": r_at, "min_ess_bulk": b, "ess_bulk_at": b_at,
                      "min_ess_tail": t, "ess_tail_at": t_at}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "variable"
    stats = tree["sample_stats"].to_dataset()
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    bfmi = np.atleast_1d(np.asarray(az.bfmi(stats["energy"].values), dtype=float))
    depth_var = next((v for v in ("maxdepth_reached", "reached_max_treedepth") if v in stats), None)
    depth = float(stats[depth_var].mean()) if depth_var else 0.0
    n_draws = int(posterior.sizes["chain"] * posterior.sizes["draw"])
    return Diagnostics(table=table, divergences=divergences, bfmi=bfmi, treedepth_share=depth, n_draws=n_draws)


def _extreme(column: pd.Series, which: str, none: str) -> tuple[float, str]:
    """The max (or min) of a per-variable column and the variable it is at; NaN (a failed check) when all are NaN."""
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().all():
        return float("nan"), none
    return float(getattr(values, which)()), str(getattr(values, f"idx{which}")())
