"""Spec validation: every broken spec gives a SpecError naming the file, the key and the fix.

The broken fixtures live in ``tests/spec/specs/wrong_*.toml``; each has exactly one fault, and the
``fix`` recorded below (a text replacement) turns it into a spec that loads, so a fixture cannot
silently fail for a different reason than the one its test checks.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import tomli_w

from nexusbayes.errors import SpecError
from nexusbayes.model.simulate import default_spec
from nexusbayes.spec.document import Spec, load_spec
from nexusbayes.spec.indicators import Indicator
from nexusbayes.spec.sections import (
    AnchoredThreshold,
    DynamicsSpec,
    Era,
    Periods,
    Priors,
    SamplerSpec,
    Summary,
    Typology,
)

SPECS = Path(__file__).parent / "specs"

# fixture file -> (patterns that must all be in the message, (old, new) text fix that makes it load)
CASES: dict[str, tuple[list[str], tuple[str, str]]] = {
    "wrong_top_level_key.toml": (
        [r"unknown key `trait`; did you mean 'traits'\?"],
        ("trait =", "traits ="),
    ),
    "wrong_indicator_key.toml": (
        [r"unknown key `indicators\.quota\.lable`; did you mean 'label'\?"],
        ("lable =", "label ="),
    ),
    "wrong_sampler_key.toml": (
        [r"unknown key `sampler\.drwas`; did you mean 'draws'\?"],
        ("drwas =", "draws ="),
    ),
    "wrong_threshold_key.toml": (
        [r"unknown key `typology\.thresholds\.willingness\.valu`; did you mean 'value'\?"],
        ("valu =", "value ="),
    ),
    "wrong_type_draws.toml": (
        [r"`sampler\.draws`: ", r"expected a whole number", r"got 'many' \(a string\)"],
        ('"many"', "500"),
    ),
    "wrong_family.toml": (
        [r"`indicators\.seizures\.family`: ", r"'negbin', 'normal', 'binomial', 'ordinal' or 'bernoulli'",
         r"\(got 'poisson'\)"],
        ('"poisson"', '"negbin"'),
    ),
    "wrong_no_indicators.toml": (
        [r"missing required key `indicators`"],
        ("[sampler]",
         '[indicators.staff]\nfamily = "normal"\nloads = {capability = "positive"}\n\n[sampler]'),
    ),
    "wrong_no_family.toml": (
        [r"missing required key `indicators\.quota\.family`"],
        ("[indicators.quota]\n", '[indicators.quota]\nfamily = "binomial"\n'),
    ),
    "wrong_ordinal_no_categories.toml": (
        [r"`indicators\.expert_willingness`: an ordinal indicator needs `categories`",
         r"ratings run 1\.\.categories", r"e\.g\. categories = 5"],
        ('family = "ordinal"\n', 'family = "ordinal"\ncategories = 5\n'),
    ),
    "wrong_unknown_trait.toml": (
        [r"indicators\.quota\.loads names trait\(s\) \['willingnes'\]",
         r"not in traits = \['capability', 'willingness'\]", r"did you mean 'willingness'\?",
         r"add the trait to `traits`"],
        ("willingnes =", "willingness ="),
    ),
    "wrong_unidentified.toml": (
        [r"trait 'willingness' is not identified",
         r"no indicator loads on it alone with a fixed sign",
         r'Add one, e\.g\. loads = \{willingness = "positive"\}'],
        ('loads = {willingness = "free"}', 'loads = {willingness = "positive"}'),
    ),
    "wrong_name_escape.toml": (
        [r"`name`: use only letters, digits, '_', '\.' and '-'", r"reports/<name>/", r"got '\.\./\.\./x'"],
        ('"../../x"', '"x"'),
    ),
    "wrong_covariate_key.toml": (
        [r"unknown key `covariates\.columns\.conflict\.trait`; did you mean 'traits'\?"],
        ("trait =", "traits ="),
    ),
    "wrong_covariate_target.toml": (
        [r"`covariates\.columns\.aid\.on`: ", r"'level', 'step' or 'transition'", r"\(got 'slope'\)"],
        ('"slope"', '"level"'),
    ),
    "wrong_syntax.toml": (
        [r"not valid TOML", r"line 10\b"],
        ('"positive}', '"positive"}'),
    ),
}


def _message(path: Path) -> str:
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    return str(excinfo.value)


def test_every_fixture_has_a_case():
    assert sorted(p.name for p in SPECS.glob("*.toml")) == sorted(CASES)


@pytest.mark.parametrize("fname", sorted(CASES))
def test_broken_spec_message_names_file_key_and_fix(fname):
    path = SPECS / fname
    msg = _message(path)
    assert msg.startswith(f"{path}: "), msg
    for pattern in CASES[fname][0]:
        assert re.search(pattern, msg), f"{pattern!r} not found in:\n{msg}"
    if fname != "wrong_syntax.toml":
        # one fault, one line: no noise from other keys or from pydantic's union branches
        problems = [line for line in msg.splitlines() if line.startswith("  - ")]
        assert len(problems) == 1, msg


@pytest.mark.parametrize("fname", sorted(CASES))
def test_broken_fixture_loads_once_fixed(fname, tmp_path):
    old, new = CASES[fname][1]
    text = (SPECS / fname).read_text(encoding="utf-8")
    assert text.count(old) == 1
    fixed = tmp_path / fname
    fixed.write_text(text.replace(old, new), encoding="utf-8")
    spec, data_path = load_spec(fixed)
    assert spec.name in ("kg", "x")
    assert data_path is None


def test_unknown_key_without_close_match_lists_valid_keys():
    text = 'name = "kg"\n[indicators.a]\nfamily = "normal"\nloads = {capability = "positive"}\n' \
           '[indicators.b]\nfamily = "normal"\nloads = {willingness = "positive"}\n[sampler]\nzzz = 1\n'
    with pytest.raises(SpecError) as excinfo:
        Spec.from_toml(text, source="inline.toml")
    msg = str(excinfo.value)
    assert msg.startswith("inline.toml: invalid model specification")
    assert ("unknown key `sampler.zzz`; valid keys here: backend, draws, tune, chains, seed, target_accept, "
            "adaptation" in msg)


def test_bad_threshold_value_is_one_clear_line():
    spec = default_spec()
    raw = spec.to_dict() | {"typology": {"thresholds": {"capability": "high"}}}
    with pytest.raises(SpecError) as excinfo:
        Spec.from_dict(raw, source="raw-dict")
    msg = str(excinfo.value)
    assert msg.splitlines() == [
        "raw-dict: invalid model specification",
        "  - `typology.thresholds.capability`: a threshold is a finite number or a table "
        "{indicator = \"NAME\", value = NUMBER} (got 'high')",
    ]


def test_missing_spec_file(tmp_path):
    path = tmp_path / "nope.toml"
    assert _message(path) == f"{path}: spec file not found"


def test_one_trait_spec_is_accepted():
    text = 'name = "one"\ntraits = ["capability"]\n\n[indicators.staff]\nfamily = "normal"\n' \
           'loads = {capability = "positive"}\n'
    spec = Spec.from_toml(text)
    assert spec.traits == ["capability"]
    assert list(spec.indicators) == ["staff"]
    assert not spec.has_typology
    assert Spec.from_toml(spec.to_toml()) == spec


def test_default_spec_round_trips():
    spec = default_spec()
    back = Spec.from_toml(spec.to_toml())
    assert back == spec
    assert back.indicators["expert_capability"].categories == 5


def _rich_spec() -> Spec:
    return default_spec(
        name="kg-eras",
        data="../data/kg.csv",
        periods=Periods(eras=[Era(name="soviet", start=1985, end=1991),
                              Era(name="independence", start=1991, end=2005),
                              Era(name="recent", start=2005, end=2020)]),
        dynamics=DynamicsSpec(kind="student_t_rw", df=3.0),
        priors=Priors(loading=0.5, innovation_region_sd=0.1, ar_phi=(2.0, 3.0)),
        typology=Typology(thresholds={
            "capability": AnchoredThreshold(indicator="expert_capability"),
            "willingness": AnchoredThreshold(indicator="quota", value=0.75),
        }),
        summary=Summary(eras=[Era(name="all", start=1985, end=2020)],
                        region_groups={"south": ["Osh", "Batken"]}),
        sampler=SamplerSpec(backend="pymc", draws=200, chains=2, seed=7),
    )


def test_rich_spec_round_trips():
    spec = _rich_spec()
    back = Spec.from_toml(spec.to_toml())
    assert back == spec
    # the overrides survived (not silently replaced by defaults, which would still compare unequal)
    assert [e.name for e in back.periods.eras] == ["soviet", "independence", "recent"]
    assert back.priors.ar_phi == (2.0, 3.0) and back.priors.loading == 0.5
    assert back.typology.thresholds["capability"] == AnchoredThreshold(indicator="expert_capability")
    assert back.typology.thresholds["willingness"] == AnchoredThreshold(indicator="quota", value=0.75)
    assert back.dynamics.kind == "student_t_rw" and back.sampler.backend == "pymc"


def test_numeric_thresholds_round_trip():
    spec = default_spec(typology=Typology(thresholds={"capability": 0.5, "willingness": -1.0}))
    back = Spec.from_toml(spec.to_toml())
    assert back == spec
    assert back.threshold("capability") == 0.5 and back.threshold("willingness") == -1.0


def test_round_trip_changes_are_detected():
    spec = _rich_spec()
    changed = Spec.from_toml(spec.to_toml().replace("draws = 200", "draws = 201"))
    assert changed != spec


def test_spec_file_round_trip_and_data_relative_to_spec_file(tmp_path, monkeypatch):
    spec = _rich_spec()
    spec_file = tmp_path / "project" / "specs" / "kg.toml"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text(spec.to_toml(), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the spec file, not to the working directory
    loaded, data_path = load_spec(spec_file)
    assert loaded == spec
    assert data_path == (tmp_path / "project" / "data" / "kg.csv").resolve()
    assert data_path.is_absolute()


def test_spec_without_data_has_no_data_path(tmp_path):
    spec_file = tmp_path / "kg.toml"
    spec_file.write_text(default_spec().to_toml(), encoding="utf-8")
    _, data_path = load_spec(spec_file)
    assert data_path is None


def test_python_api_indicator_checks():
    with pytest.raises(ValueError, match=r"ordinal indicator needs `categories`"):
        Indicator(family="ordinal", loads={"capability": "positive"})
    with pytest.raises(ValueError, match=r"`categories` is only for ordinal indicators, not 'normal'"):
        Indicator(family="normal", categories=3, loads={"capability": "positive"})


def test_spec_with_several_data_files(tmp_path):
    spec_file = tmp_path / "specs" / "ca.toml"
    spec_file.parent.mkdir()
    data = default_spec().to_dict() | {"name": "ca", "data": ["../data/kg.csv", "../data/tj.csv"]}
    spec_file.write_text(Spec.from_dict(data).to_toml(), encoding="utf-8")
    spec, data_path = load_spec(spec_file)
    assert data_path == [(tmp_path / "data" / "kg.csv").resolve(), (tmp_path / "data" / "tj.csv").resolve()]
    assert Spec.from_toml(spec.to_toml()) == spec
    with pytest.raises(SpecError, match="data"):
        Spec.from_dict(data | {"data": []})


# ---- holes found by fuzzing (tests/test_fuzz.py) -------------------------------------------------------

@pytest.mark.parametrize(("table", "key", "value"), [
    ("priors", "loading", math.inf), ("priors", "lkj_eta", math.nan), ("dynamics", "df", math.inf),
    ("sampler", "target_accept", math.nan),
])
def test_nan_and_infinity_are_refused(table, key, value):
    """TOML has nan and inf; `gt=0` let inf through (HalfNormal(inf): a -inf log-density)."""
    raw = default_spec(name="x").to_dict()
    raw.setdefault(table, {})[key] = value
    with pytest.raises(SpecError, match=rf"`{table}\.{key}`: Input should be a finite number"):
        Spec.from_toml(tomli_w.dumps(raw))


def test_nan_threshold_is_refused():
    raw = default_spec(name="x").to_dict()
    raw["typology"] = {"thresholds": {"capability": math.nan}}
    with pytest.raises(SpecError, match=r"`typology\.thresholds\.capability`: a threshold is a finite number"):
        Spec.from_toml(tomli_w.dumps(raw))


@pytest.mark.parametrize(("table", "expected"), [
    ({"sampler": {"seed": -1}}, r"`sampler\.seed`: Input should be greater than or equal to 0"),
    ({"periods": {"first": -10**12, "last": 10**12}}, r"`periods\.first`: Input should be greater than or equal"),
])
def test_out_of_range_integers_are_refused(table, expected):
    """A negative seed crashed the samplers; a span of 2e12 years tried to allocate every year."""
    with pytest.raises(SpecError, match=expected):
        Spec.from_dict({**default_spec(name="x").to_dict(), **table})
