"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023): rank statistics of prior draws.

For each of ``n_sims`` joint draws (parameters, data) from the model's prior and prior predictive on
the panel's shape (its regions, periods, indicators and missing cells), the model is refitted to the
simulated data and the rank of the true value among (thinned) posterior draws is recorded for every
scalar hyperparameter and a random sample of ``theta`` elements. If the sampler and the model code
are right, every rank is uniform on ``0..L``.

The model is compiled once: its observed values are data containers (``data_<key>``), and nutpie's
``with_data`` swaps them between fits. The centring constants computed from the panel stay fixed
across simulations, which is right: they are constants of the prior, not functions of the data.

Uniformity is tested per parameter on the jittered PIT values ``(rank + U) / (L + 1)`` (exactly
uniform under calibration) with the pointwise order test ``pot_c`` of arviz-stats (the test behind
``arviz_plots.plot_ecdf_pit``), with a chi-square test on equal-width bins as a second opinion, and
the p-values are Holm-corrected across parameters.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> ranks = pd.DataFrame({"sim": np.tile(np.arange(200), 2), "parameter": ["good"] * 200 + ["bad"] * 200,
...                       "kind": "hyper", "rank": np.r_[rng.integers(0, 101, 200), rng.integers(40, 61, 200)],
...                       "n_draws": 100})
>>> uniformity_tests(ranks, seed=1)[["parameter", "passed"]].values.tolist()
[['bad', False], ['good', True]]
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from scipy import stats

from nexusbayes.data import Panel
from nexusbayes.fit import resolve_panel, resolve_spec
from nexusbayes.model import build_model
from nexusbayes.spec import Spec

#: Family-wise error rate of the uniformity tests (after Holm's correction across parameters).
SBC_ALPHA = 0.01
#: Posterior draws kept per fit for the ranks (thinned to be roughly independent).
THIN_TO = 100
#: Number of theta elements ranked per run (drawn once from the seed).
N_THETA = 20

_LATENT = re.compile(r"(^|_)z0?($|_)")   # non-centred innovations and offsets: not hyperparameters


@dataclass
class SBCResult:
    """Ranks, uniformity tests, recovery and timings of a simulation-based calibration run.

    Attributes
    ----------
    ranks : pandas.DataFrame
        Tidy: ``sim, parameter, kind, rank, n_draws`` (``kind`` is ``hyper`` or ``theta``; the rank
        counts the thinned posterior draws below the true value, so it lies in ``0..n_draws``).
    tests : pandas.DataFrame
        One row per parameter: p-values (``p_pot``, ``p_chi2``), Holm-adjusted ``p_holm``,
        ``passed`` at :data:`SBC_ALPHA`, and the 50% and 90% interval coverage read off the ranks.
    fits : pandas.DataFrame
        One row per simulation: seconds, max R-hat, divergences, and the theta recovery (correlation
        of the posterior mean with the truth, bias, 50% and 90% interval coverage over all elements).
    summary : dict
        Settings, timings, pooled recovery and the failing parameters (JSON-serialisable).
    """

    ranks: pd.DataFrame
    tests: pd.DataFrame
    fits: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def failures(self) -> pd.DataFrame:
        """The parameters whose ranks are not uniform at the corrected level."""
        return self.tests[~self.tests["passed"]]

    def text(self) -> str:
        """A plain-text summary: settings, timings, recovery and the parameters that fail."""
        s = self.summary
        lines = [f"SBC of {s['spec']!r}: {s['n_sims']} simulations ({s['n_failed']} failed fits), "
                 f"{s['chains']} chains x {s['draws']} draws (tune {s['tune']}), ranks out of {s['n_draws_rank']}",
                 f"time: compile {s['seconds_compile']:.1f} s, prior draws {s['seconds_prior']:.1f} s, fits "
                 f"{s['seconds_fits']:.1f} s ({s['seconds_per_fit']:.2f} s per fit), total {s['seconds_total']:.1f} s",
                 f"theta recovery: correlation {s['theta_correlation']:.3f}, bias {s['theta_bias']:+.3f}, "
                 f"50% coverage {s['theta_coverage_50']:.3f}, 90% coverage {s['theta_coverage_90']:.3f}",
                 f"per fit: median max R-hat {s['median_max_rhat']:.3f}, fits with divergences "
                 f"{s['fits_with_divergences']}",
                 f"uniformity ({s['test']}, Holm-corrected at {s['alpha']}): {s['n_parameters']} parameters, "
                 f"{len(s['failing'])} fail" + (": " + ", ".join(s["failing"]) if s["failing"] else "")]
        table = self.tests.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        return "\n".join(lines) + "\n\n" + table

    def plot(self, kind: str = "hyper"):
        """Δ-ECDF of the PIT values per parameter, with the pot_c p-values (``arviz_plots.plot_ecdf_pit``)."""
        from arviz_plots import plot_ecdf_pit

        pit = pit_values(self.ranks[self.ranks["kind"] == kind], seed=self.summary.get("seed", 0))
        wide = pit.pivot(index="sim", columns="parameter", values="pit")
        ds = xr.Dataset({"pit": (("sim", "parameter"), wide.to_numpy())},
                        coords={"sim": wide.index.to_numpy(), "parameter": wide.columns.to_numpy()})
        n_rows = -(-wide.shape[1] // 4)
        return plot_ecdf_pit(xr.DataTree.from_dict({"prior_sbc": ds}), sample_dims=["sim"], col_wrap=4,
                             backend="matplotlib", figure_kwargs={"figsize": (20, 2.6 * n_rows)})

    def save(self, out_dir: str | Path, overwrite: bool = False, plots: bool = True) -> Path:
        """Write ``ranks.csv``, ``tests.csv``, ``fits.csv``, ``summary.json`` and the Δ-ECDF plots (PNG).

        Each file is written atomically; an existing non-empty folder needs ``overwrite=True``.
        """
        from nexusbayes.fit import atomic_write
        from nexusbayes.outputs import check_writable

        out = Path(out_dir)
        check_writable(out, overwrite)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in (("ranks", self.ranks), ("tests", self.tests), ("fits", self.fits)):
            atomic_write(out / f"{name}.csv", lambda tmp, t=table: t.to_csv(tmp, index=False))
        atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(self.summary, indent=2)))
        if plots:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            for kind in ("hyper", "theta"):
                if (self.ranks["kind"] == kind).any():
                    pc = self.plot(kind)
                    atomic_write(out / f"ecdf_{kind}.png",
                                 lambda tmp, pc=pc: pc.viz["figure"].item().savefig(tmp, format="png", dpi=80))
                    plt.close("all")
        return out


# ---- ranks -----------------------------------------------------------------------------------------
def hyperparameter_names(model: pm.Model) -> list[str]:
    """Model variables ranked as hyperparameters (constrained scale).

    Every free variable except the non-centred innovations (``*_z``, ``*_z0``, ``rater_z_*``,
    ``country_offset_z``) and the LKJ Cholesky factor, which is ranked through ``trait_corr``;
    plus ``country_offset`` when the model has one.
    """
    names = [v.name for v in model.free_RVs if not _LATENT.search(v.name) and v.name != "trait_chol"]
    det = {v.name for v in model.deterministics}
    return names + [n for n in ("trait_corr", "country_offset") if n in det]


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


# ---- the run --------------------------------------------------------------------------------------------
def run_sbc(spec: Spec | str | Path, data: str | Path | pd.DataFrame | Panel | None = None, n_sims: int = 100, *,
            draws: int = 200, tune: int = 200, chains: int = 2, seed: int = 0, thin_to: int = THIN_TO,
            n_theta: int = N_THETA, target_accept: float | None = None, progress=None) -> SBCResult:
    """Simulation-based calibration of ``spec`` on the shape of ``data``.

    Parameters
    ----------
    spec : Spec or path
        The model specification (a TOML path: its ``data`` is the default shape).
    data : path, DataFrame or Panel, optional
        The panel whose regions, periods, indicators, missing cells, exposures, trials and raters the
        simulations keep; its values only set the centring constants (fixed across simulations).
    n_sims : int
        Number of simulations.
    draws, tune, chains : int
        nutpie settings per fit.
    seed : int
        Base seed: the prior draws, the theta sample, the PIT jitter and each fit's seed derive from it.
    thin_to : int
        Posterior draws kept per fit for the ranks (ranks lie in ``0..thin_to`` or close).
    n_theta : int
        Number of theta elements ranked (a random sample fixed by the seed).
    target_accept : float, optional
        nutpie's target acceptance (default: the spec's).
    progress : callable, optional
        Called as ``progress(sim, n_sims, seconds, message)`` after each fit.

    Returns
    -------
    SBCResult
    """
    import nutpie

    start = time.perf_counter()
    spec, data_path = resolve_spec(spec)
    panel = resolve_panel(spec, data, data_path, need="SBC needs a panel for the shape")
    target_accept = spec.sampler.target_accept if target_accept is None else target_accept

    children = np.random.SeedSequence(seed).spawn(n_sims + 2)
    model = build_model(panel, spec)
    compiled = nutpie.compile_pymc_model(model, default_initialization_strategy="prior")
    compiled_at = time.perf_counter()

    prior = pm.sample_prior_predictive(draws=n_sims, model=model, random_seed=_int_seed(children[0]),
                                       return_inferencedata=True)
    sim_params = prior["prior"].to_dataset().isel(chain=0)
    sim_data = prior["prior_predictive"].to_dataset().isel(chain=0)
    prior_at = time.perf_counter()

    names = hyperparameter_names(model)
    keep = {}
    if "country_offset" in names:   # only the indicators that have offsets (the rest are fixed at 0)
        keep["country_offset"] = (sim_params["country_offset"].std("draw") > 0).values.ravel()
    theta_da = sim_params["theta"]
    n_elem = int(np.prod([theta_da.sizes[d] for d in ("region", "period", "trait")]))
    pick = np.sort(np.random.default_rng(children[1]).choice(n_elem, size=min(n_theta, n_elem), replace=False))
    theta_labels = np.array(_labels(theta_da, ["region", "period", "trait"]))[pick]

    keys = [name.removeprefix("y_") for name in sim_data.data_vars]
    dtypes = {f"data_{k}": model[f"data_{k}"].get_value().dtype for k in keys}
    rank_rows, fit_rows = [], []
    for s in range(n_sims):
        t0 = time.perf_counter()
        values = {f"data_{k}": sim_data[f"y_{k}"].isel(draw=s).values for k in keys}
        overflow = [name for name, v in values.items() if not np.array_equal(v.astype(dtypes[name]), v)]
        if overflow:   # e.g. a prior draw with counts beyond the container's int32: recorded, not wrapped
            fit_rows.append({"sim": s, "ok": False, "error": f"simulated values do not fit {overflow}",
                             "seconds": 0.0})
            continue
        updated = compiled.with_data(**values)
        truth = sim_params.isel(draw=s)
        try:
            tree = nutpie.sample(updated, draws=draws, tune=tune, chains=chains, seed=_int_seed(children[s + 2]),
                                 progress_bar=False, target_accept=target_accept, save_warmup=False)
        except Exception as exc:  # a fit that crashes is recorded (and reported), not silently dropped
            fit_rows.append({"sim": s, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                             "seconds": time.perf_counter() - t0})
            if progress:
                progress(s, n_sims, time.perf_counter() - t0, f"FAILED: {exc}")
            continue
        post = tree["posterior"].to_dataset()
        post_hyper = scalar_draws(post, names, keep)
        true_hyper = scalar_draws(truth, names, keep)
        theta_post = post["theta"].transpose("chain", "draw", "region", "period", "trait").values
        theta_post = theta_post.reshape(post.sizes["chain"], post.sizes["draw"], -1)
        theta_true = truth["theta"].transpose("region", "period", "trait").values.ravel()
        for label, d in post_hyper.items():
            kept = thin(d, thin_to)
            rank_rows.append((s, label, "hyper", rank_of(float(true_hyper[label]), kept), kept.size))
        for label, i in zip(theta_labels, pick, strict=True):
            kept = thin(theta_post[..., i], thin_to)
            rank_rows.append((s, label, "theta", rank_of(float(theta_true[i]), kept), kept.size))
        fit_rows.append({"sim": s, "ok": True, "error": "", "seconds": time.perf_counter() - t0,
                         **_fit_checks(post, tree, names), **_recovery(theta_post, theta_true)})
        if progress:
            progress(s, n_sims, time.perf_counter() - t0, "")
    done = time.perf_counter()

    ranks = pd.DataFrame(rank_rows, columns=["sim", "parameter", "kind", "rank", "n_draws"])
    tests = uniformity_tests(ranks, seed=seed)
    fits = pd.DataFrame(fit_rows)
    ok = fits[fits["ok"]]
    summary = {
        "spec": spec.name, "n_sims": n_sims, "n_failed": int((~fits["ok"]).sum()), "draws": draws, "tune": tune,
        "chains": chains, "seed": seed, "target_accept": target_accept, "n_draws_rank": int(ranks["n_draws"].max()),
        "n_obs": int(panel.n_obs), "regions": len(panel.regions), "periods": len(panel.periods),
        "seconds_compile": compiled_at - start, "seconds_prior": prior_at - compiled_at,
        "seconds_fits": done - prior_at, "seconds_per_fit": float(fits["seconds"].mean()),
        "seconds_total": done - start,
        "theta_correlation": float(ok["theta_correlation"].mean()), "theta_bias": float(ok["theta_bias"].mean()),
        "theta_rmse": float(np.sqrt((ok["theta_rmse"] ** 2).mean())),
        "theta_coverage_50": float(ok["theta_coverage_50"].mean()),
        "theta_coverage_90": float(ok["theta_coverage_90"].mean()),
        "median_max_rhat": float(ok["max_rhat"].median()), "fits_with_divergences": int((ok["divergences"] > 0).sum()),
        "test": "pot_c", "alpha": SBC_ALPHA, "n_parameters": len(tests),
        "failing": tests.loc[~tests["passed"], "parameter"].tolist(),
    }
    return SBCResult(ranks=ranks, tests=tests, fits=fits, summary=summary)


def _int_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def _fit_checks(post: xr.Dataset, tree: xr.DataTree, names: list[str]) -> dict:
    """Max R-hat over the ranked variables and theta, and the number of divergences."""
    from arviz_stats.base import array_stats

    rhat = 1.0
    for name in [*names, "theta"]:
        values = post[name].transpose("chain", "draw", ...).values.reshape(post.sizes["chain"], post.sizes["draw"], -1)
        values = values[..., np.ptp(values, axis=(0, 1)) > 0]   # constant elements (corr diagonal) have no R-hat
        if values.size:
            rhat = max(rhat, float(np.nanmax(array_stats.rhat(values, chain_axis=0, draw_axis=1))))
    return {"max_rhat": rhat, "divergences": int(tree["sample_stats"]["diverging"].sum())}


def _recovery(theta_post: np.ndarray, theta_true: np.ndarray) -> dict:
    """Correlation, bias, RMSE and 50%/90% central-interval coverage of all theta elements."""
    flat = theta_post.reshape(-1, theta_post.shape[-1])
    mean = flat.mean(axis=0)
    q = np.quantile(flat, [0.05, 0.25, 0.75, 0.95], axis=0)
    return {"theta_correlation": float(np.corrcoef(mean, theta_true)[0, 1]),
            "theta_bias": float(np.mean(mean - theta_true)),
            "theta_rmse": float(np.sqrt(np.mean((mean - theta_true) ** 2))),
            "theta_coverage_50": float(np.mean((q[1] <= theta_true) & (theta_true <= q[2]))),
            "theta_coverage_90": float(np.mean((q[0] <= theta_true) & (theta_true <= q[3])))}
