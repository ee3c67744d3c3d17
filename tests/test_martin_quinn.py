"""Martin-Quinn benchmark: Supreme Court votes 1937-2013 against the published dynamic ideal points.

The data are public and not bundled: they are read from the project's sibling ``shared`` directory
(``<project>/../shared/data/martin_quinn``); the fit is skipped when it is absent. The loader's format
checks run on small files written to ``tmp_path`` and sample nothing.
"""

from pathlib import Path

import numpy as np
import pytest

from nexusbayes.data.datasets import correlate_scores, load_martin_quinn
from nexusbayes.data.read import load_panel
from nexusbayes.errors import DataError, SpecError
from nexusbayes.fit import fit
from nexusbayes.spec.document import Spec, load_spec

ROOT = Path(__file__).resolve().parents[1]
MQ_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "martin_quinn"
SPEC = ROOT / "models" / "martin_quinn.toml"
needs_data = pytest.mark.skipif(not (MQ_DIR / "mq_votes_1937_2013_wide.csv").is_file(),
                                reason=f"Martin-Quinn data not found at {MQ_DIR} (the project's sibling shared/)")

VOTES = "case_idx,term,Black,Douglas,Scalia\n0,1940,1,-1,0\n1,1940,-1,1,0\n2,1990,0,0,1\n"
SCORES = "justice_rc,justiceName,term,mq_mcmc\nBlack,Black,1940,-1.0\nDouglas,Douglas,1940,-3.0\n"


def write(tmp_path, votes=VOTES, scores=SCORES):
    (tmp_path / "mq_votes_1937_2013_wide.csv").write_text(votes)
    (tmp_path / "mq_mcmc_estimates.csv").write_text(scores)
    return tmp_path


def test_loader_turns_wide_votes_into_the_long_table(tmp_path):
    votes, scores = load_martin_quinn(write(tmp_path))
    assert list(votes.columns) == ["country", "region", "period", "indicator", "value"]
    assert len(votes) == 5   # the 0 cells (did not sit) are absent rows
    assert set(votes["country"]) == {"Supreme Court"}
    row = votes[(votes["indicator"] == "case1") & (votes["region"] == "Douglas")].iloc[0]
    assert row["value"] == 1.0 and row["period"] == 1940
    assert votes.loc[votes["region"] == "Black", "value"].tolist() == [1.0, 0.0]
    assert list(scores.columns) == ["region", "period", "mq_mcmc"]


@pytest.mark.parametrize(("votes", "scores", "message"), [
    ("case,term,Black\n0,1940,1\n", SCORES, r"missing column\(s\) \['case_idx'\]"),
    ("case_idx,term,Black\n0,1940,2\n", SCORES, r"column 'Black' \(a justice\) must hold 1 or -1.*got '2' on line 2"),
    ("case_idx,term,Black\n0,19x0,1\n", SCORES, r"column `term` must hold whole numbers, got '19x0'"),
    ("case_idx,term,Black\n0,1940,1\n0,1941,1\n", SCORES, r"`case_idx` repeats \[0\]"),
    (VOTES, "justice_rc,term\nBlack,1940\n", r"mq_mcmc_estimates.csv: missing column\(s\) \['mq_mcmc'\]"),
    (VOTES, "justice_rc,term,mq_mcmc\nBlack,1940,abc\n", r"`mq_mcmc` must be a finite number, got 'abc'"),
])
def test_loader_format_errors_name_the_file_and_column(tmp_path, votes, scores, message):
    with pytest.raises(DataError, match=message):
        load_martin_quinn(write(tmp_path, votes, scores))


def test_loader_missing_directory():
    with pytest.raises(DataError, match=r"mq_votes_1937_2013_wide.csv: Martin-Quinn votes file not found"):
        load_martin_quinn("/nonexistent/martin_quinn")


def test_spec_reads_the_format_and_resolves_the_path_from_the_spec_file(tmp_path):
    spec, data_path = load_spec(SPEC)
    assert spec.data_format == "martin_quinn" and spec.item_bank is not None
    assert data_path == (SPEC.parent / "../../shared/data/martin_quinn").resolve()
    assert Spec.from_toml(spec.to_toml()) == spec
    panel = load_panel(write(tmp_path), spec.model_copy(update={"orientation": {}}))
    assert panel.indicators == ["case0", "case1", "case2"] and panel.regions == ["Black", "Douglas", "Scalia"]


def test_free_item_bank_without_orientation_is_refused():
    text = SPEC.read_text().split("[orientation.ideology]")[0] + "\n[sampler]\ndraws = 10\n"
    with pytest.raises(SpecError, match=r"trait 'ideology' is not identified.*\[orientation.ideology\]"):
        Spec.from_toml(text, source="mq.toml")


def test_orientation_with_a_fixed_sign_is_refused():
    text = SPEC.read_text().replace('loads = { ideology = "free" }', 'loads = { ideology = "positive" }')
    with pytest.raises(SpecError, match=r"orientation.ideology: item_bank|fixed sign"):
        Spec.from_toml(text, source="mq.toml")


def test_orientation_regions_must_be_in_the_data(tmp_path):
    spec, _ = load_spec(SPEC)
    missing = r"\['Brennan', 'Marshall', 'Rehnquist', 'Thomas'\]"
    with pytest.raises(DataError, match=r"\[orientation\] names region\(s\) " + missing):
        load_panel(write(tmp_path), spec)


@pytest.mark.slow
@needs_data
def test_fit_correlates_with_published_scores():
    """r >= 0.93 with mq_mcmc over the justice-terms in both (emIRT's variational fit reaches 0.93).

    Convergence sanity: max R-hat of theta over the justice-terms with votes < 1.1. With 2 chains of
    200 draws (the CI budget) the 1.01 of a production run is out of reach; 1.1 still catches chains
    stuck in different modes (e.g. the sign flipping between eras), the failure this test guards.
    """
    import arviz as az

    spec, data_path = load_spec(SPEC)
    result = fit(spec, data_path, draws=200, tune=200, chains=2, progress=False, check=False)
    _, scores = load_martin_quinn(data_path)
    summary = result.trait_summary()
    r, n = correlate_scores(summary, scores, "mq_mcmc")
    r_wo, _ = correlate_scores(summary, scores, "mq_mcmc", exclude=("Douglas",))
    print(f"r = {r:.3f} over {n} justice-terms, {r_wo:.3f} without Douglas; timings {result.timings}")
    assert r >= 0.93   # oriented like MQ (higher = conservative), so no abs()
    theta = result.tree["posterior"]["theta"].isel(trait=0)
    cells = result.panel.frame[["region", "period"]].drop_duplicates()
    rhat = az.rhat(theta.to_dataset(name="theta"))["theta"]
    worst = max(float(rhat.sel(region=reg, period=per)) for reg, per in cells.itertuples(index=False))
    assert np.isfinite(worst) and worst < 1.1
    assert all(share in (0.0, 1.0) for share in result.tree.attrs["orientation_reflected_ideology"])


def test_period_scores_point_every_period_the_same_way_and_skip_periods_with_few_items():
    from nexusbayes.model.centred import period_scores
    from nexusbayes.model.simulate import simulate
    from nexusbayes.spec.indicators import Indicator

    def panel(n_items):
        spec = Spec(name="votes", traits=["ideology"], dynamics={"centred": True},
                    indicators={f"case{k}": Indicator(family="bernoulli", loads={"ideology": "free"})
                                for k in range(n_items)},
                    orientation={"ideology": {"higher": ["C1-R01"]}})
        return simulate(spec, n_regions=9, n_periods=5, seed=3)

    sim = panel(40)
    score, truth = period_scores(sim.panel), sim.truth["theta"].values[..., 0]
    r = [np.corrcoef(score[:, t], truth[:, t])[0, 1] for t in range(5)]
    assert all(abs(x) > 0.5 for x in r) and len({bool(x > 0) for x in r}) == 1, r   # one global sign
    assert np.isnan(period_scores(panel(6).panel)).all()
