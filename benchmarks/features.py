"""Gradient cost of the four measurement options of issue 23 on, against the same panel without them.

One simulated panel (3 countries x 8 regions x 10 periods, the default six mixed-family indicators; seizures and
abuse heaped at a quota of 10 / zero-inflated, seizures with reporting gaps that depend on capability), fitted by
two specs: ``plain`` (no option) and ``features``: seizures ``missing = "informative"`` and ``quota = 10``, abuse
``zero_inflated = true``, quota ``drift = "intercept"``, expert_capability ``drift = "cutpoints"`` and
``[comparability] detect = true``. The target (issue 23): nutpie's log-density-and-gradient evaluation costs at
most 1.5 times as much per observation with the options on. Both are timed at the same kind of point (one joint
prior draw of each model, fixed seed) and per observation of the panel's rows (the reporting model's cells, which
the options add, count as the options' cost, not as observations). With ``--each``, also each option alone
(:data:`OPTIONS`). Times are the calling thread's CPU seconds, which other processes' load does not inflate.

Run (the compiles take minutes on a busy machine; each evaluation is timed ``--evals`` times, median of
``--repeats``)::

    python -m benchmarks.features [--evals 2000] [--repeats 5] [--each]
    python -m benchmarks.features --example     # the bundled example's gradient, best of --repeats rounds
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.measure import posterior_point
from nexusbayes.inference import compile_cache
from nexusbayes.inference.nutpie_callbacks import logp_call
from nexusbayes.model.build import Model
from nexusbayes.model.predict import prior_draws
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.document import Spec

SHAPE = {"n_countries": 3, "n_regions": 8, "n_periods": 10, "seed": 23}


#: The options, each as the changes it makes to the raw spec (``features`` has them all).
OPTIONS = {
    "reporting": {"seizures": {"missing": "informative"}},
    "drift": {"quota": {"drift": "intercept"}, "expert_capability": {"drift": "cutpoints"}},
    "detection": {"comparability": {"detect": True}},
    "inflation": {"seizures": {"quota": 10}, "abuse": {"zero_inflated": True}},
}


def _with(options: list[str]) -> Spec:
    """The default spec with ``options`` (names of :data:`OPTIONS`) on."""
    raw = default_spec().to_dict()
    for option in options:
        for key, change in OPTIONS[option].items():
            if key == "comparability":
                raw["comparability"] = dict(change)
            else:
                raw["indicators"][key].update(change)
    return Spec.from_dict(raw)


def _seconds_per_call(call, n_eval: int) -> float:
    """CPU seconds of this thread per call (after one warm-up call): what other processes' load does not inflate.

    The callback runs on the calling thread, so its thread time is the evaluation's cost; wall time on a shared
    machine also counts the time the scheduler gave the core to others (at loads of 20-30 on 2 cores, rounds of
    the same model varied 2x in wall time).
    """
    call()
    start = time.thread_time()
    for _ in range(n_eval):
        call()
    return (time.thread_time() - start) / n_eval


def specs(each: bool = False) -> dict[str, Spec]:
    """The spec without the options and the one with all four (and, with ``each``, one per option alone)."""
    out = {"plain": default_spec(), "features": _with(list(OPTIONS))}
    if each:
        out.update({name: _with([name]) for name in OPTIONS})
    return out


def measure(evals: int = 2000, repeats: int = 5, each: bool = False) -> dict:
    """Seconds per evaluation of each spec on the shared panel, per observation, and their ratio.

    The specs are timed in turn, ``repeats`` rounds of ``evals`` evaluations each, so that a busy machine slows
    them alike; the medians over rounds are reported, and each spec's ratio to ``plain`` (``each``: one spec per
    option alone as well, see :data:`OPTIONS`).
    """
    both = specs(each)
    sim = simulate(both["features"], **SHAPE)
    out, calls = {"shape": SHAPE, "n_obs": int(sim.panel.n_obs)}, {}
    for name, spec in both.items():
        model = Model(spec, sim.panel)
        start = time.perf_counter()
        compiled, source = compile_cache.compile_nutpie(model.pymc, sim.panel, spec)
        point = posterior_point(model.pymc, prior_draws(model.pymc, draws=1, seed=1)["prior"])
        calls[name] = logp_call(compiled, point)[0]
        out[name] = {"parameters": int(point.size), "compile_s": round(time.perf_counter() - start, 1),
                     "compile_source": source}
    rounds = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            rounds[name].append(_seconds_per_call(call, evals))
    for name, seconds in rounds.items():
        median = float(np.median(seconds))
        out[name].update(gradient_us=round(median * 1e6, 2), gradient_best_us=round(min(seconds) * 1e6, 2),
                         gradient_ns_per_observation=round(median * 1e9 / sim.panel.n_obs, 2))
    ratios = np.array(rounds["features"]) / np.array(rounds["plain"])
    out["ratio"] = round(out["features"]["gradient_us"] / out["plain"]["gradient_us"], 3)
    out["ratio_by_round"] = [round(float(r), 3) for r in ratios]
    for name in rounds:
        by_round = np.array(rounds[name]) / np.array(rounds["plain"])
        out[name].update(ratio=round(out[name]["gradient_us"] / out["plain"]["gradient_us"], 3),
                         ratio_of_best=round(min(rounds[name]) / min(rounds["plain"]), 3),
                         ratio_by_round=[round(float(r), 3) for r in by_round])
    return out


def example(evals: int = 2000, repeats: int = 7) -> dict:
    """Best and median seconds per evaluation of the bundled example (``models/kyrgyzstan.toml``, the small case).

    Timed at one joint prior draw (fixed seed), ``repeats`` rounds of ``evals`` evaluations; the best round is the
    figure least moved by a busy machine.
    """
    from benchmarks.cases import make_case

    case = make_case("small")
    model = Model(case.spec, case.panel)
    compiled, source = compile_cache.compile_nutpie(model.pymc, case.panel, case.spec)
    point = posterior_point(model.pymc, prior_draws(model.pymc, draws=1, seed=1)["prior"])
    call = logp_call(compiled, point)[0]
    seconds = [_seconds_per_call(call, evals) for _ in range(repeats)]
    return {"example": "models/kyrgyzstan.toml", "n_obs": int(case.panel.n_obs), "parameters": int(point.size),
            "compile_source": source, "gradient_best_us": round(min(seconds) * 1e6, 2),
            "gradient_median_us": round(float(np.median(seconds)) * 1e6, 2)}


def main(argv: list[str] | None = None) -> None:
    """Measure and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--each", action="store_true", help="also time each option alone")
    parser.add_argument("--example", action="store_true", help="time the bundled example's gradient instead")
    args = parser.parse_args(argv)
    out = example(args.evals, args.repeats) if args.example else measure(args.evals, args.repeats, args.each)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
