"""Generic diagnostics of the report, drawn with arviz-plots and computed with arviz-stats.

Sampling (rank, trace, energy, pair plots), prior and posterior predictive checks per indicator,
and PSIS-LOO with its Pareto-k table. Figures come back as matplotlib figures (rendered by the report).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import arviz as az
import arviz_base as azb
import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.loo.loo_helper import _get_r_eff
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nexusbayes.analysis.diagnostics import Diagnostics
from nexusbayes.constants import BFMI_MIN, PARETO_K_MAX
from nexusbayes.data.panel import Panel
from nexusbayes.errors import ReportWarning
from nexusbayes.model.design import term_key
from nexusbayes.model.reporting import REPORTED, reporting_cells
from nexusbayes.report.figures import RC
from nexusbayes.spec.document import Spec

if TYPE_CHECKING:
    from nexusbayes.fit import Fit

SAMPLE_DIMS = ("chain", "draw")
#: Families whose predictive checks are bars (rootograms) rather than densities.
DISCRETE = {"negbin", "binomial", "bernoulli", "ordinal"}
#: A count indicator whose observed or predicted values span more than this many integers is drawn as an
#: ECDF instead: a rootogram has one bar per value, and a prior predictive of counts can take thousands
#: (unreadable, and over a second to draw).
ROOTOGRAM_MAX_RANGE = 60
#: Predictive checks draw at most this many replicated data sets (thinned evenly).
PPC_MAX_DRAWS = 1000
#: How many of the worst-mixing parameters the pair plot shows.
N_WORST = 4
#: Twice the bins of arviz-stats' density estimate (512): an element whose draws span fewer steps of their
#: precision than this has no density to draw (numpy refuses the bins).
DENSITY_BINS = 1024


def render(plot, *args, figure_kwargs: dict | None = None, **kwargs) -> Figure:
    """Call an arviz-plots function with the matplotlib backend (constrained layout) and return its figure."""
    figure_kwargs = {"layout": "constrained", **(figure_kwargs or {})}
    with plt.rc_context(RC):
        collection = plot(*args, backend="matplotlib", figure_kwargs=figure_kwargs, **kwargs)
        return collection.viz["figure"].item()


# ---- sampling ------------------------------------------------------------------------------------
def hyperparameters(tree: xr.DataTree, names: Collection[str]) -> xr.DataTree:
    """Posterior of the scale and correlation parameters ``names``, with ``sample_stats`` (for divergences).

    ``names`` come from the roles registry (:meth:`nexusbayes.model.roles.Roles.scales`).

    The trait correlation matrix is reduced to its distinct off-diagonal elements (dim ``pair``).
    """
    post = tree["posterior"].to_dataset()
    out = {}
    for name in post.data_vars:
        if name not in names or not np.issubdtype(post[name].dtype, np.floating):
            continue
        if name == "trait_corr":
            traits = [str(t) for t in post["trait"].values]
            pairs = [(a, b) for i, a in enumerate(traits) for b in traits[i + 1:]]
            if not pairs:
                continue
            corr = xr.concat([post[name].sel(trait=a, trait_=b, drop=True) for a, b in pairs], dim="pair")
            out[name] = corr.assign_coords(pair=[f"{a}~{b}" for a, b in pairs])
        else:
            out[name] = post[name]
    return xr.DataTree.from_dict({"posterior": xr.Dataset(out), **_divergences(tree)})


def worst_mixing(tree: xr.DataTree, diagnostics: Diagnostics, n: int = N_WORST,
                 exclude: Collection[str] = ()) -> xr.DataTree:
    """The worst-mixing element (lowest bulk ESS) of each of the ``n`` worst-mixing variables, with ``sample_stats``.

    One element per variable, and only variables not in ``exclude`` (pass the model's
    deterministics): elements of one variable, or a deterministic and the free parameter it is
    computed from, can be functions of one another (the Cholesky factor and the correlation of two
    traits are both functions of one correlation), and their pair plot would show curves, not mixing.
    Elements that never vary (structural zeros and ones, or the few draws a degenerate particle update resamples,
    which can repeat one value) are left out: their density is undefined. So are elements whose draws vary by
    fewer than :data:`DENSITY_BINS` steps of their precision (a chain stuck at a boundary, in single precision):
    a density's bins between their extremes would not be distinct numbers.
    """
    post = tree["posterior"].to_dataset()
    table = diagnostics.table["min_ess_bulk"].dropna().sort_values()
    names = [name for name in table.index if name not in set(exclude) and name in post.data_vars][:n]
    ess = diagnostics.elements["ess_bulk"]      # every element's, computed by diagnose
    chosen = {}
    for name in names:
        values = ess[name]
        draws = post[name].transpose(*SAMPLE_DIMS, *values.dims).values
        span = draws.max(axis=(0, 1)) - draws.min(axis=(0, 1))
        varies = (span > DENSITY_BINS * np.spacing(np.abs(draws).max(axis=(0, 1)))).ravel()   # else no density
        flat = np.where(varies, values.values.ravel(), np.nan)
        if not np.isfinite(flat).any():
            continue
        index = np.unravel_index(int(np.nanargmin(np.where(np.isfinite(flat), flat, np.nan))), values.shape)
        sel = {d: values[d].values[i] if d in values.coords else i for d, i in zip(values.dims, index, strict=True)}
        label = f"{name}[{', '.join(str(v) for v in sel.values())}]" if sel else name
        label = label.replace("/", "\u2215")     # a DataTree variable name cannot hold '/'
        chosen[label] = post[name].isel({d: list(post[name][d].values).index(v) if d in post[name].coords else v
                                         for d, v in sel.items()}, drop=True)
    return xr.DataTree.from_dict({"posterior": xr.Dataset(chosen), **_divergences(tree)})


def _divergences(tree: xr.DataTree) -> dict[str, xr.Dataset]:
    """``{"sample_stats": the divergences}`` for the plots to mark, or nothing for draws that are not MCMC's."""
    stats = tree["sample_stats"].to_dataset()
    return {"sample_stats": stats[["diverging"]]} if "diverging" in stats else {}


def rank_tests(hyper: xr.DataTree) -> pd.DataFrame:
    """The rank plots' own test: each panel's multi-chain uniformity p-value against its alpha.

    The same test arviz-plots prints on each panel (``p=...(α=...)``; arviz-stats'
    ``mchain_uniformity_test`` on the fractional ranks, alpha = 1 - ``stats.envelope_prob``).
    Returns one row per panel: ``variable``, ``element``, ``p_value``, ``alpha`` and ``flagged``
    (p below alpha: the chains' ranks are not uniform, so the chains may not agree).
    """
    post = hyper["posterior"].to_dataset()
    alpha = 1 - float(azb.rcParams["stats.envelope_prob"])
    if post.sizes.get("chain", 0) < 2:   # the test compares chains: nothing to compare
        return pd.DataFrame({"variable": pd.Series(dtype=object), "element": pd.Series(dtype=object),
                             "p_value": pd.Series(dtype=float), "alpha": pd.Series(dtype=float),
                             "flagged": pd.Series(dtype=bool)})
    ranks = post.azstats.compute_ranks(dim=list(SAMPLE_DIMS), relative=True)
    p_values = ranks.azstats.mchain_uniformity_test(dim=list(SAMPLE_DIMS))[0]
    rows = []
    for name, values in p_values.data_vars.items():
        for index in np.ndindex(values.shape):
            coords = [str(values[d].values[i]) if d in values.coords else str(i)
                      for d, i in zip(values.dims, index, strict=True)]
            p = float(values.values[index])
            rows.append({"variable": name, "element": ", ".join(coords), "p_value": p, "alpha": alpha,
                         "flagged": bool(p < alpha)})
    return pd.DataFrame(rows, columns=["variable", "element", "p_value", "alpha", "flagged"])


def rank_caption(rank: pd.DataFrame) -> str:
    """The rank plot's caption: what the panels show, and which panels fail their own test (:func:`rank_tests`)."""
    flagged = rank[rank["flagged"]]
    verdict = ("every panel passes its test" if flagged.empty else
               f"{len(flagged)} of {len(rank)} panels fail it ("
               + ", ".join(f"{r.variable}{f'[{r.element}]' if r.element else ''} p = {r.p_value:.3f}"
                           for r in flagged.itertuples())
               + "): their chains' ranks are not uniform, so the chains may not agree there even when R-hat "
               "passes; the verdict lists this as a warning. Run longer before trusting those parameters")
    alpha = rank["alpha"].iloc[0] if len(rank) else 1 - float(azb.rcParams["stats.envelope_prob"])
    return ("Rank plots of the scales and correlations: the difference between each chain's rank ECDF and the "
            f"uniform one. Each panel prints a multi-chain uniformity test (p below α = {alpha:.2g} flags chains "
            f"whose ranks differ); {verdict}.")


def _tidy_energy(fig: Figure) -> Figure:
    """Name the energy plot's axes: chains as integers on the E-BFMI panel, the energy on the density's x axis."""
    for ax in fig.axes:
        if ax.get_title() == "BFMI":
            ax.set_title(f"E-BFMI per chain (dashed: minimum {BFMI_MIN})")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("chain")
            ax.set_xlabel("E-BFMI")
        elif ax.get_visible():
            ax.set_xlabel("energy (centred)")
    return fig


def sampling_figures(tree: xr.DataTree, diagnostics: Diagnostics, scales: Collection[str],
                     rank: pd.DataFrame | None = None, exclude: Collection[str] = ()) -> dict[str, tuple[str, Figure]]:
    """Rank and trace plots of the hyperparameters, the energy plot, and the pair plot of the worst-mixing elements.

    ``scales`` names the hyperparameters (see :func:`hyperparameters`); ``rank`` is :func:`rank_tests` of
    them (its result goes into the rank plot's caption); ``exclude`` lists the model's deterministics
    (see :func:`worst_mixing`).
    Returns ``{file stem: (caption, figure)}``.
    """
    hyper = hyperparameters(tree, scales)
    worst = worst_mixing(tree, diagnostics, exclude=exclude)
    out = {}
    if hyper["posterior"].data_vars:
        panels = sum(int(np.prod([v.sizes[d] for d in v.dims if d not in SAMPLE_DIMS]))
                     for v in hyper["posterior"].data_vars.values())
        size = {"figure_kwargs": {"figsize": (12, 3.0 * math.ceil(panels / 4))}}
        if hyper["posterior"].sizes.get("chain", 0) >= 2:   # rank plots compare chains
            rank = rank_tests(hyper) if rank is None else rank
            out["rank_hyperparameters"] = (rank_caption(rank), render(azp.plot_rank, hyper, **size))
        out["trace_hyperparameters"] = ("Traces of the scales and correlations, divergences marked below.",
                                        render(azp.plot_trace, hyper, **size))
    if "energy" in tree["sample_stats"]:     # not for draws resampled by a particle update
        out["energy"] = ("Energy: marginal energy against energy transitions; similar widths (E-BFMI above "
                         f"{BFMI_MIN}) mean the sampler explores the energy well.",
                         _tidy_energy(render(azp.plot_energy, tree)))
    labels, marked = ", ".join(worst["posterior"].data_vars), "sample_stats" in worst.children
    size = 2.6 * max(2, len(worst["posterior"].data_vars))
    out["pair_worst_mixing"] = (f"Pair plot of the worst-mixing element of each of the "
                                f"{len(worst['posterior'].data_vars)} free parameters with the lowest bulk ESS "
                                f"({labels}); divergent transitions, if any, marked.",
                                _short_pair_labels(render(azp.plot_pair, worst, visuals={"divergence": marked},
                                                          marginal=True, figure_kwargs={"figsize": (size, size)})))
    return out


def _short_pair_labels(fig: Figure) -> Figure:
    """Break the pair plot's long element labels after the variable name, so neighbouring labels do not collide."""
    for ax in fig.axes:
        for get, set_ in ((ax.get_xlabel, ax.set_xlabel), (ax.get_ylabel, ax.set_ylabel)):
            label = get()
            if "[" in label and "\n" not in label:
                set_(label.replace("[", "\n[", 1))
    return fig


# ---- predictive checks ---------------------------------------------------------------------------
def observation_index(tree: xr.DataTree, spec: Spec, panel: Panel) -> pd.DataFrame:
    """Term, ``obs`` label, region, period, indicator (and rater) and value of each observation.

    Rows are in the order of each term's ``obs_<term>`` dim, which follows the panel's order
    (:func:`nexusbayes.model.design.make_design`); the ``row`` column is the fit's ``obs`` label (the line of
    the data file as fitted). The observed values are checked against the panel's.
    """
    frame = panel.frame
    cols = [c for c in ("region", "period", "indicator", "rater", "value") if c in frame.columns]
    parts = []
    for var, observed in tree["observed_data"].to_dataset().data_vars.items():
        key = var.removeprefix("y_")
        names = [n for n in panel.indicators if term_key(spec, n) == key]
        sub = frame.loc[frame["indicator"].isin(names), cols].reset_index(drop=True)
        if len(sub) != observed.size or not np.allclose(sub["value"].to_numpy(float), observed.values):
            raise ValueError(f"the observations of {var} do not line up with the data table; was the fit's data "
                             "changed?")
        sub.insert(0, "row", observed[f"obs_{key}"].values)
        sub.insert(0, "term", var)
        parts.append(sub)
    return pd.concat(parts, ignore_index=True)


def by_indicator(tree: xr.DataTree, spec: Spec, index: pd.DataFrame, group: str) -> xr.Dataset:
    """Split the ``y_<term>`` variables of ``group`` into one variable per indicator, over its own ``obs`` dim.

    ``index`` is :func:`observation_index`. Discrete families are cast to integers (arviz-plots tells
    discrete from continuous by dtype).
    """
    source = tree[group].to_dataset()
    if "draw" in source.dims:     # a visual check: at most PPC_MAX_DRAWS draws, evenly thinned
        total = source.sizes["draw"] * source.sizes.get("chain", 1)
        source = source.isel(draw=slice(None, None, max(1, math.ceil(total / PPC_MAX_DRAWS))))
    out = {}
    for name in dict.fromkeys(index["indicator"]):
        key = term_key(spec, name)
        term = index[index["term"] == f"y_{key}"]
        positions = np.flatnonzero(term["indicator"].to_numpy() == name)
        values = source[f"y_{key}"].isel({f"obs_{key}": positions}).rename({f"obs_{key}": f"obs_{name}"})
        if spec.indicators[name].family in DISCRETE:
            values = values.round().astype("int64")
        out[name] = values.drop_vars(f"obs_{name}")
    return xr.Dataset(out)


def predictive_figures(tree: xr.DataTree, spec: Spec, panel: Panel) -> dict[str, tuple[str, Figure]]:
    """Prior and posterior predictive checks per indicator.

    Rootograms for ratings and small counts, densities for continuous indicators, ECDFs for counts
    whose observed or predicted values have a wide range (so the prior and posterior checks of one
    indicator may differ in kind).

    The observed data are drawn in the prior checks too (arviz-plots leaves them out of prior checks
    unless asked): a prior check asks whether the prior allows data like these.

    Returns ``{file stem: (caption, figure)}``.
    """
    index = observation_index(tree, spec, panel)
    observed = by_indicator(tree, spec, index, "observed_data")
    out = {}
    for group, when in (("prior_predictive", "Prior"), ("posterior_predictive", "Posterior")):
        predicted = by_indicator(tree, spec, index, group)
        kinds: dict[str, list[str]] = {"rootogram": [], "density": [], "ecdf": []}
        for name in panel.indicators:
            if spec.indicators[name].family not in DISCRETE:
                kinds["density"].append(name)
                continue
            low = min(int(observed[name].min()), int(predicted[name].min()))
            high = max(int(observed[name].max()), int(predicted[name].max()))
            kinds["rootogram" if high - low <= ROOTOGRAM_MAX_RANGE else "ecdf"].append(name)
        dt = xr.DataTree.from_dict({group: predicted, "observed_data": observed})
        short = group.split("_")[0]
        for kind, names in kinds.items():
            if not names:
                continue
            listed = ", ".join(names)
            if kind == "rootogram":
                data = _tidy_rootogram(render(azp.plot_ppc_rootogram, dt, group=group, var_names=names,
                                              visuals={"observed_markers": {}}))
                caption = (f"{when} predictive rootograms ({listed}): predicted frequency of each value with its "
                           "interval against the observed frequency, on the square-root scale (small counts "
                           "stay visible).")
            elif kind == "density":
                data = render(azp.plot_ppc_dist, dt, group=group, var_names=names, kind="kde",
                              visuals={"observed_dist": {}})
                caption = (f"{when} predictive densities ({listed}): densities of replicated data sets against "
                           "the observed data's.")
            else:   # wide-ranging counts: ECDFs on the log1p scale
                logged = xr.DataTree.from_dict({g: np.log1p(dt[g].to_dataset()[names].astype(float))
                                                .rename({n: f"log1p({n})" for n in names})
                                                for g in (group, "observed_data")})
                data = render(azp.plot_ppc_dist, logged, group=group, kind="ecdf", visuals={"observed_dist": {}})
                caption = (f"{when} predictive ECDFs of log(1 + count) ({listed}): replicated data sets against "
                           "the observed data.")
            out[f"ppc_{short}_{kind}"] = (caption, data)
    return out


def _tidy_rootogram(fig: Figure) -> Figure:
    """Integer ticks for the values, and a y label that names the square-root scale."""
    for ax in fig.axes:
        if ax.get_visible() and ax.has_data():
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("count (square-root scale)")
            ax.set_xlabel("value")
    return fig


# ---- PSIS-LOO ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Loo:
    """PSIS-LOO per likelihood term, pointwise Pareto k, and the warnings arviz-stats gave.

    ``terms.attrs["not_shown"]`` is empty when every term has its PSIS-LOO, else one sentence naming the terms left
    out and why (the report shows it above the table).
    """

    terms: pd.DataFrame
    by_indicator: pd.DataFrame
    pointwise: pd.DataFrame
    warnings: list[str]
    figures: dict[str, tuple[str, Figure]]

    @property
    def flagged(self) -> pd.DataFrame:
        """Observations whose Pareto k exceeds :data:`~nexusbayes.constants.PARETO_K_MAX`."""
        return self.pointwise[self.pointwise["pareto_k"] > PARETO_K_MAX].sort_values("pareto_k", ascending=False)


def _in_double(tree: xr.DataTree, loglik: xr.DataArray) -> xr.DataTree:
    """``tree`` (arrays shared) whose log-likelihood is the one term ``loglik``, in double precision.

    The log-likelihood is given in single precision (:data:`~nexusbayes.model.predict.LOG_LIKELIHOOD_DTYPE`);
    PSIS in single precision would add its own rounding (~1e-5 per observation).
    """
    out = tree.copy(deep=False)
    out["log_likelihood"] = xr.DataTree(loglik.astype(np.float64).to_dataset())
    return out


def loo(fit: Fit) -> Loo:
    """PSIS-LOO for each ``y_<term>`` of the fit's log-likelihood, with Pareto k per observation.

    The log-likelihood is computed one term at a time (:meth:`~nexusbayes.fit.Fit.log_likelihood`), each term
    once, so the whole of it is never held; of each term's PSIS-LOO only its summary, pointwise elpd and
    Pareto k are kept (not its smoothed weights, one per draw and observation).

    Observations are named by region, period and indicator (and rater) through their row label; the reporting
    model's term ``reported`` (:mod:`nexusbayes.model.reporting`) by its cells, and it is left out of the table
    by indicator, which sums the values' terms.

    A term whose Pareto smoothing fails (arviz-stats' ``ValueError``, e.g. "All tail values are the same": draws that
    repeat a few values, as a particle update whose weights rest on one draw gives) is left out of the tables, and
    ``terms.attrs["not_shown"]`` says which and why; a :class:`~nexusbayes.errors.ReportWarning` too.
    """
    tree, spec, panel = fit.tree, fit.spec, fit.panel
    index = observation_index(tree, spec, panel)
    terms, points, messages, results, failed = [], [], [], {}, {}
    # az.loo's relative efficiency is one number for every term (the mean ESS of all posterior elements over the
    # draws): computed once here with arviz-stats' own function (pinned < 1.4), not once per term (1.5 of 2 s each)
    reff = _get_r_eff(tree, int(np.prod([tree["posterior"].sizes[d] for d in SAMPLE_DIMS])))
    for var in fit.likelihood_terms:
        loglik = fit.log_likelihood([var])[var]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = az.loo(_in_double(tree, loglik), var_name=var, pointwise=True, reff=reff)
            except ValueError as exc:     # Pareto smoothing impossible: the reason is said, the rest reported
                failed[var] = f"{exc}; {_distinct_draws(loglik)}"
                continue
        del loglik
        messages += [f"{var}: {w.message}" for w in caught]
        results[var] = result = dataclasses.replace(result, log_weights=None)   # (draws, obs) doubles: not needed
        k = result.pareto_k
        (dim,) = k.dims
        rows = k[dim].values
        part = (reporting_cells(spec, panel).table(panel).assign(term=var) if var == REPORTED     # reporting cells
                else index[index["term"] == var].reset_index(drop=True))
        if not np.array_equal(part["row"].to_numpy(), rows):
            raise ValueError(f"the log-likelihood of {var} does not line up with its observations")
        part["elpd_loo"] = result.elpd_i.values
        part["pareto_k"] = k.values
        points.append(part)
        terms.append({"term": var, "n_obs": len(rows), "elpd_loo": result.elpd, "se": result.se, "p_loo": result.p,
                      "max_pareto_k": float(np.nanmax(k.values)),
                      "n_k_above": int((k.values > PARETO_K_MAX).sum()), "k_threshold": PARETO_K_MAX,
                      "sample_size_k_threshold": float(result.good_k)})
    pointwise = pd.concat(points, ignore_index=True) if points else index.iloc[:0].assign(elpd_loo=[], pareto_k=[])
    grouped = pointwise[pointwise["term"] != REPORTED].groupby("indicator", sort=False)    # the values' terms
    by_ind = pd.DataFrame({"n_obs": grouped.size(), "elpd_loo": grouped["elpd_loo"].sum(),
                           "max_pareto_k": grouped["pareto_k"].max(),
                           "n_k_above": grouped["pareto_k"].apply(lambda k: int((k > PARETO_K_MAX).sum()))})
    by_ind = by_ind.reindex(panel.indicators).reset_index()
    figures = {f"khat_{var}": (f"Pareto k of each observation of {var} (PSIS-LOO); above "
                               f"{PARETO_K_MAX} the leave-one-out estimate is unreliable.",
                               render(azp.plot_khat, result, threshold=PARETO_K_MAX))
               for var, result in results.items()}
    not_shown = _not_shown(failed, tree.attrs)
    if not_shown:
        warnings.warn(not_shown, ReportWarning, stacklevel=2)
    table = pd.DataFrame(terms, columns=LOO_COLUMNS)
    table.attrs["not_shown"] = not_shown       # the report says it above the table
    return Loo(terms=table, by_indicator=by_ind, pointwise=pointwise, warnings=messages, figures=figures)


#: The columns of :attr:`Loo.terms` (also when no term has its PSIS-LOO).
LOO_COLUMNS = ["term", "n_obs", "elpd_loo", "se", "p_loo", "max_pareto_k", "n_k_above", "k_threshold",
               "sample_size_k_threshold"]


def _distinct_draws(loglik: xr.DataArray) -> str:
    """How many distinct draws a term's log-likelihood holds, in words."""
    values = loglik.transpose(*SAMPLE_DIMS, ...).values
    values = values.reshape(values.shape[0] * values.shape[1], -1)
    return f"its log-likelihood takes {len(np.unique(values, axis=0))} distinct value(s) over {len(values)} draws"


def _not_shown(failed: dict[str, str], attrs: dict) -> str:
    """The sentence saying which terms' PSIS-LOO is not shown and why (empty when none failed)."""
    if not failed:
        return ""
    reasons = set(failed.values())
    why = reasons.pop() if len(reasons) == 1 else "; ".join(f"{var}: {why}" for var, why in failed.items())
    text = f"PSIS-LOO is not shown for {', '.join(failed)}: Pareto smoothing failed ({why})."
    if attrs.get("update_method") == "particles":
        text += (f" These draws are the fit's, resampled by a particle update whose weights rest on few of them "
                 f"(Pareto k {float(attrs['update_pareto_k']):.2f}, ESS after weighting "
                 f"{float(attrs['update_ess']):.1f}): refit on all the data (nexusbayes fit) to check the fit to "
                 "data by LOO.")
    else:
        text += " Too few distinct draws for PSIS: sample longer, or check the sampler's diagnostics."
    return text
