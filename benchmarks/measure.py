"""Run one benchmark case in this process: ``python -m benchmarks.measure SIZE SAMPLER [options]``.

Prints one JSON record on its last line. :mod:`benchmarks.__main__` runs every case in a fresh
process, so compile times are cold (as for a user's first fit) and peak memory is the case's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.cases import make_case
from nexusbayes.analysis.diagnostics import diagnose
from nexusbayes.analysis.recovery import correlation_by_trait
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model

#: The samplers of a case; "straightforward" is nutpie on the hand-written model of :mod:`benchmarks.straightforward`.
SAMPLERS = ("nutpie", "pymc", "numpyro", "straightforward")


def available(sampler: str) -> bool:
    """Whether the sampler's packages are installed (numpyro needs ``jax`` and ``numpyro``)."""
    if sampler != "numpyro":
        return True
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("jax", "numpyro"))


def convergence(tree, seconds_sampling: float, seconds_total: float, diag=None) -> dict:
    """Min bulk and tail ESS over every posterior element, ESS/s, max R-hat, divergences, steps per draw.

    ``diag`` is ``diagnose(tree)`` when the caller has it already.
    """
    diag = diagnose(tree) if diag is None else diag
    bulk = float(diag.table["min_ess_bulk"].min())
    steps = tree["sample_stats"]["n_steps"] if "n_steps" in tree["sample_stats"] else None
    return {"min_ess_bulk": round(bulk, 1), "min_ess_tail": round(float(diag.table["min_ess_tail"].min()), 1),
            "ess_bulk_per_s_sampling": float(f"{bulk / seconds_sampling:.4g}"),   # 4 digits: a model that
            "ess_bulk_per_s_end_to_end": float(f"{bulk / seconds_total:.4g}"),    # mixes badly is at 0.02
            "max_rhat": round(float(diag.table["max_rhat"].max()), 4), "divergences": int(diag.divergences),
            "grad_evals_per_draw": None if steps is None else round(float(steps.mean()), 1),
            "worst_variable": str(diag.table["min_ess_bulk"].idxmin())}


def _timed_diagnostics(tree):
    """``diagnose(tree)`` and its seconds: part of every end-to-end time (a fit is not done until it is checked)."""
    start = time.perf_counter()
    diag = diagnose(tree)
    return diag, time.perf_counter() - start


def recovery(tree, theta) -> float | None:
    """Smallest correlation over traits between posterior-mean and true traits (simulated sizes).

    Matched by label (the panel sorts regions as text, so 'C10-R01' comes before 'C2-R01').
    """
    if theta is None:
        return None
    return round(min(correlation_by_trait(tree["posterior"]["theta"].mean(("chain", "draw")), theta).values()), 4)


def posterior_point(model, posterior, chain: int = 0, draw: int = -1) -> np.ndarray:
    """One posterior draw as the unconstrained vector the samplers' log-density functions take.

    The model's free variables in order (``model.free_RVs``, as nutpie and PyMC join them), each
    mapped by its transform (log for scales, the correlation's Cholesky transform) and flattened.
    """
    import pytensor.tensor as pt

    parts = []
    for rv in model.free_RVs:
        value = np.asarray(posterior[rv.name].isel(chain=chain, draw=draw).values, dtype=float)
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None:
            value = transform.forward(pt.as_tensor(value), *rv.owner.inputs).eval()
        parts.append(np.ravel(value))
    return np.concatenate(parts)


def _seconds_per_call(call, n_eval: int) -> float:
    call()
    start = time.perf_counter()
    for _ in range(n_eval):
        call()
    return (time.perf_counter() - start) / n_eval


def gradient_seconds_nutpie(compiled, x: np.ndarray, n_eval: int = 300) -> float:
    """Seconds per log-density-and-gradient evaluation of nutpie's compiled function at ``x`` (one core)."""
    from nexusbayes.inference.nutpie_callbacks import logp_call

    call, _, _ = logp_call(compiled, x)
    return _seconds_per_call(call, n_eval)


def gradient_seconds_pymc(model, x: np.ndarray, n_eval: int = 300) -> float:
    """Seconds per log-density-and-gradient evaluation of PyMC's compiled function at ``x`` (one core)."""
    function = model.logp_dlogp_function(ravel_inputs=True)
    function.set_extra_values({})
    return _seconds_per_call(lambda: function(x), n_eval)


def command_seconds(spec_path: Path, seed: int, draws: int, tune: int, chains: int) -> dict:
    """Run ``nexusbayes fit SPEC`` twice in new processes, as a user does, timing each from start to exit.

    Both runs share a PyTensor compile directory (``base_compiledir``) that is empty before the first: the
    first is a user's first-ever run on a new machine (every numba and C compile cold), the second runs the
    command again with the compiled model in the on-disk cache (:mod:`nexusbayes.inference.nutpie_callbacks`). Each time
    is everything a user waits for: starting Python and importing, compiling, sampling, the diagnostics,
    writing ``fit.nc`` and the CSV tables, and the report. Also recorded: each run's compile seconds, and
    the second run's share outside the fit (``command_rest_s``; the fit is compile, sampling and
    post-processing, from the saved fit), and the second run's ``fit.nc`` (:func:`saved_fit`).
    """
    import tempfile

    import xarray as xr

    record = {}
    with tempfile.TemporaryDirectory() as tmp:
        flags = ",".join(filter(None, [os.environ.get("PYTENSOR_FLAGS"), f"base_compiledir={tmp}/pytensor"]))
        for run, label in enumerate(("command_cold", "command_cached")):
            out = Path(tmp) / f"run{run}"
            argv = [sys.executable, "-m", "nexusbayes", "fit", str(spec_path), "--out", str(out), "--no-progress",
                    "--seed", str(seed), "--draws", str(draws), "--tune", str(tune), "--chains", str(chains)]
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTENSOR_FLAGS": flags})
            total = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"`{' '.join(argv[1:])}` exited with {done.returncode}: {done.stderr[-2000:]}")
            with xr.open_datatree(out / "fit.nc", engine="h5netcdf") as saved:
                seconds = {k: float(saved.attrs[f"seconds_{k}"]) for k in ("compile", "sampling", "postprocess")}
                source = saved.attrs["compile_source"]
            expected = "compiled" if label == "command_cold" else "disk"
            if source != expected:
                raise RuntimeError(f"{label}: the compiled model was {source!r}, not {expected!r}")
            record.update({f"{label}_s": round(total, 2), f"{label}_compile_s": round(seconds["compile"], 2)})
            if label == "command_cached":
                record["command_rest_s"] = round(total - sum(seconds.values()), 2)
        record.update(saved_fit(Path(tmp) / "run1" / "fit.nc"))
    return record


def saved_fit(path: Path) -> dict:
    """A saved fit's size in MB (10^6 bytes), its load (``nb.load``) and the first read of ``theta``.

    ``fit_file_lazy`` is whether the load left every posterior variable on disk (read when first used).
    """
    from nexusbayes.fit import load

    record = {"fit_file_mb": round(path.stat().st_size / 1e6, 2)}
    start = time.perf_counter()
    loaded = load(path)
    record["fit_load_s"] = round(time.perf_counter() - start, 3)
    posterior = loaded.tree["posterior"]
    # xarray's own flag: False while a variable is a lazily indexed view of the file
    record["fit_file_lazy"] = not any(posterior[name].variable._in_memory for name in posterior.data_vars)
    start = time.perf_counter()
    float(posterior["theta"].mean())
    record["fit_first_read_s"] = round(time.perf_counter() - start, 3)
    loaded.tree.close()
    return record


def run(size: str, sampler: str, draws: int | None = None, tune: int | None = None, chains: int | None = None,
        cached_refit: bool = False, approx: bool = False, seed_offset: int = 0, command: bool = False,
        sampler_settings: dict | None = None) -> dict:
    """Fit one size with one sampler; measure cost, convergence, recovery (and, optionally, the fast paths).

    The sampler's seed is the spec's plus ``seed_offset`` (repeated runs of one case differ in it).
    ``sampler_settings`` overrides the spec's other ``[sampler]`` settings (``init``, ``until_converged``,
    ``check_every``), as a user's spec would: ``draws`` is then the cap of a run by need.
    ``command`` also times the command line on the size's spec file (:func:`command_seconds`; the
    small size's ``models/kyrgyzstan.toml``), cold and again, in a compile directory of their own.
    """
    from nexusbayes.fit import fit
    from nexusbayes.inference import compile_cache
    from nexusbayes.model.build import build_model

    if sampler == "straightforward":
        from benchmarks.straightforward import measure_case

        return measure_case(size, draws, tune, chains, seed_offset)
    case = make_case(size)
    if sampler_settings:
        case = replace(case, spec=case.spec.model_copy(
            update={"sampler": case.spec.sampler.model_copy(update=sampler_settings)}))
    settings = case.spec.sampler
    draws, tune, chains = draws or settings.draws, tune or settings.tune, chains or settings.chains
    seed = settings.seed + seed_offset
    record = {"size": size, "shape": case.shape, "sampler": sampler, "observations": int(case.panel.n_obs),
              "chains": chains, "draws": draws, "tune": tune, "seed": seed, **(sampler_settings or {})}
    if command:
        if case.spec_path is None:
            raise ValueError(f"the {size} size has no spec file to run the command on")
        record.update(command_seconds(case.spec_path, seed, draws, tune, chains))
    start, cpu0 = time.perf_counter(), time.process_time()
    if sampler in ("nutpie", "pymc"):
        compile_s = None
        if sampler == "pymc":   # PyMC compiles inside pm.sample: time the same compile first (cached on disk)
            t0 = time.perf_counter()
            model = build_model(case.panel, case.spec)
            model.logp_dlogp_function(ravel_inputs=True)
            compile_s = time.perf_counter() - t0
        # the fit's status lines (a run by need's checks: draws, R-hat, ESS, the worst variables) to stderr
        result = fit(case.spec, case.panel, backend=sampler, draws=draws, tune=tune, chains=chains, seed=seed,
                     progress=False, check=False, status=lambda line: print(line, file=sys.stderr, flush=True))
        diag, diagnostics_s = _timed_diagnostics(result.tree)
        total = time.perf_counter() - start
        tree, timings = result.tree, result.timings
        compile_s = timings["compile"] if compile_s is None else compile_s
        sampling_s = timings["sampling"]
        record.update({"compile_s": round(compile_s, 2), "sampling_s": round(sampling_s, 2),
                       "postprocess_s": round(timings["postprocess"], 2), "diagnostics_s": round(diagnostics_s, 2),
                       "end_to_end_s": round(total, 2), "cpu_end_to_end_s": round(time.process_time() - cpu0, 2)})
        if sampler == "nutpie":   # "disk" when a process on this machine compiled the structure before
            record["compile_source"] = tree.attrs["compile_source"]
            record.update({"draws_kept": int(tree.attrs["draws"]), "stopped_by": tree.attrs.get("stopped_by"),
                           "grad_evals_kept": int(tree["sample_stats"]["n_steps"].sum()),
                           "init_evals": int(tree.attrs.get("init_evaluations", 0)),
                           "checks": [tree.attrs.get("checks_cheap"), tree.attrs.get("checks_full")]})
        model = build_model(case.panel, case.spec)
        # at a draw the sampler visited: what the special functions cost depends on the point
        x = posterior_point(model, tree["posterior"])
        record["parameters"] = int(x.size)
        if sampler == "nutpie":
            values = compile_cache.data_values(model)   # the fit's model: lean unless it ran by need
            compiled = (compile_cache.lookup(case.panel, case.spec, values, lean=True)
                        or compile_cache.lookup(case.panel, case.spec, values))
            grad = gradient_seconds_nutpie(compiled, x)
        else:
            grad = gradient_seconds_pymc(model, x)
    else:
        model = Model(case.spec, case.panel)
        run = settings.model_copy(update={"draws": draws, "tune": tune, "chains": chains, "seed": seed})
        tree = sample(model, run, progress=False, predictions=False, backend="numpyro",
                      sampler_options={"nuts_sampler_kwargs": {"chain_method": "parallel"}})
        sampling_s = time.perf_counter() - start
        model = model.pymc
        diag, diagnostics_s = _timed_diagnostics(tree)
        total = time.perf_counter() - start
        record.update({"compile_s": None, "sampling_s": round(sampling_s, 2), "postprocess_s": None,
                       "diagnostics_s": round(diagnostics_s, 2), "end_to_end_s": round(total, 2),
                       "parameters": int(sum(np.size(v) for v in model.initial_point().values()))})
        grad = None
        result = None
    record.update(convergence(tree, sampling_s, total, diag))
    record["gradient_us"] = None if grad is None else round(grad * 1e6, 2)
    record["gradient_ns_per_observation"] = None if grad is None else round(grad * 1e9 / case.panel.n_obs, 2)
    record["recovery_r"] = recovery(tree, case.theta)
    if cached_refit and sampler == "nutpie":
        t0 = time.perf_counter()
        again = fit(case.spec, case.panel, draws=draws, tune=tune, chains=chains, seed=seed + 1,
                    progress=False, check=False)
        _timed_diagnostics(again.tree)
        record["cached_end_to_end_s"] = round(time.perf_counter() - t0, 2)
        record["cached_compile_s"] = round(again.timings["compile"], 3)
        assert again.tree.attrs["compile_source"] == "process", "the second fit of the same structure compiled again"
    if approx and result is not None:
        from nexusbayes.inference.approximate import approximate, distance

        t0 = time.perf_counter()
        quick = approximate(case.spec, case.panel, progress=False)
        record["advi_s"] = round(time.perf_counter() - t0, 2)
        record.update({f"advi_{k}": round(v, 4) for k, v in distance(quick, result).items()})
    record["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return record


def main(argv: list[str] | None = None) -> None:
    """Command line: run one case and print its JSON record."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.measure")
    parser.add_argument("size")
    parser.add_argument("sampler", choices=SAMPLERS)
    parser.add_argument("--draws", type=int)
    parser.add_argument("--tune", type=int)
    parser.add_argument("--chains", type=int)
    parser.add_argument("--cached-refit", action="store_true", help="fit again in-process (compile cache)")
    parser.add_argument("--approx", action="store_true", help="also run ADVI and measure its distance")
    parser.add_argument("--seed-offset", type=int, default=0, help="added to the spec's sampler seed")
    parser.add_argument("--command", action="store_true", help="also time `nexusbayes fit` on the size's spec file")
    parser.add_argument("--init", choices=("prior", "advi"), help="the chains' starts (the spec's [sampler] init)")
    parser.add_argument("--until-converged", action="store_true", help="run length by need, --draws the cap")
    parser.add_argument("--check-every", type=int, help="draws per chain between checks of a run by need")
    args = parser.parse_args(argv)
    overrides = {"init": args.init, "until_converged": args.until_converged or None, "check_every": args.check_every}
    record = run(args.size, args.sampler, args.draws, args.tune, args.chains, args.cached_refit, args.approx,
                 args.seed_offset, args.command, {k: v for k, v in overrides.items() if v is not None})
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")   # numpyro's parallel chains
    sys.exit(main())
