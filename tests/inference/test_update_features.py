"""The particle update of a fit whose indicators drift, report informatively, heap at quotas and have structural zeros.

Two sources of draws, neither sampled here: prior draws of a small simulated panel with every feature (the
likelihood checked against a fit's own log-likelihood code), and the session's Kyrgyzstan fit (drift,
informative gaps, quota heaping), updated end to end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from nexusbayes.data.panel import validate
from nexusbayes.errors import DataError
from nexusbayes.fit import Fit
from nexusbayes.inference.update import UpdateError, new_rows, refuse
from nexusbayes.inference.update_likelihood import NewRowsLikelihood
from nexusbayes.model.build import Model
from nexusbayes.model.design import make_design
from nexusbayes.model.drift import WALKS
from nexusbayes.model.predict import LOG_LIKELIHOOD_DTYPE, log_likelihood, prior_draws
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.document import Spec

SAMPLE = ("chain", "draw")


def featured_spec() -> Spec:
    """Every measurement feature: informative gaps (with reporting offsets), a quota heap, structural zeros,
    drifting intercepts, cut-points and log loadings, country offsets."""
    data = default_spec().to_dict()
    ind = data["indicators"]
    ind["staff"].update(missing="informative", comparable=False)
    ind["seizures"].update(quota=10, drift="loading")
    ind["abuse"].update(zero_inflated=True, drift="intercept")
    ind["quota"].update(comparable=False)
    ind["expert_willingness"].update(drift="cutpoints")
    return Spec.from_dict(data)


def featured_prior(n_draws: int):
    """A 2 x 2 x 5 panel with every feature, its first 4 periods standing for a fit: ``n_draws`` prior draws over all 5
    periods, and the particle likelihood (lag 1) of the last fitted and the new period's rows.

    Returns ``(spec, old, combined, prior, n_old, lik)``.
    """
    spec = featured_spec()
    sim = simulate(spec, n_countries=2, n_regions=2, n_periods=5, missing=0.1, seed=5)
    last = sim.frame["period"].max()
    old = validate(sim.frame[sim.frame["period"] < last], spec, "old.csv")
    combined, _ = new_rows(old, spec, sim.frame)
    prior = prior_draws(Model(spec, combined).pymc, n_draws, seed=3)["prior"].to_dataset()
    n_old = len(old.periods)
    fitted = xr.DataTree.from_dict({"posterior": prior.isel(period=slice(0, n_old), step=slice(0, n_old - 1))})
    return spec, old, combined, prior, n_old, NewRowsLikelihood(fitted, spec, old, combined, lag=1)


def flat(var: xr.DataArray) -> np.ndarray:
    """A variable's draws as (sample, ...), chains after one another."""
    values = var.transpose(*SAMPLE, ...).values
    return values.reshape(-1, *values.shape[2:])


def stored(loglik: xr.Dataset, lik: NewRowsLikelihood, term: str) -> np.ndarray:
    """A log-likelihood group's values (sample, row) at the likelihood's rows of ``term``, in its order."""
    var = loglik[term]
    return flat(var.sel({var.dims[-1]: lik.labels[lik.term == term]}))


def test_the_likelihood_of_new_and_refitted_periods_is_the_fits_with_every_feature():
    """Prior draws over 5 periods stand for a fit of the first 4 with the 5th's traits and drift paths known:
    the particle likelihood of the last fitted and the new period's rows (lag 1) at them is exactly the
    log-likelihood a fit computes (:func:`nexusbayes.model.predict.log_likelihood`), row by row, every term."""
    spec, old, combined, prior, n_old, lik = featured_prior(20)
    assert set(lik.term) == {"y_normal", "y_negbin", "y_binomial", "y_ordinal", "reported"}
    assert set(lik.period) == {0, 1} and len(lik.region) == len(lik.country) == lik.n_rows
    aux = {walk.path: flat(prior[walk.path])[:, :, n_old:] for walk in WALKS}
    n = prior.sizes["chain"] * prior.sizes["draw"]
    got = lik.logp(np.arange(n), flat(prior["theta"])[:, :, n_old - 1:], aux)
    assert np.isfinite(got).all()
    # the update's centring constants are the fit's (its intercepts are relative to them)
    design = dataclasses.replace(make_design(combined, spec), centres=make_design(old, spec).centres)
    reference = log_likelihood(xr.DataTree.from_dict({"posterior": prior}), design, combined, spec)
    for term in set(lik.term):
        # stored in single precision (LOG_LIKELIHOOD_DTYPE): the same double-precision values, rounded
        np.testing.assert_array_equal(got[:, lik.term == term].astype(LOG_LIKELIHOOD_DTYPE),
                                      stored(reference, lik, term), err_msg=term)
    # each draw's paths continue by its random walk: step SD x sqrt(gap) x a standard normal innovation
    drawn = lik.draw_aux(np.repeat(np.arange(n), 200), np.random.default_rng(0))
    for walk in WALKS:
        step = (drawn[walk.path][:, :, 0] - np.repeat(flat(prior[walk.path])[:, :, n_old - 1], 200, axis=0))
        np.testing.assert_allclose(step, np.repeat(flat(prior[walk.sd]), 200, axis=0) * drawn[walk.z][:, :, 0])
        z = drawn[walk.z].ravel()
        assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.std() - 1) < 4 / np.sqrt(2 * z.size)


def test_a_new_period_alone_needs_none_of_what_a_whole_panel_does():
    """A new period's file without a non-report of the informative indicator, without an indicator and with one
    region is read as a part: the same data as that part given with the fitted rows, the fit's non-reports kept. What
    a whole panel needs is checked on the combined data, and a row is still checked where it is."""
    spec = featured_spec()
    sim = simulate(spec, n_countries=2, n_regions=2, n_periods=5, missing=0.1, seed=5)
    last = sim.frame["period"].max()
    old = validate(sim.frame[sim.frame["period"] < last], spec, "old.csv")
    new = sim.frame[(sim.frame["period"] == last) & (sim.frame["region"] == "C1-R01")]
    part = new[new["status"].isna() & (new["indicator"] != "staff")]
    assert len(old.not_reported) and len(part) and not part["indicator"].isin(["staff"]).any()
    combined, added = new_rows(old, spec, part)
    given, again = new_rows(old, spec, pd.concat([old.data_table(), part]))
    pd.testing.assert_frame_equal(combined.data_table(), given.data_table())
    cols = ["region", "period", "indicator", "value"]
    pd.testing.assert_frame_equal(added[cols].reset_index(drop=True), again[cols].reset_index(drop=True))
    assert combined.periods == [*old.periods, last] and len(combined.not_reported) == len(old.not_reported)
    assert set(combined.frame.loc[combined.frame["period"] == last, "region"]) == {"C1-R01"}
    with pytest.raises(DataError, match=r"row.*`value` is not a number"):
        new_rows(old, spec, part.assign(value="x"))


# ---- the Kyrgyzstan example, updated with a year -----------------------------------------------------------
@pytest.fixture(scope="module")
def thinned(kyrgyzstan):
    """The example's fit at every 20th draw (4 x 50): an update, its predictions and its report, at a 20th of the
    cost."""
    post = kyrgyzstan.tree["posterior"].to_dataset().isel(draw=slice(0, None, 20))
    tree = xr.DataTree.from_dict({"posterior": post})
    tree.attrs.update(kyrgyzstan.tree.attrs)
    return Fit(tree=tree, spec=kyrgyzstan.spec, panel=kyrgyzstan.panel)


@pytest.fixture(scope="module")
def next_year(kyrgyzstan):
    """The example's data with a 2017 for Batken: its 2016 rows again (non-reports included)."""
    frame = kyrgyzstan.panel.data_table()
    again = frame[(frame["period"] == frame["period"].max()) & (frame["region"] == "Batken")]
    return pd.concat([frame, again.assign(period=again["period"] + 1)], ignore_index=True)


@pytest.fixture(scope="module")
def updated(thinned, next_year):
    return thinned.update(next_year, method="particles", particles=64, seed=4)


def test_the_filter_refuses_the_features_and_points_to_the_particles(kyrgyzstan):
    with pytest.raises(UpdateError, match="--method particles"):
        refuse(kyrgyzstan.spec, kyrgyzstan.tree, kyrgyzstan.panel)
    refuse(kyrgyzstan.spec, kyrgyzstan.tree, kyrgyzstan.panel, "particles")


def test_the_example_updated_by_particles_extends_every_period_variable(thinned, updated):
    post, old = updated.tree["posterior"], thinned.tree["posterior"]
    assert list(post["period"].values) == [*old["period"].values, 2017]
    for name, var in post.data_vars.items():
        for dim in {"period", "step"} & set(var.dims):
            assert var.sizes[dim] == old[name].sizes[dim] + 1, name
        assert np.isfinite(var.values).all(), name
    attrs = updated.tree.attrs
    assert attrs["update_pareto_k"] <= 0.7 and attrs["update_ess"] > 0.05 * post.sizes["chain"] * post.sizes["draw"]
    source = updated.tree["sample_stats"]["source_draw"].values.ravel()
    for walk in [w for w in WALKS if w.path in old]:   # the fitted periods are the source draw's, then its walk
        path, z, sd = (flat(post[v]) for v in (walk.path, walk.z, walk.sd))
        np.testing.assert_array_equal(path[:, :, :-1], flat(old[walk.path])[source])
        np.testing.assert_allclose(path[:, :, -1] - path[:, :, -2], sd * z[:, :, -1])


def test_the_updates_log_likelihood_is_what_weighed_its_particles(thinned, updated):
    """The updated fit's log-likelihood (computed from its appended posterior as a fit's is) of 2016's and 2017's
    rows is the particle likelihood (lag 1) at its draws' source, traits and drift paths."""
    post = updated.tree["posterior"]
    lik = NewRowsLikelihood(thinned.tree, thinned.spec, thinned.panel, updated.panel, lag=1)
    n_old = thinned.tree["posterior"].sizes["period"]
    source = updated.tree["sample_stats"]["source_draw"].values.ravel()
    aux = {walk.path: flat(post[walk.path])[:, :, n_old:] for walk in WALKS if walk.path in post}
    got = lik.logp(source, flat(post["theta"])[:, :, n_old - 1:], aux)
    assert set(lik.term) == {"y_normal", "y_negbin", "y_binomial", "y_ordinal", "reported"}
    for term in set(lik.term):
        np.testing.assert_array_equal(got[:, lik.term == term].astype(LOG_LIKELIHOOD_DTYPE),
                                      stored(updated.log_likelihood(), lik, term), err_msg=term)


def test_the_updated_example_builds_its_summary_and_report(updated):
    from nexusbayes.report import build_report
    from nexusbayes.report.run import summary_text

    assert "] update Pareto k" in summary_text(updated)
    assert "2017" in build_report(updated, dpi=50, forecast=0).html
