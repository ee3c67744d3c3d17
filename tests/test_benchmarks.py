"""The benchmark's regression check compares machine-normalised ratios, not absolute times."""

import pytest

from benchmarks.__main__ import MACHINE_WORKLOAD, compare, markdown
from benchmarks.cases import SHAPES, make_case


def _run(machine, **case):
    return {"machine_seconds": machine, "machine_workload": MACHINE_WORKLOAD,
            "cases": [{"size": "small", "sampler": "nutpie", **case}]}


STORED = _run(1.0, compile_s=30.0, sampling_s=80.0, gradient_us=200.0, ess_bulk_per_s_sampling=10.0)


def test_a_uniformly_slower_machine_is_not_a_regression():
    slower = _run(2.0, compile_s=60.0, sampling_s=160.0, gradient_us=400.0, ess_bulk_per_s_sampling=5.0)
    ratios, ok = compare(slower, STORED, tolerance=1.5)
    assert ok and set(ratios["normalised ratio"]) == {1.0}


def test_slower_sampling_or_fewer_ess_per_second_is_a_regression():
    worse = _run(1.0, compile_s=30.0, sampling_s=200.0, gradient_us=200.0, ess_bulk_per_s_sampling=4.0)
    ratios, ok = compare(worse, STORED, tolerance=1.5)
    assert not ok
    assert set(ratios.loc[ratios["verdict"] == "REGRESSION", "metric"]) == {"sampling_s", "ess_bulk_per_s_sampling"}


def test_cases_without_a_stored_counterpart_or_with_errors_are_skipped():
    other = {"machine_seconds": 1.0, "machine_workload": MACHINE_WORKLOAD,
             "cases": [{"size": "large", "sampler": "nutpie", "sampling_s": 1.0},
                       {"size": "small", "sampler": "nutpie", "error": "timed out"}]}
    ratios, ok = compare(other, STORED, tolerance=1.5)
    assert ok and ratios.empty


def test_runs_that_measured_the_machine_with_another_workload_are_not_compared():
    older = {**STORED, "machine_workload": MACHINE_WORKLOAD - 1}
    with pytest.raises(ValueError, match="workload 1 and this run with 2, so their normalised times are not"):
        compare(STORED, older, tolerance=1.5)


def test_markdown_has_one_column_per_case():
    text = markdown(STORED["cases"] + [{"size": "medium", "sampler": "pymc", "sampling_s": 9.0}])
    assert text.splitlines()[0] == "| metric | small / nutpie | medium / pymc |"


def test_simulated_sizes_have_the_issue_s_shapes():
    medium = make_case("medium")
    assert medium.shape == "10x8x10x8"
    countries, regions, periods, missing = SHAPES["medium"]
    cells = countries * regions * periods * 8
    assert abs(medium.panel.n_obs - cells * (1 - missing)) < 0.02 * cells


def test_settings_are_parsed_and_a_missing_adaptation_is_named():
    import argparse

    from benchmarks.settings import parse_setting

    assert parse_setting("0.8:draw_diag") == (0.8, "draw_diag", {})
    assert parse_setting("0.9:low_rank:tune=800,mass_matrix_gamma=0.001,init=advi") == \
        (0.9, "low_rank", {"tune": 800, "mass_matrix_gamma": 0.001, "init": "advi"})
    with pytest.raises(argparse.ArgumentTypeError, match="setting '0.8': expected TARGET_ACCEPT:ADAPTATION"):
        parse_setting("0.8")
    with pytest.raises(argparse.ArgumentTypeError, match="option 'tune' is not KEY=VALUE"):
        parse_setting("0.8:diag:tune")


def test_geometry_finds_the_narrow_direction_of_correlated_coordinates():
    import numpy as np

    from benchmarks.geometry import geometry

    rng = np.random.default_rng(1)
    common = rng.standard_normal(40000)
    # x[0] and x[1] correlated 0.99 (narrowest direction: their difference), y independent, c constant (skipped)
    draws = np.column_stack([common, 0.99 * common + np.sqrt(1 - 0.99**2) * rng.standard_normal(40000),
                             rng.standard_normal((40000, 3)), np.ones(40000)])
    g = geometry(draws, ["x[0]", "x[1]", "y[0]", "y[1]", "y[2]", "c[0]"], directions=1)
    assert g["coordinates"] == 5
    assert abs(g["condition_number"] - 1.99 / 0.01) < 0.2 * 199      # eigenvalues 1 +- 0.99; sampling noise
    assert g["narrowest"][0]["variables"] == {"x": 1.0}
    assert list(g["widest"][0]["variables"])[0] == "x"


def test_unconstrained_draws_take_transformed_variables_from_their_own_group():
    import numpy as np
    import pymc as pm
    import xarray as xr

    from benchmarks.geometry import unconstrained_draws

    with pm.Model() as model:
        pm.HalfNormal("scale", 1.0)
        pm.Normal("z", 0.0, 1.0, shape=2)
    rng = np.random.default_rng(0)
    log_scale, z = rng.normal(size=(2, 5, 1)), rng.normal(size=(2, 5, 2))
    post = xr.Dataset({"scale": (("chain", "draw"), np.exp(log_scale[..., 0])), "z": (("chain", "draw", "z_dim"), z)})
    unc = xr.Dataset({"scale_log__": (("chain", "draw"), log_scale[..., 0])})
    tree = xr.DataTree.from_dict({"posterior": post, "unconstrained_posterior": unc})
    draws, names = unconstrained_draws(tree, model)
    assert names == ["scale_log__[0]", "z[0]", "z[1]"]
    np.testing.assert_array_equal(draws, np.column_stack([log_scale.reshape(10), z.reshape(10, 2)]))
    with pytest.raises(KeyError, match="store_unconstrained=True"):
        unconstrained_draws(xr.DataTree.from_dict({"posterior": post}), model)


def test_repeated_runs_give_medians_and_keep_the_runs():
    from benchmarks.__main__ import median_record

    runs = [{"size": "medium", "sampler": "nutpie", "seed": 1 + i, "sampling_s": s, "divergences": d, "checks": c}
            for i, (s, d, c) in enumerate(((50.0, 0, [5, 1]), (70.0, 2, [6, 1]), (60.0, 0, [5, 1])))]
    record = median_record([*runs, {"size": "medium", "sampler": "nutpie", "error": "exit 1: boom"}])
    assert (record["sampling_s"], record["divergences"], record["repeats"]) == (60.0, 0, 4)
    assert record["checks"] == [5, 1]   # lists, as a run by need records its checks, take the most common
    assert record["runs"][:3] == runs and "seed" not in record
    assert record["error"] == "1 of 4 runs failed: exit 1: boom"


def test_a_running_case_reports_its_time_and_memory_and_is_stopped_at_its_timeout(capsys):
    import sys

    from benchmarks.__main__ import run_reporting

    quick = [sys.executable, "-c", "import time; time.sleep(1.2); print('done')"]
    assert run_reporting(quick, {}, timeout=30, label="small x nutpie", every=0.4)[:2] == (0, "done\n")
    beats = capsys.readouterr().err.splitlines()
    assert len(beats) >= 2 and all("small x nutpie: running for" in b and "resident memory" in b for b in beats)
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    error = run_reporting(slow, {}, timeout=1.0, label="large x nutpie", every=0.4)
    assert error.startswith("timed out after 1 s (resident memory ")


def test_a_posterior_draw_maps_to_the_sampler_s_coordinates_and_back(kyrgyzstan):
    """The benchmark times the gradient at a posterior draw: the draw, transformed, is the point nutpie expands."""
    import numpy as np

    from benchmarks.measure import posterior_point
    from nexusbayes.inference import compile_cache
    from nexusbayes.inference.nutpie_callbacks import call_expand
    from nexusbayes.model.build import build_model

    model = build_model(kyrgyzstan.panel, kyrgyzstan.spec)
    compiled, _ = compile_cache.compile_nutpie(model, kyrgyzstan.panel, kyrgyzstan.spec)
    post = kyrgyzstan.tree["posterior"]
    x = posterior_point(model, post, chain=1, draw=17)
    assert x.size == compiled.n_dim
    code, expanded = call_expand(compiled, x)
    assert code == 0
    names, slices, _ = compiled.shape_info
    checked = [name for name in names if name in post.data_vars]
    assert {"region_innovation_sd", "trait_chol", "theta"} <= set(checked)   # log, Cholesky and no transform
    # the stored draws are rounded to single precision (at most 6e-8 of a value, each variable on its own), so
    # the draw mapped back agrees to that precision (theta, computed from them, to 1e-7 absolute near 0); a wrong
    # mapping would be off by far more
    for name, where in zip(names, slices, strict=True):
        if name in post.data_vars:
            np.testing.assert_allclose(expanded[where], post[name].isel(chain=1, draw=17).values.ravel(),
                                       rtol=1e-6, atol=1e-6, err_msg=name)


def test_phases_cold_compiles_into_a_new_empty_folder():
    """``--cold`` points PyTensor at an empty compile directory of its own (checked in a new Python)."""
    import subprocess
    import sys

    script = ("import os, shutil\nfrom benchmarks.phases import cold_compiledir\nfolder = cold_compiledir()\n"
              "empty = os.listdir(folder) == []\nimport pytensor\n"
              "print(empty, str(pytensor.config.base_compiledir) == folder)\nshutil.rmtree(folder)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["True", "True"]
