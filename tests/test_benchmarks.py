"""The benchmark's regression check compares machine-normalised ratios, not absolute times."""

from benchmarks.__main__ import compare, markdown
from benchmarks.cases import SHAPES, make_case


def _run(machine, **case):
    return {"machine_seconds": machine, "cases": [{"size": "small", "sampler": "nutpie", **case}]}


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
    other = {"machine_seconds": 1.0, "cases": [{"size": "large", "sampler": "nutpie", "sampling_s": 1.0},
                                               {"size": "small", "sampler": "nutpie", "error": "timed out"}]}
    ratios, ok = compare(other, STORED, tolerance=1.5)
    assert ok and ratios.empty


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

    import pytest

    from benchmarks.settings import parse_setting

    assert parse_setting("0.8:draw_diag") == (0.8, "draw_diag")
    with pytest.raises(argparse.ArgumentTypeError, match="setting '0.8': expected TARGET_ACCEPT:ADAPTATION"):
        parse_setting("0.8")
