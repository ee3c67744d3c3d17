"""Hostile input, generated: every table and spec either validates (and then the model has a finite
log-density at its initial point) or is refused with the package's own error naming the problem.

Tables start valid (random spec, regions, periods and values in each family's support) and are then
broken by zero to three *mutations* (wrong types, outside the support, missing columns, duplicates,
unicode and very long names, NaN/inf, extreme magnitudes...), given as DataFrames or written to CSV
(optionally damaged as text). Specs start as valid dicts and are broken the same way, then given as
dicts, TOML text or TOML files. Never allowed: an exception from pandas, pydantic or PyMC internals.

The number of examples comes from the hypothesis profile in ``conftest.py`` (``ci``: derandomized);
the expensive property (compiling a log-density) sets its own small count.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest
import tomli_w
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode

from nexusbayes.data.panel import REQUIRED
from nexusbayes.data.read import load_panel
from nexusbayes.errors import DataError, SpecError
from nexusbayes.model.build import build_model
from nexusbayes.model.design import make_design
from nexusbayes.outputs import default_out_dir
from nexusbayes.spec.document import Spec, load_spec
from nexusbayes.spec.indicators import Indicator
from nexusbayes.spec.limits import NAME_PATTERN

FAMILIES = ("normal", "negbin", "binomial", "ordinal", "bernoulli")
SIGNS = ("positive", "negative", "free")
#: names users really write, and some they should not: unicode, combining marks, very long, CSV-hostile
NAMES = st.sampled_from(["Osh", "Чуй", "Džalal-Abad", "Batken region", "東京", "NA", "0", "a,b", 'q"uote',
                         "e\u0301", "R" * 300, "x"])
INDICATOR_NAMES = st.sampled_from(["staff", "seizures", "quota", "expert", "raid", "指標", "indicator with spaces",
                                   "I" * 200, "ñ", "a:b"])
#: a cheap pure-Python mode: the point is a finite number, not a fast function
PY_MODE = Mode(linker="py", optimizer="fast_compile")
_counter = itertools.count()


# ---- strategies -------------------------------------------------------------------------------------

@st.composite
def specs(draw) -> Spec:
    """A valid spec: one anchor per trait, up to two more indicators with random families and loadings."""
    traits = draw(st.sampled_from([["capability"], ["capability", "willingness"]]))
    n = draw(st.integers(len(traits), len(traits) + 2))
    names = draw(st.lists(INDICATOR_NAMES, min_size=n, max_size=n, unique=True))
    indicators = {}
    for i, name in enumerate(names):
        family = draw(st.sampled_from(FAMILIES))
        if i < len(traits):
            loads = {traits[i]: draw(st.sampled_from(SIGNS[:2]))}
        else:
            on = draw(st.lists(st.sampled_from(traits), min_size=1, unique=True))
            loads = {t: draw(st.sampled_from(SIGNS)) for t in on}
        extra = {"categories": draw(st.integers(2, 6))} if family == "ordinal" else {}
        indicators[name] = Indicator(family=family, loads=loads, **extra)
    return Spec(name="fuzz", traits=traits, indicators=indicators,
                dynamics={"kind": draw(st.sampled_from(["gaussian_rw", "student_t_rw", "ar1"]))})


def _value(draw, ind: Indicator) -> dict:
    if ind.family == "normal":
        return {"value": draw(st.floats(-1e6, 1e6, allow_nan=False))}
    if ind.family == "negbin":
        return {"value": float(draw(st.integers(0, 50))), "exposure": draw(st.floats(0.1, 10.0))}
    if ind.family == "binomial":
        trials = draw(st.integers(1, 20))
        return {"value": float(draw(st.integers(0, trials))), "trials": float(trials)}
    if ind.family == "bernoulli":
        return {"value": float(draw(st.integers(0, 1)))}
    return {"value": float(draw(st.integers(1, ind.categories))), "rater": draw(st.sampled_from([None, "r1", "r2"]))}


@st.composite
def valid_tables(draw, spec: Spec) -> pd.DataFrame:
    """A table that fits ``spec``: 1-2 countries, 1-3 regions each, 1-3 years, every indicator seen."""
    n_countries = draw(st.integers(1, 2))
    region_names = draw(st.lists(NAMES, min_size=n_countries, max_size=4, unique=True))
    country_of = {r: f"C{min(i, n_countries - 1)}" for i, r in enumerate(region_names)}
    years = sorted(draw(st.sets(st.integers(1990, 2020), min_size=1, max_size=3)))
    rows = []
    for name, ind in spec.indicators.items():
        cells = [(r, y) for r in region_names for y in years]
        keep = draw(st.lists(st.booleans(), min_size=len(cells), max_size=len(cells)))
        chosen = [c for c, k in zip(cells, keep, strict=True) if k] or [cells[0]]
        for region, year in chosen:
            rows.append({"country": country_of[region], "region": region, "period": year, "indicator": name,
                         "value": np.nan, "exposure": np.nan, "trials": np.nan, "rater": None,
                         **_value(draw, ind)})
    frame = pd.DataFrame(rows)
    frame = frame.drop_duplicates(subset=["region", "period", "indicator", "rater"]).reset_index(drop=True)
    for col in ("exposure", "trials", "rater"):
        if frame[col].isna().all():
            frame = frame.drop(columns=col)
    return frame


def _rows_of(frame, spec, family):
    names = [n for n, i in spec.indicators.items() if i.family == family]
    return frame.index[frame["indicator"].isin(names)]


def _set(frame, rows, col, value):
    if len(rows) and col in frame:
        frame[col] = frame[col].astype(object)
        frame.loc[rows, col] = value
    return frame


# Each mutation: (draw, frame, spec) -> frame. BENIGN ones keep the table legal (degenerate, extreme).
BENIGN = {
    "unicode names": lambda d, f, s: f.assign(region=f["region"] + d(st.sampled_from(["ё", "\u200b", " (KG)"]))),
    "all-zero counts": lambda d, f, s: _set(f, _rows_of(f, s, "negbin").union(_rows_of(f, s, "binomial")),
                                            "value", 0.0),
    "counts of 1e9": lambda d, f, s: _set(f, _rows_of(f, s, "negbin"), "value", 1e9),
    "extreme exposure": lambda d, f, s: _set(f, _rows_of(f, s, "negbin"), "exposure",
                                             d(st.sampled_from([1e-90, 1e-8, 1e8, 1e90]))),
    "huge normal values": lambda d, f, s: _set(f, _rows_of(f, s, "normal"), "value",
                                               d(st.sampled_from([1e12, -1e50, 1e-300]))),
    "indicator seen once": lambda d, f, s: f.drop(f.index[(f["indicator"] == f["indicator"].iloc[0])][1:]),
    "a single region-period": lambda d, f, s: f.drop_duplicates(subset=["indicator"]).assign(
        country="C0", region="Osh", period=2000),
    "string values": lambda d, f, s: f.astype({"value": str}),
}
HOSTILE = {
    "negative count": lambda d, f, s: _set(f, _rows_of(f, s, "negbin")[:1], "value", -d(st.integers(1, 10**9))),
    "non-integer count": lambda d, f, s: _set(f, _rows_of(f, s, "negbin")[:1], "value", 2.5),
    "ordinal outside categories": lambda d, f, s: _set(f, _rows_of(f, s, "ordinal")[:1], "value",
                                                       d(st.sampled_from([0.0, 7.0, 99.0, -1.0]))),
    "successes > trials": lambda d, f, s: _set(f, _rows_of(f, s, "binomial")[:1], "value", 21.0),
    "zero trials": lambda d, f, s: _set(f, _rows_of(f, s, "binomial")[:1], "trials", 0.0),
    "bernoulli 2": lambda d, f, s: _set(f, _rows_of(f, s, "bernoulli")[:1], "value", 2.0),
    "missing column": lambda d, f, s: f.drop(columns=d(st.sampled_from([*REQUIRED, "trials", "exposure"])),
                                             errors="ignore"),
    "unknown column": lambda d, f, s: f.assign(**{d(st.sampled_from(["valeur", "Ωmega", "x" * 500, "Value"])): 1}),
    "duplicated column": lambda d, f, s: pd.concat([f, f[["value"]]], axis=1),
    "padded duplicate column": lambda d, f, s: f.assign(**{" value ": f["value"]}),
    "duplicated row": lambda d, f, s: pd.concat([f, f.iloc[[d(st.integers(0, len(f) - 1))]]]),
    "wrong type value": lambda d, f, s: _set(f, f.index[:1], "value",
                                             d(st.one_of(st.text(max_size=20), st.just([1]), st.just({"a": 1}),
                                                         st.just(complex(1, 2)), st.just(pd.Timestamp(0))))),
    "NaN/inf value": lambda d, f, s: _set(f, f.index[:1], "value",
                                          d(st.sampled_from([np.nan, np.inf, -np.inf, None, pd.NA]))),
    "NaN/inf exposure": lambda d, f, s: _set(f, _rows_of(f, s, "negbin")[:1], "exposure",
                                             d(st.sampled_from([np.inf, -np.inf, 0.0, -1.0, 1e-320, 1e300]))),
    "blank key": lambda d, f, s: _set(f, f.index[:1], d(st.sampled_from(["country", "region", "indicator"])),
                                      d(st.sampled_from(["", "   ", None, np.nan]))),
    "unknown indicator": lambda d, f, s: _set(f, f.index[:1], "indicator", d(st.text(min_size=1, max_size=30))),
    "bad period": lambda d, f, s: _set(f, f.index[:1], "period",
                                       d(st.sampled_from(["20o5", 2000.5, 1e20, -1e6, "", None, True, "2000-01"]))),
    "region under two countries": lambda d, f, s: _set(f, f.index[:1], "country", "ZZ"),
    "empty table": lambda d, f, s: f.iloc[:0],
    "spec indicator without rows": lambda d, f, s: f[f["indicator"] != f["indicator"].iloc[-1]],
    "huge count": lambda d, f, s: _set(f, _rows_of(f, s, "negbin")[:1], "value", 1e20),
    "huge number": lambda d, f, s: _set(f, f.index[:1], "value", d(st.sampled_from([1e101, -1e300, 1.7e308]))),
    "rater on the wrong family": lambda d, f, s: f.assign(rater="r9"),
}
MUTATIONS = {**BENIGN, **HOSTILE}


def _csv_text_damage(draw, text: str) -> str:
    how = draw(st.sampled_from(["none", "truncate", "bom", "extra field", "unbalanced quote", "latin-1",
                                "blank lines", "header only"]))
    if how == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if how == "bom":
        return "\ufeff" + text
    if how == "extra field":
        lines = text.splitlines()
        if len(lines) > 1:
            lines[1] += ",surprise"
        return "\n".join(lines) + "\n"
    if how == "unbalanced quote":
        return text.replace(",", ',"', 1)
    if how == "blank lines":
        return text.replace("\n", "\n\n", 2)
    if how == "header only":
        return text.splitlines()[0] + "\n"
    return text


@st.composite
def fuzzed_sources(draw, benign_only: bool = False, only: str | None = None):
    """(spec, frame, mutation names, as_csv): a valid table broken by up to three mutations (or ``only``)."""
    spec = draw(specs())
    frame = draw(valid_tables(spec))
    pool = BENIGN if benign_only else MUTATIONS
    if only is not None:
        names = [only]
    else:
        names = draw(st.lists(st.sampled_from(sorted(pool)), max_size=1 if benign_only else 3))
    for name in names:
        if len(frame) and "indicator" in frame and "value" in frame:
            frame = pool[name](draw, frame, spec)
    return spec, frame, names, draw(st.booleans())


# ---- properties -------------------------------------------------------------------------------------

def _load(spec, frame, as_csv, tmp_dir, damage=lambda text: text):
    """Load ``frame`` as a DataFrame or as a CSV file; returns (panel or the DataError, label)."""
    if as_csv:
        path = tmp_dir / f"t{next(_counter)}.csv"
        path.write_bytes(damage(frame.to_csv(index=False)).encode("utf-8", errors="surrogatepass"))
        source, label = path, str(path)
    else:
        source, label = frame, "<DataFrame>"
    try:
        return load_panel(source, spec), label
    except DataError as exc:
        return exc, label


def _assert_explained(exc: DataError, label: str) -> None:
    msg = str(exc)
    assert msg.startswith(f"{label}: "), msg
    # names the column, key, row or file at fault
    assert re.search(r"`\w+`|column|row|line|indicator|empty|file|TOML|CSV", msg[len(label):]), msg


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@given(case=fuzzed_sources(), data=st.data())
def test_fuzzed_tables_validate_or_explain(case, data, tmp_dir):
    """Random combinations of up to three mutations, as DataFrames or (possibly damaged) CSV files."""
    _check_table(case, data, tmp_dir)


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@settings(max_examples=6)
@given(data=st.data())
def test_each_mutation_validates_or_explains(mutation, data, tmp_dir):
    """Every class of bad input, tried on its own a few times (the random mix may miss some)."""
    _check_table(data.draw(fuzzed_sources(only=mutation)), data, tmp_dir)


def _check_table(case, data, tmp_dir):
    spec, frame, mutations, as_csv = case
    for name in mutations:
        event(f"mutation: {name}")
    panel, label = _load(spec, frame, as_csv, tmp_dir,
                         damage=(lambda text: _csv_text_damage(data.draw, text)) if as_csv else (lambda t: t))
    event(f"{'CSV' if as_csv else 'DataFrame'} {'refused' if isinstance(panel, DataError) else 'validated'}")
    if isinstance(panel, DataError):
        _assert_explained(panel, label)
        return
    # validated: everything the model takes from the data is finite and consistent
    design = make_design(panel, spec)
    assert np.isfinite(design.centres).all(), design.centres
    for block in design.blocks:
        assert np.isfinite(block.y).all() and np.isfinite(block.exposure).all() and (block.exposure > 0).all()
    assert panel.frame["region_idx"].between(0, len(panel.regions) - 1).all()
    assert panel.frame["period_idx"].between(0, len(panel.periods) - 1).all()


@settings(max_examples=16)
@given(case=fuzzed_sources(benign_only=True))
def test_legal_fuzzed_tables_have_a_finite_initial_log_density(case, tmp_dir):
    """Degenerate but legal tables (one region, an indicator seen once, zero counts, 1e9 counts, extreme
    exposures, unicode names) build a model whose log-density is finite where sampling starts."""
    spec, frame, mutations, as_csv = case
    panel, label = _load(spec, frame, as_csv, tmp_dir)
    event(f"{mutations or 'no mutation'}: {'refused' if isinstance(panel, DataError) else 'model built'}")
    if isinstance(panel, DataError):  # e.g. "a single region-period" made duplicates: refused, explained
        _assert_explained(panel, label)
        return
    model = build_model(panel, spec)
    point = model.initial_point(random_seed=0)
    logp = model.compile_logp(mode=PY_MODE)(point)
    assert np.isfinite(logp), model.point_logps(point, mode=PY_MODE)


# ---- specs ------------------------------------------------------------------------------------------

ODD_VALUES = st.one_of(st.text(max_size=30), st.integers(-(2**70), 2**70), st.floats(), st.booleans(),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                            max_size=2), st.none())
EVIL_NAMES = ["../../x", "/etc/passwd", "..\\..\\x", "x/../../y", "..", ".", "", "x" * 101, "x\n", "nul\x00",
              "\uff0e\uff0e/x", "ｘ", "CON", "-rf", " x", "x\u202e"]


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))
    if path:
        yield path


def _replace(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _delete(obj, path):
    for p in path[:-1]:
        obj = obj[p]
    del obj[path[-1]]


@st.composite
def fuzzed_spec_dicts(draw):
    raw = draw(specs()).to_dict()
    raw["sampler"] = {"draws": 100, "seed": 1}
    raw["periods"] = draw(st.sampled_from([{}, {"first": 2000, "last": 2005},
                                           {"eras": [{"name": "a", "start": 1990, "end": 2000},
                                                     {"name": "b", "start": 2000, "end": 2010}]}]))
    if "willingness" in raw["traits"]:
        raw["typology"] = {"thresholds": {"capability": 0.5}}
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["odd value", "unknown key", "delete key", "evil name", "categories",
                                    "traits", "eras", "threshold", "priors"]))
        leaves = list(_leaves(raw))
        if how == "odd value" and leaves:
            _replace(raw, draw(st.sampled_from(leaves)), draw(ODD_VALUES))
        elif how == "unknown key":
            tables = [p for p in leaves if isinstance(_get(raw, p), dict)] + [()]
            where = draw(st.sampled_from(tables))
            target = _get(raw, where) if where else raw
            target[draw(st.sampled_from(["lable", "Ωmega", "k" * 300, "draw", "famliy", ""]))] = 1
        elif how == "delete key" and leaves:
            _delete(raw, draw(st.sampled_from(leaves)))
        elif how == "evil name":
            raw["name"] = draw(st.sampled_from(EVIL_NAMES))
        elif how == "categories":
            ind = raw["indicators"][draw(st.sampled_from(sorted(raw["indicators"])))] \
                if isinstance(raw.get("indicators"), dict) and raw["indicators"] else None
            if isinstance(ind, dict):
                ind["categories"] = draw(st.sampled_from([0, 1, 21, 5, -3, 2.5]))
        elif how == "traits":
            raw["traits"] = draw(st.sampled_from([[], ["capability", "capability"], ["é" * 100], "capability"]))
        elif how == "eras":
            raw["periods"] = {"eras": [{"name": "a", "start": 2000, "end": draw(st.sampled_from([1990, 2000]))},
                                       {"name": "a", "start": 1990, "end": 2000}]}
        elif how == "threshold":
            raw.setdefault("typology", {})["thresholds"] = {
                draw(st.sampled_from(["capability", "wilingness"])): draw(st.one_of(
                    st.floats(), st.just({"indicator": "nope"}), st.just({"indicator": "staff", "valu": 1})))}
        elif how == "priors":
            raw["priors"] = {draw(st.sampled_from(["loading", "lkj_eta", "ar_phi", "rater_sd", "noise"])):
                             draw(st.sampled_from([float("inf"), float("nan"), 0.0, -1.0, [1.0], 1e308]))}
    return raw


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


@given(raw=fuzzed_spec_dicts(), form=st.sampled_from(["dict", "toml", "file"]),
       damage=st.sampled_from(["none", "truncate", "duplicate line"]), cut=st.floats(0, 1))
def test_fuzzed_specs_validate_or_explain(raw, form, damage, cut, tmp_dir):
    source = "<dict>"
    try:
        if form == "dict":
            spec = Spec.from_dict(raw)
        else:
            try:
                text = tomli_w.dumps(raw)
            except (TypeError, ValueError):  # None or other values TOML cannot hold: give the dict instead
                spec = Spec.from_dict(raw)
            else:
                if damage == "truncate":
                    text = text[: int(cut * len(text))]
                elif damage == "duplicate line" and text.strip():
                    first = text.strip().splitlines()[0]
                    text = f"{first}\n{text}"
                if form == "toml":
                    source = "<string>"
                    spec = Spec.from_toml(text)
                else:
                    path = tmp_dir / f"s{next(_counter)}.toml"
                    path.write_text(text, encoding="utf-8", errors="surrogatepass")
                    source = str(path)
                    spec, _ = load_spec(path)
    except SpecError as exc:
        event(f"{form}: refused")
        msg = str(exc)
        assert msg.startswith(f"{source}: ") or msg.startswith("<dict>: "), msg
        # names the key (`a.b` or a dotted path), or says the TOML itself is broken
        assert re.search(r"`[^`]*`|\w\.\w|trait|not valid TOML|UTF-8", msg), msg
        return
    event(f"{form}: validated")
    # accepted: a safe name, and a lossless round trip
    assert re.fullmatch(NAME_PATTERN.strip("^$"), spec.name)
    out = default_out_dir(spec.name, tmp_dir / "reports")
    assert out.resolve().parent == (tmp_dir / "reports").resolve()
    assert Spec.from_toml(spec.to_toml()) == spec


# ---- strict types: a value of the wrong type is refused, never coerced ----------------------------------
#: typed fields of the spec (path from the top, the type wanted), and values of other types for each
TYPED_FIELDS = [(("sampler", "draws"), int), (("sampler", "tune"), int), (("sampler", "chains"), int),
                (("sampler", "seed"), int), (("sampler", "target_accept"), float), (("priors", "loading"), float),
                (("priors", "lkj_eta"), float), (("dynamics", "df"), float), (("dynamics", "centred"), bool),
                (("periods", "first"), int), (("indicators", None, "comparable"), bool)]
WRONG = {int: st.one_of(st.booleans(), st.integers(1, 10**6).map(str), st.just("many"), st.just(2.5)),
         float: st.one_of(st.booleans(), st.floats(0.1, 0.9).map(repr), st.just("1"), st.just("")),
         bool: st.one_of(st.integers(0, 1), st.sampled_from(["true", "false", "yes", "0"]), st.just(1.0))}


@st.composite
def wrongly_typed_specs(draw):
    """A valid spec dict with one typed field given a value of another type: (dict, dotted key, value)."""
    raw = draw(specs()).to_dict()
    path, wanted = draw(st.sampled_from(TYPED_FIELDS))
    if path[0] == "indicators":
        path = ("indicators", draw(st.sampled_from(sorted(raw["indicators"]))), path[2])
    value = draw(WRONG[wanted])
    raw.setdefault(path[0], {})
    target = raw[path[0]] if len(path) == 2 else raw[path[0]][path[1]]
    target[path[-1]] = value
    return raw, ".".join(path), value


@given(case=wrongly_typed_specs(), as_toml=st.booleans())
def test_wrong_types_are_refused_naming_the_key(case, as_toml):
    raw, key, value = case
    with pytest.raises(SpecError) as excinfo:
        Spec.from_toml(tomli_w.dumps(raw)) if as_toml else Spec.from_dict(raw)
    msg = str(excinfo.value)
    shown = "true" if value is True else "false" if value is False else repr(value)
    assert f"`{key}`: expected " in msg and f"got {shown} (" in msg, msg


# ---- saved fits: any changed byte is refused ---------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_fit(tmp_path_factory):
    """A small saved fit (see ``tests.test_fit_file.save_synthetic``) and the names of its non-empty datasets."""
    import h5py

    from tests.test_fit_file import save_synthetic

    path = save_synthetic(tmp_path_factory.mktemp("fuzz_fit") / "fit.nc")
    names = []
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) and obj.size else None)
    return path, sorted(names)


@given(data=st.data())
def test_any_changed_byte_of_a_saved_fit_is_refused(saved_fit, tmp_dir, data):
    """Draw a variable (coordinates and the stored data included), an element and one of its bytes; change that
    byte in place with h5py: load names the variable and refuses the file."""
    import shutil

    import h5py

    from nexusbayes.errors import FitFileError
    from nexusbayes.fit import load

    path, names = saved_fit
    name = data.draw(st.sampled_from(names), label="variable")
    bad = tmp_dir / "changed_fit.nc"
    shutil.copy(path, bad)
    with h5py.File(bad, "r+") as f:
        ds = f[name]
        index = data.draw(st.tuples(*(st.integers(0, n - 1) for n in ds.shape)), label="element")
        value = ds[index]
        text = isinstance(value, bytes)
        raw = bytearray(value if text else np.asarray(value, dtype=ds.dtype).tobytes())
        assume(len(raw) > 0)
        at = data.draw(st.integers(0, len(raw) - 1), label="byte")
        raw[at] ^= data.draw(st.integers(1, 255), label="xor")
        assume(not text or raw[at])           # HDF5 keeps text as C strings: h5py cannot write a NUL into one
        ds[index] = bytes(raw) if text else np.frombuffer(bytes(raw), dtype=ds.dtype)[0]
    event(name.split("/")[0])
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: the variable {name} changed after the file was saved")):
        load(bad)
