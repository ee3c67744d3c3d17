"""Fit.update of a fit with [covariates]: the new periods' covariates given, their effects held at the fit's draws.

The tests on a fit (a base fit and two updates: about 35 CPU s with the compiled structures on disk) are marked
slow; the checks of the new covariates need the fitted data only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nexusbayes.data.covariates import attach_covariates
from nexusbayes.data.panel import validate
from nexusbayes.errors import DataError
from nexusbayes.fit import fit, load
from nexusbayes.inference.update import UpdateError, new_rows, update
from nexusbayes.inference.update_inputs import new_covariates
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.sections import CovariateEffect, CovariatesSpec

SAMPLE_DIMS = ("chain", "draw")


@pytest.fixture(scope="module")
def planted():
    """2 countries x 3 regions x 5 periods, a covariate on capability's level (planted 1.5 raw, 0.88 per trait SD):
    the simulation, the fitted rows and covariates (4 periods), the new period's rows and covariates, and the dark
    region, whose new-period rows are left out (its new traits are the dynamics' and the covariate's alone): the one
    whose covariate moves most into the new period."""
    spec = default_spec(covariates=CovariatesSpec(columns={"aid": CovariateEffect(on="level",
                                                                                   traits=["capability"])}))
    sim = simulate(spec, n_countries=2, n_regions=3, n_periods=5, effects={"aid:capability": 1.5}, seed=11)
    last, frame, cov = sim.frame["period"].max(), sim.frame, sim.covariates
    dark = str(cov.pivot(index="region", columns="period", values="aid").diff(axis=1)[last].abs().idxmax())
    new = frame[(frame["period"] == last) & (frame["region"] != dark)]
    return sim, frame[frame["period"] < last], cov[cov["period"] < last], new, cov[cov["period"] == last], dark


@pytest.fixture(scope="module")
def base(planted):
    sim, old, old_cov = planted[:3]
    return fit(sim.spec, old, covariates=old_cov, draws=200, tune=300, chains=2, seed=3, progress=False, check=False)


@pytest.fixture(scope="module")
def updated(base, planted):
    return base.update(planted[3], covariates=planted[4], n_held=20, chains=2, seed=4, predictions=False)


@pytest.mark.slow
def test_the_new_period_with_covariates_covers_the_truth(planted, base, updated):
    """Every new region-period trait within 3 posterior SDs of the truth (put on the fit's scale by the base fit's
    means regressed on it over the fitted region-periods). The dark region has no new rows: its capability moves
    with its covariate by more than 1.5 posterior SDs, which an update without the covariate's term would miss."""
    sim, last, dark = planted[0], planted[3]["period"].max(), planted[5]
    truth, means = sim.truth["theta"], base.tree["posterior"]["theta"].mean(SAMPLE_DIMS)
    post = updated.tree["posterior"]["theta"].sel(period=last)
    assert "covariate effects" in updated.tree.attrs["update_held"]
    zscores = []
    for trait in sim.spec.traits:
        slope, intercept = np.polyfit(truth.sel(trait=trait, period=means["period"], region=means["region"]).values
                                      .ravel(), means.sel(trait=trait).values.ravel(), 1)
        target = intercept + slope * truth.sel(trait=trait, period=last)
        draws = post.sel(trait=trait)
        zscores.append(((target - draws.mean(SAMPLE_DIMS)) / draws.std(SAMPLE_DIMS)).values)
    assert np.abs(np.concatenate(zscores)).max() < 3
    z = updated.panel.covariates.standardised()[updated.panel.regions.index(dark), -2:, 0]
    effect = base.tree["posterior"]["covariate_effect"].sel(covariate_label="aid:capability")
    shift = float(effect.mean()) * (z[1] - z[0])
    assert abs(shift) > 1.5 * float(post.sel(region=dark, trait="capability").std())


@pytest.mark.slow
def test_the_covariate_terms_move_the_new_traits_by_the_held_effects(planted, base, updated):
    """One SD more of the dark region's new covariate: the same draws (it has no new rows, so the filter's posterior
    is the same), its new capability higher by each held draw's effect, its country's by a third of that (3
    regions), nothing else moved."""
    dark = planted[5]
    cov = planted[4].assign(aid=planted[4]["aid"] + np.where(planted[4]["region"] == dark,
                                                             base.panel.covariates.scale[0], 0.0))
    moved = base.update(planted[3], covariates=cov, n_held=20, chains=2, seed=4, predictions=False)
    a, b = (u.tree["posterior"].sel(period=planted[3]["period"].max()) for u in (updated, moved))
    diff = (b["theta"] - a["theta"]).transpose(*SAMPLE_DIMS, "region", "trait")
    source = updated.tree["posterior"]["covariate_effect"].sel(covariate_label="aid:capability")
    np.testing.assert_allclose(diff.sel(region=dark, trait="capability"), source, rtol=1e-4, atol=1e-5)
    assert float(np.abs(diff.sel(trait="willingness")).max()) < 1e-5
    assert float(np.abs(diff.drop_sel(region=dark)).max()) < 1e-5
    country = (b["country_theta"] - a["country_theta"]).sel(country=dark.split("-")[0], trait="capability")
    np.testing.assert_allclose(country, source / 3, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_an_update_with_covariates_forecasts_and_keeps_the_fits_standardisation(base, updated, tmp_path):
    """The updated traits less their covariate terms follow the dynamics (the forecast's check); saved and loaded,
    the covariates keep the fit's centre and scale, not those of the grown table."""
    assert updated.forecast(1, hold_covariates=True)["forecast"]["theta"].sizes["horizon"] == 1
    loaded = load(updated.save(tmp_path / "updated.nc"))
    for table in (updated.panel.covariates, loaded.panel.covariates):
        np.testing.assert_array_equal(table.centre, base.panel.covariates.centre)
        np.testing.assert_array_equal(table.scale, base.panel.covariates.scale)
    assert loaded.panel.covariates.values.shape[1] == 5
    assert loaded.forecast(1, hold_covariates=True)["forecast"]["theta"].sizes["horizon"] == 1


def test_new_covariates_are_checked_as_a_fits_are(planted, tmp_path):
    sim, old, old_cov, new, new_cov, dark = planted
    spec = sim.spec
    panel = attach_covariates(validate(old, spec), spec, old_cov)    # the fitted data, as fit() reads them
    combined, _ = new_rows(panel, spec, new)
    with pytest.raises(UpdateError, match=r"pass their values at the new period\(s\) 2004.*--covariates FILE"):
        new_covariates(spec, panel, combined, None)
    path = tmp_path / "cov.csv"
    new_cov[new_cov["region"] != "C2-R03"].to_csv(path, index=False)
    with pytest.raises(DataError, match=r"cov\.csv.*no row for region-period\(s\) the model needs: \(C2-R03, 2004\)"):
        new_covariates(spec, panel, combined, path)
    blank = new_cov.assign(aid=np.where(new_cov["region"] == "C1-R01", "", new_cov["aid"].astype(str)))
    blank.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"cov\.csv(.|\n)*2(.|\n)*`aid` is missing"):
        new_covariates(spec, panel, combined, path)
    with pytest.raises(DataError, match=r"`period` is not a new period of the update"):
        new_covariates(spec, panel, combined, new_cov.assign(period=2009))
    # the fitted rows may be given again, unchanged; changed, they are refused
    _, z = new_covariates(spec, panel, combined, pd.concat([old_cov, new_cov]))
    np.testing.assert_array_equal(z, new_covariates(spec, panel, combined, new_cov)[1])
    changed = old_cov.assign(aid=old_cov["aid"] + (old_cov["period"] == 2001))
    with pytest.raises(DataError, match="differ from the fit's covariate table"):
        new_covariates(spec, panel, combined, pd.concat([changed, new_cov]))
    with pytest.raises(UpdateError, match="'filter'"):
        update(None, spec, panel, new, method="particles")   # refused before the draws are read
    rows = sim.frame[(sim.frame["region"] == dark) & (sim.frame["period"] == 2004)]
    regions, _ = new_rows(panel, spec, pd.concat([new, rows.assign(region=dark[:3] + "R09")]))
    with pytest.raises(UpdateError, match="new regions cannot be added to a fit with"):
        new_covariates(spec, panel, regions, new_cov)


@pytest.mark.slow
def test_cli_update_takes_the_new_covariates(planted, base, tmp_path, capsys):
    from nexusbayes.cli import main

    base_path, new, cov = base.save(tmp_path / "base.nc"), tmp_path / "new.csv", tmp_path / "cov.csv"
    planted[3].to_csv(new, index=False)
    planted[4].to_csv(cov, index=False)
    args = ["update", str(base_path), str(new), "--held", "20", "--chains", "2", "--seed", "4", "--draws", "2",
            "--tune", "50", "--no-report"]
    assert main([*args, "--out", str(tmp_path / "refused")]) == 2
    assert "--covariates FILE" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "out"), "--covariates", str(cov)]) == 0
    assert "the covariate effects" in capsys.readouterr().out
    loaded = load(tmp_path / "out" / "fit.nc")
    assert loaded.panel.covariates.values.shape[1] == 5 and str(cov) in loaded.panel.covariates.source
