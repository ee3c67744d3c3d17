"""The approximate fast path: labelled approximate, close to the truth on clear data, and measured against NUTS."""

import numpy as np
import pytest

from nexusbayes.analysis.recovery import correlation_by_trait
from nexusbayes.errors import SpecError
from nexusbayes.fit import fit
from nexusbayes.inference.approximate import Approximation, approximate, distance
from nexusbayes.model.simulate import simulate


@pytest.fixture(scope="module")
def pair():
    sim = simulate(n_regions=4, n_periods=6, seed=8)
    quick = approximate(sim.spec, sim.panel, n=10_000, seed=8, progress=False)
    nuts = fit(sim.spec, sim.panel, draws=300, tune=300, chains=2, seed=8, progress=False, check=False)
    return sim, quick, nuts


def test_the_approximation_is_labelled_and_has_no_chains_to_diagnose(pair):
    _, quick, _ = pair
    assert quick.banner().startswith("APPROXIMATE (advi, 10000 iterations)")
    assert quick.tree.attrs["approximate"] == "advi"
    assert quick.tree["posterior"].sizes["chain"] == 1
    assert np.isfinite(quick.loss).all() and quick.loss[-500:].mean() < quick.loss[:500].mean()   # the ELBO rose


def test_the_approximation_finds_the_traits(pair):
    """On clear simulated data the posterior means track the truth (NUTS gets >= 0.9 on these panels)."""
    sim, quick, nuts = pair
    mean = quick.tree["posterior"]["theta"].mean(("chain", "draw"))
    for trait, r in correlation_by_trait(mean, sim.truth["theta"]).items():
        assert r > 0.8, (trait, r)


def test_distance_is_zero_against_itself_and_reports_the_gap_to_nuts(pair):
    _, quick, nuts = pair
    same = distance(Approximation(tree=nuts.tree, spec=nuts.spec, panel=nuts.panel, loss=np.zeros(1)), nuts)
    assert same["theta_mean_error_sd"] == 0 and same["theta_sd_ratio"] == 1 and same["modal_type_agreement"] == 1
    gap = distance(quick, nuts)
    assert 0 < gap["theta_mean_error_sd"] < 1.5                 # means within about one NUTS SD on average
    assert 0 < gap["theta_sd_ratio"] and 0 <= gap["type_max_abs_diff"] <= 1


def test_bad_settings_are_refused(pair):
    sim, _, _ = pair
    with pytest.raises(SpecError, match="unknown approximation 'pathfinder'"):
        approximate(sim.spec, sim.panel, method="pathfinder")
    with pytest.raises(SpecError, match="at least 100 iterations"):
        approximate(sim.spec, sim.panel, n=5)


def test_quick_command_prints_the_banner_and_writes_labelled_tables(tmp_path, capsys):
    from pathlib import Path

    from nexusbayes.cli import main

    spec = Path(__file__).resolve().parents[2] / "models" / "sbc_small.toml"
    out = tmp_path / "quick"
    assert main(["quick", str(spec), "--iterations", "2000", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("APPROXIMATE (advi, 2000 iterations)")
    assert {p.name for p in out.iterdir()} == {"quick_types.csv", "quick_traits.csv"}
    assert main(["quick", str(spec), "--iterations", "2000", "--out", str(out), "--no-progress"]) == 2
    assert "exist(s); pass --overwrite" in capsys.readouterr().err
