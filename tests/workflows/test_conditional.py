"""Plausible values conditional on the outcome: the second-stage slope they give is not attenuated."""

import numpy as np
import pytest

from nexusbayes.analysis.formula import FormulaError
from nexusbayes.fit import fit
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator
from nexusbayes.workflows.conditional import conditioned_spec, regress
from tests.analysis.test_second_stage import _data, _fit

#: One trait measured by two binary items per region-period: a low reliability, so a strong attenuation.
SPEC = Spec(name="conditional", traits=["capability"], indicators={
    "item_a": Indicator(family="bernoulli", loads={"capability": "positive"}),
    "item_b": Indicator(family="bernoulli", loads={"capability": "positive"})})
SLOPE = 0.8
SETTINGS = {"chains": 2, "draws": 300, "tune": 300, "seed": 1}


@pytest.mark.slow
def test_conditional_plausible_values_cover_the_slope_the_unconditional_ones_attenuate():
    """Two fits (the measurement model, then with the outcome): ~2 x 60 s on a busy 2-core machine."""
    sim = simulate(SPEC, n_regions=8, n_periods=6, seed=5)
    result = fit(sim.spec, sim.panel, progress=False, check=False, **SETTINGS)
    truth = sim.truth["theta"].to_dataframe(name="v")["v"].unstack("trait").reset_index()
    y = 1.0 + SLOPE * truth["capability"] + np.random.default_rng(0).normal(0, 0.3, len(truth))
    data = truth[["region", "period"]].assign(y=y)
    out = regress(result, "y ~ capability", data, n=10, conditional=True, fit_options=SETTINGS)
    row = out.table.loc["capability"]
    print(f"slope {SLOPE}: conditional PVs {row['estimate']:.3f} [{row['q05']:.3f}, {row['q95']:.3f}]; "
          f"unconditional PVs {row['unconditional_estimate']:.3f} [{row['unconditional_q05']:.3f}, "
          f"{row['unconditional_q95']:.3f}]; posterior means {row['naive_estimate']:.3f}; reliability "
          f"{out.reliability['capability']:.2f}")
    assert row["q05"] <= SLOPE <= row["q95"]
    assert "conditional on 'y'" in out.text()
    # the unconditional plausible values shrink the slope by about the reliability; the conditional ones do not
    assert row["unconditional_estimate"] < row["estimate"]
    assert abs(row["estimate"] - SLOPE) < abs(row["unconditional_estimate"] - SLOPE)


def test_conditioning_needs_a_formula_of_traits():
    fitted = _fit()
    data = _data(fitted)
    # a covariate term is refused before any refit, named, with the formula that would run
    with pytest.raises(FormulaError, match=r"cannot condition on the term 'aid', which is not a trait \(capability, "
                                           r"willingness\).* drop it \('y ~ capability'\) or run this formula with "
                                           "conditional=False"):
        regress(fitted, "y ~ capability + aid", data, n=3, conditional=True)
    with pytest.raises(FormulaError, match=r"the terms 'aid', 'capability:aid', which are not traits.*"
                                           r"'y ~ capability'"):
        regress(fitted, "y ~ capability * aid", data, n=3, conditional=True)
    with pytest.raises(FormulaError, match=r"need at least one trait and an intercept \(e.g. 'y ~ capability'\)"):
        regress(fitted, "y ~ capability - 1", data, n=3, conditional=True)
    # unconditional, the same formula runs
    assert "aid" in regress(fitted, "y ~ capability + aid", data, n=3).table.index
    spec = conditioned_spec(SPEC, "y ~ capability")
    assert spec.indicators["outcome_y"].loads == {"capability": "free"}
    assert conditioned_spec(SPEC, "y ~ capability", {"capability": -1.0}).indicators["outcome_y"].loads == {
        "capability": "negative"}
    assert spec.indicators["outcome_y"].family == "normal"
