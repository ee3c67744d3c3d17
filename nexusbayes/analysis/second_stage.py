r"""Second-stage regressions on the traits: once per plausible value, combined by Rubin's rules.

**Rubin's rules.** With :math:`m` plausible values, each analysis :math:`i` gives an estimate
:math:`\hat q_i` and its squared standard error :math:`U_i`. The combined estimate is their mean
:math:`\bar q`; its variance adds the mean within-analysis variance :math:`\bar U` and the variance
between the estimates :math:`B = \sum_i (\hat q_i - \bar q)^2 / (m - 1)`, inflated for the finite
:math:`m`:

.. math:: T = \bar U + (1 + 1/m) B,

and the interval is :math:`\bar q \pm t_{\nu}\sqrt{T}` with Barnard and Rubin's (1999) degrees of
freedom, :math:`\nu = (\nu_{old}^{-1} + \nu_{obs}^{-1})^{-1}`, :math:`\nu_{old} = (m - 1)/\lambda^2`,
:math:`\nu_{obs} = \nu_{com}(\nu_{com} + 1)(1 - \lambda)/(\nu_{com} + 3)`, where
:math:`\lambda = (1 + 1/m)B/T` is the fraction of the information missing because the traits are not
observed (``fmi``) and :math:`\nu_{com}` the residual degrees of freedom of one analysis.

**Which estimate to trust.** The plausible values come from the measurement model alone: the outcome of
the second stage was not in it. Drawn so, a trait used as a *predictor* gives slopes shrunk towards zero by
the trait's reliability (the share of its variance the posterior mean holds), while the regression on the
posterior means (regression calibration) is not shrunk, because a trait given the data scatters around its
posterior mean independently of it. Used as the *outcome* (``capability ~ aid``), both are shrunk unless the
covariate is in the measurement model. This is the large-scale assessments' rule that plausible values serve
the analyses whose variables were in their conditioning model; :func:`regress` reports both and the reliability
of each trait. (The regression on posterior means is unbiased across fits, but its interval leaves out the fit's
own measurement error, so one fit's interval can miss; the plausible values' interval carries that error.)

Examples
--------
>>> import numpy as np
>>> combined = rubin(np.array([[1.0], [1.2], [0.8]]), np.array([[0.01], [0.01], [0.01]]), df_complete=50)
>>> round(float(combined["estimate"].iloc[0]), 6), round(float(combined["between"].iloc[0]), 6)
(1.0, 0.04)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from nexusbayes.analysis.formula import Formula, FormulaError
from nexusbayes.analysis.plausible import PV, plausible_values
from nexusbayes.analysis.typology import SAMPLE_DIMS, interval_names
from nexusbayes.constants import CI_PROB
from nexusbayes.model.roles import THETA

#: Columns of the data that say which region-period each row belongs to.
KEYS = ("region", "period")


def rubin(estimates: np.ndarray, variances: np.ndarray, df_complete: float, ci_prob: float = CI_PROB,
          terms=None) -> pd.DataFrame:
    r"""Combine ``m`` analyses by Rubin's rules (see the module docstring).

    Parameters
    ----------
    estimates, variances : ndarray (m, p)
        Each analysis's estimates and squared standard errors.
    df_complete : float
        Residual degrees of freedom of one analysis (``inf`` for large samples).
    ci_prob : float
        Probability of the interval.
    terms : sequence of str, optional
        Row labels.

    Returns
    -------
    pandas.DataFrame
        One row per term: ``estimate``, ``se``, the interval, ``df``, ``within`` (:math:`\bar U`),
        ``between`` (:math:`B`) and ``fmi`` (:math:`\\lambda`).
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = q.shape[0]
    if m < 2:
        raise ValueError("Rubin's rules need at least 2 analyses (plausible values)")
    mean, within = q.mean(axis=0), u.mean(axis=0)
    between = q.var(axis=0, ddof=1)
    total = within + (1 + 1 / m) * between
    lam = np.where(total > 0, (1 + 1 / m) * between / total, 0.0)
    with np.errstate(divide="ignore"):
        df_old = np.where(lam > 0, (m - 1) / lam**2, np.inf)
        df_obs = df_complete * (df_complete + 1) * (1 - lam) / (df_complete + 3) if np.isfinite(df_complete) \
            else np.full_like(lam, np.inf)
        df = 1 / (1 / df_old + 1 / df_obs)
    se = np.sqrt(total)
    lo, hi = interval_names(ci_prob)
    half = stats.t.ppf(0.5 + ci_prob / 2, df) * se
    return pd.DataFrame({"estimate": mean, "se": se, lo: mean - half, hi: mean + half, "df": df,
                         "within": within, "between": between, "fmi": lam},
                        index=pd.Index(terms if terms is not None else range(q.shape[1]), name="term"))


def ols(design: pd.DataFrame, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Least-squares estimates, their classical variances and the residual degrees of freedom."""
    x = design.to_numpy(dtype=float)
    n, p = x.shape
    if n <= p:
        raise FormulaError(f"{n} rows for {p} coefficients: a regression needs more rows than coefficients")
    rank = np.linalg.matrix_rank(x)
    if rank < p:
        raise FormulaError(f"the design's columns ({', '.join(design.columns)}) are linearly dependent (rank "
                           f"{rank} of {p}): drop a term, or a level no row has")
    coef, *_ = np.linalg.lstsq(x, outcome, rcond=None)
    resid = outcome - x @ coef
    sigma2 = resid @ resid / (n - p)
    return coef, sigma2 * np.diag(np.linalg.inv(x.T @ x)), n - p


@dataclass(frozen=True)
class Regression:
    """A second-stage regression over plausible values, beside the one on posterior means.

    Attributes
    ----------
    formula : str
    table : pandas.DataFrame
        One row per coefficient (``term``): the plausible values' combined ``estimate``, ``se``, interval,
        ``df`` and ``fmi``, then the naive regression on posterior means (``naive_estimate``, ``naive_se``
        and its interval).
    reliability : pandas.Series
        Per trait, the variance of its posterior means over the rows' region-periods divided by that plus the
        mean posterior variance: how far plausible values used as predictors shrink slopes.
    n_rows, n_plausible : int
    """

    formula: str
    table: pd.DataFrame
    reliability: pd.Series
    n_rows: int
    n_plausible: int

    def text(self) -> str:
        """The table as text, with what it rests on."""
        shown = self.table.to_string(float_format=lambda v: f"{v:.3f}")
        rel = ", ".join(f"{k} {v:.2f}" for k, v in self.reliability.items())
        return (f"{self.formula}: {self.n_rows} rows, {self.n_plausible} plausible values combined by Rubin's "
                f"rules; naive: OLS on posterior means. Reliability of the traits: {rel}\n{shown}")


def _cells(data: pd.DataFrame, theta, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (region, period) positions in ``theta``, matched by their text."""
    regions = {str(r): i for i, r in enumerate(theta["region"].values)}
    periods = {str(p): i for i, p in enumerate(theta["period"].values)}
    r = data["region"].astype(str).map(regions)
    t = data["period"].astype(str).map(periods)
    missing = (r.isna() | t.isna()).to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)[:5]
        shown = "; ".join(f"row {data.index[i]!r}: ({data['region'].iloc[i]!r}, {data['period'].iloc[i]!r})"
                          for i in rows)
        raise FormulaError(f"{label}: {missing.sum()} row(s) name a region-period the fit does not have ({shown}): "
                           "use the fit's region names and period labels, or drop those rows")
    return r.to_numpy(dtype=int), t.to_numpy(dtype=int)


def regress(fit, formula: str, data: pd.DataFrame, n: int = 20, seed: int = 0,
            ci_prob: float = CI_PROB) -> Regression:
    """Regress an outcome on the traits (and other columns), over ``n`` plausible values and on posterior means.

    Parameters
    ----------
    fit : Fit
        A fit (its tree, spec and panel).
    formula : str
        ``outcome ~ terms`` (see :mod:`nexusbayes.analysis.formula`); the traits are named as in the spec
        (``capability``, ``willingness``); every other name is a column of ``data``.
    data : pandas.DataFrame
        One row per observation, with columns ``region`` and ``period`` (the fit's labels) saying whose traits
        it gets; several rows may share a region-period.
    n : int
        Plausible values (at least 2; :func:`~nexusbayes.analysis.plausible.plausible_values`).
    seed : int
        Seed of the choice of draws.
    ci_prob : float
        Probability of the intervals.

    Returns
    -------
    Regression
        Combined by Rubin's rules (:func:`rubin`) and the naive OLS on posterior means side by side.

    Raises
    ------
    FormulaError
        When the formula cannot be read, names a missing column, data columns are named like a trait, values
        are missing, or a row names a region-period the fit lacks.
    """
    label = "the second-stage data"
    parsed = Formula.parse(formula)
    if not isinstance(data, pd.DataFrame):
        raise FormulaError(f"{label}: give a pandas DataFrame, got {type(data).__name__}")
    traits = [str(t) for t in fit.tree["posterior"]["trait"].values]
    clash = sorted(set(traits) & set(data.columns))
    if clash:
        raise FormulaError(f"{label}: column(s) {clash} are named like the fit's traits, which the regression "
                           "supplies: rename them")
    need = [c for c in [*KEYS, *parsed.columns] if c not in traits]
    absent = [c for c in need if c not in data.columns]
    if absent:
        raise FormulaError(f"{label}: no column(s) {absent} (formula {formula!r}); it has {list(data.columns)}")
    nan = data[need].isna()
    if nan.any().any():
        row, col = nan.stack()[lambda s: s].index[0]
        raise FormulaError(f"{label}: {int(nan.to_numpy().sum())} missing value(s), first in row {row!r}, column "
                           f"{col!r}: drop or fill those rows first (nothing is dropped silently)")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise FormulaError(f"n = {n!r}: Rubin's rules need at least 2 plausible values (5 to 20 is usual)")
    theta = fit.tree["posterior"][THETA].transpose(*SAMPLE_DIMS, "region", "period", "trait")
    region, period = _cells(data, theta, label)
    columns = data.drop(columns=[c for c in data.columns if c not in need])

    def analysis(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """OLS with the traits ``values`` (region, period, trait) put in each row."""
        rows = columns.assign(**{name: values[region, period, j] for j, name in enumerate(traits)})
        return ols(parsed.design(rows), rows[parsed.outcome].to_numpy(dtype=float))

    draws = theta.values.reshape(-1, *theta.shape[2:])
    mean = draws.mean(axis=0)
    naive, naive_var, df_com = analysis(mean)
    pvs = plausible_values(fit.tree, fit.spec, fit.panel, n, seed=seed).dataset[THETA]
    results = [analysis(pvs.isel({PV: i}).transpose("region", "period", "trait").values) for i in range(n)]
    terms = list(parsed.design(columns.assign(**{name: 0.0 for name in traits})).columns)
    table = rubin(np.array([r[0] for r in results]), np.array([r[1] for r in results]), df_com, ci_prob,
                  terms=terms)
    lo, hi = interval_names(ci_prob)
    half = stats.t.ppf(0.5 + ci_prob / 2, df_com) * np.sqrt(naive_var)
    table = table.assign(naive_estimate=naive, naive_se=np.sqrt(naive_var), **{f"naive_{lo}": naive - half,
                                                                               f"naive_{hi}": naive + half})
    means = mean[region, period]                                  # (row, trait)
    within = draws.var(axis=0)[region, period].mean(axis=0)
    reliability = pd.Series(means.var(axis=0) / (means.var(axis=0) + within), index=traits, name="reliability")
    return Regression(formula, table, reliability, len(data), n)
