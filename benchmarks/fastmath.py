r"""Whether the log density, gradient and draws depend on the CPU numba compiles for, with and without fast-math.

numba compiles for the host CPU unless ``NUMBA_CPU_NAME`` (and ``NUMBA_CPU_FEATURES``; ``generic`` alone means no
features: SSE2, no FMA) names another target; PyTensor's numba backend adds LLVM's fast-math flags (``reassoc``,
``contract``, ``afn``, ``arcp``, ``nsz``) unless ``numba__fastmath`` is off. One run compiles each case with each
variant, in the order given, in this process:

``package``     :func:`nexusbayes.inference.compile_cache.compile_nutpie`, the package's path (its log density is
                compiled without fast-math, its initial-point function under PyTensor's setting)
``nutpie-off``  ``nutpie.compile_pymc_model(..., default_initialization_strategy="prior")`` with fast-math off
``nutpie-on``   the same with fast-math on (PyTensor's default)

and writes, per case and variant, the log density and gradient at one fixed point (a joint prior draw, seed 1,
computed in PyTensor's Python mode and kept in ``--out`` so that every run evaluates the same bits), the compile's
CPU and wall seconds, the gradient's CPU seconds per evaluation (the calling thread's, median and best of
``--repeats`` rounds of ``--evals``, the variants' rounds interleaved) and, with ``--sample``, the draws of a short
nutpie run (2 chains x (50 + 50), seed 1, one core) of the cases ``--sample`` names. ``--compare A B`` then says,
per case and variant, whether two runs (e.g. the host's and ``NUMBA_CPU_NAME=generic``'s) agree bit for bit. Give
each run a compile directory of its own (``PYTENSOR_FLAGS=base_compiledir=...``): numba's cache is keyed by the CPU,
the package's layouts are not.

Run::

    PYTENSOR_FLAGS=base_compiledir=/tmp/fm/host python -m benchmarks.fastmath --tag host --out /tmp/fm \\
        --variants nutpie-off,package,nutpie-on --sizes small,medium --sample small
    NUMBA_CPU_NAME=generic PYTENSOR_FLAGS=base_compiledir=/tmp/fm/generic python -m benchmarks.fastmath \\
        --tag generic --out /tmp/fm --variants nutpie-off,package --sizes small --sample small --repeats 0
    python -m benchmarks.fastmath --compare host generic --out /tmp/fm
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

VARIANTS = ("package", "nutpie-off", "nutpie-on")


def target() -> dict[str, str]:
    """The CPU name and features numba compiles for in this process."""
    from numba.core.registry import cpu_target

    codegen = cpu_target.target_context.codegen()
    return {"cpu_name": codegen._get_host_cpu_name(), "cpu_features": codegen._get_host_cpu_features()}


def fixed_point(size: str, out: Path) -> np.ndarray:
    """The case's joint prior draw (seed 1) as the unconstrained vector: read from ``out``, else computed there.

    Computed in PyTensor's Python mode (no numba), so that it does not depend on the target.
    """
    path = out / f"point_{size}.npy"
    if path.exists():
        return np.load(path)
    import pytensor

    from benchmarks.cases import make_case
    from benchmarks.measure import posterior_point
    from nexusbayes.model.build import Model
    from nexusbayes.model.predict import prior_draws

    case = make_case(size)
    model = Model(case.spec, case.panel)
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        point = posterior_point(model.pymc, prior_draws(model.pymc, draws=1, seed=1)["prior"])
    np.save(path, point)
    return point


def compile_variant(variant: str, model, case):
    """The nutpie-compiled model of ``case`` by ``variant`` (see the module's docstring)."""
    import nutpie
    import pytensor

    from nexusbayes.inference import compile_cache

    if variant == "package":
        return compile_cache.compile_nutpie(model.pymc, case.panel, case.spec)[0]
    with pytensor.config.change_flags(numba__fastmath=variant == "nutpie-on"):
        return nutpie.compile_pymc_model(model.pymc, default_initialization_strategy="prior")


def digest(array: np.ndarray) -> str:
    """The first 12 hex digits of the SHA-1 of the array's bytes."""
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


def trace_arrays(trace) -> dict[str, np.ndarray]:
    """Every numeric variable of the draws, the warm-up draws and the sampler's statistics, as ``group/name``."""
    arrays = {}
    for group in ("posterior", "warmup_posterior", "sample_stats", "warmup_sample_stats"):
        if group not in trace.children:
            continue
        data = trace[group].to_dataset()
        for name in sorted(data.data_vars):
            values = data[name].values
            if values.dtype.kind in "biuf":
                arrays[f"{group}/{name}"] = values
    return arrays


def run(tag: str, out: Path, variants: list[str], sizes: list[str], evals: int, repeats: int,
        sample: list[str]) -> dict:
    """Compile, evaluate, time and sample (the cases in ``sample``) every variant on every case; write the JSON."""
    import pytensor

    from benchmarks.cases import make_case
    from benchmarks.features import _seconds_per_call
    from nexusbayes.inference.nutpie_callbacks import logp_call
    from nexusbayes.inference.sample import sample_compiled
    from nexusbayes.model.build import Model

    result = {"tag": tag, **target(), "numba__fastmath": bool(pytensor.config.numba__fastmath),
              "base_compiledir": str(pytensor.config.base_compiledir), "cases": {}}
    calls, compiled_models = {}, {}
    for size in sizes:
        point = fixed_point(size, out)
        case = make_case(size)
        result["cases"][size] = {"n_obs": int(case.panel.n_obs), "dim": int(point.size), "point": digest(point)}
        for variant in variants:
            model = Model(case.spec, case.panel)
            cpu, wall = time.process_time(), time.perf_counter()
            compiled = compile_variant(variant, model, case)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            call, value, grad = logp_call(compiled, point)
            code = call()
            np.save(out / f"{tag}_{variant}_{size}_grad.npy", grad)
            result["cases"][size][variant] = {"compile_cpu_s": round(cpu, 1), "compile_wall_s": round(wall, 1),
                                              "code": int(code), "logp": float(value).hex(), "grad": digest(grad)}
            # the initial points nutpie's chains would start from at two seeds (their function is compiled too)
            initial = np.concatenate([np.ravel(compiled.initial_point_func(seed)) for seed in (1, 2)])
            result["cases"][size][variant]["initial"] = digest(initial)
            calls[size, variant], compiled_models[size, variant] = call, compiled
            print(tag, size, variant, result["cases"][size][variant], flush=True)
    rounds = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            rounds[key].append(_seconds_per_call(call, evals))
    for (size, variant), seconds in rounds.items():
        if seconds:
            result["cases"][size][variant].update(
                gradient_median_us=round(float(np.median(seconds)) * 1e6, 2),
                gradient_best_us=round(min(seconds) * 1e6, 2),
                gradient_rounds_us=[round(s * 1e6, 1) for s in seconds])
    for (size, variant), compiled in compiled_models.items():
        if size in sample:
            cpu = time.process_time()
            arrays = trace_arrays(sample_compiled(compiled, draws=50, tune=50, chains=2, seed=1, cores=1))
            np.savez(out / f"{tag}_{variant}_{size}_trace.npz", **arrays)
            result["cases"][size][variant].update(
                sample_cpu_s=round(time.process_time() - cpu, 1),
                draws=digest(np.concatenate([a.ravel().astype(float) for k, a in arrays.items()
                                             if k.startswith("posterior/")])))
    result["process_cpu_s"] = round(time.process_time(), 1)
    (out / f"{tag}.json").write_text(json.dumps(result, indent=1))
    return result


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The distance of ``a`` from ``b`` in units in the last place (float64, elementwise)."""
    def ordered(x):
        bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
        return np.where(bits < 0, np.int64(-(2**63)) - bits, bits)

    return np.abs(ordered(a) - ordered(b))


def compare(a: str, b: str, out: Path) -> dict:
    """Per case and variant run by both ``a`` and ``b``: the log density, gradient and draws, equal or how far apart."""
    first, second = (json.loads((out / f"{tag}.json").read_text()) for tag in (a, b))
    report = {}
    for size, cases in first["cases"].items():
        for variant in VARIANTS:
            if variant not in cases or variant not in second["cases"].get(size, {}):
                continue
            x, y = cases[variant], second["cases"][size][variant]
            ga, gb = (np.load(out / f"{tag}_{variant}_{size}_grad.npy") for tag in (a, b))
            distance = ulps(ga, gb)
            entry = {"point_equal": cases["point"] == second["cases"][size]["point"],
                     "initial_equal": x.get("initial") == y.get("initial"),
                     "logp": [x["logp"], y["logp"]], "logp_ulps": int(ulps(np.array([float.fromhex(x["logp"])]),
                                                                         np.array([float.fromhex(y["logp"])]))[0]),
                     "grad_equal": int((distance == 0).sum()), "grad_n": int(ga.size),
                     "grad_max_ulps": int(distance.max()),
                     "grad_max_rel": float(np.max(np.abs(ga - gb) / np.maximum(np.abs(ga), 1e-300)))}
            ta, tb = (out / f"{tag}_{variant}_{size}_trace.npz" for tag in (a, b))
            if ta.exists() and tb.exists():
                with np.load(ta) as da, np.load(tb) as db:
                    entry["draws_equal"] = x.get("draws") == y.get("draws")
                    warm = [k for k in da.files if k.startswith("warmup_posterior/")]
                    # the first warm-up draw (per chain) at which any variable differs
                    entry["first_differing_warmup_draw"] = [
                        next((d for d in range(da[warm[0]].shape[1])
                              if any(not np.array_equal(da[k][c, d], db[k][c, d]) for k in warm)), None)
                        for c in range(da[warm[0]].shape[0])] if warm else None
            report[f"{size} {variant}"] = entry
    return report


def main(argv: list[str] | None = None) -> None:
    """Run one target's measurements, or compare two runs; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", help="this run's name (its files in --out)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", default="package,nutpie-off,nutpie-on")
    parser.add_argument("--sizes", default="small")
    parser.add_argument("--evals", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7, help="timing rounds (0: no timing)")
    parser.add_argument("--sample", default="", help="the sizes (comma-separated) to sample briefly per variant")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare the runs tagged A and B")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.compare:
        print(json.dumps(compare(*args.compare, args.out), indent=1))
        return
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not args.tag:
        parser.error(f"--tag is required and --variants are {', '.join(VARIANTS)} (not {unknown})")
    run(args.tag, args.out, variants, args.sizes.split(","), args.evals, args.repeats,
        [size for size in args.sample.split(",") if size])


if __name__ == "__main__":
    main()
