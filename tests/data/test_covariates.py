"""The [covariates] spec table and the covariate table: round trip, and every bad input named by file, row, column."""

import numpy as np
import pandas as pd
import pytest

from nexusbayes.cli import main
from nexusbayes.data.covariates import attach_covariates
from nexusbayes.data.resolve import resolve_covariates, resolve_panel
from nexusbayes.errors import DataError, SpecError
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.document import Spec, load_spec
from nexusbayes.spec.sections import CovariateEffect, CovariatesSpec

COLUMNS = {"aid": CovariateEffect(on="level", traits=["capability"], prior_scale=0.5, label="aid per capita"),
           "conflict": CovariateEffect(on="step", traits=["capability", "willingness"])}


@pytest.fixture(scope="module")
def panel():
    return simulate(n_regions=2, n_periods=3, seed=4).panel


@pytest.fixture(scope="module")
def spec():
    return default_spec(covariates=CovariatesSpec(path="cov.csv", columns=COLUMNS))


def table() -> pd.DataFrame:
    """A valid covariate table for the 2-region, 3-period panel (with an extra, ignored column)."""
    return pd.DataFrame({"region": ["C1-R01"] * 3 + ["C1-R02"] * 3, "period": [2000, 2001, 2002] * 2,
                         "country": "C1", "aid": [1.0, 2.0, 4.0, 3.0, 5.0, 6.0],
                         "conflict": [np.nan, 0.0, 1.0, 2.0, 0.0, 3.0], "unused": "x"})


def test_spec_round_trip_and_errors(spec, tmp_path):
    assert Spec.from_toml(spec.to_toml()) == spec
    raw = spec.to_dict()
    raw["covariates"]["columns"]["aid"]["traits"] = ["capabilty"]
    with pytest.raises(SpecError, match=r"covariates\.columns\.aid\.traits.*from traits"):
        Spec.from_dict(raw)
    raw["covariates"]["columns"]["aid"] = {"on": "slope", "traits": ["capability"]}
    with pytest.raises(SpecError, match=r"covariates\.columns\.aid\.on"):
        Spec.from_dict(raw)
    raw["covariates"]["columns"]["aid"] = {"on": "level", "trait": ["capability"]}
    with pytest.raises(SpecError, match="unknown key `covariates.columns.aid.trait`; did you mean 'traits'"):
        Spec.from_dict(raw)
    raw["covariates"]["columns"] = {"region": {"on": "level", "traits": ["capability"]}}
    with pytest.raises(SpecError, match="key column"):
        Spec.from_dict(raw)


def test_table_is_standardised_over_the_cells_used(spec, panel):
    cov = attach_covariates(panel, spec, table()).covariates
    assert cov.names == ["aid", "conflict"]
    assert np.isclose(cov.centre[0], 3.5) and np.isclose(cov.scale[0], np.std([1, 2, 4, 3, 5, 6]))
    # a step covariate does not use the first period: its blank there is fine and left out of the centring
    assert not cov.needed[:, 0, 1].any() and np.isclose(cov.centre[1], np.mean([0, 1, 0, 3]))
    z = cov.standardised()
    assert np.allclose(z[:, 0, 1], 0.0) and np.isclose(z[..., 0].mean(), 0.0) and np.isclose(z[..., 0].std(), 1.0)


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.assign(aid=t["aid"].where(t.index != 4)),
     r"covariate table.*\n  - row 6: `aid` is missing, but the model needs it"),
    (lambda t: t.assign(conflict=t["conflict"].where(t.index != 2)), r"row 4: `conflict` is missing.*steps"),
    (lambda t: t.assign(aid=t["aid"].astype(object).where(t.index != 1, "many")), r"row 3: `aid` is not a number"),
    (lambda t: t.replace({"region": {"C1-R02": "C1-R2"}}), r"rows 5, 6, 7: `region` 'C1-R2' is not a region.*"
                                                             r"did you mean 'C1-R02'"),
    (lambda t: t.assign(period=[2000, 2001, 2003, 2000, 2001, 2002]), r"row 4: `period` is not a period.*2003"),
    (lambda t: t.assign(country=["C1"] * 5 + ["C9"]), r"row 7: `country` is not the region's country"),
    (lambda t: t.iloc[[0, 1, 2, 3, 5, 5]], r"rows 6, 7: region-period appears more than once"),
    (lambda t: t.drop(index=4), r"no row for region-period\(s\) the model needs: \(C1-R02, 2001\)"),
    (lambda t: t.drop(columns="aid").assign(aids=1.0), r"lacks column\(s\) 'aid' \(did you mean 'aids'\?\)"),
    (lambda t: t.assign(aid=1.0), r"covariate\(s\) \['aid'\] take one value"),
], ids=["missing-level", "missing-step", "text", "region", "period", "country", "duplicate", "no-row", "column",
        "constant"])
def test_bad_tables_name_file_row_and_column(spec, panel, tmp_path, change, message):
    path = tmp_path / "cov.csv"
    change(table()).to_csv(path, index=False)
    with pytest.raises(DataError, match=message) as excinfo:
        attach_covariates(panel, spec, path)
    assert str(path) in str(excinfo.value)


def test_covariates_resolve_relative_to_the_spec_file(spec, tmp_path):
    sim = simulate(n_regions=2, n_periods=3, seed=4)
    (tmp_path / "models").mkdir()
    sim.frame.to_csv(tmp_path / "models" / "data.csv", index=False)
    table().to_csv(tmp_path / "models" / "cov.csv", index=False)
    path = tmp_path / "models" / "spec.toml"
    path.write_text(spec.model_copy(update={"data": "data.csv"}).to_toml())
    loaded, data_path = load_spec(path)
    panel = resolve_panel(loaded, None, data_path, covariates=resolve_covariates(path, loaded))
    assert panel.covariates.source == str(tmp_path / "models" / "cov.csv")
    with pytest.raises(DataError, match=r"has \[covariates\] but no covariate table was given"):
        attach_covariates(sim.panel, spec.model_copy(update={"covariates": CovariatesSpec(columns=COLUMNS)}), None)


def test_check_command_validates_the_covariate_table(spec, tmp_path, capsys):
    sim = simulate(n_regions=2, n_periods=3, seed=4)
    sim.frame.to_csv(tmp_path / "data.csv", index=False)
    table().to_csv(tmp_path / "cov.csv", index=False)
    path = tmp_path / "spec.toml"
    path.write_text(spec.model_copy(update={"data": "data.csv"}).to_toml())
    assert main(["check", str(path)]) == 0
    table().assign(aid=["1", "2", "x", "4", "5", "6"]).to_csv(tmp_path / "cov.csv", index=False)
    capsys.readouterr()
    assert main(["check", str(path)]) != 0
    err = capsys.readouterr().err
    assert "cov.csv: invalid covariate table" in err and "row 4: `aid` is not a number" in err
