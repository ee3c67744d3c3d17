"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023): rank statistics of prior draws.

For each of ``n_sims`` joint draws (parameters, data) from the model's prior and prior predictive on
the panel's shape (its regions, periods, indicators and missing cells), the model is refitted to the
simulated data and the rank of the true value among (thinned) posterior draws is recorded for every
scalar hyperparameter and a random sample of ``theta`` elements. If the sampler and the model code
are right, every rank is uniform on ``0..L``.

The simulations run on Dask distributed, as jobs of :func:`nexusbayes.workflows.jobs.run_jobs`: this process
draws the prior and prior-predictive samples once (fixed by the seed) and submits each simulation with
its data, its true values and its sampler seed; results are gathered as they finish. Each worker
process builds and compiles the model once (a cache keyed by the SHA-256 of the spec's TOML and the
panel's content) and refits it to every simulation it is given: the observed values are data
containers (``data_<key>``, with the tables the kernels derive from them) that nutpie's ``with_data``
swaps between fits. The centring constants computed from the panel stay fixed across simulations,
which is right: they are constants of the prior, not functions of the data.

Every finished simulation is written at once, so an interrupted run resumes where it stopped (a rerun
with the same settings skips the simulations already done; other settings are refused). Layout of
a run folder::

    out_dir/settings.json              the run's settings (spec name, model SHA-256, n_sims, seed, ...)
    out_dir/sims/sim-0000/summary.json its ranks, fit checks, worker and compile time (written when done)
    out_dir/sims/sim-0000/error.json   a failed simulation's error (not done: a rerun tries it again)
    out_dir/ranks.csv, tests.csv, fits.csv, summary.json, ecdf_*.png   written by :meth:`SBCResult.save`

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

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from nexusbayes.data.panel import Panel
from nexusbayes.data.resolve import resolve_panel, resolve_spec
from nexusbayes.errors import OutputExistsError, SamplingError, check_count
from nexusbayes.files import atomic_write, content_digest, write_csv
from nexusbayes.inference import compile_cache
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model
from nexusbayes.model.design import kernel_containers
from nexusbayes.spec.document import Spec
from nexusbayes.spec.limits import MAX_DRAWS
from nexusbayes.spec.sections import SamplerSpec
from nexusbayes.workflows.jobs import Job, JobResult, check_workers, run_jobs
from nexusbayes.workflows.sbc_prior import arrays_sha, int_seed, joint_prior
from nexusbayes.workflows.sbc_ranks import (
    N_THETA,
    SBC_ALPHA,
    THIN_TO,
    _labels,
    fit_checks,
    pit_values,
    rank_of,
    recovery,
    scalar_draws,
    thin,
    uniformity_tests,
)

#: Folder of the per-simulation records inside a run folder, and the file naming the run's settings.
SIMS_DIR = "sims"


SETTINGS_FILE = "settings.json"


#: The files :meth:`SBCResult.save` writes.
OUTPUT_FILES = ("ranks.csv", "tests.csv", "fits.csv", "summary.json", "ecdf_hyper.png", "ecdf_theta.png")


#: Columns of :attr:`SBCResult.fits`.
FIT_COLUMNS = ["sim", "ok", "error", "seconds", "max_rhat", "divergences", "theta_correlation", "theta_bias",
               "theta_rmse", "theta_coverage_50", "theta_coverage_90", "seconds_compile", "worker"]


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
        One row per simulation (:data:`FIT_COLUMNS`): ``ok`` and the ``error`` of a failed one, seconds
        of the fit on its worker, max R-hat, divergences, the theta recovery (correlation of the
        posterior mean with the truth, bias, RMSE, 50% and 90% interval coverage over all elements),
        ``seconds_compile`` (when this simulation's worker compiled the model first) and ``worker``.
    summary : dict
        Settings, timings (prior draws; compile time per worker, ``seconds_compile_by_worker``; fit
        times; how many simulations were resumed from disk), pooled recovery and the failing
        parameters (JSON-serialisable).
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
        by_worker = s["seconds_compile_by_worker"]
        compile_text = (f"{s['seconds_compile']:.1f} s per worker ({len(by_worker)} worker(s))" if by_worker
                        else "time not recorded")
        lines = [f"SBC of {s['spec']!r}: {s['n_sims']} simulations ({s['n_failed']} failed fits), "
                 f"{s['chains']} chains x {s['draws']} draws (tune {s['tune']}), ranks out of {s['n_draws_rank']}",
                 f"time: prior draws {s['seconds_prior']:.1f} s, compile {compile_text} on the workers, fits "
                 f"{s['seconds_fits']:.1f} s ({s['seconds_per_fit']:.2f} s per fit on a worker, at most "
                 f"{s['seconds_fit_max']:.2f} s; {s['n_resumed']} done earlier, resumed), "
                 f"total {s['seconds_total']:.1f} s",
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
        from arviz_base import rc_context
        from arviz_plots import plot_ecdf_pit

        pit = pit_values(self.ranks[self.ranks["kind"] == kind], seed=self.summary.get("seed", 0))
        wide = pit.pivot(index="sim", columns="parameter", values="pit")
        ds = xr.Dataset({"pit": (("sim", "parameter"), wide.to_numpy())},
                        coords={"sim": wide.index.to_numpy(), "parameter": wide.columns.to_numpy()})
        n_rows = -(-wide.shape[1] // 4)
        with rc_context(rc={"plot.max_subplots": None}):    # one panel per parameter, however many (default 40)
            return plot_ecdf_pit(xr.DataTree.from_dict({"prior_sbc": ds}), sample_dims=["sim"], col_wrap=4,
                                 backend="matplotlib", figure_kwargs={"figsize": (20, 2.6 * n_rows)})

    def save(self, out_dir: str | Path, overwrite: bool = False, plots: bool = True) -> Path:
        """Write ``ranks.csv``, ``tests.csv``, ``fits.csv``, ``summary.json`` and the Δ-ECDF plots (PNG).

        Each file is written atomically. An existing non-empty folder needs ``overwrite=True``, unless
        it is this run's own folder (the ``out_dir`` of :func:`run_sbc`, whose ``settings.json`` matches).
        """
        from nexusbayes.outputs import check_writable

        out = Path(out_dir)
        if _read_settings(out) != self.summary["settings"]:
            check_writable(out, overwrite)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in (("ranks", self.ranks), ("tests", self.tests), ("fits", self.fits)):
            atomic_write(out / f"{name}.csv", lambda tmp, t=table: write_csv(t, tmp))
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


# ---- the run --------------------------------------------------------------------------------------------
def run_sbc(spec: Spec | str | Path, data: str | Path | pd.DataFrame | Panel | None = None, n_sims: int = 100, *,
            draws: int = 200, tune: int = 200, chains: int = 2, seed: int = 0, thin_to: int = THIN_TO,
            n_theta: int = N_THETA, target_accept: float | None = None, out_dir: str | Path | None = None,
            overwrite: bool = False, scheduler: str | None = None, n_workers: int = 2, progress: bool = True,
            status: Callable[[str], None] | None = None) -> SBCResult:
    """Simulation-based calibration of ``spec`` on the shape of ``data``, on a Dask cluster, resumable.

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
        Base seed: the prior draws, the theta sample, the PIT jitter and each fit's seed derive from it
        (never from the worker that runs a simulation, so results do not depend on the cluster).
    thin_to : int
        Posterior draws kept per fit for the ranks (ranks lie in ``0..thin_to`` or close).
    n_theta : int
        Number of theta elements ranked (a random sample fixed by the seed).
    target_accept : float, optional
        nutpie's target acceptance (default: the spec's).
    out_dir : path, optional
        Folder of the run: ``settings.json`` and one record per simulation (see the module docstring),
        written as each simulation finishes. A rerun with the same settings skips the simulations already
        done. Default: a temporary folder, deleted at the end (nothing to resume).
    overwrite : bool
        Use a folder that holds anything but an SBC of these settings: an earlier SBC's files
        (``settings.json``, ``sims/`` and the outputs of :meth:`SBCResult.save`) are deleted first, other
        files are left alone. The records of an SBC with the same settings are always reused: refitting
        would give the same results.
    scheduler : str, optional
        Address of a running Dask scheduler; default a local cluster of ``n_workers`` processes
        (:func:`nexusbayes.workflows.jobs.connect`).
    n_workers : int
        Worker processes of the local cluster.
    progress : bool
        Show a progress bar (on stderr).
    status : callable, optional
        Called with one-line messages (e.g. how many simulations were already done).

    Returns
    -------
    SBCResult
        Assembled from every simulation's record, those found on disk included: a resumed run gives
        the same tables as an uninterrupted one.

    Raises
    ------
    OutputExistsError
        When ``out_dir`` holds anything but an SBC of these settings and ``overwrite`` is false; raised
        before any prior draw or fit.
    SamplingError
        When every simulation failed (their errors are in ``sims/*/error.json``).
    """
    start = time.perf_counter()
    _check_settings(n_sims=n_sims, draws=draws, tune=tune, chains=chains, thin_to=thin_to, n_theta=n_theta)
    check_workers(n_workers)
    spec, data_path = resolve_spec(spec)
    panel = resolve_panel(spec, data, data_path, need="SBC needs a panel for the shape")
    target_accept = spec.sampler.target_accept if target_accept is None else target_accept
    settings = {"spec": spec.name, "model_sha256": content_digest(spec.to_toml(), panel.data_table()),
                "n_sims": n_sims, "draws": draws, "tune": tune, "chains": chains, "seed": seed, "thin_to": thin_to,
                "n_theta": n_theta, "target_accept": target_accept}
    if out_dir is not None:
        _claim(Path(out_dir), settings, overwrite)
    folder = contextlib.nullcontext(out_dir) if out_dir is not None else \
        tempfile.TemporaryDirectory(prefix="nexusbayes-sbc-")
    with folder as run_dir:
        jobs = _simulation_jobs(spec, panel, settings)
        prior_at = time.perf_counter()
        records = run_jobs(jobs, Path(run_dir) / SIMS_DIR, scheduler=scheduler, n_workers=n_workers,
                           progress=progress, what="sim", status=status)
    timings = {"seconds_prior": prior_at - start, "seconds_fits": time.perf_counter() - prior_at,
               "seconds_total": time.perf_counter() - start}
    return _assemble(records, settings, panel, timings)


def _check_settings(**counts: int) -> None:
    """Refuse counts that are not whole numbers in range (``n_sims = 0`` would run nothing and report nothing).

    ``tune`` may be 0; every other count must be at least 1, and draws and tune at most ``MAX_DRAWS``.
    """
    for name, value in counts.items():
        low = 0 if name == "tune" else 1
        high = MAX_DRAWS if name in ("draws", "tune") else None
        flag = f" (--{name.replace('_', '-')})" if name in ("n_sims", "draws", "tune", "chains") else ""
        check_count(f"{name}{flag}", value, low, high)


def _claim(out: Path, settings: dict, overwrite: bool) -> None:
    """Make ``out`` the folder of an SBC of these settings: new, resumed, or (``overwrite``) an earlier SBC removed."""
    if out.is_dir() and any(out.iterdir()):
        earlier = _read_settings(out)
        if earlier == settings:
            return                        # the same SBC, finished or partial: resume it
        if not overwrite:
            what = ("an SBC with other settings (changed: " +
                    ", ".join(k for k in settings if earlier.get(k) != settings[k]) + ")"
                    if earlier is not None else "files that are not an SBC of these settings")
            raise OutputExistsError(f"{out} holds {what}; pass --overwrite (overwrite=True) to replace it, or "
                                    "--out DIR to write elsewhere")
        for name in (SETTINGS_FILE, SIMS_DIR, *OUTPUT_FILES):   # what an SBC writes; nothing else is deleted
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / SETTINGS_FILE, lambda tmp: Path(tmp).write_text(json.dumps(settings, indent=1)))


def _read_settings(out: Path) -> dict | None:
    path = out / SETTINGS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _simulation_jobs(spec: Spec, panel: Panel, settings: dict) -> list[Job]:
    """Draw the prior and prior-predictive simulations (fixed by the seed) and make one job of each."""
    n_sims, seed = settings["n_sims"], settings["seed"]
    children = np.random.SeedSequence(seed).spawn(n_sims + 2)
    model = Model(spec, panel)
    sim_params, sim_data = joint_prior(model, n_sims, int_seed(children[0]))

    names = model.roles.ranked()
    keep = {}
    if "country_offset" in names:   # only the indicators that have offsets (the rest are fixed at 0)
        keep["country_offset"] = (sim_params["country_offset"].std("draw") > 0).values.ravel()
    # the regime model has no theta (its states are summed out): its hyperparameters alone are ranked
    theta_da = sim_params["theta"] if "theta" in sim_params else xr.DataArray(
        np.zeros((0, 0, 0)), dims=("region", "period", "trait"), name="theta")
    n_elem = int(np.prod([theta_da.sizes[d] for d in ("region", "period", "trait")]))
    pick = np.sort(np.random.default_rng(children[1]).choice(n_elem, size=min(settings["n_theta"], n_elem),
                                                             replace=False))
    keys = [name.removeprefix("y_") for name in sim_data.data_vars]
    setup = _Setup(spec=spec, panel=panel, values=compile_cache.data_values(model.pymc), names=names, keep=keep,
                   theta_pick=pick, theta_labels=list(np.array(_labels(theta_da, ["region", "period", "trait"]))[pick]),
                   draws=settings["draws"], tune=settings["tune"], chains=settings["chains"],
                   target_accept=settings["target_accept"], thin_to=settings["thin_to"])
    jobs = []
    for s in range(n_sims):
        values = {f"data_{k}": sim_data[f"y_{k}" if f"y_{k}" in sim_data else k].isel(draw=s).values for k in keys}
        data_sha256 = arrays_sha(values)
        for k in keys:      # and the tables the kernels derive from the observations
            values.update(kernel_containers(model.design, spec, k, values[f"data_{k}"]))
        truth = sim_params.isel(draw=s)
        truth = {"hyper": {label: float(v) for label, v in scalar_draws(truth, names, keep).items()},
                 "theta": truth["theta"].transpose("region", "period", "trait").values.ravel() if n_elem else
                 np.zeros(0)}
        fit_seed = int_seed(children[s + 2])
        identity = {"sim": s, **settings, "data_sha256": data_sha256, "truth_sha256": arrays_sha(
            {"theta": truth["theta"], **{k: np.float64(v) for k, v in truth["hyper"].items()}}), "fit_seed": fit_seed}
        jobs.append(Job(f"sim-{s:04d}", identity, fit_simulation, (setup, s, values, truth, fit_seed)))
    return jobs


def _assemble(records: dict[str, dict], settings: dict, panel: Panel, timings: dict) -> SBCResult:
    """The SBCResult of a run from its simulations' records (fresh and found on disk alike)."""
    rank_rows, fit_rows, compiles = [], [], {}
    for record in records.values():
        sim = int(record["identity"]["sim"])
        worker = record.get("worker") or {}
        where = worker.get("address") or f"pid {worker.get('pid')}"
        if record["status"] == "failed":
            error = record["error"]
            fit_rows.append({"sim": sim, "ok": False, "error": f"{error['type'].rsplit('.', 1)[-1]}: "
                                                               f"{error['message']}", "seconds": record["seconds"],
                             "worker": where})
            continue
        out = record["summary"]
        rank_rows += [(sim, *row) for row in out["ranks"]]
        fit_rows.append({"sim": sim, "ok": True, "error": "", **out["fit"], "seconds_compile": out["seconds_compile"],
                         "worker": where})
        if out["seconds_compile"] is not None:
            compiles[where] = out["seconds_compile"]
    fits = pd.DataFrame(fit_rows, columns=FIT_COLUMNS)
    fits["ok"] = fits["ok"].astype(bool)
    ok = fits[fits["ok"]]
    if ok.empty:
        raise SamplingError(f"every one of the {len(fits)} simulations failed; the first: {fits['error'].iloc[0]}")
    ranks = pd.DataFrame(rank_rows, columns=["sim", "parameter", "kind", "rank", "n_draws"])
    tests = uniformity_tests(ranks, seed=settings["seed"])
    summary = {
        "spec": settings["spec"], "n_sims": settings["n_sims"], "n_failed": int((~fits["ok"]).sum()),
        "draws": settings["draws"], "tune": settings["tune"], "chains": settings["chains"], "seed": settings["seed"],
        "target_accept": settings["target_accept"], "n_draws_rank": int(ranks["n_draws"].max()),
        "n_obs": int(panel.n_obs), "regions": len(panel.regions), "periods": len(panel.periods),
        "n_resumed": sum(r["status"] == "skipped" for r in records.values()),
        "seconds_compile": float(np.mean(list(compiles.values()))) if compiles else None,
        "seconds_compile_by_worker": compiles,
        **timings, "seconds_per_fit": float(ok["seconds"].mean()), "seconds_fit_max": float(ok["seconds"].max()),
        "theta_correlation": float(ok["theta_correlation"].mean()), "theta_bias": float(ok["theta_bias"].mean()),
        "theta_rmse": float(np.sqrt((ok["theta_rmse"] ** 2).mean())),
        "theta_coverage_50": float(ok["theta_coverage_50"].mean()),
        "theta_coverage_90": float(ok["theta_coverage_90"].mean()),
        "median_max_rhat": float(ok["max_rhat"].median()), "fits_with_divergences": int((ok["divergences"] > 0).sum()),
        "test": "pot_c", "alpha": SBC_ALPHA, "n_parameters": len(tests),
        "failing": tests.loc[~tests["passed"], "parameter"].tolist(), "settings": settings,
    }
    return SBCResult(ranks=ranks, tests=tests, fits=fits, summary=summary)


# ---- worker side ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Setup:
    """What every simulation of a run shares: the model to compile, the ranked elements, the sampler settings."""

    spec: Spec
    panel: Panel
    names: list[str]                      # hyperparameters ranked
    keep: dict[str, np.ndarray]           # masks over their elements (see scalar_draws)
    theta_pick: np.ndarray                # flat indices of the ranked theta elements ...
    theta_labels: list[str]               # ... and their labels
    values: dict[str, np.ndarray]         # the panel's data containers (their dtypes refuse values they cannot hold)
    draws: int
    tune: int
    chains: int
    target_accept: float
    thin_to: int


#: The model of the run this worker process refits, by structure key: built once per process, not per simulation
#: (sampling reads its graph for the memory check and its roles for the orientation).
_MODELS: dict[str, Model] = {}


def _model(setup: _Setup) -> Model:
    """The run's :class:`Model`, built at most once per worker process (the last run's only)."""
    key = compile_cache.structure_key(setup.panel, setup.spec)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = Model(setup.spec, setup.panel)
    return _MODELS[key]


def fit_simulation(setup: _Setup, sim: int, values: dict[str, np.ndarray], truth: dict, seed: int) -> JobResult:
    """Refit the model to one simulation on a worker and rank the true values among the posterior draws.

    The work of a simulation's job (:class:`nexusbayes.workflows.jobs.Job`); an exception becomes the
    simulation's failure record.

    Parameters
    ----------
    setup : _Setup
        What the run's simulations share.
    sim : int
        The simulation's index.
    values : dict of str to numpy.ndarray
        The simulated data, by data container (``data_<key>``).
    truth : dict
        ``hyper``: the true value of each ranked hyperparameter element, by label; ``theta``: every
        true theta element, flattened over (region, period, trait).
    seed : int
        The sampler seed.

    Returns
    -------
    JobResult
        Summary ``sim``, ``ranks`` (rows ``[parameter, kind, rank, n_draws]``), ``fit`` (seconds, max
        R-hat, divergences, theta recovery) and ``seconds_compile`` (None when the compiled model was
        cached).
    """
    overflow = compile_cache.misfits(values, setup.values)
    if overflow:   # e.g. a prior draw with counts beyond the container's int32: recorded, not wrapped
        raise ValueError(f"simulated values do not fit {overflow}")
    settings = SamplerSpec(backend="nutpie", draws=setup.draws, tune=setup.tune, chains=setup.chains, seed=seed,
                           target_accept=setup.target_accept, adaptation=setup.spec.sampler.adaptation)
    start = time.perf_counter()
    tree = sample(_model(setup), settings, progress=False, values=values, predictions=False)
    # compiled here (this worker's first simulation), or reused from this process's cache
    seconds_compile = None if tree.attrs["compile_source"] == "process" else float(tree.attrs["seconds_compile"])
    start += tree.attrs["seconds_compile"]
    post = tree["posterior"].to_dataset()
    ranks = []
    for label, d in scalar_draws(post, setup.names, setup.keep).items():
        kept = thin(d, setup.thin_to)
        ranks.append([label, "hyper", rank_of(truth["hyper"][label], kept), kept.size])
    fit_row = {"seconds": time.perf_counter() - start, **fit_checks(post, tree, setup.names)}
    if "theta" in post:       # not in a regime model
        theta_post = post["theta"].transpose("chain", "draw", "region", "period", "trait").values
        theta_post = theta_post.reshape(post.sizes["chain"], post.sizes["draw"], -1)
        for label, i in zip(setup.theta_labels, setup.theta_pick, strict=True):
            kept = thin(theta_post[..., i], setup.thin_to)
            ranks.append([label, "theta", rank_of(float(truth["theta"][i]), kept), kept.size])
        fit_row.update(recovery(theta_post, truth["theta"]))
    return JobResult({"sim": sim, "ranks": ranks, "fit": fit_row, "seconds_compile": seconds_compile})
