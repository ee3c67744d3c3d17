"""The fit API with PyMC's own NUTS, and the loud warning when diagnostics fail."""

import pytest

from nexusbayes.analysis.diagnostics import SamplingWarning
from nexusbayes.errors import SpecError
from nexusbayes.fit import fit
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator

SPEC = Spec(name="tiny", traits=["willingness"],
            indicators={"quota": Indicator(family="binomial", loads={"willingness": "positive"}),
                        "raid": Indicator(family="bernoulli", loads={"willingness": "positive"})})


def test_pymc_backend_with_too_few_draws_warns_loudly():
    sim = simulate(SPEC, n_regions=3, n_periods=3, seed=4)
    with pytest.warns(SamplingWarning, match="Sampling diagnostics FAILED") as record:
        result = fit(SPEC, sim.frame, backend="pymc", draws=20, tune=20, chains=2, seed=1, progress=False)
    message = str(record[0].message)
    assert "min bulk ESS" in message and "increase draws" in message
    assert not result.diagnostics.passed
    assert result.tree.attrs["sampler"] == "pymc"
    assert result.tree["posterior"]["theta"].sizes["draw"] == 20
    assert "log_likelihood" not in result.tree.children and "y_binomial" in result.likelihood_terms


def test_fit_without_data_says_how_to_give_it():
    with pytest.raises(SpecError, match="names no data file: pass data="):
        fit(SPEC, progress=False)
