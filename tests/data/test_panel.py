"""Indicator data validation: every bad table gives a DataError naming the file, rows and column.

CSV files are written to ``tmp_path`` so that line numbers are checked: the header is line 1 and
the first data row line 2. Each bad case appends one bad row to a valid table, at line ``BAD``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nexusbayes.data.panel import validate
from nexusbayes.data.read import load_panel, read_table
from nexusbayes.errors import DataError
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator
from nexusbayes.spec.sections import Era, Periods

SPEC = Spec(
    name="kg",
    indicators={
        "staff": Indicator(family="normal", loads={"capability": "positive"}),
        "seizures": Indicator(family="negbin", loads={"capability": "positive", "willingness": "positive"}),
        "quota": Indicator(family="binomial", loads={"willingness": "positive"}),
        "expert": Indicator(family="ordinal", categories=5, loads={"willingness": "positive"}),
        "raid": Indicator(family="bernoulli", loads={"capability": "free", "willingness": "free"}),
    },
)
SPEC_NAMES = "staff, seizures, quota, expert, raid"

HEADER = "country,region,period,indicator,value,exposure,trials,rater"
GOOD = [
    "KG,Osh,2000,staff,1.5,,,",          # line 2
    "KG,Osh,2000,seizures,3,2.0,,",      # line 3
    "KG,Osh,2000,quota,4,,12,",          # line 4
    "KG,Osh,2000,expert,2,,,r1",         # line 5
    "KG,Osh,2000,expert,3,,,r2",         # line 6: same cell, another rater: not a duplicate
    "KG,Osh,2000,raid,1,,,",             # line 7
    "KG,Osh,2001,staff,1.7,,,",          # line 8
    "KG,Chui,2001,staff,2.5,,,",         # line 9
    "KG,Chui,2001,seizures,0,1.0,,",     # line 10
    "TJ,Khujand,2000,staff,0.3,,,",      # line 11
]
BAD = len(GOOD) + 2  # line of a row appended to GOOD
FILE_HEAD = "invalid indicator data (rows are line numbers in the file)"


def write_csv(tmp_path, lines, header=HEADER, name="panel.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def csv_error(tmp_path, lines, spec=SPEC, **kwargs) -> tuple[str, str]:
    """Load a CSV that must fail; return (message, path as text)."""
    path = write_csv(tmp_path, lines, **kwargs)
    with pytest.raises(DataError) as excinfo:
        load_panel(path, spec)
    return str(excinfo.value), str(path)


def problems(msg: str) -> list[str]:
    return [line for line in msg.splitlines() if line.startswith("  - ")]


def good_frame() -> pd.DataFrame:
    """GOOD as a DataFrame with proper types (built by hand, not through the CSV reader)."""
    records = []
    for line in GOOD:
        country, region, period, indicator, value, exposure, trials, rater = line.split(",")
        records.append({"country": country, "region": region, "period": int(period), "indicator": indicator,
                        "value": float(value), "exposure": float(exposure) if exposure else np.nan,
                        "trials": float(trials) if trials else np.nan, "rater": rater or None})
    return pd.DataFrame.from_records(records)


# ---- happy paths --------------------------------------------------------------------------------

def test_good_csv_loads_with_consistent_codes(tmp_path):
    panel = load_panel(write_csv(tmp_path, GOOD), SPEC)
    assert panel.n_obs == len(GOOD)
    assert panel.countries == ["KG", "TJ"]
    assert panel.regions == ["Chui", "Osh", "Khujand"]  # grouped by country, then by name
    assert panel.region_country.tolist() == [0, 0, 1]
    assert panel.periods == [2000, 2001]
    assert panel.period_time.tolist() == [2000.0, 2001.0]
    assert panel.indicators == ["staff", "seizures", "quota", "expert", "raid"]  # spec order
    assert panel.raters == ["r1", "r2"]
    f = panel.frame
    assert f["row"].tolist() == list(range(2, len(GOOD) + 2))  # line numbers
    for r in f.itertuples():
        assert panel.countries[r.country_idx] == r.country
        assert panel.regions[r.region_idx] == r.region
        assert panel.region_country[r.region_idx] == r.country_idx
        assert panel.periods[r.period_idx] == r.period
        assert panel.indicators[r.indicator_idx] == r.indicator
        assert (r.rater_idx == -1) if pd.isna(r.rater) else (panel.raters[r.rater_idx] == r.rater)


def test_region_period_without_observations_is_allowed(tmp_path):
    panel = load_panel(write_csv(tmp_path, GOOD), SPEC)
    assert panel.empty_cells == [("Chui", 2000), ("Khujand", 2001)]


def test_csv_parquet_and_dataframe_give_the_same_panel(tmp_path):
    frame = good_frame()
    parquet = tmp_path / "panel.parquet"
    frame.to_parquet(parquet)
    panels = {
        "csv": load_panel(write_csv(tmp_path, GOOD), SPEC),
        "parquet": load_panel(parquet, SPEC),
        "frame": load_panel(frame, SPEC),
    }
    ref = panels["frame"]
    assert ref.source == "<DataFrame>" and panels["parquet"].source == str(parquet)
    for name, panel in panels.items():
        for attr in ("countries", "regions", "periods", "indicators", "raters", "empty_cells"):
            assert getattr(panel, attr) == getattr(ref, attr), (name, attr)
        np.testing.assert_array_equal(panel.region_country, ref.region_country)
        np.testing.assert_array_equal(panel.period_time, ref.period_time)
        pd.testing.assert_frame_equal(panel.data_table(), ref.data_table(), obj=name)
        codes = ["country_idx", "region_idx", "period_idx", "indicator_idx", "rater_idx"]
        pd.testing.assert_frame_equal(panel.frame[codes], ref.frame[codes], obj=name)
    assert panels["parquet"].frame["row"].tolist() == list(range(len(GOOD)))  # Parquet: index labels


def test_simulated_data_round_trips_through_csv_and_parquet(tmp_path):
    sim = simulate(n_regions=3, n_periods=4, n_raters=2, missing=0.2, seed=5)
    assert sim.panel.raters == ["rater1", "rater2"]
    sim.frame.to_csv(tmp_path / "sim.csv", index=False)
    sim.frame.to_parquet(tmp_path / "sim.parquet")
    for path in (tmp_path / "sim.csv", tmp_path / "sim.parquet"):
        panel = load_panel(path, sim.spec)
        assert (panel.regions, panel.periods, panel.raters) == (sim.panel.regions, sim.panel.periods,
                                                                sim.panel.raters)
        assert panel.empty_cells == sim.panel.empty_cells
        pd.testing.assert_frame_equal(panel.data_table(), sim.panel.data_table(), check_exact=False,
                                      obj=path.name)
        assert panel.frame["region_idx"].tolist() == sim.panel.frame["region_idx"].tolist()


def test_read_table_reports_whether_rows_are_lines(tmp_path):
    _, label, lines = read_table(write_csv(tmp_path, GOOD))
    assert (label, lines) == (str(tmp_path / "panel.csv"), True)
    _, label, lines = read_table(good_frame())
    assert (label, lines) == ("<DataFrame>", False)


# ---- line numbers -------------------------------------------------------------------------------

def test_first_data_row_is_line_2(tmp_path):
    msg, path = csv_error(tmp_path, ["KG,Osh,2000,staff,oops,,,", *GOOD[1:]])
    assert msg.splitlines()[0] == f"{path}: {FILE_HEAD}"
    assert problems(msg) == ["  - row 2: `value` is not a number (got e.g. 'oops')"]


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    lines = [*GOOD[:3], "", *GOOD[3:], "", "KG,Chui,2000,raid,7,,,"]
    msg, _ = csv_error(tmp_path, lines)
    assert problems(msg) == [f"  - row {BAD + 2}: `value` of 'raid' (bernoulli) must be 0 or 1 (got 7)"]


def test_many_bad_rows_are_counted(tmp_path):
    bad = [f"KG,Batken,{year},raid,5,,," for year in range(1990, 2000)]  # lines BAD .. BAD + 9
    msg, _ = csv_error(tmp_path, [*GOOD, *bad])
    shown = ", ".join(str(BAD + k) for k in range(8))
    assert problems(msg) == [
        f"  - rows {shown} (and 2 more): `value` of 'raid' (bernoulli) must be 0 or 1 (got 5)"
    ]


# ---- unknown indicator --------------------------------------------------------------------------

def test_indicator_not_in_spec_with_suggestion(tmp_path):
    msg, path = csv_error(tmp_path, [*GOOD, "KG,Chui,2000,staf,1.0,,,", "TJ,Khujand,2001,staf,2.0,,,"])
    assert msg.splitlines()[0] == f"{path}: {FILE_HEAD}"
    assert problems(msg) == [
        f"  - rows {BAD}, {BAD + 1}: indicator 'staf' is not in the spec (did you mean 'staff'?); "
        f"the spec has: {SPEC_NAMES}"
    ]


def test_indicator_not_in_spec_without_close_match(tmp_path):
    msg, _ = csv_error(tmp_path, [*GOOD, "KG,Chui,2000,weather,1.0,,,"])
    assert problems(msg) == [
        f"  - row {BAD}: indicator 'weather' is not in the spec; the spec has: {SPEC_NAMES}"
    ]


# ---- values outside their family's support -------------------------------------------------------

SUPPORT_CASES = {
    "negative count": ("KG,Chui,2000,seizures,-1,1.0,,",
                       "`value` of 'seizures' (negbin) must be a count: a whole number >= 0 (got -1)"),
    "non-integer count": ("KG,Chui,2000,seizures,2.5,1.0,,",
                          "`value` of 'seizures' (negbin) must be a count: a whole number >= 0 (got 2.5)"),
    "rating above K": ("KG,Chui,2000,expert,6,,,r1",
                       "`value` of 'expert' (ordinal rating) must be a whole number from 1 to 5 (got 6)"),
    "rating 0": ("KG,Chui,2000,expert,0,,,r1",
                 "`value` of 'expert' (ordinal rating) must be a whole number from 1 to 5 (got 0)"),
    "fractional rating": ("KG,Chui,2000,expert,2.5,,,r1",
                          "`value` of 'expert' (ordinal rating) must be a whole number from 1 to 5 "
                          "(got 2.5)"),
    "successes > trials": ("KG,Chui,2000,quota,13,,12,",
                           "`value` of 'quota' (binomial: successes out of `trials`) must be a whole number "
                           "from 0 to the row's `trials` (got 13)"),
    "missing trials": ("KG,Chui,2000,quota,3,,,",
                       "'quota' is binomial: it needs `trials` (e.g. 12 months) on every row"),
    "zero trials": ("KG,Chui,2000,quota,0,,0,", "`trials` of 'quota' must be a whole number >= 1 (got 0)"),
    "bernoulli 2": ("KG,Chui,2000,raid,2,,,", "`value` of 'raid' (bernoulli) must be 0 or 1 (got 2)"),
    "bernoulli 0.5": ("KG,Chui,2000,raid,0.5,,,", "`value` of 'raid' (bernoulli) must be 0 or 1 (got 0.5)"),
    "exposure 0": ("KG,Chui,2000,seizures,1,0,,",
                   "`exposure` of 'seizures' must be > 0 (it enters as log exposure) (got 0)"),
    "negative exposure": ("KG,Chui,2000,seizures,1,-2.5,,",
                          "`exposure` of 'seizures' must be > 0 (it enters as log exposure) (got -2.5)"),
    "exposure on a normal": ("KG,Chui,2000,staff,1,2.0,,",
                             "`exposure` is only for negbin indicators; leave it empty here"),
    "rater on a normal": ("KG,Chui,2000,staff,1,,,r1",
                          "`rater` is only for ordinal indicators; leave it empty here"),
}


@pytest.mark.parametrize("case", list(SUPPORT_CASES))
def test_value_outside_support(tmp_path, case):
    row, expected = SUPPORT_CASES[case]
    msg, path = csv_error(tmp_path, [*GOOD, row])
    assert msg.splitlines()[0] == f"{path}: {FILE_HEAD}"
    assert problems(msg) == [f"  - row {BAD}: {expected}"]


EMPTY_VALUE = ("`value` is empty or NaN; a missing observation is an absent row: delete the row (or set `status` "
               "to 'not_reported' if the series existed and was not reported)")
NUMBER_CASES = {
    "non-numeric": ("abc", "`value` is not a number (got e.g. 'abc')"),
    "empty": ("", EMPTY_VALUE),
    "NaN": ("NaN", EMPTY_VALUE),
    "NA": ("NA", EMPTY_VALUE),
    "inf": ("inf", "`value` is infinite; only finite numbers are allowed"),
    "-inf": ("-inf", "`value` is infinite; only finite numbers are allowed"),
}


@pytest.mark.parametrize("case", list(NUMBER_CASES))
def test_value_not_a_finite_number(tmp_path, case):
    value, expected = NUMBER_CASES[case]
    msg, _ = csv_error(tmp_path, [*GOOD, f"KG,Chui,2000,staff,{value},,,"])
    assert problems(msg) == [f"  - row {BAD}: {expected}"]


def test_exposure_not_a_number(tmp_path):
    msg, _ = csv_error(tmp_path, [*GOOD, "KG,Chui,2000,seizures,1,lots,,"])
    assert problems(msg) == [f"  - row {BAD}: `exposure` is not a number (got e.g. 'lots')"]


def test_country_codes_like_NA_are_text_not_missing(tmp_path):
    """Namibia is "NA": the text columns must not read it as missing."""
    panel = load_panel(write_csv(tmp_path, [*GOOD, "NA,Windhoek,2000,staff,1.0,,,"]), SPEC)
    assert panel.countries == ["KG", "NA", "TJ"]


@pytest.mark.parametrize(("value", "expected"), [
    (np.nan, EMPTY_VALUE),
    (None, EMPTY_VALUE),
    (math.inf, "`value` is infinite; only finite numbers are allowed"),
    (-3.0, "`value` of 'seizures' (negbin) must be a count: a whole number >= 0 (got -3)"),
    (1.25, "`value` of 'seizures' (negbin) must be a count: a whole number >= 0 (got 1.25)"),
])
def test_dataframe_errors_name_index_labels(value, expected):
    frame = good_frame()
    frame.index = [f"obs-{i}" for i in range(len(frame))]
    frame["value"] = frame["value"].astype(object)
    frame.loc["obs-1", "value"] = value  # obs-1 is seizures
    with pytest.raises(DataError) as excinfo:
        load_panel(frame, SPEC)
    msg = str(excinfo.value)
    assert msg.splitlines()[0] == "<DataFrame>: invalid indicator data (rows are DataFrame index labels)"
    assert problems(msg) == [f"  - row obs-1: {expected}"]


# ---- duplicates and nesting ---------------------------------------------------------------------

def test_duplicated_observation_names_both_rows(tmp_path):
    msg, _ = csv_error(tmp_path, [*GOOD, "KG,Osh,2000,staff,9.9,,,"])
    assert problems(msg) == [
        f"  - rows 2, {BAD}: duplicated (region, period, indicator, rater): keep one row per observation"
    ]


def test_duplicated_rating_by_same_rater(tmp_path):
    msg, _ = csv_error(tmp_path, [*GOOD, "KG,Osh,2000,expert,4,,,r2"])
    assert problems(msg) == [
        f"  - rows 6, {BAD}: duplicated (region, period, indicator, rater): keep one row per observation"
    ]


def test_region_under_two_countries(tmp_path):
    msg, _ = csv_error(tmp_path, [*GOOD, "TJ,Osh,2001,quota,3,,12,"])
    assert problems(msg) == [
        f"  - rows 2, 3, 4, 5, 6, 7, 8, {BAD}: region 'Osh' appears under 2 countries ['KG', 'TJ']; "
        "a region belongs to one country (rename one, e.g. 'Osh (KG)')"
    ]


# ---- table shape and file -----------------------------------------------------------------------

def test_header_only_csv_is_empty(tmp_path):
    msg, path = csv_error(tmp_path, [])
    assert msg == (f"{path}: the table is empty; it needs one row per observation with columns "
                   "country, region, period, indicator, value")


def test_empty_dataframe_is_empty():
    with pytest.raises(DataError, match=r"^<DataFrame>: the table is empty; it needs one row per"):
        load_panel(good_frame().iloc[:0], SPEC)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "panel.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError) as excinfo:
        load_panel(path, SPEC)
    assert str(excinfo.value) == (f"{path}: the file is empty; it needs a header line with columns "
                                  "country, region, period, indicator, value and one row per observation")


def test_missing_required_column(tmp_path):
    lines = [line.replace(",staff", "").replace(",seizures", "") for line in GOOD[:2]]
    msg, path = csv_error(tmp_path, lines, header="country,region,period,value,exposure,trials,rater")
    assert msg == (f"{path}: missing column(s) ['indicator']; found ['country', 'region', 'period', 'value', "
                   "'exposure', 'trials', 'rater']. Required: country, region, period, indicator, value; "
                   "optional: exposure, trials, rater, status")


def test_unknown_column_with_suggestion(tmp_path):
    msg, path = csv_error(tmp_path, GOOD, header=HEADER.replace("exposure", "exposur"))
    assert msg == (f"{path}: unknown column(s) 'exposur' (did you mean 'exposure'?); allowed: country, "
                   "region, period, indicator, value, exposure, trials, rater, status. Drop or rename them.")


def test_unknown_column_without_suggestion():
    frame = good_frame().assign(weight=1.0)
    with pytest.raises(DataError, match=r"^<DataFrame>: unknown column\(s\) 'weight'; allowed: country, "):
        load_panel(frame, SPEC)


def test_unknown_file_format(tmp_path):
    path = tmp_path / "panel.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError) as excinfo:
        load_panel(path, SPEC)
    assert str(excinfo.value) == f"{path}: unknown data format '.xlsx'; use a .csv or .parquet file"


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "panel.parquet"
    path.write_text(HEADER + "\n" + GOOD[0] + "\n")  # a CSV with the wrong suffix
    with pytest.raises(DataError) as excinfo:
        load_panel(path, SPEC)
    assert str(excinfo.value).startswith(f"{path}: cannot be read as PARQUET: ")


def test_unreadable_csv_not_utf8(tmp_path):
    path = tmp_path / "panel.csv"
    path.write_bytes((HEADER + "\nKG,Osh,2000,staff,1.5,,,\n").encode("utf-16"))
    with pytest.raises(DataError) as excinfo:
        load_panel(path, SPEC)
    assert str(excinfo.value).startswith(f"{path}: line 1 is not UTF-8 text")
    assert "re-save the file as UTF-8" in str(excinfo.value)


def test_file_not_found(tmp_path):
    path = tmp_path / "missing.csv"
    with pytest.raises(DataError) as excinfo:
        load_panel(path, SPEC)
    assert str(excinfo.value) == f"{path}: data file not found"


# ---- periods ------------------------------------------------------------------------------------

@pytest.mark.parametrize("period", ["late", "2000.5", ""])
def test_period_not_a_year_without_eras(tmp_path, period):
    msg, _ = csv_error(tmp_path, [*GOOD, f"KG,Chui,{period},staff,1.0,,,"])
    shown = f"'{period}'" if period else "<NA>"
    assert problems(msg) == [
        f"  - row {BAD}: `period` must be a whole year (e.g. 2005), or define named eras in the spec's "
        f"[[periods.eras]] with name, start and end (got {shown})"
    ]


ERA_SPEC = SPEC.model_copy(update={"periods": Periods(eras=[Era(name="soviet", start=1985, end=1991),
                                                            Era(name="independence", start=1991, end=2005)])})


def era_lines():
    return [line.replace(",2000,", ",soviet,").replace(",2001,", ",independence,") for line in GOOD]


def test_eras_load(tmp_path):
    panel = load_panel(write_csv(tmp_path, era_lines()), ERA_SPEC)
    assert panel.periods == ["soviet", "independence"]
    assert panel.period_time.tolist() == [1988.0, 1998.0]
    assert panel.empty_cells == [("Chui", "soviet"), ("Khujand", "independence")]


@pytest.mark.parametrize("period", ["tulip", "2000"])
def test_period_not_among_eras(tmp_path, period):
    msg, _ = csv_error(tmp_path, [*era_lines(), f"KG,Chui,{period},staff,1.0,,,"], spec=ERA_SPEC)
    assert problems(msg) == [
        f"  - row {BAD}: `period` must be one of the spec's eras ['soviet', 'independence'] (got '{period}')"
    ]


def test_period_outside_spec_years(tmp_path):
    spec = SPEC.model_copy(update={"periods": Periods(first=2000, last=2003)})
    msg, _ = csv_error(tmp_path, [*GOOD, "KG,Chui,2004,staff,1.0,,,"], spec=spec)
    assert problems(msg) == [f"  - row {BAD}: `period` is outside the spec's years 2000..2003 (got 2004)"]
    panel = load_panel(write_csv(tmp_path, GOOD, name="ok.csv"), spec)
    assert panel.periods == [2000, 2001, 2002, 2003]  # years without data still get traits
    assert ("Osh", 2003) in panel.empty_cells


# ---- spec coverage ------------------------------------------------------------------------------

def test_spec_indicator_without_rows(tmp_path):
    lines = [line for line in GOOD if ",raid," not in line]
    msg, path = csv_error(tmp_path, lines)
    assert msg == (f"{path}: indicator(s) ['raid'] are in the spec but have no rows in the data; "
                   "add observations or remove them from the spec")


def test_validate_uses_the_given_label():
    frame = good_frame()
    frame.loc[0, "indicator"] = "staf"
    with pytest.raises(DataError, match=r"^my-table: invalid indicator data \(rows are DataFrame index"):
        validate(frame, SPEC, "my-table")


# ---- several files read as one table ---------------------------------------------------------------

def test_several_files_are_one_table_with_file_line_rows(tmp_path):
    kg, tj = tmp_path / "kg.csv", tmp_path / "tj.csv"
    kg.write_text("\n".join([HEADER, *GOOD]) + "\n")
    tj.write_text("\n".join([HEADER, "TJ,Sughd,2000,staff,2.5,,,", "TJ,Sughd,2001,staff,2.6,,,"]) + "\n")
    panel = load_panel([kg, tj], SPEC)
    assert panel.countries == ["KG", "TJ"] and panel.n_obs == len(GOOD) + 2
    assert panel.source == f"{kg} + {tj}"
    rows = panel.frame.set_index(["region", "period", "indicator"])["row"]
    assert rows[("Sughd", 2001, "staff")] == "tj.csv:3"
    assert rows[("Osh", 2000, "staff")] == "kg.csv:2"


def test_several_files_errors_name_the_file_and_line(tmp_path):
    kg, tj = tmp_path / "kg.csv", tmp_path / "tj.csv"
    kg.write_text("\n".join([HEADER, *GOOD]) + "\n")
    tj.write_text("\n".join([HEADER, "TJ,Sughd,2000,staff,2.5,,,", "TJ,Sughd,2000,quota,13,,12,"]) + "\n")
    with pytest.raises(DataError) as excinfo:
        load_panel([kg, tj], SPEC)
    msg = str(excinfo.value)
    assert "(rows are file:line)" in msg and "row tj.csv:3:" in msg and "quota" in msg
    # the same observation in two files is a duplicate, named in both
    tj.write_text("\n".join([HEADER, GOOD[0]]) + "\n")
    with pytest.raises(DataError, match=r"rows kg.csv:2, tj.csv:2: duplicated"):
        load_panel([kg, tj], SPEC)
    with pytest.raises(DataError, match="absent.csv: data file not found"):
        load_panel([kg, tmp_path / "absent.csv"], SPEC)
    with pytest.raises(DataError, match="empty list"):
        load_panel([], SPEC)


# ---- holes found by fuzzing (tests/test_fuzz.py): each was an unhandled pandas/NumPy error or a silent
# ---- acceptance of a value that poisons the model

@pytest.mark.parametrize("second", ["value", " value "])
def test_duplicated_column_names(second):
    """Was a TypeError from pandas (a DataFrame where a column was expected)."""
    frame = good_frame()
    frame = pd.concat([frame, frame[["value"]].set_axis([second], axis=1)], axis=1)
    with pytest.raises(DataError, match=r"<DataFrame>: column\(s\) \['value'\] appear more than once"):
        load_panel(frame, SPEC)


def test_csv_lines_wider_than_the_header(tmp_path):
    """Was a TypeError: when every line has an extra field, pandas silently uses the first as the index."""
    lines = [line + ",oops" for line in GOOD[:3]]
    msg, path = csv_error(tmp_path, lines)
    assert msg == (f"{path}: line(s) 2, 3, 4 have more fields than the header's 8 columns; quote values that "
                   "contain commas, or remove the extra fields")


@pytest.mark.parametrize("value", [complex(1, 2), pd.Timestamp("2001-01-01"), pd.Timedelta(1, "D")])
def test_complex_and_date_values_are_not_numbers(value):
    """Complex values lost their imaginary part (with a ComplexWarning); dates became nanoseconds."""
    frame = good_frame()
    frame["value"] = [value] * len(frame)
    with pytest.raises(DataError, match=r"`value` is not a number"):
        load_panel(frame, SPEC)


@pytest.mark.parametrize(("row", "expected"), [
    ("KG,Chui,2000,staff,1e200,,,", "`value` is too large in magnitude (at most 1e+100); rescale the indicator, "
                                    "e.g. to thousands (got 1e+200)"),
    ("KG,Chui,2000,seizures,1e20,1,,", "`value` of 'seizures' (negbin) is too large a count (at most 2^53 = "
                                       "9007199254740992) (got 1e+20)"),
    ("KG,Chui,2000,quota,1,,1e19,", "`trials` of 'quota' is too large (at most 2^53 = 9007199254740992) "
                                    "(got 1e+19)"),
    ("KG,Chui,2000,seizures,1,1e300,,", "`exposure` is too large in magnitude (at most 1e+100); rescale the "
                                        "indicator, e.g. to thousands (got 1e+300)"),
    ("KG,Chui,2000,seizures,1,1e-320,,", "`exposure` of 'seizures' is too small (at least 1e-100); rescale it, "
                                         "e.g. per 1,000 people (got 9.99989e-321)"),
    ("KG,Chui,1e20,staff,1,,,", "`period` must be a year from -9999 to 9999 (got '1e20')"),
])
def test_extreme_magnitudes_are_refused(tmp_path, row, expected):
    """Overflowed sums/squares (RuntimeWarning, then a -inf or NaN log-density), int64 wrap-around of counts,
    trials and years (a year of 1e20 became -9223372036854775808)."""
    msg, _ = csv_error(tmp_path, [*GOOD, row])
    assert problems(msg) == [f"  - row {BAD}: {expected}"]


def test_large_but_sane_counts_and_exposures_load(tmp_path):
    panel = load_panel(write_csv(tmp_path, [*GOOD, "KG,Chui,2000,seizures,1000000000,1e-50,,"]), SPEC)
    assert panel.frame["value"].max() == 1e9
