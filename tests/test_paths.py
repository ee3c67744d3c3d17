"""Path escape: no spec name (``..``, absolute paths, backslashes, unicode look-alikes, control characters)
can make output land outside the chosen output directory."""

from __future__ import annotations

import pytest

from nexusbayes.cli import main
from nexusbayes.errors import SpecError
from nexusbayes.model.simulate import default_spec
from nexusbayes.outputs import default_out_dir
from nexusbayes.spec.document import Spec

EVIL = ["../../x", "../x", "/etc/x", "/", "..", ".", "", "x/../../y", "x/y", "..\\..\\x", "C:\\x", "~/x",
        "\uff0e\uff0e\uff0fx", "\u2024\u2024/x", "x\u202egnp.exe", "x\n", "x\x00y", "x" * 101, " x", "-x", "ｘ"]


@pytest.mark.parametrize("name", EVIL, ids=repr)
def test_evil_spec_names_are_refused_by_the_spec(name):
    raw = {**default_spec().to_dict(), "name": name}
    with pytest.raises(SpecError, match=r"`name`: use only letters, digits, '_', '\.' and '-'|at most 100 char"):
        Spec.from_dict(raw)


@pytest.mark.parametrize("name", ["../../x", "/etc/x", "..", ".", "", "x/../../y", "x\x00y"], ids=repr)
def test_default_out_dir_checks_again_for_names_that_skipped_validation(name, tmp_path):
    """`Spec.model_construct` (or a future loader) skips validation: the output path is checked itself."""
    unchecked = Spec.model_construct(**{**default_spec().__dict__, "name": name})
    with pytest.raises(SpecError, match=r"would put the output outside"):
        default_out_dir(unchecked.name, tmp_path / "reports")


def test_symlink_out_of_the_reports_folder_is_refused(tmp_path):
    reports, outside = tmp_path / "reports", tmp_path / "elsewhere"
    reports.mkdir()
    outside.mkdir()
    (reports / "kg").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SpecError, match=rf"kg is a symlink \(to {outside}\), which nexusbayes does not write "
                                        rf"through; pass --out {outside} to write there directly"):
        default_out_dir("kg", reports)


def test_good_names_stay_inside(tmp_path):
    for name in ["kg", "kg-2024.v1", "a_b", "X" * 100, "1"]:
        out = default_out_dir(name, tmp_path / "reports")
        assert out.resolve().parent == (tmp_path / "reports").resolve()


def test_cli_refuses_an_escaping_name_before_writing_anything(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    spec = work / "evil.toml"
    spec.write_text(default_spec().to_toml().replace('name = "simulated"', 'name = "../../escaped"'),
                    encoding="utf-8")
    assert main(["fit", str(spec)]) == 2
    assert "`name`: use only letters, digits" in capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == ["evil.toml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
