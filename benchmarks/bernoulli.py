"""Gradient cost of a Bernoulli-indicator model: the one-softplus kernel against PyMC's ``Bernoulli``.

One simulated panel (3 countries x 8 regions x 10 periods, two traits, six Bernoulli indicators: two anchors per
trait and two loading on both), fitted twice: ``kernel``, the family as the package builds it (a CustomDist with
:func:`nexusbayes.model.kernels.bernoulli_kernel`), and ``pymc``, the same model with ``pm.Bernoulli(logit_p=eta)``
as the likelihood. Both are timed at the same point (one joint prior draw, fixed seed) as
:mod:`benchmarks.features` times its specs: the calling thread's CPU seconds per log-density-and-gradient
evaluation, rounds of ``--evals`` evaluations alternating between the two, the best and the median round.

Run::

    python -m benchmarks.bernoulli [--evals 2000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
from unittest import mock

import numpy as np
import pymc as pm

from benchmarks.features import _seconds_per_call
from benchmarks.measure import posterior_point
from nexusbayes.inference import compile_cache
from nexusbayes.inference.nutpie_callbacks import logp_call
from nexusbayes.model import families
from nexusbayes.model.build import Model
from nexusbayes.model.predict import prior_draws
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator

SHAPE = {"n_countries": 3, "n_regions": 8, "n_periods": 10, "seed": 23}


class PymcBernoulli(families.Bernoulli):
    """The Bernoulli family with PyMC's own ``Bernoulli`` as its likelihood (the reference)."""

    def likelihood(self, block, eta, scale, params, observed, inputs):
        """PyMC's Bernoulli likelihood."""
        return pm.Bernoulli(f"y_{block.key}", logit_p=eta, observed=observed, dims=block.dim)


def bernoulli_spec() -> Spec:
    """Two traits, six Bernoulli indicators: an anchor pair per trait and two loading on both."""
    loads = {"cap_a": {"capability": "positive"}, "cap_b": {"capability": "positive"},
             "will_a": {"willingness": "positive"}, "will_b": {"willingness": "positive"},
             "both_a": {"capability": "positive", "willingness": "free"},
             "both_b": {"capability": "free", "willingness": "negative"}}
    return Spec(name="bernoulli", indicators={name: Indicator(family="bernoulli", loads=load)
                                              for name, load in loads.items()})


def pymc_model(spec: Spec, panel) -> Model:
    """The model of ``panel`` with PyMC's Bernoulli as the Bernoulli likelihood (its graph built here)."""
    with mock.patch.dict(families.FAMILIES, {"bernoulli": PymcBernoulli()}):
        model = Model(spec, panel)
        model.pymc     # noqa: B018 -- built while the reference family is in place
    return model


def measure(evals: int = 2000, repeats: int = 7) -> dict:
    """Best and median CPU microseconds per evaluation of each likelihood, and their ratios."""
    spec = bernoulli_spec()
    sim = simulate(spec, **SHAPE)
    out, calls = {"shape": SHAPE, "n_obs": int(sim.panel.n_obs)}, {}
    for name, model in (("kernel", Model(spec, sim.panel)), ("pymc", pymc_model(spec, sim.panel))):
        compiled, source = compile_cache.compile_nutpie(model.pymc, sim.panel, spec, salt=name)
        point = posterior_point(model.pymc, prior_draws(model.pymc, draws=1, seed=1)["prior"])
        call, value, _ = logp_call(compiled, point)
        call()
        calls[name] = call
        out[name] = {"parameters": int(point.size), "compile_source": source, "logp": float(value)}
    rounds = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            rounds[name].append(_seconds_per_call(call, evals))
    for name, seconds in rounds.items():
        out[name].update(gradient_best_us=round(min(seconds) * 1e6, 2),
                         gradient_median_us=round(float(np.median(seconds)) * 1e6, 2))
    out["ratio_of_best"] = round(min(rounds["kernel"]) / min(rounds["pymc"]), 3)
    out["ratio_by_round"] = [round(a / b, 3) for a, b in zip(rounds["kernel"], rounds["pymc"], strict=True)]
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.evals, args.repeats), indent=1))


if __name__ == "__main__":
    main()
