"""The four capacity types, their thresholds, and transitions between them.

The memo's Table 1 splits capability and willingness into high and low. Here each posterior
draw of (capability, willingness) for a region-period is put in a quadrant, so type
probabilities, transition probabilities and pooled transition matrices are all posterior
quantities computed draw by draw. The core works on NumPy arrays of draws; the public functions
wrap it for the fit's xarray DataTree.

Examples
--------
>>> import numpy as np
>>> classify(np.array([1.0, 1.0, -1.0, -1.0]), np.array([1.0, -1.0, 1.0, -1.0]), 0.0, 0.0)
array([0, 1, 2, 3])
"""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.constants import CI_PROB, TYPES
from nexusbayes.model.design import term_key
from nexusbayes.model.families import FAMILIES
from nexusbayes.model.roles import INTERCEPT, LOADING, THETA, cutpoints_name
from nexusbayes.spec.document import Spec
from nexusbayes.spec.sections import AnchoredThreshold

SAMPLE_DIMS = ("chain", "draw")


# ---- NumPy core --------------------------------------------------------------------------------
def classify(capability, willingness, cap_threshold, will_threshold) -> np.ndarray:
    """Type codes (index into :data:`nexusbayes.constants.TYPES`) for arrays of trait values.

    High means strictly above the threshold.
    """
    high_c = np.asarray(capability) > cap_threshold
    high_w = np.asarray(willingness) > will_threshold
    return np.where(high_c, np.where(high_w, 0, 1), np.where(high_w, 2, 3))


def transition_counts(codes: np.ndarray, n_types: int = len(TYPES)) -> np.ndarray:
    """Counts of (from, to) pairs over consecutive periods.

    ``codes`` has shape (..., unit, period); the result (..., from, to) sums over units and periods.
    """
    pair = codes[..., :-1] * n_types + codes[..., 1:]
    flat = pair.reshape(*pair.shape[:-2], -1)
    out = np.zeros((*flat.shape[:-1], n_types * n_types))
    for k in range(n_types * n_types):
        out[..., k] = (flat == k).sum(axis=-1)
    return out.reshape(*flat.shape[:-1], n_types, n_types)


def interval_names(ci_prob: float = CI_PROB) -> tuple[str, str]:
    """Column names of an equal-tailed interval: its two quantiles in percent.

    Examples
    --------
    >>> interval_names(0.9)
    ('q05', 'q95')
    >>> interval_names(0.95)
    ('q2.5', 'q97.5')
    """
    low = 100 * (1 - ci_prob) / 2
    return f"q{low:02g}", f"q{100 - low:02g}"


def eti(draws, ci_prob: float = CI_PROB, dim=SAMPLE_DIMS):
    """Equal-tailed interval ``(lower, upper)`` of posterior draws, by :func:`arviz_stats.eti`.

    The quantiles ``(1 - ci_prob) / 2`` and ``1 - (1 - ci_prob) / 2`` (NumPy's default "linear" method,
    as :meth:`xarray.DataArray.quantile`), over ``dim`` of a DataArray, or over the last axis of an array.

    Examples
    --------
    >>> lower, upper = eti(np.arange(101.0), 0.5)
    >>> float(lower), float(upper)
    (25.0, 75.0)
    """
    if isinstance(draws, xr.DataArray):
        bounds = azs.eti(draws, ci_prob, dim=list(dim))
        return bounds.isel(ci_bound=0, drop=True), bounds.isel(ci_bound=1, drop=True)
    bounds = azs.eti(np.asarray(draws, dtype=float), ci_prob, axis=-1)
    return bounds[..., 0], bounds[..., 1]


# ---- thresholds ------------------------------------------------------------------------------
def threshold_draws(tree: xr.DataTree, spec: Spec, trait: str) -> xr.DataArray:
    """The typology threshold of ``trait`` for every posterior draw (constant for latent thresholds).

    For an :class:`~nexusbayes.spec.sections.AnchoredThreshold` it is the latent value at which the anchor
    indicator's expected response equals the chosen value, computed with each draw's parameters.
    """
    post = tree["posterior"].to_dataset()
    shape = (post.sizes["chain"], post.sizes["draw"])
    thr = spec.threshold(trait)
    if not isinstance(thr, AnchoredThreshold):
        return xr.DataArray(np.full(shape, float(thr)), dims=SAMPLE_DIMS, name=f"threshold_{trait}")
    ind = spec.indicators[thr.indicator]
    family = FAMILIES[ind.family]
    loading = post[LOADING].sel(indicator=thr.indicator, trait=trait).values.ravel()
    intercept = post[INTERCEPT].sel(indicator=thr.indicator).values.ravel()
    const = tree["constant_data"].to_dataset()
    loc = float(const["centre_loc"].sel(indicator=thr.indicator))
    scale = float(const["centre_scale"].sel(indicator=thr.indicator))
    params = {}
    value = thr.value
    if ind.family == "ordinal":
        key = term_key(spec, thr.indicator)
        cut = post[cutpoints_name(key)].sel({f"indicator_{key}": thr.indicator}).values
        params["cutpoints"] = cut.reshape(-1, cut.shape[-1])
        value = (1 + ind.categories) / 2 if value is None else value
    offset = intercept + (0.0 if ind.family == "normal" else loc)
    latent = family.latent_at(value, offset, loading, (loc, scale), params, 0)
    return xr.DataArray(np.asarray(latent).reshape(shape), dims=SAMPLE_DIMS, name=f"threshold_{trait}")


def type_codes(tree: xr.DataTree, spec: Spec, shift: tuple[float, float] = (0.0, 0.0),
               var: str = "theta", thresholds: tuple[xr.DataArray, xr.DataArray] | None = None) -> xr.DataArray:
    """Type code (index into ``TYPES``) of every draw of ``posterior[var]`` (``theta`` or ``country_theta``).

    ``thresholds`` are the capability and willingness threshold draws when already computed
    (:func:`threshold_draws`), e.g. for many shifts.
    """
    if not spec.has_typology:
        raise ValueError(f"the typology needs traits 'capability' and 'willingness'; this spec has {spec.traits}")
    theta = tree["posterior"][var]
    if thresholds is None:
        thresholds = (threshold_draws(tree, spec, "capability"), threshold_draws(tree, spec, "willingness"))
    cap_t, will_t = thresholds[0] + shift[0], thresholds[1] + shift[1]
    codes = xr.apply_ufunc(classify, theta.sel(trait="capability"), theta.sel(trait="willingness"), cap_t, will_t)
    return codes.drop_vars("trait", errors="ignore")


# ---- public results --------------------------------------------------------------------------
def type_probabilities(tree: xr.DataTree, spec: Spec, shift: tuple[float, float] = (0.0, 0.0),
                       thresholds: tuple[xr.DataArray, xr.DataArray] | None = None) -> xr.DataArray:
    """Posterior probability of each capacity type for every region-period.

    Parameters
    ----------
    tree : xarray.DataTree
        A fit's DataTree (needs ``posterior.theta``).
    spec : Spec
    shift : (float, float)
        Added to the capability and willingness thresholds (for sensitivity analysis).
    thresholds : (DataArray, DataArray), optional
        The threshold draws when already computed (see :func:`type_codes`).

    Returns
    -------
    xarray.DataArray
        Dims (region, period, type), summing to 1 over ``type``.
    """
    codes = type_codes(tree, spec, shift, thresholds=thresholds)
    probs = xr.concat([(codes == k).mean(SAMPLE_DIMS) for k in range(len(TYPES))], dim="type")
    return probs.assign_coords(type=list(TYPES)).transpose("region", "period", "type").rename("type_probability")


def types_table(probs: xr.DataArray, region_country: dict[str, str] | None = None) -> pd.DataFrame:
    """Tidy table: one row per region-period with P(each type), the modal type and its probability."""
    wide = probs.to_dataset(dim="type").to_dataframe().reset_index()
    wide = wide[["region", "period", *TYPES]]
    wide["modal_type"] = wide[list(TYPES)].idxmax(axis=1)
    wide["modal_probability"] = wide[list(TYPES)].max(axis=1)
    if region_country is not None:
        wide.insert(0, "country", wide["region"].map(region_country))
    return wide


def transition_probabilities(tree: xr.DataTree, spec: Spec) -> xr.DataArray:
    """Per region and step, P(type at t = from, type at t+1 = to).

    Returns
    -------
    xarray.DataArray
        Dims (region, step, from, to); ``step`` is labelled by the later period. Sums to 1 over
        (from, to).
    """
    codes = type_codes(tree, spec).transpose(*SAMPLE_DIMS, "region", "period").values
    n = len(TYPES)
    pair = codes[..., :-1] * n + codes[..., 1:]
    probs = np.stack([(pair == k).mean(axis=(0, 1)) for k in range(n * n)], axis=-1)
    periods = tree["posterior"]["theta"]["period"].values
    return xr.DataArray(probs.reshape(*probs.shape[:-1], n, n), dims=("region", "step", "from", "to"),
                        coords={"region": tree["posterior"]["region"].values, "step": periods[1:],
                                "from": list(TYPES), "to": list(TYPES)}, name="transition_probability")


def transitions_table(probs: xr.DataArray, region_country: dict[str, str]) -> pd.DataFrame:
    """Tidy :func:`transition_probabilities`: one row per (country, region, step, from, to)."""
    table = probs.to_dataframe().reset_index()
    table.insert(0, "country", table["region"].map(region_country))
    return table


def transition_matrices(tree: xr.DataTree, spec: Spec, region_country: dict[str, str],
                        ci_prob: float = CI_PROB) -> pd.DataFrame:
    """Pooled transition matrix per country, computed draw by draw, with credible intervals.

    For each draw, the (from, to) counts over the country's regions and consecutive periods are
    normalised by row; rows with no region in ``from`` in that draw are skipped for that draw.

    Returns
    -------
    pandas.DataFrame
        Columns country, from, to, mean, sd, the interval (``q05``, ``q95`` for a 90% interval:
        :func:`interval_names`), and ``p_row_defined`` (share of draws in which the ``from`` type
        occurred at all) and ``from_count`` (mean number of region-steps starting in the ``from``
        type: a row resting on one or two such steps per draw has intervals spanning most of [0, 1]).
    """
    codes = type_codes(tree, spec).transpose(*SAMPLE_DIMS, "region", "period")
    regions = codes["region"].values
    flat = codes.values.reshape(-1, len(regions), codes.sizes["period"])
    out = []
    lo_name, hi_name = interval_names(ci_prob)
    for country in sorted(set(region_country.values())):
        mask = np.array([region_country[r] == country for r in regions])
        counts = transition_counts(flat[:, mask, :])                          # (draws, from, to)
        totals = counts.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(totals > 0, counts / totals, np.nan)
        for a, from_type in enumerate(TYPES):
            defined = totals[:, a, 0] > 0
            for b, to_type in enumerate(TYPES):
                vals = share[defined, a, b]
                lower, upper = eti(vals, ci_prob) if vals.size else (np.nan, np.nan)
                out.append({"country": country, "from": from_type, "to": to_type,
                            "mean": float(vals.mean()) if vals.size else np.nan,
                            "sd": float(vals.std()) if vals.size else np.nan,
                            lo_name: float(lower), hi_name: float(upper),
                            "p_row_defined": float(defined.mean()),
                            "from_count": float(totals[:, a, 0].mean())})
    return pd.DataFrame(out)


def trait_summary(tree: xr.DataTree, region_country: dict[str, str], ci_prob: float | None = None) -> pd.DataFrame:
    """Posterior mean, SD and equal-tailed interval of every trait per region-period, by :func:`arviz_stats.summary`.

    Returns
    -------
    pandas.DataFrame
        Columns country, region, period, trait, ``mean``, ``sd`` (ArviZ's: ``ddof=1``) and the interval
        named by its quantiles (``q05``, ``q95`` for 90%: :func:`interval_names`).
    """
    ci_prob = CI_PROB if ci_prob is None else ci_prob
    lo, hi = interval_names(ci_prob)
    stats = azs.summary(tree, var_names=[THETA], kind="stats", fmt="xarray", ci_prob=ci_prob, ci_kind="eti",
                        round_to="none")[THETA]
    columns = {name: stats.isel(summary=i, drop=True) for i, name in enumerate(["mean", "sd", lo, hi])}
    out = xr.Dataset(columns).to_dataframe().reset_index()
    out.insert(0, "country", out["region"].map(region_country))
    return out[["country", "region", "period", "trait", "mean", "sd", lo, hi]]


def threshold_sensitivity(tree: xr.DataTree, spec: Spec, shifts=(-0.5, -0.25, 0.0, 0.25, 0.5)) -> pd.DataFrame:
    """How type shares move as both thresholds move.

    For every (capability shift, willingness shift) pair, the posterior mean share of region-periods
    of each type. Returns a tidy DataFrame with columns ``capability_shift``, ``willingness_shift``
    and one column per type.
    """
    rows = []
    drawn = (threshold_draws(tree, spec, "capability"), threshold_draws(tree, spec, "willingness"))
    for dc in shifts:
        for dw in shifts:
            shares = type_probabilities(tree, spec, shift=(dc, dw), thresholds=drawn).mean(("region", "period"))
            rows.append({"capability_shift": dc, "willingness_shift": dw,
                         **{t: float(shares.sel(type=t)) for t in TYPES}})
    return pd.DataFrame(rows)


def group_era_summary(probs: xr.DataArray, spec: Spec) -> pd.DataFrame:
    """Type probabilities averaged over the spec's region groups and eras (``[summary]``).

    A region-period counts in an era when ``start <= year < end``. Returns one row per (group,
    era) with P(each type), the modal type and its probability; empty when the spec defines no
    groups or eras.
    """
    summary = spec.summary
    if not summary.eras or not summary.region_groups:
        return pd.DataFrame(columns=["group", "era", *TYPES, "modal_type", "modal_probability"])
    periods = np.asarray(probs["period"].values)
    rows = []
    for group, members in summary.region_groups.items():
        known = [r for r in members if r in set(probs["region"].values)]
        if not known:
            continue
        for era in summary.eras:
            in_era = [p for p in periods if _year(p, spec) is not None and era.start <= _year(p, spec) < era.end]
            if not in_era:
                continue
            mean = probs.sel(region=known, period=in_era).mean(("region", "period"))
            row = {"group": group, "era": era.name, **{t: float(mean.sel(type=t)) for t in TYPES}}
            row["modal_type"] = max(TYPES, key=lambda t: row[t])
            row["modal_probability"] = row[row["modal_type"]]
            rows.append(row)
    return pd.DataFrame(rows)


def _year(period, spec: Spec) -> float | None:
    if spec.periods.eras is not None:
        era = next((e for e in spec.periods.eras if e.name == period), None)
        return era.midpoint if era else None
    return float(period)
