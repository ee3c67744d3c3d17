"""Second-stage regressions: an outcome made from the true traits of the recovery fits, and bad input."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nexusbayes.analysis.formula import FormulaError
from nexusbayes.analysis.second_stage import regress
from tests.analysis.test_plausible import hand_made

#: The slopes the outcome is made with: y = 1 + 0.5 capability - 0.4 willingness + N(0, 0.3).
SLOPES = {"capability": 0.5, "willingness": -0.4}
REPLICATES = 12


def test_posterior_means_recover_the_slopes_and_plausible_values_shrink_them(recovery):
    """y made from the TRUE traits, which are the predictors. Plausible values are drawn without the outcome, so
    they shrink each slope towards zero by about the trait's reliability and widen the interval; the regression on
    posterior means (regression calibration: a trait scatters around its posterior mean independently of it) is
    unbiased across fits, but its interval ignores the fit's own measurement error. Measured over 100 outcomes per
    seed (11, 22, 33): posterior means 0.48-0.51 for 0.5 and -0.39 to -0.45 for -0.4 (90% coverage 0.62-0.98);
    plausible values 0.41-0.48 and -0.34 to -0.43 (coverage 0.68-0.94)."""
    sim, result = recovery
    truth = sim.truth["theta"].to_dataframe(name="v")["v"].unstack("trait").reset_index()
    rows = []
    for rep in range(REPLICATES):
        rng = np.random.default_rng(rep)
        y = 1.0 + sum(b * truth[k] for k, b in SLOPES.items()) + rng.normal(0, 0.3, len(truth))
        fitted = regress(result, "y ~ capability + willingness", truth[["region", "period"]].assign(y=y),
                         n=10, seed=rep)
        rows.append(fitted.table.loc[list(SLOPES)])
        assert fitted.n_rows == len(truth) and fitted.n_plausible == 10
    by_term = pd.concat(rows).groupby(level=0).mean()
    for term, b in SLOPES.items():
        row = by_term.loc[term]
        # one fit's posterior means miss the truth by their own measurement error, about one naive SE (seed 33:
        # 0.053 = 1.4 SE for willingness); two allow it, and still fail a shrunk (or inflated) slope
        assert abs(row["naive_estimate"] - b) <= 2 * row["naive_se"], f"{term}: naive {row['naive_estimate']:.3f}"
        ratio = row["estimate"] / row["naive_estimate"]
        rel = fitted.reliability[term]
        assert 0.7 <= ratio < 0.995, f"{term}: plausible values / posterior means {ratio:.3f} (reliability {rel:.2f})"
        assert row["se"] > row["naive_se"], f"{term}: the plausible values' interval is not wider"
        assert row["fmi"] > 0.05


def _fit():
    tree, spec, panel = hand_made()
    return SimpleNamespace(tree=tree, spec=spec, panel=panel)


def _data(fit, **columns):
    theta = fit.tree["posterior"]["theta"]
    cells = pd.MultiIndex.from_product([theta["region"].values, theta["period"].values], names=["region", "period"])
    data = cells.to_frame(index=False)
    rng = np.random.default_rng(0)
    return data.assign(y=rng.normal(size=len(data)), aid=rng.normal(size=len(data)), **columns)


def test_bad_second_stage_input_says_what_to_fix():
    fit = _fit()
    data = _data(fit)
    cases = [
        ("y ~ capability + wealth", data, "no column(s) ['wealth']"),
        ("y ~ capability", data.drop(columns="period"), "no column(s) ['period']"),
        ("y ~ capability + aid", data.assign(aid=np.where(np.arange(len(data)) == 3, np.nan, 1.0)),
         "1 missing value(s), first in row 3, column 'aid'"),
        ("y ~ capability", data.assign(capability=1.0), "named like the fit's traits"),
        ("y ~ capability", pd.concat([data, data.head(1).assign(region="Atlantis")], ignore_index=True),
         "1 row(s) name a region-period the fit does not have (row 12: ('Atlantis'"),
        ("y ~ capability", data.to_dict(), "give a pandas DataFrame"),
    ]
    for formula, frame, says in cases:
        with pytest.raises(FormulaError) as err:
            regress(fit, formula, frame, n=3)
        assert says in str(err.value), str(err.value)
    with pytest.raises(FormulaError, match="at least 2 plausible values"):
        regress(fit, "y ~ capability", data, n=1)


def test_periods_match_by_their_labels_and_categorical_terms_work():
    fit = _fit()
    data = _data(fit, group=lambda d: np.where(d["region"] == d["region"].iloc[0], "a", "b"))
    as_text = data.assign(period=data["period"].astype(str))
    one = regress(fit, "y ~ capability * C(group) + aid", data, n=4)
    two = regress(fit, "y ~ capability * C(group) + aid", as_text, n=4)
    pd.testing.assert_frame_equal(one.table, two.table)
    assert list(one.table.index) == ["Intercept", "capability", "C(group)[b]", "capability:C(group)[b]", "aid"]
    assert "4 plausible values combined by Rubin's rules" in one.text()
