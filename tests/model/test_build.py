"""The model graph without sampling: dims, a finite log-density, and NumPy predictions that match PyMC."""

import importlib

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import xarray as xr
from pymc.model.transform.conditioning import remove_value_transforms
from scipy import stats
from scipy.special import gammaln

from nexusbayes.errors import SpecError
from nexusbayes.model import measurement as model_module
from nexusbayes.model.build import Model, build_model
from nexusbayes.model.design import block_index, make_design
from nexusbayes.model.families import FAMILIES, NUISANCE
from nexusbayes.model.latent import ZeroSum
from nexusbayes.model.predict import forward_mode
from nexusbayes.model.simulate import default_spec, simulate
from nexusbayes.spec.document import Spec
from nexusbayes.spec.indicators import Indicator
from tests.modes import PY_RUN


def with_country_specific(spec: Spec, *names: str) -> Spec:
    """``spec`` with ``names`` marked not comparable across countries."""
    data = spec.to_dict()
    for name in names:
        data["indicators"][name]["comparable"] = False
    return Spec.from_dict(data)


@pytest.fixture(scope="module")
def small():
    spec = with_country_specific(default_spec(), "quota")
    sim = simulate(spec, n_countries=2, n_regions=3, n_periods=4, missing=0.2, n_raters=2, seed=5)
    return sim, build_model(sim.panel, sim.spec)


def test_named_dims_and_coords(small):
    sim, model = small
    dims = model.named_vars_to_dims
    assert dims["theta"] == ("region", "period", "trait")
    assert dims["country_theta"] == ("country", "period", "trait")
    assert dims["loading"] == ("indicator", "trait")
    assert list(model.coords["region"]) == sim.panel.regions
    assert list(model.coords["period"]) == sim.panel.periods
    # one likelihood term per family over all of its observations
    observed = sorted(rv.name for rv in model.observed_RVs)
    assert observed == ["y_binomial", "y_negbin", "y_normal", "y_ordinal"]
    assert sum(len(model.coords[f"obs_{k}"]) for k in ("binomial", "negbin", "normal", "ordinal")) == sim.panel.n_obs


def test_log_density_and_gradient_are_finite_at_a_prior_draw(small):
    _, model = small
    point = model.initial_point(random_seed=1)
    rng = np.random.default_rng(1)
    point = {k: v + rng.normal(0, 0.1, np.shape(v)) for k, v in point.items()}
    logp = model.compile_logp(mode=forward_mode())(point)
    grad = model.compile_dlogp(mode=forward_mode())(point)
    assert np.isfinite(logp) and np.isfinite(grad).all()


def test_inverse_dispersion_prior_has_no_mass_at_the_poisson_limit(small):
    """Gamma(2, 2 / scale): density 0 at the Poisson limit, mean at the spec's scale (the funnel's neck kept out)."""
    sim, model = small
    rv = model["inv_dispersion_negbin"]
    scale = sim.spec.priors.inv_dispersion
    n = len(model.coords["indicator_negbin"])
    for value in (1e-6, 0.05, scale, 3.0):
        logp = pm.logp(rv, np.full(n, value)).eval()
        assert np.allclose(logp, stats.gamma(2.0, scale=scale / 2).logpdf(value), rtol=1e-10)
    assert np.exp(pm.logp(rv, np.full(n, 1e-6)).eval()).max() < 1e-5       # a half-normal's is about 0.8
    assert np.allclose(pm.draw(rv, draws=20_000, random_seed=3).mean(0), scale, rtol=0.03)


#: What the sampler's log-density kernels leave out (they depend on the data alone): NumPy's full log-likelihood
#: minus PyMC's pointwise kernel, by family.
DATA_ONLY_TERMS = {
    "normal": lambda block, idx: -np.log(idx.scale[1]) - 0.5 * np.log(2 * np.pi),
    "negbin": lambda block, idx: -gammaln(block.y + 1.0),
    "binomial": lambda block, idx: (gammaln(block.trials + 1.0) - gammaln(block.y + 1.0)
                                    - gammaln(block.trials - block.y + 1.0)),
}


def pointwise_logp_at_a_prior_draw(sim, model, table: str, monkeypatch):
    """PyMC's pointwise log-likelihood at a prior draw: ``(model without transforms, the point, logp by term)``.

    ``table`` picks the linear predictors' path: ``"dense"`` (the fixture's model takes it) or
    ``"per observation"`` (the model rebuilt with the dense table switched off).
    """
    design = make_design(sim.panel, sim.spec)
    assert model_module.uses_dense_table(design, sim.panel.n_obs)     # the fixture's model takes the table
    if table == "per observation":
        monkeypatch.setattr(model_module, "DENSE_TABLE_MAX_RATIO", 0)
        model = build_model(sim.panel, sim.spec)
    umodel = remove_value_transforms(model)
    draw = pm.draw([umodel[v.name] for v in umodel.free_RVs], random_seed=3, mode=forward_mode())
    point = {umodel.rvs_to_values[rv].name: val for rv, val in zip(umodel.free_RVs, draw, strict=True)}
    fn = umodel.compile_fn(inputs=umodel.value_vars, outs=umodel.logp(vars=list(umodel.observed_RVs), sum=False),
                           on_unused_input="ignore", mode=PY_RUN)
    return umodel, point, dict(zip([rv.name for rv in umodel.observed_RVs], fn(point), strict=True))


def numpy_predictions_at(sim, model, umodel, point, names: list[str], mode=PY_RUN):
    """``add_predictions`` and the log-likelihood (NumPy) of a one-draw posterior holding ``names`` at ``point``."""
    values = umodel.compile_fn(inputs=umodel.value_vars, outs=umodel.replace_rvs_by_values([umodel[n] for n in names]),
                               on_unused_input="ignore", mode=mode)(point)
    post = xr.Dataset({n: xr.DataArray(v[None, None], dims=("chain", "draw", *model.named_vars_to_dims.get(n, ())))
                       for n, v in zip(names, values, strict=True)},
                      coords={k: np.asarray(v) for k, v in model.coords.items()})
    numpy_model = Model(sim.spec, sim.panel)
    tree = numpy_model.add_predictions(xr.DataTree.from_dict({"posterior": post}), seed=1)
    tree["log_likelihood"] = xr.DataTree(numpy_model.log_likelihood(tree))
    return tree


@pytest.mark.parametrize("table", ["dense", "per observation"])
def test_numpy_log_likelihood_matches_pymc(small, table, monkeypatch):
    """The fit's log-likelihood is computed in NumPy; it must equal PyMC's pointwise logp.

    Up to the terms that depend on the data alone, which the sampler's kernels leave out (normal: the log of the
    indicator's SD and log(2 pi) / 2; negbin: log y!; binomial: log n-choose-k); the ordinal kernel is its full
    log-density. Both ways of computing the linear predictors: the dense (indicator, cell) table, and the
    per-observation gather that sparse designs (item banks) take.
    """
    sim, model = small
    umodel, point, expected = pointwise_logp_at_a_prior_draw(sim, model, table, monkeypatch)
    design = make_design(sim.panel, sim.spec)
    names = ("theta", "loading", "intercept", "country_offset", "cutpoints_ordinal", "rater_shift_ordinal")
    det = umodel.compile_fn(inputs=umodel.value_vars, outs=umodel.replace_rvs_by_values([umodel[n] for n in names]),
                            on_unused_input="ignore", mode=PY_RUN)(point)
    values = dict(zip(("theta", "loading", "intercept", "country_offset", "cutpoints", "rater_shift"), det,
                      strict=True))
    assert np.abs(values["country_offset"][sim.panel.indicators.index("quota")]).max() > 0
    values.update({"sigma": point["sigma_normal"], "inv_dispersion": point["inv_dispersion_negbin"]})
    for block in design.blocks:
        idx = block_index(design, sim.panel, block)
        eta = idx.centre + values["intercept"][idx.indicator] + (
            values["loading"][idx.indicator] * values["theta"][idx.region, idx.period]).sum(-1) + values[
            "country_offset"][idx.indicator, idx.country]
        params = {p: values[p] for p in NUISANCE if f"{p}_{block.key}" in model.named_vars}
        family = sim.spec.indicators[block.names[0]].family
        got = FAMILIES[family].logp(eta, idx.scale, block, params)
        kernel = expected[f"y_{block.key}"] + DATA_ONLY_TERMS.get(family, lambda block, idx: 0.0)(block, idx)
        np.testing.assert_allclose(got, kernel, rtol=1e-6, atol=1e-8, err_msg=block.key)


def test_log_likelihood_and_predictions_in_chunks_of_draws(kyrgyzstan, monkeypatch):
    """Post-processing in chunks of draws: the same log-likelihood, and predictions from the same distribution.

    With the default budget the Kyrgyzstan fit is one chunk, so recomputing from its seed reproduces the
    stored predictions exactly; with chunks of a few draws the log-likelihood is unchanged and the
    predictions agree with the stored ones in mean, per observation, within 5 Monte Carlo standard errors.
    """
    fit_module = importlib.import_module("nexusbayes.model.predict")
    stored = kyrgyzstan.tree
    model = Model(kyrgyzstan.spec, kyrgyzstan.panel)

    def recompute():
        tree = xr.DataTree.from_dict({g: stored[g].to_dataset() for g in ("posterior", "sample_stats")})
        return model.add_predictions(tree, stored.attrs["seed"])

    n_samples = stored["posterior"].sizes["chain"] * stored["posterior"].sizes["draw"]
    sizes = [v.size for v in stored["observed_data"].data_vars.values()]
    assert all(len(fit_module.draw_chunks(n_samples, n)) == 1 for n in sizes)
    xr.testing.assert_identical(recompute()["posterior_predictive"].to_dataset(),
                                stored["posterior_predictive"].to_dataset())
    whole = kyrgyzstan.log_likelihood()     # one chunk

    monkeypatch.setattr(fit_module, "POSTPROCESS_CHUNK_VALUES", 5000)
    assert all(len(fit_module.draw_chunks(n_samples, n)) >= 8 for n in sizes)
    chunked = recompute()
    xr.testing.assert_allclose(model.log_likelihood(chunked), whole, rtol=1e-12)
    for name, old in stored["posterior_predictive"].data_vars.items():
        new = chunked["posterior_predictive"][name]
        assert new.dtype == old.dtype and new.shape == old.shape, name
        assert not np.array_equal(new.values, old.values), name     # other chunks, other random streams
        a, b = new.stack(s=("chain", "draw")), old.stack(s=("chain", "draw"))
        se = np.sqrt((a.var("s") + b.var("s")) / n_samples)
        assert (np.abs(a.mean("s") - b.mean("s")) <= 5 * se).all(), name


def test_zero_sum_map_is_orthonormal_within_countries():
    q = ZeroSum.of(np.array([0, 0, 1, 1, 1, 2])).matrix()
    assert q.shape == (6, 3)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(q[:2].sum(0), 0, atol=1e-12)
    np.testing.assert_allclose(q[2:5].sum(0), 0, atol=1e-12)
    np.testing.assert_allclose(q[5], 0)   # a country with one region has no region deviation


def test_zero_sum_map_keeps_trailing_dimensions():
    rng = np.random.default_rng(0)
    groups = np.array([1, 0, 1, 0, 0])   # units need not be ordered by group
    m = ZeroSum.of(groups)
    z = rng.normal(size=(m.n_contrast, 3, 2))
    out = m(pt.as_tensor(z)).eval(mode=PY_RUN)
    np.testing.assert_allclose(out, np.einsum("uc,cij->uij", m.matrix(), z), atol=1e-12)
    np.testing.assert_allclose(out[groups == 0].sum(0), 0, atol=1e-12)


def test_latent_helpers_equal_cumsum_and_matrix_product():
    from nexusbayes.model.latent import _correlate, _cumulate

    rng = np.random.default_rng(1)
    increments = rng.normal(size=(4, 6, 2))
    np.testing.assert_allclose(_cumulate(pt.as_tensor(increments), 6).eval(mode=PY_RUN), np.cumsum(increments, axis=1),
                               atol=1e-12)
    chol = np.linalg.cholesky([[1.0, 0.6], [0.6, 1.0]])
    np.testing.assert_allclose(_correlate(pt.as_tensor(increments), pt.as_tensor(chol)).eval(mode=PY_RUN),
                               increments @ chol.T,
                               atol=1e-12)


@pytest.mark.parametrize("kind", ["student_t_rw", "ar1"])
def test_other_dynamics_build(kind):
    spec = default_spec(dynamics={"kind": kind})
    sim = simulate(spec, n_regions=3, n_periods=3, seed=1)
    model = build_model(sim.panel, sim.spec)
    assert ("ar_phi" in model.named_vars) == (kind == "ar1")
    point = model.initial_point(random_seed=2)
    assert np.isfinite(model.compile_logp(mode=forward_mode())(point))


def test_single_trait_model_builds():
    spec = Spec(name="one", traits=["willingness"],
                indicators={"quota": Indicator(family="binomial", loads={"willingness": "positive"}),
                            "raid": Indicator(family="bernoulli", loads={"willingness": "free"})})
    sim = simulate(spec, n_regions=4, n_periods=3, seed=2)
    model = build_model(sim.panel, sim.spec)
    assert "trait_chol" not in model.named_vars
    assert model.named_vars_to_dims["theta"] == ("region", "period", "trait")


def test_country_specific_indicators_get_sum_to_zero_offsets(small):
    sim, model = small
    assert model.named_vars_to_dims["country_offset"] == ("indicator", "country")
    assert list(model.coords["indicator_country_specific"]) == ["quota"]
    offsets = pm.draw(model["country_offset"], draws=50, random_seed=2,
                      mode=forward_mode())                               # (draw, indicator, country)
    quota = sim.panel.indicators.index("quota")
    np.testing.assert_allclose(offsets[:, quota].sum(-1), 0.0, atol=1e-12)        # sum to zero over countries
    assert offsets[:, quota].std() > 0.3
    others = np.delete(offsets, quota, axis=1)
    assert not others.any()                                                       # comparable: no offset


def test_single_country_needs_no_offsets():
    spec = with_country_specific(default_spec(), "quota")
    sim = simulate(spec, n_regions=3, n_periods=3, seed=1)
    assert "country_offset" not in build_model(sim.panel, spec).named_vars


def test_several_countries_need_a_comparable_indicator_per_trait():
    spec = with_country_specific(default_spec(), "quota", "abuse", "expert_willingness", "seizures")
    sim = simulate(spec, n_countries=2, n_regions=2, n_periods=3, seed=1)
    with pytest.raises(SpecError, match="no indicator loading on 'willingness' is comparable"):
        build_model(sim.panel, spec)
    one_country = simulate(spec, n_regions=2, n_periods=3, seed=1)
    build_model(one_country.panel, spec)          # within one country comparability does not matter


@pytest.mark.parametrize("n_trait", [1, 2])
def test_ar1_accumulation_matches_the_recursion(n_trait):
    """path_t = sum_s phi^(tau_t - tau_s) increment_s; with one trait pytensor's einsum used to warn."""
    import pytensor.tensor as pt

    from nexusbayes.model.latent import _ar1_accumulate

    rng = np.random.default_rng(0)
    start, steps = rng.normal(size=(3, n_trait)), rng.normal(size=(3, 3, n_trait))
    phi, times = np.array([0.7, 0.4][:n_trait]), np.array([0.0, 1.0, 3.0, 4.0])
    out = _ar1_accumulate(pt.as_tensor(start), pt.as_tensor(steps), pt.as_tensor(phi), times).eval(mode=PY_RUN)
    increments = np.concatenate([start[:, None], steps], axis=1)
    expected = np.stack([sum(phi ** (times[t] - times[s]) * increments[:, s] for s in range(t + 1))
                         for t in range(4)], axis=1)
    np.testing.assert_allclose(out, expected)
