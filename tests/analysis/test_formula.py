"""The second stage's formulas and Rubin's rules, on hand-made numbers."""

import numpy as np
import pandas as pd
import pytest

from nexusbayes.analysis.formula import Formula, FormulaError
from nexusbayes.analysis.second_stage import ols, rubin

DATA = pd.DataFrame({"y": [1.0, 2.0, 3.0, 5.0, 4.0, 6.0], "x": [0.5, 1.0, 1.5, 2.5, 2.0, 3.0],
                     "z": [1.0, 0.0, 2.0, 1.0, 0.0, 3.0], "g": ["b", "a", "c", "a", "b", "c"],
                     "flag": [True, False, True, False, True, False]})


@pytest.mark.parametrize(("text", "terms", "intercept"), [
    ("y ~ x", [("x",)], True),
    ("y~x+z", [("x",), ("z",)], True),
    ("y ~ x - 1", [("x",)], False),
    ("y ~ 0 + x", [("x",)], False),
    ("y ~ -1 + x", [("x",)], False),
    ("y ~ x * z", [("x",), ("z",), ("x", "z")], True),
    ("y ~ x + x:z + x", [("x",), ("x", "z")], True),
    ("y ~ C( g ) + x", [("C(g)",), ("x",)], True),
])
def test_formulas_are_read(text, terms, intercept):
    parsed = Formula.parse(text)
    assert (parsed.outcome, parsed.terms, parsed.intercept) == ("y", terms, intercept)


@pytest.mark.parametrize(("text", "says"), [
    ("y = x", "one `outcome ~ terms`"),
    ("y ~ x ~ z", "one `outcome ~ terms`"),
    ("log(y) ~ x", "the outcome must be one column name"),
    ("y ~ np.log(x)", "make transformed columns"),
    ("y ~ I(x ** 2)", "cannot read"),
    ("y ~ x + + z", "empty term"),
    ("y ~ x - z", "only '- 1'"),
    ("y ~ 0", "no terms and no intercept"),
])
def test_unreadable_formulas_say_what_is_allowed(text, says):
    with pytest.raises(FormulaError, match=says.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        Formula.parse(text)


def test_design_codes_categories_against_the_first_level():
    design = Formula.parse("y ~ x:C(g) + flag").design(DATA)
    assert list(design.columns) == ["Intercept", "x:C(g)[b]", "x:C(g)[c]", "C(flag)[True]"]
    np.testing.assert_array_equal(design["x:C(g)[b]"], [0.5, 0, 0, 0, 2.0, 0])
    np.testing.assert_array_equal(design["C(flag)[True]"], [1, 0, 1, 0, 1, 0])


def test_ols_matches_the_normal_equations_and_refuses_dependent_columns():
    design = Formula.parse("y ~ x + z").design(DATA)
    coef, var, df = ols(design, DATA["y"].to_numpy())
    x = design.to_numpy()
    np.testing.assert_allclose(coef, np.linalg.solve(x.T @ x, x.T @ DATA["y"].to_numpy()), atol=1e-12)
    resid = DATA["y"].to_numpy() - x @ coef
    np.testing.assert_allclose(var, resid @ resid / 3 * np.diag(np.linalg.inv(x.T @ x)))
    assert df == 3
    twice = DATA.assign(x2=2 * DATA["x"])
    with pytest.raises(FormulaError, match="linearly dependent"):
        ols(Formula.parse("y ~ x + x2").design(twice), twice["y"].to_numpy())


def test_rubins_rules_by_hand():
    q = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    u = np.array([[0.5, 0.1], [0.5, 0.1], [0.5, 0.1]])
    table = rubin(q, u, df_complete=20, ci_prob=0.9, terms=["a", "b"])
    # a: mean 2, within 0.5, between 1, total 0.5 + 4/3, lambda = (4/3) / (11/6) = 8/11
    t = 0.5 + 4 / 3
    lam = (4 / 3) / t
    df_old, df_obs = 2 / lam**2, 20 * 21 * (1 - lam) / 23
    df = 1 / (1 / df_old + 1 / df_obs)
    row = table.loc["a"]
    np.testing.assert_allclose([row["estimate"], row["se"], row["fmi"], row["df"]], [2.0, np.sqrt(t), lam, df])
    from scipy import stats
    np.testing.assert_allclose(row["q95"] - row["estimate"], stats.t.ppf(0.95, df) * np.sqrt(t))
    # b: no spread between analyses, so no missing information: the complete-data interval, slightly narrowed df
    b = table.loc["b"]
    assert b["fmi"] == 0 and b["between"] == 0
    np.testing.assert_allclose(b["df"], 20 * 21 / 23)
    with pytest.raises(ValueError, match="at least 2"):
        rubin(q[:1], u[:1], 20)
