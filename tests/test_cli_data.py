"""``nexusbayes fit SPEC --data PATH`` and ``nexusbayes check SPEC --data PATH``: another data file than the spec's.

``--data`` is relative to the spec file's folder (as the spec's own ``data``), read and validated as the spec's data
would be, and its errors name the file. No sampling here: ``check``, the refusals before a fit, and the record a fit
given other data carries into its summary and report (on the shared hostile run's fit).
"""

from __future__ import annotations

import pytest

from nexusbayes.cli import main
from nexusbayes.model.simulate import simulate


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """``models/s.toml`` naming ``../data/a.csv``; beside it ``b.csv`` (10 rows fewer) and ``bad.csv`` (a count -3)."""
    root = tmp_path_factory.mktemp("data_flag")
    (root / "models").mkdir()
    (root / "data").mkdir()
    sim = simulate(n_regions=3, n_periods=4, seed=5)
    sim.frame.to_csv(root / "data" / "a.csv", index=False)
    sim.frame.iloc[:-10].to_csv(root / "data" / "b.csv", index=False)
    bad = sim.frame.copy()
    bad.loc[bad.index[bad["indicator"] == "seizures"][0], "value"] = -3
    bad.to_csv(root / "data" / "bad.csv", index=False)
    spec = sim.spec.model_copy(update={"name": "s", "data": "../data/a.csv"})
    (root / "models" / "s.toml").write_text(spec.to_toml())
    return root, len(sim.frame)


def test_check_reads_the_given_file_relative_to_the_spec(layout, capsys, monkeypatch, tmp_path):
    root, n_rows = layout
    monkeypatch.chdir(tmp_path)                 # not the spec's folder: the path is the spec's, not the shell's
    spec = str(root / "models" / "s.toml")
    assert main(["check", spec]) == 0
    assert f"valid. {n_rows} observations" in capsys.readouterr().out
    assert main(["check", spec, "--data", "../data/b.csv"]) == 0
    out = capsys.readouterr().out
    assert f"with --data {root / 'data' / 'b.csv'}: valid. {n_rows - 10} observations" in out


def test_the_given_file_is_validated_as_the_specs_own_and_errors_name_it(layout, capsys, tmp_path):
    root, _ = layout
    as_spec = root / "models" / "bad_spec.toml"
    as_spec.write_text((root / "models" / "s.toml").read_text().replace("../data/a.csv", "../data/bad.csv"))
    assert main(["check", str(as_spec)]) == 2
    own = capsys.readouterr().err
    assert main(["check", str(root / "models" / "s.toml"), "--data", "../data/bad.csv"]) == 2
    given = capsys.readouterr().err
    assert given == own                                    # the same checks, the same message
    assert f"{root / 'data' / 'bad.csv'}: invalid indicator data" in given and "row 14" in given
    assert main(["check", str(root / "models" / "s.toml"), "--data", "nope.csv"]) == 2
    assert f"{root / 'models' / 'nope.csv'}: data file not found" in capsys.readouterr().err


def test_fit_refuses_a_missing_data_file_before_sampling_and_writes_nothing(layout, capsys, tmp_path):
    root, _ = layout
    out = tmp_path / "run"
    assert main(["fit", str(root / "models" / "s.toml"), "--data", "nope.csv", "--out", str(out),
                 "--no-progress"]) == 2
    printed = capsys.readouterr()
    assert f"{root / 'models' / 'nope.csv'}: data file not found" in printed.err
    assert "sampling" not in printed.out.lower() and not out.exists()


@pytest.mark.parametrize("command", ["fit", "check"])
def test_a_spec_without_data_is_refused_with_the_flag_to_give_it(layout, capsys, tmp_path, command):
    """``fit`` and ``check`` read the data alike (one helper): a spec naming no data file gets the same message."""
    root, _ = layout
    spec = root / "models" / "no_data.toml"
    spec.write_text("\n".join(line for line in (root / "models" / "s.toml").read_text().splitlines()
                              if not line.startswith("data = ")))
    out = tmp_path / "run"
    assert main([command, str(spec), *(["--out", str(out), "--no-progress"] if command == "fit" else [])]) == 2
    assert f"{spec}: names no data file (`data = ...`); or give one with --data PATH" in capsys.readouterr().err
    assert not out.exists()


def test_fit_with_too_few_periods_in_the_given_file_is_refused_before_fitting(layout, capsys, tmp_path):
    """``--forecast-check`` counts the periods of the ``--data`` file, not of the spec's."""
    root, _ = layout
    sim = simulate(n_regions=3, n_periods=2, seed=5)
    sim.frame.to_csv(root / "data" / "short.csv", index=False)
    assert main(["fit", str(root / "models" / "s.toml"), "--data", "../data/short.csv", "--out",
                 str(tmp_path / "run"), "--no-progress", "--forecast-check", "1"]) == 2
    assert "--forecast-check 1: the data hold 2 periods" in capsys.readouterr().err


def test_the_summary_and_the_report_name_the_data_given(hostile):
    """A fit given other data (``fit(spec_path, data)``: ``--data``) says so in its summary and run facts."""
    from nexusbayes.fit import DATA_GIVEN_ATTR, Fit
    from nexusbayes.report.header import run_facts
    from nexusbayes.report.run import summary_text

    fit, _ = hostile
    given = Fit(tree=fit.tree.copy(), spec=fit.spec, panel=fit.panel)
    given.tree.attrs[DATA_GIVEN_ATTR] = "/x/other.csv, in place of the spec's data = 'sim.csv'"
    assert "  data: /x/other.csv, in place of the spec's data = 'sim.csv'" in summary_text(given).splitlines()
    assert run_facts(given)[0]["data given (in place of the spec's)"].startswith("/x/other.csv")
    assert DATA_GIVEN_ATTR not in fit.tree.attrs and "  data: " not in summary_text(fit)
