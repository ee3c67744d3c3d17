"""Issue 24's targets read off a benchmark run, and the straightforward model the medium panel is measured against."""

import numpy as np
import pytest

from benchmarks.targets import targets

CONVERGED = {"max_rhat": 1.006, "min_ess_bulk": 900.0, "min_ess_tail": 1500.0, "divergences": 0}


def test_each_target_is_met_not_met_or_not_measured_and_says_why():
    cases = [
        {"size": "small", "sampler": "nutpie", "command_cached_s": 14.0, "command_cold_s": 75.0, "fit_file_mb": 24.4,
         "fit_file_lazy": True, "fit_load_s": 2.0, "fit_first_read_s": 0.8, "repeats": 3, **CONVERGED},
        {"size": "medium", "sampler": "nutpie", "ess_bulk_per_s_sampling": 21.4, "repeats": 3, **CONVERGED},
        {"size": "medium", "sampler": "straightforward", "ess_bulk_per_s_sampling": 0.19, "repeats": 3,
         **CONVERGED, "max_rhat": 1.18},
        {"size": "large", "sampler": "nutpie", "end_to_end_s": 250.0, "peak_memory_mb": 3500.0, "repeats": 3,
         **CONVERGED, "max_rhat": 1.02},
    ]
    frame = targets(cases).set_index("target")
    verdict = dict(zip(frame.index, frame["verdict"], strict=True))
    why = dict(zip(frame.index, frame["why"], strict=True))
    assert verdict["large: end to end (s), converged"] == "not met"      # in time, but R-hat 1.02
    assert why["large: end to end (s), converged"] == "not converged: max R-hat 1.0200"
    assert verdict["large: peak memory (MB), the case's process"] == "not met"
    assert verdict["item panel: end to end (s), converged"] == "not measured"
    assert why["item panel: end to end (s), converged"] == "no item_panel / nutpie case in this run"
    assert verdict["example: `nexusbayes fit models/kyrgyzstan.toml`, compiled model cached (s)"] == "met"
    assert verdict["example: the same command on a new machine (s)"] == "not met"
    assert verdict["example: saved fit (MB), loading lazily"] == "met"
    lead = "medium: ESS/s of sampling, ours / the straightforward model's (same run)"
    assert verdict[lead] == "met" and frame.loc[lead, "measured"] == pytest.approx(21.4 / 0.19, abs=1e-3)
    assert "straightforward 0.19 ESS/s, max R-hat 1.18" in why[lead] and "not converged" in why[lead]
    assert frame["runs"].tolist() == [3, 3, None, 3, 3, 3, 3, 3]


def test_a_time_over_its_goal_is_not_met_without_convergence_figures():
    item = "item panel: end to end (s), converged"
    over = {"size": "item_panel", "sampler": "nutpie", "repeats": 1, "end_to_end_s": 420.0}
    row = targets([over]).set_index("target").loc[item]
    assert (row["verdict"], row["measured"], row["runs"]) == ("not met", 420.0, 1)
    assert "1 run(s)" in row["why"]
    row = targets([{**over, "end_to_end_s": 280.0}]).set_index("target").loc[item]
    assert row["verdict"] == "not measured"     # in time, but no convergence figures: not a verdict


def test_a_failed_case_misses_its_targets_and_too_few_runs_or_a_lazy_load_are_named():
    cases = [
        {"size": "small", "sampler": "nutpie", "command_cached_s": 14.0, "command_cold_s": 55.0, "fit_file_mb": 24.4,
         "fit_file_lazy": False, **CONVERGED},
        {"size": "medium", "sampler": "nutpie", "ess_bulk_per_s_sampling": 21.4, **CONVERGED, "divergences": 2},
        {"size": "medium", "sampler": "straightforward", "ess_bulk_per_s_sampling": 0.19, **CONVERGED},
        {"size": "item_panel", "sampler": "nutpie", "error": "timed out after 10800 s (resident memory 900 MB then)"},
    ]
    frame = targets(cases).set_index("target")
    row = frame.loc["item panel: end to end (s), converged"]
    assert (row["measured"], row["verdict"]) == ("failed", "not met") and "timed out after 10800 s" in row["why"]
    cold = frame.loc["example: the same command on a new machine (s)"]
    assert cold["verdict"] == "met" and cold["why"] == "1 run(s), the target's median asks for >= 3"
    assert frame.loc["example: saved fit (MB), loading lazily", "verdict"] == "not met"   # 24.4 MB but read whole
    lead = frame.loc["medium: ESS/s of sampling, ours / the straightforward model's (same run)"]
    assert lead["verdict"] == "not met" and lead["why"].startswith("ours not converged: 2 divergences")
    assert frame.loc["medium: converged (max R-hat, bulk and tail ESS, divergences)", "verdict"] == "not met"
    nothing = targets([])["verdict"].unique().tolist()
    assert (frame.loc["large: end to end (s), converged", "verdict"], nothing) == ("not measured", ["not measured"])


def test_the_straightforward_model_builds_with_finite_log_density_and_gradient_on_a_tiny_panel():
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode

    from benchmarks.cases import bench_spec
    from benchmarks.straightforward import build
    from nexusbayes.model.simulate import simulate

    sim = simulate(bench_spec(), n_countries=2, n_regions=3, n_periods=4, missing=0.1, seed=1)
    model = build(sim.panel, sim.spec)
    assert model.named_vars_to_dims["theta"] == ("region", "period", "trait")
    assert model.named_vars_to_dims["walk"] == ("region", "trait", "period")     # centred: the walk is free
    assert {rv.name for rv in model.observed_RVs} == {f"y_{name}" for name in sim.spec.indicators}
    point = model.initial_point()
    values = [point[v.name] for v in model.value_vars]
    # the graph as built, in Python: no C compile for one evaluation (the terms stacked, not one Add of 33)
    terms = [pt.sum(term) for term in model.logp(sum=False)]
    total = pt.sum(pt.stack(terms))
    run = pytensor.function(model.value_vars, [*terms, *pt.grad(total, model.value_vars)],
                            mode=Mode(linker="py", optimizer=None))
    out = run(*values)
    assert len(terms) == len(model.free_RVs) + 8 and all(np.all(np.isfinite(v)) for v in out)
    assert model["loading_abuse_willingness"].owner.op.name == "halfnormal"   # the negative one: minus its size


def test_the_saved_example_fit_is_measured_as_loading_lazily(kyrgyzstan_run):
    from benchmarks.measure import saved_fit

    status, out = kyrgyzstan_run
    record = saved_fit(out / "fit.nc")
    assert status == 0 and record["fit_file_lazy"] is True
    assert record["fit_file_mb"] == round((out / "fit.nc").stat().st_size / 1e6, 2)
    assert record["fit_load_s"] > 0 and record["fit_first_read_s"] > 0
