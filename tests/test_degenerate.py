"""Degenerate but legal data: each either builds a model with a finite log-density where sampling
starts, or is refused with a reason (a constant indicator, a single region-period). The hardest legal
case is also fitted (tiny run, finite results)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pytensor.compile.mode import Mode

from nexusbayes.data.read import load_panel
from nexusbayes.errors import DataError
from nexusbayes.fit import fit
from nexusbayes.model.build import build_model
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator
from nexusbayes.spec.sections import Periods

PY_MODE = Mode(linker="py", optimizer="fast_compile")  # compiles in seconds; only finiteness is checked

TWO_ANCHORS = Spec(name="minimal", indicators={
    "staff": Indicator(family="normal", loads={"capability": "positive"}),
    "expert": Indicator(family="ordinal", categories=4, loads={"willingness": "positive"}),
})


def _frame(**kwargs) -> pd.DataFrame:
    return simulate(seed=7, **kwargs).frame


def one_region():
    return default_spec(), _frame(n_regions=1, n_periods=4)


def one_period():
    return default_spec(), _frame(n_regions=4, n_periods=1)


def one_indicator_per_trait():
    return TWO_ANCHORS, simulate(TWO_ANCHORS, n_regions=3, n_periods=3, seed=7).frame


def indicator_in_one_region():
    frame = _frame(n_regions=3, n_periods=3)
    first = frame["region"].iloc[0]
    return default_spec(), frame[(frame["indicator"] != "quota") | (frame["region"] == first)]


def region_missing_periods():
    frame = _frame(n_regions=3, n_periods=4)
    last = sorted(frame["region"].unique())[-1]
    return default_spec(), frame[(frame["region"] != last) | (frame["period"] == frame["period"].min())]


def single_region_countries():
    return default_spec(), _frame(n_countries=3, n_regions=1, n_periods=2)


def indicator_seen_once():
    frame = _frame(n_regions=2, n_periods=3)
    seen = frame.index[frame["indicator"] == "abuse"]
    return default_spec(), frame.drop(seen[1:])


def all_zero_counts():
    frame = _frame(n_regions=2, n_periods=3)
    frame.loc[frame["indicator"].isin(["seizures", "abuse", "quota"]), "value"] = 0.0
    return default_spec(), frame


def constant_normal_indicator():
    frame = _frame(n_regions=2, n_periods=3)
    frame.loc[frame["indicator"] == "staff", "value"] = 4.2
    return default_spec(), frame


def ar1_one_trait():
    """Found by fuzzing: pytensor's einsum warned (an error under filterwarnings) for a single trait."""
    spec = Spec(name="ar1", traits=["capability"], dynamics={"kind": "ar1"}, indicators={
        "staff": Indicator(family="normal", loads={"capability": "positive"})})
    return spec, simulate(spec, n_regions=2, n_periods=3, seed=7).frame


LEGAL = [ar1_one_trait, one_region, one_period, one_indicator_per_trait, indicator_in_one_region,
         region_missing_periods, single_region_countries, indicator_seen_once]


@pytest.mark.parametrize("case", LEGAL, ids=lambda f: f.__name__)
def test_degenerate_legal_data_has_a_finite_initial_log_density(case):
    spec, frame = case()
    panel = load_panel(frame, spec)
    model = build_model(panel, spec)
    point = model.initial_point(random_seed=1)
    logp = model.compile_logp(mode=PY_MODE)(point)
    assert np.isfinite(logp), model.point_logps(point, mode=PY_MODE)


@pytest.mark.parametrize(("case", "named"), [(all_zero_counts, "'seizures' (every one of its 6 rows is 0), "
                                                                "'quota' (every one of its 6 rows is 0), 'abuse'"),
                                              (constant_normal_indicator, "'staff' (every one of its 6 rows is 4.2)")],
                         ids=lambda c: getattr(c, "__name__", ""))
def test_constant_indicators_are_refused_naming_them(case, named):
    """A constant indicator carries no information about the traits (and broke the sampler's geometry)."""
    spec, frame = case()
    with pytest.raises(DataError) as excinfo:
        load_panel(frame, spec)
    assert named in str(excinfo.value) and "are constant" in str(excinfo.value)


def test_region_missing_periods_is_reported_as_empty_cells():
    spec, frame = region_missing_periods()
    panel = load_panel(frame, spec)
    assert len(panel.empty_cells) == 3 and {r for r, _ in panel.empty_cells} == {panel.regions[-1]}


def test_a_single_region_period_is_refused_with_a_reason():
    """One region-period: standardising over region-periods would make every trait exactly 0."""
    frame = pd.DataFrame({"country": "KG", "region": "Osh", "period": 2000, "indicator": ["staff", "expert"],
                          "value": [1.5, 3.0]})
    with pytest.raises(DataError, match=r"<DataFrame>: all rows are in one region-period \('Osh', 2000\); "
                                        r"traits are standardised over region-periods, so at least two are needed"):
        load_panel(frame, TWO_ANCHORS)


@pytest.mark.slow
def test_hardest_legal_case_fits_with_finite_results():
    """One region, one indicator per trait, the willingness anchor seen in one period only, a period with
    no data: a tiny real fit gives finite draws and type probabilities (however wide)."""
    spec = TWO_ANCHORS.model_copy(update={"periods": Periods(first=2000, last=2003)})  # 2002 kept, empty
    frame = simulate(spec, n_regions=1, n_periods=4, seed=3).frame
    expert = frame.index[frame["indicator"] == "expert"]
    frame = frame.drop(expert[1:])
    frame = frame[frame["period"] != 2002]
    result = fit(spec, frame, draws=100, tune=100, chains=1, seed=1, progress=False, check=False)
    post = result.tree["posterior"]
    assert all(np.isfinite(post[v].values).all() for v in post.data_vars)
    probs = result.type_probabilities()
    assert np.isfinite(probs.values).all()
    np.testing.assert_allclose(probs.sum("type").values, 1.0)
    assert result.panel.empty_cells == [(result.panel.regions[0], 2002)]
