"""Element diagnostics: the numbers of the public arviz_stats.rhat and ess (bulk, and tail at 5% and 95%),
computed in vectorised blocks through arviz-stats' private _ess and _rhat (diagnostics._vectorised)."""

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr

from nexusbayes.analysis import diagnostics
from nexusbayes.analysis.diagnostics import diagnose, element_diagnostics
from nexusbayes.constants import TAIL_ESS_QUANTILES


def autocorrelated_posterior(n_chain: int, n_draw: int, seed: int = 0) -> xr.Dataset:
    """AR(1) chains of varied persistence, one chain shifted, a heavy-tailed variable, a constant element and
    a variable of few distinct values."""
    rng = np.random.default_rng(seed)
    rho = rng.uniform(0.0, 0.95, size=(1, 1, 3, 4))
    x = np.empty((n_chain, n_draw, 3, 4))
    x[:, 0] = rng.standard_normal((n_chain, 3, 4))
    for t in range(1, n_draw):
        x[:, t] = rho[:, 0] * x[:, t - 1] + np.sqrt(1 - rho[:, 0] ** 2) * rng.standard_normal((n_chain, 3, 4))
    x[0] += 0.3                                    # one chain off: R-hat above 1
    scale = np.exp(rng.standard_normal((n_chain, n_draw, 5)))      # skewed, heavy right tail
    chol = np.ones((n_chain, n_draw, 2))            # a structural one, as on a Cholesky diagonal
    chol[..., 1] = rng.standard_normal((n_chain, n_draw))
    coords = {"chain": np.arange(n_chain), "draw": np.arange(n_draw), "region": ["a", "b", "c"],
              "period": [2001, 2002, 2003, 2004]}
    counts = np.round(2 * x[:, :, 0, :2])           # few distinct values: ranks with many ties
    return xr.Dataset({"theta": (("chain", "draw", "region", "period"), x),
                       "sd": (("chain", "draw", "k"), scale), "chol": (("chain", "draw", "j"), chol),
                       "count": (("chain", "draw", "m"), counts)},
                      coords=coords)


@pytest.mark.parametrize(("n_chain", "n_draw"), [(4, 200), (3, 151)])
def test_element_diagnostics_are_arviz_numbers(monkeypatch, n_chain, n_draw):
    # blocks of 5 elements: theta's 12 elements span three blocks, computed in parallel threads
    monkeypatch.setattr(diagnostics, "ELEMENT_BLOCK", 5)
    post = autocorrelated_posterior(n_chain, n_draw)
    got = element_diagnostics(post)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = {"rhat": azs.rhat(post), "ess_bulk": azs.ess(post, method="bulk"),
                "ess_tail": azs.ess(post, method="tail", prob=TAIL_ESS_QUANTILES)}
    for key, expected in want.items():
        for name in post.data_vars:
            assert got[key][name].dims == expected[name].dims
            np.testing.assert_allclose(got[key][name].values, expected[name].values, rtol=1e-10, err_msg=key)
    assert float(got["rhat"]["theta"].max()) > 1.01        # the shifted chain is seen
    assert np.isnan(got["rhat"]["chol"].values[0])         # the constant element: no R-hat,
    assert got["ess_bulk"]["chol"].values[0] == n_chain * 2 * (n_draw // 2)   # and every draw counts


def test_one_chain_has_ess_but_no_rhat():
    post = autocorrelated_posterior(1, 100)
    got = element_diagnostics(post, ["theta"])
    assert np.isnan(got["rhat"]["theta"]).all()
    np.testing.assert_allclose(got["ess_bulk"]["theta"], azs.ess(post[["theta"]], method="bulk")["theta"], rtol=1e-10)


def test_rounding_noise_is_constant_not_a_convergence_failure():
    # a correlation matrix's diagonal computed as chol @ chol.T is 1 up to rounding: ArviZ's R-hat of that
    # noise can exceed 1.01; it is an element that never varies
    rng = np.random.default_rng(3)
    noise = 1.0 + rng.choice([-1, 0, 1], size=(4, 100)) * np.finfo(float).eps
    noise[0] += np.finfo(float).eps
    post = xr.Dataset({"corr_diag": (("chain", "draw"), noise)})
    assert float(azs.rhat(post)["corr_diag"]) > 1.01
    assert np.isnan(element_diagnostics(post)["rhat"]["corr_diag"])


def test_diagnose_takes_the_tail_ess_at_the_5_and_95_percent_quantiles():
    post = autocorrelated_posterior(4, 200, seed=5)
    shape = (4, 200)
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, bool)),
                        "energy": (("chain", "draw"), np.random.default_rng(1).standard_normal(shape))})
    diag = diagnose(xr.DataTree.from_dict({"posterior": post, "sample_stats": stats}))
    tail = azs.ess(post[["sd"]], method="tail", prob=(0.05, 0.95))["sd"]
    assert diag.table.loc["sd", "min_ess_tail"] == pytest.approx(float(tail.min()), rel=1e-10)
    default = azs.ess(post[["sd"]], method="tail")["sd"]      # ArviZ's own default, 11% and 89%
    assert float(default.min()) != pytest.approx(float(tail.min()), rel=1e-3)


def test_average_ranks_are_scipy_s_with_ties():
    from scipy.stats import rankdata

    rng = np.random.default_rng(7)
    ties = rng.integers(0, 4, size=(30, 41)).astype(float)
    ties[0, :3] = [-0.0, 0.0, 0.0]                  # equal values, whatever their sign
    continuous = rng.standard_normal((5, 41))
    for values in (ties, continuous, np.vstack([continuous, ties])):
        np.testing.assert_array_equal(diagnostics._average_ranks(values), rankdata(values, axis=-1,
                                                                                   method="average"))
