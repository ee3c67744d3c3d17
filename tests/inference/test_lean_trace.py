"""The lean trace (nutpie stores the unconstrained draws; every variable computed afterwards) against the full one.

And the post-processing's dtypes (issue 24, the large case's memory): the log-likelihood stored in single
precision (the double-precision values rounded), whole-number predictions as integers (the same numbers),
continuous ones in single precision, each checked against the double-precision path on the lean fit's draws.
"""

import numpy as np
import pytest
import xarray as xr

from nexusbayes.inference import lean_trace
from nexusbayes.inference.sample import sample
from nexusbayes.model.build import Model
from nexusbayes.model.predict import LOG_LIKELIHOOD_DTYPE, _logp, _predictors, draw_chunks, store_draws
from nexusbayes.model.simulate import simulate
from nexusbayes.spec.sections import SamplerSpec

SEED = 3


@pytest.fixture(scope="module")
def trees():
    """One small panel sampled both ways with one seed: lean (the default) and nutpie's full trace."""
    sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
    settings = SamplerSpec(draws=60, tune=60, chains=2, seed=11)
    model = Model(sim.spec, sim.panel)
    lean = sample(model, settings, progress=False, predictions=False)
    # any sampler option keeps nutpie's full trace and its own conversion (the path before the lean trace)
    full = sample(Model(sim.spec, sim.panel), settings, progress=False, predictions=False,
                  sampler_options={"save_warmup": False})
    return lean, full, model


def test_lean_posterior_equals_the_full_trace(trees):
    lean, full, _ = trees
    a, b = lean["posterior"].to_dataset(), full["posterior"].to_dataset()
    assert sorted(a.data_vars) == sorted(b.data_vars)
    assert {"theta", "country_theta", "loading", "trait_corr"} <= set(a.data_vars)   # the deterministics
    for name in b.data_vars:
        assert a[name].dims == b[name].dims, name
        assert a[name].dtype == b[name].dtype == np.float32, name     # held in single precision (issue 24)
        # the same draws, the deterministics from the same expand function: equal bit for bit
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        for dim in a[name].dims:
            np.testing.assert_array_equal(a[dim].values, b[dim].values)


def test_lean_sample_stats_equal_the_full_trace(trees):
    lean, full, _ = trees
    a, b = lean["sample_stats"].to_dataset(), full["sample_stats"].to_dataset()
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in b.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_only_the_lean_compile_trims_the_trace():
    from nexusbayes.inference import compile_cache

    sim = simulate(n_regions=3, n_periods=4, missing=0.1, seed=1)
    model = Model(sim.spec, sim.panel).pymc
    lean, _ = compile_cache.compile_nutpie(model, sim.panel, sim.spec, lean=True)
    full, _ = compile_cache.compile_nutpie(model, sim.panel, sim.spec)
    assert lean_trace.is_lean(lean) and not lean_trace.is_lean(full)
    assert lean.n_expanded == lean.n_dim < full.n_expanded
    assert [name for name, _, _ in lean_trace.layout(lean)] == list(full.shape_info[0])


@pytest.fixture(scope="module")
def predicted(trees):
    """(model, tree with predictions, posterior): the lean fit's draws through the post-processing."""
    lean, _, model = trees
    post = lean["posterior"].to_dataset()
    return model, model.add_predictions(xr.DataTree.from_dict({"posterior": post}), seed=SEED), post


def _double_path(model, post):
    """Log-likelihood and predictive draws in double precision, as the post-processing drew them before."""
    rng = np.random.default_rng(SEED)
    n = post.sizes["chain"] * post.sizes["draw"]
    loglik, drawn = {}, {}
    for block, family, eta, params, mixture in _predictors(post, model.design, model.panel, model.spec):
        logp, sim = np.empty((n, len(block.rows))), np.empty((n, len(block.rows)))
        for rows in draw_chunks(n, len(block.rows)):
            value, scale = eta(rows)
            chunk = {p: v[rows] for p, v in params.items()}
            logp[rows] = _logp(family, value, scale, block, chunk, *mixture(rows))
            sim[rows] = family.simulate(rng, value, scale, block, chunk)
        loglik[f"y_{block.key}"], drawn[f"y_{block.key}"] = logp, sim
    return loglik, drawn


def test_log_likelihood_is_the_double_values_rounded_and_recomputed_alike(predicted):
    """Single precision, equal to the double-precision values rounded; not in the tree, computed alike from the
    posterior alone and term by term."""
    model, tree, post = predicted
    assert "log_likelihood" not in tree.children
    stored = model.log_likelihood(tree)
    double, _ = _double_path(model, post)
    assert sorted(stored.data_vars) == sorted(double) == ["y_binomial", "y_negbin", "y_normal", "y_ordinal"]
    again = model.log_likelihood(xr.DataTree.from_dict({"posterior": post}))
    for name, values in double.items():
        got = stored[name].values.reshape(values.shape)
        assert got.dtype == LOG_LIKELIHOOD_DTYPE == np.float32
        np.testing.assert_array_equal(got, values.astype(np.float32), err_msg=name)
        np.testing.assert_array_equal(again[name].values, stored[name].values, err_msg=name)
        np.testing.assert_array_equal(model.log_likelihood(tree, [name])[name].values, stored[name].values)


def test_predictions_are_the_same_numbers_in_smaller_types(predicted):
    """Ratings and bounded successes int16, counts int32, continuous values single precision; the same draws."""
    model, tree, post = predicted
    predictive = tree["posterior_predictive"].to_dataset()
    _, double = _double_path(model, post)
    want = {"y_binomial": np.int16, "y_negbin": np.int32, "y_normal": np.float32, "y_ordinal": np.int16}
    assert {name: var.dtype for name, var in predictive.data_vars.items()} == want
    for name, values in double.items():
        got = predictive[name].values.reshape(values.shape)
        expected = values.astype(np.float32) if name == "y_normal" else values
        assert name == "y_normal" or np.array_equal(values, np.round(values))     # whole numbers
        np.testing.assert_array_equal(got.astype(np.float64), expected.astype(np.float64), err_msg=name)


def test_loo_from_single_precision_equals_loo_from_doubles(predicted):
    """PSIS-LOO from the stored log-likelihood (widened per term) against PSIS-LOO of the double values."""
    import warnings

    import arviz as az

    from nexusbayes.fit import Fit
    from nexusbayes.report.checks import _get_r_eff, loo

    model, tree, post = predicted
    double, _ = _double_path(model, post)
    result = loo(Fit(tree, model.spec, model.panel))
    reff = _get_r_eff(tree, post.sizes["chain"] * post.sizes["draw"])       # as loo() computes it
    shapes = model.log_likelihood(tree)
    for name, values in double.items():
        ll = xr.Dataset({name: shapes[name].copy(data=values.reshape(shapes[name].shape))})
        with warnings.catch_warnings():    # Pareto k warnings: loo() records them, as this reference need not
            warnings.simplefilter("ignore", UserWarning)
            ref = az.loo(xr.DataTree.from_dict({"posterior": post, "log_likelihood": ll}), var_name=name,
                         pointwise=True, reff=reff)
        got = result.pointwise[result.pointwise["term"] == name]["elpd_loo"].to_numpy()
        # rounding the inputs moves each value by <= 6e-8 of itself; PSIS is smooth in them
        np.testing.assert_allclose(got, ref.elpd_i.values, rtol=1e-6, atol=1e-6, err_msg=name)


def test_counts_beyond_the_type_widen_the_whole_array():
    """A chunk of counts beyond int32 widens the stored draws to int64, earlier chunks kept."""
    drawn = store_draws(None, slice(0, 2), np.array([[1.0, 2.0], [3.0, 4.0]]), np.dtype(np.int32), 4)
    drawn = store_draws(drawn, slice(2, 4), np.array([[5.0, 2.0**40], [7.0, 8.0]]), np.dtype(np.int32), 4)
    assert drawn.dtype == np.int64
    np.testing.assert_array_equal(drawn, [[1, 2], [3, 4], [5, 2**40], [7, 8]])
