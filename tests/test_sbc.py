"""Simulation-based calibration: the rank and uniformity machinery, data swapping, and a small real run."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nexusbayes.cli import main
from nexusbayes.model import build_model
from nexusbayes.sbc import holm, run_sbc, uniformity_tests
from nexusbayes.simulate import simulate
from nexusbayes.spec import Indicator, Spec

ROOT = Path(__file__).resolve().parents[1]
N_SIMS = 200
L = 100


def _ranks(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"sim": np.arange(len(r)), "parameter": name, "kind": "hyper", "rank": r,
                                    "n_draws": L}) for name, r in columns.items()], ignore_index=True)


def _rank_of_truth(rng, posterior_sd: float, bias: float) -> np.ndarray:
    """Ranks from a normal-normal model whose 'posterior' is N(truth + bias + noise, posterior_sd): 1 is calibrated."""
    truth = rng.standard_normal(N_SIMS)
    centre = truth + rng.standard_normal(N_SIMS) + bias   # the calibrated posterior is centred on the data...
    draws = centre[:, None] + posterior_sd * rng.standard_normal((N_SIMS, L))   # ...with SD 1 around it
    return (draws < truth[:, None]).sum(axis=1)


def test_uniform_ranks_pass_and_miscalibrated_ranks_fail():
    rng = np.random.default_rng(7)
    ranks = _ranks({f"ok_{i}": rng.integers(0, L + 1, N_SIMS) for i in range(8)}
                   | {"ok_normal": _rank_of_truth(rng, 1.0, 0.0),
                      "too_narrow": _rank_of_truth(rng, 0.3, 0.0),     # U-shaped ranks
                      "too_wide": _rank_of_truth(rng, 3.0, 0.0),       # ranks piled in the middle
                      "biased": _rank_of_truth(rng, 1.0, 0.8)})        # ranks pushed to one side
    tests = uniformity_tests(ranks, seed=3).set_index("parameter")
    assert set(tests.index[~tests["passed"]]) == {"too_narrow", "too_wide", "biased"}
    assert (tests["p_holm"] >= tests["p_pot"]).all()
    assert tests.loc["too_narrow", "coverage_90"] < 0.6 and tests.loc["too_wide", "coverage_90"] > 0.99
    assert tests.loc[["ok_0", "ok_normal"], "p_chi2"].min() > 0.01 and tests.loc["biased", "p_chi2"] < 1e-3


def test_holm_controls_family_wise_error():
    p = np.array([0.001, 0.02, 0.5, 0.011])
    assert holm(p).tolist() == pytest.approx([0.004, 0.04, 0.5, 0.033])


@pytest.fixture(scope="module")
def tiny():
    """One trait, a normal and a count indicator, 3 regions x 4 periods with missing cells."""
    spec = Spec(name="tiny", traits=["capability"], indicators={
        "staff": Indicator(family="normal", loads={"capability": "positive"}),
        "cases": Indicator(family="negbin", loads={"capability": "positive"}),
    })
    return simulate(spec, n_regions=3, n_periods=4, missing=0.1, seed=4)


def test_with_data_refits_new_values_without_recompiling(tiny):
    import nutpie

    model = build_model(tiny.panel, tiny.spec)
    compiled = nutpie.compile_pymc_model(model, default_initialization_strategy="prior")
    y = model["data_normal"].get_value()
    sd = float(np.std(y))        # the fixed centring scale of the normal indicator
    means = []
    for shift in (0.0, 3.0):     # shift the normal indicator by 3 of its SDs: its intercept follows
        updated = compiled.with_data(data_normal=y + shift * sd)
        assert updated.compiled_logp_func is compiled.compiled_logp_func   # the same compiled code
        tree = nutpie.sample(updated, draws=200, tune=200, chains=2, seed=1, progress_bar=False)
        means.append(float(tree["posterior"]["intercept"].sel(indicator="staff").mean()))
    assert means[1] - means[0] == pytest.approx(3.0, abs=0.5)
    with pytest.raises(ValueError, match="rank"):
        compiled.with_data(data_normal=y[:, None])


@pytest.mark.slow
def test_small_sbc_run_writes_its_outputs(tiny, tmp_path):
    result = run_sbc(tiny.spec, tiny.panel, n_sims=10, draws=100, tune=150, chains=2, seed=5, thin_to=50,
                     n_theta=5)
    ranks = result.ranks
    assert set(ranks["kind"]) == {"hyper", "theta"}
    assert ranks["rank"].between(0, ranks["n_draws"]).all() and (ranks["n_draws"] == 50).all()
    assert ranks.groupby("parameter")["sim"].nunique().eq(10).all()
    hyper = set(ranks.loc[ranks["kind"] == "hyper", "parameter"])
    assert {"sigma_normal[staff]", "inv_dispersion_negbin[cases]", "loading_pos[staff:capability]"} <= hyper
    assert not any("_z" in p for p in hyper)                 # innovations are not hyperparameters
    assert (ranks["kind"] == "theta").sum() == 5 * 10
    assert len(result.fits) == 10 and result.fits["ok"].all()
    assert result.summary["theta_correlation"] > 0.5
    out = result.save(tmp_path / "sbc")
    assert {p.name for p in out.iterdir()} == {"ranks.csv", "tests.csv", "fits.csv", "summary.json",
                                                "ecdf_hyper.png", "ecdf_theta.png"}
    assert json.loads((out / "summary.json").read_text())["n_sims"] == 10
    assert pd.read_csv(out / "ranks.csv").shape == ranks.shape


def test_cli_sbc_refuses_to_overwrite_before_fitting(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "ranks.csv").write_text("old")
    assert main(["sbc", str(ROOT / "models" / "sbc_small.toml"), "--n-sims", "2", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "ranks.csv").read_text() == "old"
