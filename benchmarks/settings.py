"""Compare nutpie's settings on one compiled model: ``python -m benchmarks.settings SIZE SETTING [SETTING ...]``.

Each SETTING is ``TARGET_ACCEPT:ADAPTATION[:KEY=VALUE,...]`` (e.g. ``0.8:draw_diag``, ``0.9:diag``,
``0.8:low_rank:tune=800,mass_matrix_eigval_cutoff=100``): the options are nutpie's settings
(``mass_matrix_eigval_cutoff``, ``mass_matrix_gamma``, ``maxdepth``, ...), plus ``tune`` (this setting's
warm-up), ``chains`` and ``draws`` (this setting's), ``init=advi`` (the spec's ``[sampler] init = "advi"``: chains
start at draws from mean-field ADVI fitted on the compiled model, ``init_n`` iterations, default 2000) and
``init=pymc_advi`` (PyMC's own ADVI, ``pm.fit``, which compiles a second function; ``init_n`` default 5000:
:mod:`nexusbayes.inference.warm_start`). The model of
SIZE (see :mod:`benchmarks.cases`) is compiled once and sampled once per setting with the same seed,
so the runs differ only in the setting; one JSON line per setting: sampling seconds, min bulk ESS
over every posterior element, ESS per second, max R-hat, divergences, leapfrog steps per draw, the
leapfrog steps of the warm-up and their share of all steps, every gradient evaluation and bulk ESS per
1,000 of them, the process's CPU seconds (all threads; ADVI, sampling and, in the first setting, the compile
or load of the model) and the load average before and after (the machine may be shared: the step counts and
ESS per gradient do not depend on the load), the mean step size and the five slowest variables. This is
how the defaults (``[sampler]``) were chosen; the model's own changes are compared by running it before and
after them. Also recorded: tail ESS per 1,000 evaluations, CPU ms per evaluation (the process's CPU seconds over
every evaluation: the first setting's include the compile) and the recovery r of simulated sizes.
``--centred`` samples the case with ``[dynamics] centred = true`` (each unit's walk centred,
:func:`nexusbayes.model.latent._centred_spans`) instead of its spec's non-centred default.

Examples
--------
``python -m benchmarks.settings medium 0.8:draw_diag 0.8:diag --seed 2``

``python -m benchmarks.settings small 0.8:draw_diag --tune 1000`` (the warm-up's share of the steps)

``python -m benchmarks.settings item_panel 0.8:draw_diag --chains 2 --draws 300 --centred``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from unittest import mock

from benchmarks.cases import make_case
from benchmarks.measure import convergence, recovery
from nexusbayes.analysis.diagnostics import diagnose
from nexusbayes.inference import sample as sample_module
from nexusbayes.inference import warm_start
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model
from nexusbayes.spec.sections import SamplerSpec

DEFAULTS = SamplerSpec()   # the spec's [sampler] defaults


def parse_setting(text: str) -> tuple[float, str, dict]:
    """``"0.8:low_rank:tune=800,init=advi"`` -> ``(0.8, "low_rank", {"tune": 800, "init": "advi"})``."""
    target, _, rest = text.partition(":")
    adaptation, _, extra = rest.partition(":")
    if not adaptation:
        raise argparse.ArgumentTypeError(f"setting {text!r}: expected TARGET_ACCEPT:ADAPTATION, e.g. 0.8:draw_diag")
    options = {}
    for item in filter(None, extra.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"setting {text!r}: option {item!r} is not KEY=VALUE")
        try:
            options[key] = int(value)
        except ValueError:
            try:
                options[key] = float(value)
            except ValueError:
                options[key] = value
    return float(target), adaptation, options


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def compare(size: str, settings: list[tuple[float, str, dict]], draws: int = DEFAULTS.draws, tune: int = DEFAULTS.tune,
            chains: int = DEFAULTS.chains, seed: int = 1, centred: bool = False):
    """Yield one record per setting (dict), sampling ``size``'s model compiled once.

    ``centred``: the case's spec with ``[dynamics] centred = true``.
    """
    case = make_case(size)
    spec = case.spec
    if centred:
        spec = spec.model_copy(update={"dynamics": spec.dynamics.model_copy(update={"centred": True})})
    model = Model(spec, case.panel)
    compile_s = None
    for target, adaptation, extra in settings:
        extra = dict(extra)
        run_tune, init, init_n = extra.pop("tune", tune), extra.pop("init", None), extra.pop("init_n", None)
        run_chains, run_draws = extra.pop("chains", chains), extra.pop("draws", draws)
        load_before, cpu0 = _load(), time.process_time()
        start = time.perf_counter()
        init_s = 0.0
        patch = mock.patch.object(sample_module, "_compiled", sample_module._compiled)
        spec_init = {}
        if init == "advi":   # the spec's option: ADVI on the compiled model, inside sample()
            spec_init = {"init": "advi", "init_iterations": init_n or DEFAULTS.init_iterations}
        elif init == "pymc_advi":   # starts drawn from PyMC's ADVI: its time counts (its C function's compile too)
            mean, std = warm_start.advi_start(model.pymc, n=init_n or 5000, seed=seed)
            init_s = time.perf_counter() - start
            plain = sample_module._compiled

            def _compiled(m, values, say, lean=False, plain=plain, mean=mean, std=std):
                compiled, source = plain(m, values, say, lean)
                return warm_start.started_from(compiled, mean, std), source
            patch = mock.patch.object(sample_module, "_compiled", _compiled)
        elif init is not None:
            raise ValueError(f"init={init!r}: only init=advi and init=pymc_advi are known")
        run = spec.sampler.model_copy(update={"draws": run_draws, "tune": run_tune, "chains": run_chains,
                                                    "seed": seed, "target_accept": target, "adaptation": adaptation,
                                                    "backend": "nutpie", **spec_init})
        with patch:
            tree = sample(model, run, progress=False, predictions=False,
                          sampler_options={"save_warmup": run_tune > 0, **extra})
        compile_s = float(tree.attrs["seconds_compile"]) if compile_s is None else compile_s   # once: then cached
        start += float(tree.attrs["seconds_compile"])
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        diag = diagnose(tree)
        slowest = diag.table["min_ess_bulk"].sort_values().iloc[:5]
        steps = int(tree["sample_stats"]["n_steps"].sum())
        warmup = int(tree["warmup_sample_stats"]["n_steps"].sum()) if run_tune > 0 else 0
        record = convergence(tree, seconds, seconds, diag)
        init_evals = int(tree.attrs.get("init_evaluations", 0))
        init_s = float(tree.attrs.get("seconds_init", init_s))
        evals = warmup + steps + init_evals
        yield {"size": size, "centred": centred, "target_accept": target, "adaptation": adaptation, "options": extra,
               "init": init,
               "seed": seed, "draws": run_draws, "tune": run_tune, "chains": run_chains,
               "compile_s": round(compile_s, 1), "init_s": round(init_s, 1), "init_evals": init_evals,
               "sampling_s": round(seconds, 1), "cpu_s": round(cpu, 1),
               "load": [load_before, _load()], **record,
               "warmup_steps": warmup, "warmup_share": round(warmup / (warmup + steps), 3),
               "warmup_steps_per_draw": round(warmup / max(run_tune * run_chains, 1), 1),
               "grad_evals": evals,
               "ess_per_1000_grad": round(1000 * record["min_ess_bulk"] / evals, 3),
               "ess_tail_per_1000_grad": round(1000 * record["min_ess_tail"] / evals, 3),
               "cpu_ms_per_grad": round(1000 * cpu / evals, 3), "recovery_r": recovery(tree, case.theta),
               "step_size": round(float(tree["sample_stats"]["step_size"].mean()), 4),
               "slowest": {name: round(float(v), 1) for name, v in slowest.items()}}


def main(argv: list[str] | None = None) -> None:
    """Command line: print one JSON line per setting."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("size")
    parser.add_argument("settings", nargs="+", type=parse_setting, metavar="TARGET_ACCEPT:ADAPTATION[:KEY=VALUE,...]")
    parser.add_argument("--draws", type=int, default=DEFAULTS.draws)
    parser.add_argument("--tune", type=int, default=DEFAULTS.tune)
    parser.add_argument("--chains", type=int, default=DEFAULTS.chains)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--centred", action="store_true", help="sample with [dynamics] centred = true")
    args = parser.parse_args(argv)
    for record in compare(args.size, args.settings, args.draws, args.tune, args.chains, args.seed, args.centred):
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    sys.exit(main())
