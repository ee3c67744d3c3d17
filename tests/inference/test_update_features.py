"""The particle update of a fit whose indicators drift, report informatively, heap at quotas and have structural zeros."""

from __future__ import annotations

import numpy as np
import pytest

from nexusbayes.fit import fit
from nexusbayes.inference.update import UpdateError
from nexusbayes.inference.update_likelihood import NewRowsLikelihood
from nexusbayes.model.drift import WALKS
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


@pytest.fixture(scope="module")
def featured():
    """A 2-country x 2-region x 5-period panel with every feature: (simulation, fit of the first 4 periods, the
    new period's rows of one region)."""
    sim = simulate(featured_spec(), n_countries=2, n_regions=2, n_periods=5, missing=0.1, seed=5)
    last = sim.frame["period"].max()
    base = fit(sim.spec, sim.frame[sim.frame["period"] < last], draws=200, tune=200, chains=2, seed=3,
               progress=False, check=False)
    new = sim.frame[sim.frame["period"] == last]
    return sim, base, new[new["region"] == "C1-R01"]


@pytest.fixture(scope="module")
def updated(featured):
    sim, base, few = featured
    return base.update(few, method="particles", particles=128, seed=4)


def flat(var, n_lead=2):
    """A posterior variable's values as (sample, ...), chains after one another."""
    values = var.transpose(*SAMPLE, ...).values
    return values.reshape(-1, *values.shape[n_lead:])


def rows_of(loglik, lik, term_mask):
    """The log-likelihood group's values (sample, row) at the likelihood's rows ``term_mask`` (one term)."""
    term = lik.term[term_mask][0]
    var = loglik[term]
    return flat(var.sel({var.dims[-1]: lik.labels[term_mask]}))


def test_the_likelihood_of_the_last_fitted_period_is_the_fits(featured):
    """At the fit's own draws and traits (lag 1, no new period), every row of every term (reporting cells too)
    has exactly the log-likelihood the fit stores."""
    _, base, _ = featured
    lik = NewRowsLikelihood(base.tree, base.spec, base.panel, base.panel, lag=1)
    post = base.tree["posterior"]
    n_old = post.sizes["period"]
    assert set(lik.period) == {0} and set(lik.term) == {"y_normal", "y_negbin", "y_binomial", "y_ordinal",
                                                        "reported"}
    n = post.sizes["chain"] * post.sizes["draw"]
    aux = lik.draw_aux(np.arange(n), np.random.default_rng(0))
    assert {k: v.shape[-1] for k, v in aux.items()} == {w: 0 for walk in WALKS for w in (walk.path, walk.z)}
    got = lik.logp(np.arange(n), flat(post["theta"])[:, :, n_old - 1:], aux)
    loglik = base.tree["log_likelihood"]
    for term in set(lik.term):
        mask = lik.term == term
        np.testing.assert_array_equal(got[:, mask], rows_of(loglik, lik, mask), err_msg=term)


def test_featured_update_extends_every_period_variable(featured, updated):
    sim, base, few = featured
    post, old = updated.tree["posterior"], base.tree["posterior"]
    periods = [*old["period"].values, sim.frame["period"].max()]
    for name, var in post.data_vars.items():
        for dim in {"period", "step"} & set(var.dims):
            assert var.sizes[dim] == old[name].sizes[dim] + 1, name
            assert np.isfinite(var.values).all(), name
    assert list(post["period"].values) == periods
    attrs = updated.tree.attrs
    assert attrs["update_pareto_k"] <= 0.7 and attrs["update_ess"] > 0.05 * post.sizes["chain"] * post.sizes["draw"]
    # each drift path continues its draw's random walk: the new step is the draw's step SD x sqrt(gap) x innovation,
    # and the fitted periods are the source draw's
    source = updated.tree["sample_stats"]["source_draw"].values.ravel()
    for walk in WALKS:
        path, z, sd = (flat(post[v]) for v in (walk.path, walk.z, walk.sd))
        np.testing.assert_array_equal(path[:, :, :-1], flat(old[walk.path])[source])
        np.testing.assert_allclose(path[:, :, -1] - path[:, :, -2], sd * z[:, :, -1], rtol=1e-9, atol=1e-12)
        assert 0.5 < np.std(z[:, :, -1]) < 1.5      # standard innovations drawn from their prior, then weighted


def test_the_updates_log_likelihood_is_what_weighed_its_particles(featured, updated):
    """The updated fit's log-likelihood of the new rows (computed from its appended posterior as a fit's is) is
    the particle likelihood at its draws' source, traits and drift paths: the same rows, every feature."""
    _, base, _ = featured
    post = updated.tree["posterior"]
    lik = NewRowsLikelihood(base.tree, base.spec, base.panel, updated.panel)
    n_old = base.tree["posterior"].sizes["period"]
    source = updated.tree["sample_stats"]["source_draw"].values.ravel()
    aux = {v: flat(post[v])[:, :, n_old:] for walk in WALKS for v in (walk.path, walk.z)}
    got = lik.logp(source, flat(post["theta"])[:, :, n_old:], aux)
    assert set(lik.term) >= {"y_negbin", "reported"} and set(lik.period) == {0}
    for term in set(lik.term):
        mask = lik.term == term
        np.testing.assert_allclose(got[:, mask], rows_of(updated.tree["log_likelihood"], lik, mask), rtol=1e-12,
                                   err_msg=term)


def test_featured_update_builds_its_summary_and_report(updated):
    from nexusbayes.report import build_report
    from nexusbayes.report.run import summary_text

    assert "ESS after weighting" in summary_text(updated)
    assert "Pareto k" in build_report(updated, dpi=40, forecast=0).html


def test_the_filter_refuses_features_and_points_to_particles(featured):
    sim, base, few = featured
    with pytest.raises(UpdateError, match="--method particles"):
        base.update(few, n_held=4)
