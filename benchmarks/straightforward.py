"""The straightforward model of this kind: what a competent newcomer would hand-write in PyMC (issue 24).

Issue 24 asks for the medium panel "side by side with the straightforward model in the same run": the
lead of nexusbayes' model is measured against a model written the obvious way, not against a constant.
:func:`build` writes it for a panel of normal, negative-binomial, binomial and ordinal indicators:

- traits: a centred Gaussian random walk per region and trait (``pm.GaussianRandomWalk``), each region's
  start drawn around its country's level (countries as a level), one innovation SD per trait;
- loadings: sign constraints by half-normal priors (``HalfNormal`` for a positive loading, minus one for a
  negative one, ``Normal`` for a free one), an intercept per indicator (none for ordinal indicators);
- one ``pm.<Family>`` likelihood per indicator over its rows (``Normal`` on the standardised values,
  ``NegativeBinomial`` with the log exposure as offset, ``Binomial``, ``OrderedLogistic`` with ordered
  cut-points, without its default per-observation probabilities), by integer indexing of the long table.

It is sampled as ``pm.sample(nuts_sampler="nutpie")`` does by default (nutpie's own defaults: ``diag``
adaptation, target acceptance 0.8, every core), through :func:`nexusbayes.inference.sample.sample_compiled`
(the package's one sampling module), at the spec's 4 chains x (300 + 1,000) draws. No fixed scale of the
traits, no non-centring, no sum-to-zero: the geometry the package's model was built to avoid.
``python -m benchmarks --samplers straightforward`` runs it as a case (:data:`SIZES`: the medium size)
with the same fields as the package's cases (:func:`measure_case`).
"""

from __future__ import annotations

import resource
import time

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from nexusbayes.data.panel import Panel
from nexusbayes.model.roles import declare
from nexusbayes.spec.document import Spec

#: The sizes the straightforward model is written for (simulated, the four basic families, no raters).
SIZES = ("medium",)
#: The families :func:`build` writes a likelihood for.
FAMILIES = ("normal", "negbin", "binomial", "ordinal")


def build(panel: Panel, spec: Spec) -> pm.Model:
    """The hand-written PyMC model of ``panel`` (see the module docstring); samples nothing.

    Raises
    ------
    ValueError
        When an indicator's family is not one of :data:`FAMILIES`.
    """
    traits = list(spec.traits)
    frame = panel.frame
    unknown = {n: i.family for n, i in spec.indicators.items() if i.family not in FAMILIES}
    if unknown:
        raise ValueError(f"the straightforward model has no likelihood for {unknown}: it takes "
                         f"{', '.join(FAMILIES)} indicators")
    coords = {"country": panel.countries, "region": panel.regions, "period": panel.periods, "trait": traits}
    with pm.Model(coords=coords) as model:
        level = declare(pm.Normal("country_level", 0.0, 1.0, dims=("country", "trait")), "latent")
        innovation_sd = declare(pm.HalfNormal("innovation_sd", 0.5, dims="trait"), "scale")
        start = pm.Normal.dist(level[panel.region_country], 1.0)
        walk = declare(pm.GaussianRandomWalk("walk", sigma=innovation_sd, init_dist=start,
                                             steps=len(panel.periods) - 1, dims=("region", "trait", "period")),
                       "latent")
        theta = declare(pm.Deterministic("theta", walk.dimshuffle(0, 2, 1), dims=("region", "period", "trait")),
                        "trait")
        for j, (name, indicator) in enumerate(spec.indicators.items()):
            rows = frame[frame["indicator_idx"] == j]
            region, period = rows["region_idx"].to_numpy(), rows["period_idx"].to_numpy()
            eta = 0.0
            for trait, sign in indicator.loads.items():
                k = traits.index(trait)
                if sign == "free":
                    loading = pm.Normal(f"loading_{name}_{trait}", 0.0, 1.0)
                else:
                    size = pm.HalfNormal(f"loading_{name}_{trait}", 1.0)
                    loading = size if sign == "positive" else -size
                declare(model[f"loading_{name}_{trait}"], "loading")
                eta = eta + loading * theta[region, period, k]
            _likelihood(name, indicator, rows, eta)
    return model


def _likelihood(name: str, indicator, rows, eta) -> None:
    """One ``pm.<Family>`` over the indicator's rows, with its intercept and nuisance parameters."""
    y = rows["value"].to_numpy()
    if indicator.family == "ordinal":
        k = indicator.categories
        cut = declare(pm.Normal(f"cutpoints_{name}", 0.0, 3.0, shape=k - 1,
                                transform=pm.distributions.transforms.ordered,
                                initval=np.linspace(-1.5, 1.5, k - 1)), "cutpoint")
        pm.OrderedLogistic(f"y_{name}", eta=eta, cutpoints=cut, observed=(y - 1).astype("int64"),
                           compute_p=False)   # not (obs, K) probabilities in every draw
        return
    intercept = declare(pm.Normal(f"intercept_{name}", 0.0, 2.0), "intercept")
    if indicator.family == "normal":
        sigma = declare(pm.HalfNormal(f"sigma_{name}", 1.0), "nuisance")
        pm.Normal(f"y_{name}", intercept + eta, sigma, observed=(y - y.mean()) / y.std())
    elif indicator.family == "negbin":
        alpha = declare(pm.Exponential(f"alpha_{name}", 0.5), "nuisance")
        log_mu = intercept + eta + np.log(rows["exposure"].to_numpy())
        pm.NegativeBinomial(f"y_{name}", mu=pt.exp(log_mu), alpha=alpha, observed=y.astype("int64"))
    else:
        pm.Binomial(f"y_{name}", n=rows["trials"].to_numpy().astype("int64"), logit_p=intercept + eta,
                    observed=y.astype("int64"))


def measure_case(size: str, draws: int | None = None, tune: int | None = None, chains: int | None = None,
                 seed_offset: int = 0) -> dict:
    """Build, compile and sample the straightforward model on ``size``; the record of a benchmark case.

    The fields are :func:`benchmarks.measure.run`'s: compile and sampling seconds, diagnostics, end to end,
    min bulk and tail ESS, ESS/s, max R-hat, divergences, gradient evaluations per draw, one gradient's cost
    (nutpie's compiled callback at the last draw of the first chain), recovery r and peak memory.
    """
    import nutpie

    from benchmarks.cases import make_case
    from benchmarks.measure import _timed_diagnostics, convergence, gradient_seconds_nutpie, posterior_point, recovery
    from nexusbayes.inference.sample import sample_compiled

    if size not in SIZES:
        raise ValueError(f"the straightforward model is written for the {', '.join(SIZES)} size(s), not {size!r}")
    case = make_case(size)
    settings = case.spec.sampler
    draws, tune, chains = draws or settings.draws, tune or settings.tune, chains or settings.chains
    seed = settings.seed + seed_offset
    record = {"size": size, "shape": case.shape, "sampler": "straightforward", "observations": int(case.panel.n_obs),
              "chains": chains, "draws": draws, "tune": tune, "seed": seed}
    start = time.perf_counter()
    model = build(case.panel, case.spec)
    compiled = nutpie.compile_pymc_model(model)
    compiled_at = time.perf_counter()
    tree = sample_compiled(compiled, draws=draws, tune=tune, chains=chains, seed=seed, cores=None)
    sampled_at = time.perf_counter()
    diag, diagnostics_s = _timed_diagnostics(tree)
    total = time.perf_counter() - start
    sampling_s = sampled_at - compiled_at
    record.update({"compile_source": "compiled", "compile_s": round(compiled_at - start, 2),
                   "sampling_s": round(sampling_s, 2), "postprocess_s": None,
                   "diagnostics_s": round(diagnostics_s, 2), "end_to_end_s": round(total, 2)})
    record.update(convergence(tree, sampling_s, total, diag))
    x = posterior_point(model, tree["posterior"])
    record["parameters"] = int(x.size)
    grad = gradient_seconds_nutpie(compiled, x)
    record["gradient_us"] = round(grad * 1e6, 2)
    record["gradient_ns_per_observation"] = round(grad * 1e9 / case.panel.n_obs, 2)
    record["recovery_r"] = recovery(tree, case.theta)
    record["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return record
