"""Gradient cost of the four measurement options of issue 23 on, against the same panel without them.

One simulated panel (3 countries x 8 regions x 10 periods, the default six mixed-family indicators; seizures and
abuse heaped at a quota of 10 / zero-inflated, seizures with reporting gaps that depend on capability), fitted by
two specs: ``plain`` (no option) and ``features``: seizures ``missing = "informative"`` and ``quota = 10``, abuse
``zero_inflated = true``, quota ``drift = "intercept"``, expert_capability ``drift = "cutpoints"`` and
``[comparability] detect = true``. The target (issue 23): nutpie's log-density-and-gradient evaluation costs at
most 1.5 times as much per observation with the options on. Both are timed at the same kind of point (one joint
prior draw of each model, fixed seed) and per observation of the panel's rows (the reporting model's cells, which
the options add, count as the options' cost, not as observations).

Run (the compiles take minutes on a busy machine; each evaluation is timed ``--evals`` times, median of
``--repeats``)::

    python -m benchmarks.features [--evals 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.measure import _seconds_per_call, posterior_point
from nexusbayes.inference import compile_cache
from nexusbayes.inference.nutpie_callbacks import logp_call
from nexusbayes.model.build import Model
from nexusbayes.model.predict import prior_draws
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.document import Spec

SHAPE = {"n_countries": 3, "n_regions": 8, "n_periods": 10, "seed": 23}


def specs() -> dict[str, Spec]:
    """The spec without the options and the one with all four."""
    plain = default_spec()
    raw = plain.to_dict()
    ind = raw["indicators"]
    ind["seizures"].update(missing="informative", quota=10)
    ind["abuse"].update(zero_inflated=True)
    ind["quota"].update(drift="intercept")
    ind["expert_capability"].update(drift="cutpoints")
    raw["comparability"] = {"detect": True}
    return {"plain": plain, "features": Spec.from_dict(raw)}


def measure(evals: int = 2000, repeats: int = 5) -> dict:
    """Seconds per evaluation of each spec on the shared panel, per observation, and their ratio.

    The two are timed in turn, ``repeats`` rounds of ``evals`` evaluations each, so that a busy machine slows both
    alike; the medians over rounds are reported.
    """
    both = specs()
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
        out[name].update(gradient_us=round(median * 1e6, 2),
                         gradient_ns_per_observation=round(median * 1e9 / sim.panel.n_obs, 2))
    ratios = np.array(rounds["features"]) / np.array(rounds["plain"])
    out["ratio"] = round(out["features"]["gradient_us"] / out["plain"]["gradient_us"], 3)
    out["ratio_by_round"] = [round(float(r), 3) for r in ratios]
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.evals, args.repeats), indent=1))


if __name__ == "__main__":
    main()
