"""Hostile inputs, one table: each plausible bad input is refused before sampling with a message naming it.

Every case builds its input in ``tmp_path`` (a spec, a data file, command-line arguments), runs one
entry point and states the outcome: the exception (or exit status) and the substrings its message must
contain (the file, key, row or argument and the fix), or success. The inputs are those of a hostile
user's review: misspelt region-group members, values of the wrong type, constant or missing
indicators, names that break files, special files as specs, non-UTF-8 data, absurd sampler settings,
extreme priors, repeated columns and other delimiters, unbounded names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nexusbayes.cli import main
from nexusbayes.data.read import load_panel
from nexusbayes.errors import DataError, DataWarning, SettingsError, SpecError
from nexusbayes.fit import fit
from nexusbayes.model.build import Model
from nexusbayes.spec.document import load_spec
from nexusbayes.spec.limits import MAX_SPEC_BYTES
from nexusbayes.workflows.batch import run_batch
from nexusbayes.workflows.jobs import connect
from nexusbayes.workflows.sbc import run_sbc

SPEC = """\
name = "hostile"
data = "panel.csv"
traits = ["capability", "willingness"]

[indicators.staff]
family = "normal"
loads = { capability = "positive" }

[indicators.rating]
family = "ordinal"
categories = 5
loads = { willingness = "positive" }
"""
HEADER = "country,region,period,indicator,value"
REGIONS = {"A": "KG", "B": "KG", "C": "TJ", "D": "TJ"}
STAFF = [1.2, 0.4, -0.3, 2.1, 0.9, -1.0, 0.0, 1.7, -0.6, 0.3, 1.1, -0.2]
RATING = [3, 2, 4, 5, 1, 3, 2, 4, 3, 5, 2, 1]


def rows(staff_regions=REGIONS, rating_regions=REGIONS, staff=STAFF, rating=RATING) -> list[str]:
    """Data lines (no header): regions A-D in two countries, periods 2000-2002, both indicators."""
    out = []
    for k, (region, country) in enumerate(sorted(REGIONS.items())):
        for t, period in enumerate((2000, 2001, 2002)):
            i = 3 * k + t
            if region in staff_regions:
                out.append(f"{country},{region},{period},staff,{staff[i]}")
            if region in rating_regions:
                out.append(f"{country},{region},{period},rating,{rating[i]}")
    return out


def write(tmp_path: Path, spec: str = SPEC, data: str | bytes | None = None) -> Path:
    """Write the spec (and the data, default the good table) into tmp_path; return the spec's path."""
    data = HEADER + "\n" + "\n".join(rows()) + "\n" if data is None else data
    (tmp_path / "panel.csv").write_bytes(data.encode() if isinstance(data, str) else data)
    path = tmp_path / "spec.toml"
    path.write_text(spec, encoding="utf-8")
    return path


def table(lines: list[str], header: str = HEADER) -> str:
    return header + "\n" + "\n".join(lines) + "\n"


# ---- entry points ------------------------------------------------------------------------------------

def via_load_spec(path: Path):
    return load_spec(path)


def via_load_panel(path: Path):
    spec, data = load_spec(path)
    return load_panel(data, spec)


def via_check(path: Path):
    """``nexusbayes check SPEC``: returns (status, stdout + stderr) instead of raising."""
    return main(["check", str(path)])


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], Path]   # writes the input into tmp_path, returns the path given to `run`
    run: Callable[[Path], object]
    raises: type[Exception] | int | None   # an exception, an exit status of the CLI, or None for success
    says: tuple[str, ...] = ()


def spec_with(extra: str = "", replace: tuple[str, str] = ("", "")) -> Callable[[Path], Path]:
    return lambda tmp: write(tmp, SPEC.replace(*replace) + extra)


def data_with(lines: list[str], header: str = HEADER, spec: str = SPEC) -> Callable[[Path], Path]:
    return lambda tmp: write(tmp, spec, table(lines, header))


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "spec.toml")
    return tmp / "spec.toml"


def _big_spec(tmp: Path) -> Path:
    path = write(tmp)
    with open(path, "a") as f:
        f.write("# " + "x" * (MAX_SPEC_BYTES + 10) + "\n")
    return path


def _latin1(tmp: Path) -> Path:
    lines = rows()
    lines[2] = lines[2].replace(",A,", ",Ñuñoa,")
    return write(tmp, SPEC, table(lines).encode("latin-1"))


def _latin1_spec(tmp: Path) -> Path:
    path = write(tmp)
    path.write_bytes(SPEC.encode() + "# Ñ\n".encode("latin-1"))
    return path


def _data_directory(tmp: Path) -> Path:
    path = write(tmp)
    (tmp / "panel.csv").unlink()
    (tmp / "panel.csv").mkdir()
    return path


GROUPS = '\n[summary]\neras = [{ name = "early", start = 2000, end = 2002 }]\n'
CASES = [
    # misspelt region-group member: refused with the nearest region (was: silently dropped)
    Case("region-group-misspelt", spec_with(GROUPS + 'region_groups = { AB = ["A", "Bb"] }\n'), via_check, 2,
         ("[summary.region_groups] 'AB'", "['Bb']", "did you mean 'B'?")),
    Case("region-group-good", spec_with(GROUPS + 'region_groups = { AB = ["A", "B"] }\n'), via_check, 0),
    # values of the wrong type: no coercion, the key, the value and the type wanted are named
    Case("bool-for-int", spec_with("\n[sampler]\ndraws = true\n"), via_load_spec, SpecError,
         ("spec.toml", "`sampler.draws`", "expected a whole number", "got true (a boolean)")),
    Case("string-for-int", spec_with('\n[sampler]\ndraws = "100"\n'), via_load_spec, SpecError,
         ("`sampler.draws`", "got '100' (a string)", "remove the quotes")),
    Case("string-for-bool", spec_with(replace=('categories = 5', 'categories = 5\ncomparable = "false"')),
         via_load_spec, SpecError, ("`indicators.rating.comparable`", "expected true or false", "'false'")),
    Case("int-for-bool", spec_with(replace=('categories = 5', 'categories = 5\ncomparable = 0')),
         via_load_spec, SpecError, ("`indicators.rating.comparable`", "got 0 (an integer)")),
    Case("string-for-float", spec_with('\n[priors]\nloading = "1.0"\n'), via_load_spec, SpecError,
         ("`priors.loading`", "expected a number", "remove the quotes")),
    Case("int-for-float-accepted", spec_with("\n[priors]\nloading = 1\nar_phi = [4, 2]\n"), via_load_spec, None),
    # a constant indicator is refused; one absent from a whole country is named
    Case("constant-indicator", data_with(rows(staff=[1.5] * 12)), via_load_panel, DataError,
         ("panel.csv", "'staff'", "every one of its 12 rows is 1.5", "constant", "drop it")),
    Case("indicator-absent-in-country", data_with(rows(rating_regions={"A": "KG", "B": "KG"})), via_check, 0,
         ("WARNING", "'rating' have no observation in country 'TJ'",
          "no indicator of trait 'willingness' is observed in country 'TJ'")),
    # names that break file names, saved fits or figures
    Case("slash-in-spec-indicator", spec_with(replace=("indicators.staff]", 'indicators."staff/1000"]')),
         via_load_spec, SpecError, ("indicators.'staff/1000'", "contains '/'")),
    Case("slash-in-data-indicator", data_with([r.replace(",staff,", ",staff/1000,") for r in rows()]),
         via_load_panel, DataError, ("`indicator` 'staff/1000' contains '/'", "variable and file names")),
    # a '/' is only refused where a name becomes a variable or file name: regions like "Chuy/Bishkek" are fine
    Case("slash-in-region-accepted", data_with([r.replace(",A,", ",A/B,") for r in rows()]), via_load_panel, None),
    Case("nul-in-region", data_with([r.replace(",C,", ",C\0,") for r in rows()]), via_load_panel, DataError,
         ("rows 14", "`region` 'C\\x00' contains control character(s) NUL")),
    Case("newline-in-country", data_with([r.replace("TJ,", '"T\nJ",') for r in rows()]), via_load_panel,
         DataError, ("`country`", "control character(s) U+000A")),
    Case("control-in-rater", data_with([r + ",r\x07" if ",rating," in r else r + "," for r in rows()],
                                       header=HEADER + ",rater"), via_load_panel, DataError,
         ("`rater` 'r\\x07' contains control character(s) U+0007",)),
    Case("slash-in-trait", spec_with(replace=('"willingness"]', '"will/ingness"]')), via_load_spec, SpecError,
         ("traits[1]", "contains '/'")),
    Case("slash-in-era-accepted", spec_with('\n[periods]\neras = [{ name = "2000/01", start = 2000, end = 2002 }]\n'),
         via_load_spec, None),
    Case("long-region", data_with([r.replace(",A,", "," + "R" * 100_000 + ",") for r in rows()]), via_load_panel,
         DataError, ("rows 2, 3, 4", "100,000 characters long (at most 200)")),
    Case("long-group-name", spec_with(GROUPS + f'region_groups = {{ "{"G" * 201}" = ["A"] }}\n'), via_load_spec,
         SpecError, ("summary.region_groups", "201 characters long (at most 200)")),
    # spec files that are not files, or too big; a BOM is accepted
    Case("spec-is-directory", lambda tmp: tmp, via_load_spec, SpecError, ("is a directory",)),
    Case("spec-is-fifo", _fifo, via_load_spec, SpecError, ("spec.toml: is not a regular file",)),
    Case("spec-is-dev-zero", lambda tmp: Path("/dev/zero"), via_load_spec, SpecError,
         ("/dev/zero: is not a regular file",)),
    Case("spec-too-big", _big_spec, via_load_spec, SpecError, ("larger than 10 MB",)),
    Case("spec-with-bom", lambda tmp: write(tmp, "\ufeff" + SPEC), via_load_spec, None),
    Case("spec-latin1", _latin1_spec, via_load_spec, SpecError,
         ("line 13 is not UTF-8", "re-save the file as UTF-8")),
    Case("data-latin1", _latin1, via_load_panel, DataError, ("panel.csv: line 4 is not UTF-8", "Latin-1",
                                                             "re-save the file as UTF-8")),
    Case("data-is-directory", _data_directory, via_load_panel, DataError, ("panel.csv: is not a regular file",)),
    Case("data-with-bom", lambda tmp: write(tmp, SPEC, "\ufeff" + table(rows())), via_load_panel, None),
    # extreme priors are refused with the key
    Case("tiny-prior", spec_with("\n[priors]\nloading = 1e-300\n"), via_load_spec, SpecError,
         ("`priors.loading`", "1e-300 is outside 1e-06..1e+06", "underflow")),
    Case("huge-prior", spec_with("\n[priors]\nar_phi = [4.0, 1e300]\n"), via_load_spec, SpecError,
         ("`priors.ar_phi.1`", "1e+300 is outside")),
    Case("huge-draws-in-spec", spec_with("\n[sampler]\ndraws = 9223372036854775807\n"), via_load_spec, SpecError,
         ("`sampler.draws`", "less than or equal to 10000000")),
    # sharper messages: a repeated column, another delimiter
    Case("value-twice", data_with([r + ",1" for r in rows()], header=HEADER + ",value"), via_load_panel, DataError,
         ("'value' appear more than once in the header (line 1)",)),
    Case("semicolons", data_with([r.replace(",", ";") for r in rows()], header=HEADER.replace(",", ";")),
         via_load_panel, DataError, ("delimited by semicolons", "re-save it as comma-separated")),
    Case("tabs", data_with([r.replace(",", "\t") for r in rows()], header=HEADER.replace(",", "\t")),
         via_load_panel, DataError, ("delimited by tabs",)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_input(case, tmp_path, capsys):
    target = case.build(tmp_path)
    if isinstance(case.raises, type):
        with pytest.raises(case.raises) as excinfo:
            case.run(target)
        message = str(excinfo.value)
    else:
        result = case.run(target)
        out = capsys.readouterr()
        message = out.out + out.err
        if case.run is via_check:
            assert result == case.raises, message
    for part in case.says:
        assert part in message, f"{part!r} not in:\n{message}"


# ---- command-line arguments: refused by argparse with the bound ----------------------------------------
ARGV = [
    ("draws-int64-max", ["fit", "S", "--draws", "9223372036854775807"], "--draws: must be a whole number from 1 to"),
    ("draws-billion", ["fit", "S", "--draws", "1000000000"], "got '1000000000'"),
    ("draws-zero", ["fit", "S", "--draws", "0"], "--draws: must be a whole number from 1 to 10,000,000"),
    ("chains-zero", ["fit", "S", "--chains", "0"], "--chains: must be a whole number from 1 to 1,000"),
    ("tune-negative", ["fit", "S", "--tune", "-1"], "--tune: must be a whole number from 0"),
    ("seed-negative", ["fit", "S", "--seed", "-3"], "--seed: must be a whole number from 0"),
    ("draws-text", ["fit", "S", "--draws", "many"], "got 'many'"),
    ("sweep-draws-huge", ["sweep", "S", "--kind", "per_country", "--draws", "1e9"], "--draws: must be"),
    ("sbc-n-sims-zero", ["sbc", "S", "--n-sims", "0"], "--n-sims: must be a whole number >= 1, got '0'"),
    ("sbc-n-sims-negative", ["sbc", "S", "--n-sims", "-4"], "--n-sims: must be a whole number >= 1"),
    ("sweep-workers-zero", ["sweep", "S", "--kind", "per_country", "--workers", "0"],
     "--workers: must be a whole number >= 1, got '0'"),
    ("sbc-workers-negative", ["sbc", "S", "--workers", "-2"], "--workers: must be a whole number >= 1"),
    ("quick-iterations-zero", ["quick", "S", "--iterations", "0"], "--iterations: must be a whole number >= 1"),
]


@pytest.mark.parametrize(("argv", "says"), [a[1:] for a in ARGV], ids=[a[0] for a in ARGV])
def test_hostile_arguments(argv, says, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert says in capsys.readouterr().err


# ---- Python arguments: refused before any cluster starts or model compiles --------------------------------
CALLS = [
    ("sbc-n-sims-zero", lambda spec: run_sbc(spec, n_sims=0), SettingsError, "n_sims (--n-sims) must be a whole"),
    ("sbc-n-sims-negative", lambda spec: run_sbc(spec, n_sims=-1), SettingsError, "got -1"),
    ("sbc-chains-bool", lambda spec: run_sbc(spec, n_sims=2, chains=True), SettingsError, "chains (--chains)"),
    ("sbc-workers-zero", lambda spec: run_sbc(spec, n_sims=2, n_workers=0), SettingsError, "n_workers (--workers)"),
    ("connect-workers-zero", lambda spec: connect(n_workers=0).__enter__(), SettingsError, "waits forever"),
    ("batch-workers-zero", lambda spec: run_batch([], spec.parent / "out", n_workers=0), SettingsError,
     "n_workers (--workers) must be a whole number >= 1, got 0"),
    ("fit-draws-int64-max", lambda spec: fit(spec, draws=2**63 - 1), SpecError, "`sampler.draws`"),
    ("fit-draws-bool", lambda spec: fit(spec, draws=True), SpecError, "`sampler.draws`: expected a whole number"),
    ("fit-beyond-memory", lambda spec: fit(spec, draws=10_000_000, chains=1000), SpecError,
     "1000 chain(s) x 10,000,000 draws x"),
]


@pytest.mark.parametrize(("call", "raises", "says"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_hostile_python_arguments(call, raises, says, tmp_path):
    spec = write(tmp_path)
    with pytest.raises(raises) as excinfo:
        call(spec)
    assert says in str(excinfo.value)


def test_fit_warns_of_a_trait_unmeasured_in_a_country_before_sampling(tmp_path):
    """The DataWarning comes before anything costly: here the memory check then refuses the settings."""
    spec = write(tmp_path, SPEC, table(rows(rating_regions={"A": "KG", "B": "KG"})))
    with pytest.warns(DataWarning) as record, pytest.raises(SpecError, match="memory"):
        fit(spec, draws=10_000_000, chains=1000)
    assert [str(w.message).split(":")[0] for w in record] == [
        "indicator(s) 'rating' have no observation in country 'TJ'",
        "no indicator of trait 'willingness' is observed in country 'TJ'"]


def test_panel_warnings_empty_when_every_country_is_covered(tmp_path):
    assert via_load_panel(write(tmp_path)).warnings == []


def test_the_roles_name_the_prior_of_a_non_finite_term(tmp_path):
    spec, data = load_spec(write(tmp_path, SPEC + "\n[priors]\nloading = 1e-6\n"))
    roles = Model(spec, load_panel(data, spec)).roles
    assert roles.prior_fields(["loading_pos", "y_normal"]) == ["loading"]
    assert roles.prior_fields(["y_normal"]) == []


def test_panel_warnings_count_informative_non_reports_as_evidence(tmp_path):
    """A country whose only sign of a trait is non-reports of an informative indicator is told so, not 'prior alone'."""
    spec = SPEC.replace('categories = 5\n', 'categories = 5\nmissing = "informative"\n')
    lines = [r + "," for r in rows(rating_regions={"A": "KG", "B": "KG"})]
    lines += [f"TJ,{region},{period},rating,,not_reported" for region in ("C", "D") for period in (2000, 2001, 2002)]
    panel = via_load_panel(write(tmp_path, spec, table(lines, HEADER + ",status")))
    assert [w.split(":")[0] for w in panel.warnings] == [
        "no indicator of trait 'willingness' is observed in country 'TJ'"]
    assert "only its non-reports of 'rating' (missing = \"informative\") inform its willingness" in panel.warnings[0]
