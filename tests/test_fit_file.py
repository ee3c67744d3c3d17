"""Saved fits: what `load` refuses (truncated, tampered, foreign files) and how `save` protects earlier files."""

import hashlib
import json
import re
import shutil
import time

import h5py
import numpy as np
import pytest
import xarray as xr

from nexusbayes import fit_file
from nexusbayes.errors import FitFileError, OutputExistsError
from nexusbayes.files import atomic_write
from nexusbayes.fit import load
from nexusbayes.fit_file import seal
from nexusbayes.model.design import make_design


@pytest.fixture(scope="module")
def saved(kyrgyzstan, tmp_path_factory):
    return kyrgyzstan.save(tmp_path_factory.mktemp("saved") / "fit.nc")


def test_save_refuses_to_overwrite(kyrgyzstan, saved):
    with pytest.raises(OutputExistsError, match="exists; pass overwrite=True"):
        kyrgyzstan.save(saved)


def test_a_loaded_fit_keeps_the_row_labels_of_its_data(kyrgyzstan):
    """Observations are still named by the line of the data file after saving and loading (the obs coords)."""
    assert kyrgyzstan.panel.frame["row"].min() == 2                   # line 1 is the CSV's header
    for block in make_design(kyrgyzstan.panel, kyrgyzstan.spec).blocks:
        np.testing.assert_array_equal(block.labels, kyrgyzstan.tree["observed_data"][block.dim].values)


def test_truncated_file_is_refused(saved, tmp_path):
    bad = tmp_path / "truncated.nc"
    bad.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(FitFileError, match="not a readable netCDF file"):
        load(bad)


def test_foreign_netcdf_is_refused(tmp_path):
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(FitFileError, match="not a nexusbayes fit"):
        load(other)


@pytest.mark.parametrize("rehash", [False, True], ids=["stale digests", "digests recomputed"])
@pytest.mark.parametrize("what", ["spec", "data"])
def test_tampered_file_is_refused(saved, tmp_path, what, rehash):
    """Caught by the file's digests, and by the spec-and-data hash when those were recomputed."""
    bad = tmp_path / f"tampered_{what}.nc"
    shutil.copy(saved, bad)
    with h5py.File(bad, "r+") as f:
        if what == "spec":
            f.attrs["nexusbayes_spec"] = f.attrs["nexusbayes_spec"].replace("draws = 1000", "draws = 999")
        else:
            values = f["fit_data/value"][...]
            values[0] += 1
            f["fit_data/value"][...] = values
    if rehash:
        seal(bad)
        expected = "the stored spec or data do not match their SHA-256"
    else:
        expected = ("the root attribute 'nexusbayes_spec'" if what == "spec" else "the variable fit_data/value") + \
            " changed after the file was saved"
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: {expected}")):
        load(bad)


def test_negated_theta_is_refused(saved, tmp_path):
    """Flipping the traits' sign on disk would flip every type: the posterior's digest catches it."""
    bad = tmp_path / "negated.nc"
    shutil.copy(saved, bad)
    with h5py.File(bad, "r+") as f:
        f["posterior/theta"][...] = -f["posterior/theta"][...]
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: the variable posterior/theta changed after the file "
                                                     "was saved (its SHA-256 does not match)")):
        load(bad)


def test_changed_data_source_is_refused(saved, tmp_path):
    """The data source names a file the report reads; it is covered by the digest like every attribute."""
    bad = tmp_path / "source.nc"
    shutil.copy(saved, bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["nexusbayes_data_source"] = "/etc/passwd"
    with pytest.raises(FitFileError, match=re.escape("the root attribute 'nexusbayes_data_source' changed")):
        load(bad)


def test_a_fit_saves_and_loads_exactly(kyrgyzstan, saved):
    """Every group, variable, coordinate and attribute comes back as it was (the digests are dropped)."""
    again = load(saved)
    assert set(again.tree.children) == set(kyrgyzstan.tree.children)
    for group in kyrgyzstan.tree.children:
        xr.testing.assert_identical(again.tree[group].to_dataset(), kyrgyzstan.tree[group].to_dataset())
    assert again.tree.attrs.keys() == kyrgyzstan.tree.attrs.keys()
    for key, value in kyrgyzstan.tree.attrs.items():
        np.testing.assert_array_equal(again.tree.attrs[key], value)
    assert again.panel.source == kyrgyzstan.panel.source


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def failing_writer(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, failing_writer)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


# ---- files from others, without a real fit: a synthetic posterior saved with Fit.save ---------------------

def save_synthetic(path):
    """Save a small but complete nexusbayes fit whose draws are noise: floats, integers, booleans, text."""
    from nexusbayes.fit import Fit
    from nexusbayes.model.simulate import simulate

    sim = simulate(n_regions=2, n_periods=3, seed=1)
    panel, rng = sim.panel, np.random.default_rng(1)
    draws = {"chain": [0, 1], "draw": np.arange(4)}
    shape = (2, 4, len(panel.regions), len(panel.periods), len(sim.spec.traits))
    post = xr.Dataset({"theta": (("chain", "draw", "region", "period", "trait"), rng.normal(size=shape)),
                       "sd": (("chain", "draw"), rng.gamma(2.0, size=(2, 4)).astype(np.float32))},
                      coords={**draws, "region": panel.regions, "period": panel.periods, "trait": sim.spec.traits})
    stats = xr.Dataset({"diverging": (("chain", "draw"), rng.random((2, 4)) < 0.5),
                        "tree_depth": (("chain", "draw"), rng.integers(1, 6, size=(2, 4)))}, coords=draws)
    predictive = xr.Dataset({"y": (("chain", "draw", "obs"), rng.integers(0, 9, size=(2, 4, 6)).astype(float))},
                            coords=draws)
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats, "posterior_predictive": predictive})
    tree.attrs.update({"seconds_compile": 1.5, "sampler": "nutpie", "draws": 4, "chains": 2, "seed": 1,
                       "orientation_reflected_capability": [0.0, 0.25]})
    return Fit(tree=tree, spec=sim.spec, panel=panel).save(path)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small but complete nexusbayes file (see :func:`save_synthetic`)."""
    return save_synthetic(tmp_path_factory.mktemp("synthetic") / "fit.nc")


def _copy(synthetic, tmp_path, edit, reseal=False):
    """A copy of ``synthetic`` edited in place with h5py (``edit(file)``), its digests recomputed if asked."""
    bad = tmp_path / "edited.nc"
    shutil.copy(synthetic, bad)
    with h5py.File(bad, "r+") as f:
        edit(f)
    if reseal:
        seal(bad)
    return bad


def test_a_synthetic_fit_round_trips_exactly(synthetic):
    again = load(synthetic)
    assert sorted(again.tree.children) == ["posterior", "posterior_predictive", "sample_stats"]
    assert again.tree["sample_stats"]["diverging"].dtype == bool
    assert again.tree["posterior"]["sd"].dtype == np.float32
    assert again.tree.attrs["orientation_reflected_capability"].tolist() == [0.0, 0.25]
    assert fit_file.DIGESTS_ATTR not in again.tree.attrs


@pytest.mark.parametrize("reseal", [False, True], ids=["stale digests", "digests recomputed"])
def test_all_nan_posterior_is_refused(synthetic, tmp_path, reseal):
    def nan(f):
        f["posterior/theta"][...] = np.nan

    bad = _copy(synthetic, tmp_path, nan, reseal)
    expected = ("the posterior holds non-finite draws (theta: 96 NaN, 0 infinite of 96)" if reseal
                else "the variable posterior/theta changed after the file was saved")
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: {expected}")):
        load(bad)


@pytest.mark.parametrize("reseal", [False, True], ids=["stale digests", "digests recomputed"])
@pytest.mark.parametrize("group", ["posterior", "sample_stats", "fit_data"])
def test_missing_group_is_refused(synthetic, tmp_path, group, reseal):
    def drop(f):
        del f[group]

    bad = _copy(synthetic, tmp_path, drop, reseal)
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: the {group!r} group is missing: the file is "
                                                     "incomplete")):
        load(bad)


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("seconds_compile", "abc", "a number of seconds"), ("seconds_sampling", -1.0, "a number of seconds"),
    ("target_accept", 1.5, "a number between 0 and 1"), ("draws", 2.5, "a whole number"), ("sampler", 3, "text"),
    ("orientation_reflected_capability", [2.0], "a list of shares between 0 and 1")])
@pytest.mark.parametrize("reseal", [False, True], ids=["stale digests", "digests recomputed"])
def test_junk_attribute_is_refused(synthetic, tmp_path, key, value, problem, reseal):
    def junk(f):
        f.attrs[key] = value

    bad = _copy(synthetic, tmp_path, junk, reseal)
    expected = f"the root attribute {key!r} = " if reseal else f"the root attribute {key!r} changed"
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: {expected}")) as info:
        load(bad)
    if reseal:
        assert f"is not {problem}" in str(info.value)


def test_posterior_without_traits_is_refused(synthetic, tmp_path):
    def drop(f):
        del f["posterior/theta"]

    bad = _copy(synthetic, tmp_path, drop, reseal=True)
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: the posterior has no draws of the traits")):
        load(bad)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda f: f.attrs.__setitem__("extra", "x"), "the root attribute 'extra' changed"),
    (lambda f: f["posterior"].attrs.__setitem__("extra", 1), "the attributes of group posterior changed"),
    (lambda f: f["posterior/theta"].attrs.__setitem__("units", "m"), "the variable posterior/theta changed"),
    (lambda f: f["posterior"].create_dataset("extra", data=[1.0]), "the variable posterior/extra was added"),
    (lambda f: f.create_group("extra"), "the group extra was added"),
    (lambda f: f.attrs.__setitem__(fit_file.DIGESTS_ATTR, f.attrs[fit_file.DIGESTS_ATTR].replace('"', "'", 1)),
     "the digest list (nexusbayes_digests) changed"),
    (lambda f: f.attrs.__delitem__(fit_file.DIGEST_ATTR), "the digest list (nexusbayes_digests, nexusbayes_digest) "
                                                          "is missing"),
])
def test_every_added_or_changed_part_is_named(synthetic, tmp_path, edit, expected):
    bad = _copy(synthetic, tmp_path, edit)
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: {expected}")):
        load(bad)


def test_external_link_is_refused(synthetic, tmp_path):
    """A link could make the reader open another file: refused before anything is read."""
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3.0)

    def link(f):
        f["posterior/link"] = h5py.ExternalLink(str(other), "/x")

    bad = _copy(synthetic, tmp_path, link, reseal=False)
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: posterior/link is a link to elsewhere")):
        load(bad)


def test_a_fit_of_the_previous_format_is_refused_with_what_to_do(synthetic, tmp_path):
    def old(f):
        f.attrs["nexusbayes_format"] = "nexusbayes-fit/1"
        del f.attrs[fit_file.DIGESTS_ATTR], f.attrs[fit_file.DIGEST_ATTR]

    bad = _copy(synthetic, tmp_path, old)
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: saved by an earlier nexusbayes (format "
                                                     "'nexusbayes-fit/1'), whose files have no digest of each "
                                                     "variable") + ".*refit .*'nexusbayes-fit/2'"):
        load(bad)


def _huge(path, n, **attrs):
    """An HDF5 file of a few kB holding a compressed array of ``n`` zeros (its chunks are never written)."""
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
        f.create_dataset("posterior/huge", shape=(n,), dtype="f8", chunks=(2**20,), compression="gzip")
    assert path.stat().st_size < 100_000
    return path


def test_a_big_foreign_file_is_refused_from_its_attributes_without_reading(tmp_path):
    """250 million compressed zeros take seconds and 2 GB to read: the format attribute is checked first."""
    bad = _huge(tmp_path / "huge.h5", 250_000_000)
    start = time.perf_counter()
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: not a nexusbayes fit (no nexusbayes_format attribute")):
        load(bad)
    assert time.perf_counter() - start < 1.0


def test_arrays_larger_than_the_cap_are_refused_before_reading(synthetic, tmp_path):
    """Even when the digest list declares them (a forged file), arrays past MAX_FIT_BYTES are never read."""
    bad = tmp_path / "forged.nc"
    shutil.copy(synthetic, bad)
    n = fit_file.MAX_FIT_BYTES // 8 + 1
    with h5py.File(bad, "r+") as f:
        f.create_dataset("posterior/huge", shape=(n,), dtype="f8", chunks=(2**20,), compression="gzip")
        stored = json.loads(f.attrs[fit_file.DIGESTS_ATTR])
        stored["variables"]["posterior/huge"] = {"shape": [n], "dtype": "<f8", "dims": [[]], "sha256": "0" * 64}
        text = json.dumps(stored)
        f.attrs[fit_file.DIGESTS_ATTR] = text
        f.attrs[fit_file.DIGEST_ATTR] = hashlib.sha256(text.encode()).hexdigest()
    start = time.perf_counter()
    with pytest.raises(FitFileError, match=re.escape(f"{bad}: its arrays hold 16.0 GiB, more than the 16 GiB")):
        load(bad)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("command", ["summary", "report"])
@pytest.mark.parametrize(("edit", "expected"), [
    (lambda f: f.__delitem__("sample_stats"), "the 'sample_stats' group is missing"),
    (lambda f: f.attrs.__setitem__("seconds_compile", "abc"), "the root attribute 'seconds_compile' = 'abc' is not"),
    (lambda f: f["posterior/theta"].__setitem__(Ellipsis, np.nan), "the posterior holds non-finite draws"),
], ids=["no sample_stats", "junk attribute", "all-NaN posterior"])
def test_bad_fit_files_are_clear_cli_errors(synthetic, tmp_path, capsys, command, edit, expected):
    from nexusbayes.cli import main

    bad = _copy(synthetic, tmp_path, edit, reseal=True)
    assert main([command, str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nexusbayes: error: {bad}: {expected}"), err
    assert "Traceback" not in err
    assert not (tmp_path / "report").exists()


class _Boom:
    """Unpickling this creates a marker file: proof that something called pickle.loads."""

    marker: str = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_bytes(marker) -> bytes:
    import pickle

    _Boom.marker = str(marker)
    return pickle.dumps(_Boom())


def test_pickled_attribute_is_never_unpickled(synthetic, tmp_path):
    bad = tmp_path / "pickled_attr.nc"
    shutil.copy(synthetic, bad)
    marker = tmp_path / "UNPICKLED"
    with h5py.File(bad, "r+") as f:
        f.attrs["evil"] = np.void(_pickle_bytes(marker))
        f["posterior"].attrs["evil"] = np.void(_pickle_bytes(marker))
    try:
        result = load(bad)
    except FitFileError:
        pass
    else:
        assert isinstance(result.tree.attrs["evil"], bytes | np.void | np.ndarray)
    assert not marker.exists()


def test_python_object_variable_is_never_unpickled(synthetic, tmp_path):
    bad = tmp_path / "pickled_var.nc"
    shutil.copy(synthetic, bad)
    marker = tmp_path / "UNPICKLED"
    payload = _pickle_bytes(marker)
    with h5py.File(bad, "r+") as f:
        f["posterior"].create_dataset("evil", data=np.frombuffer(payload, dtype=f"V{len(payload)}"))
    try:
        load(bad)
    except FitFileError as exc:
        assert str(exc).startswith(f"{bad}: ")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../../x", "/etc/cron.d/x", "..\\..\\x", "x\n"])
@pytest.mark.parametrize("rehash", [False, True], ids=["stale hash", "hash recomputed"])
def test_stored_spec_with_an_evil_name_is_refused(synthetic, tmp_path, name, rehash):
    """Caught by the digests; and even when whoever edited the file also recomputed the hashes, the stored spec
    is validated."""
    import tomllib

    import tomli_w

    from nexusbayes.files import content_digest

    bad = tmp_path / "evil_name.nc"
    shutil.copy(synthetic, bad)
    with h5py.File(bad, "r+") as f:
        raw = tomllib.loads(f.attrs["nexusbayes_spec"])
        raw["name"] = name
        text = tomli_w.dumps(raw)
        f.attrs["nexusbayes_spec"] = text
    if rehash:
        with xr.open_datatree(bad, engine="h5netcdf") as opened:
            data = opened["fit_data"].to_dataset().load().to_dataframe()
        data = data.reset_index(drop=True).drop(columns="row_label")
        for col in ("country", "region", "indicator"):
            data[col] = data[col].astype(object)
        with h5py.File(bad, "r+") as f:
            f.attrs["nexusbayes_sha256"] = content_digest(text, data)
        seal(bad)
        expected = r"\(stored spec\): invalid model specification\n  - `name`: use only letters, digits"
    else:
        expected = re.escape(f"{bad}: the root attribute 'nexusbayes_spec' changed after the file was saved")
    with pytest.raises(FitFileError, match=expected):
        load(bad)


def test_summary_of_a_foreign_file_is_a_clear_cli_error(tmp_path, capsys):
    from nexusbayes.cli import main

    other = tmp_path / "other.nc"
    other.write_bytes(b"CDF\x01 this is not what it claims to be")
    assert main(["summary", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nexusbayes: error: {other}: not a readable netCDF file (truncated or corrupt?)")


def test_written_files_and_folders_get_the_umask_s_ordinary_mode(tmp_path):
    """mkstemp/mkdtemp alone make them private (0600/0700): outputs are for reading by others too."""
    import os
    from pathlib import Path

    from nexusbayes.files import temp_dir_beside

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "table.csv", lambda tmp: Path(tmp).write_text("a\n1\n"))
        folder = temp_dir_beside(tmp_path / "run")
    finally:
        os.umask(old)
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755


# ---- what is stored, and how it is read back -------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fit as sampled (not loaded), of the hostile run's structure (its compiled model is shared), and its file."""
    from nexusbayes.fit import fit
    from nexusbayes.model.simulate import simulate

    sim = simulate(n_regions=3, n_periods=4, n_raters=2, seed=5)
    result = fit(sim.spec, sim.panel, draws=60, tune=100, chains=2, seed=3, progress=False, check=False)
    return result, result.save(tmp_path_factory.mktemp("fresh") / "fit.nc")


def test_a_fresh_fit_loads_as_it_was_sampled_with_its_log_likelihood_recomputed(fresh):
    """Draws rounded to single precision after sampling and stored as such, identical after loading; the
    log-likelihood, held by neither, computed from the loaded posterior equals the fresh fit's."""
    result, path = fresh
    assert result.tree["posterior"]["theta"].dtype == np.float32      # held in single precision after sampling
    # the predictive drawn into single precision (continuous) and integers (whole numbers: counts int32)
    predictive = result.tree["posterior_predictive"]
    assert (predictive["y_normal"].dtype, predictive["y_negbin"].dtype) == (np.float32, np.int32)
    assert result.log_likelihood(["y_normal"])["y_normal"].dtype == np.float32
    assert not np.array_equal(result.tree["sample_stats"]["energy"].values.astype(np.float32),
                              result.tree["sample_stats"]["energy"].values)     # the rest is left as it is
    with h5py.File(path, "r") as f:
        assert "log_likelihood" not in f
        for name, dtype in (("posterior/theta", np.float32), ("posterior_predictive/y_normal", np.float32),
                            ("posterior_predictive/y_negbin", np.int32)):
            assert f[name].compression == "gzip" and f[name].dtype == dtype, name
        assert f["sample_stats/energy"].dtype == np.float64      # not exact in single precision: kept double
    again = load(path)
    assert set(again.tree.children) == set(result.tree.children) and "log_likelihood" not in result.tree.children
    for group in again.tree.children:
        xr.testing.assert_identical(again.tree[group].to_dataset(), result.tree[group].to_dataset())
        for name, var in result.tree[group].data_vars.items():     # numbers keep their type (text may not)
            assert var.dtype.kind not in "biuf" or again.tree[group][name].dtype == var.dtype, (group, name)
    xr.testing.assert_identical(again.log_likelihood(), result.log_likelihood())
    assert "log_likelihood" not in again.tree.children


def test_a_fresh_fit_s_loo_term_by_term_equals_loo_of_the_whole_recomputed_log_likelihood(fresh):
    """The report's PSIS-LOO of a fresh fit, its log-likelihood computed one term at a time, equals PSIS-LOO of the
    whole log-likelihood the loaded fit recomputes (widened to double, the same relative efficiency): every
    term's elpd, se and p_loo, every observation's elpd and Pareto k, number for number."""
    import warnings

    import arviz as az

    from nexusbayes.report.checks import _get_r_eff, loo

    result, path = fresh
    assert "log_likelihood" not in result.tree.children
    again = load(path)
    whole = again.log_likelihood()
    assert list(whole.data_vars) == result.likelihood_terms == ["y_normal", "y_negbin", "y_binomial", "y_ordinal"]
    post = again.tree["posterior"]
    reff = _get_r_eff(again.tree, post.sizes["chain"] * post.sizes["draw"])
    got = loo(result)
    terms = got.terms.set_index("term")
    assert list(terms.index) == list(whole.data_vars)
    for name in whole.data_vars:
        tree = xr.DataTree.from_dict({"posterior": post.to_dataset(),
                                      "log_likelihood": whole[[name]].astype(np.float64)})
        with warnings.catch_warnings():    # Pareto k warnings at 120 draws: loo() records them
            warnings.simplefilter("ignore", UserWarning)
            ref = az.loo(tree, var_name=name, pointwise=True, reff=reff)
        assert (terms.loc[name, "elpd_loo"], terms.loc[name, "se"], terms.loc[name, "p_loo"]) == \
            (ref.elpd, ref.se, ref.p), name
        part = got.pointwise[got.pointwise["term"] == name]
        np.testing.assert_array_equal(part["elpd_loo"].to_numpy(), ref.elpd_i.values, err_msg=name)
        np.testing.assert_array_equal(part["pareto_k"].to_numpy(), ref.pareto_k.values, err_msg=name)


def test_a_loaded_fit_reads_its_draws_only_when_used(fresh):
    _, path = fresh
    again = load(path)
    theta = again.tree["posterior"]["theta"].variable
    assert not theta._in_memory and not again.tree["posterior_predictive"]["y_normal"].variable._in_memory
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(theta.values, f["posterior/theta"][...])   # read when used
