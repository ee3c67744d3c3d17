"""Saved fits: what `load` refuses (truncated, tampered, foreign files) and how `save` protects earlier files."""

import shutil

import h5py
import numpy as np
import pytest
import xarray as xr

from nexusbayes.errors import FitFileError, OutputExistsError
from nexusbayes.fit import atomic_write, load
from nexusbayes.model import make_design


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


@pytest.mark.parametrize("what", ["spec", "data"])
def test_tampered_file_is_refused(saved, tmp_path, what):
    bad = tmp_path / f"tampered_{what}.nc"
    shutil.copy(saved, bad)
    with h5py.File(bad, "r+") as f:
        if what == "spec":
            f.attrs["nexusbayes_spec"] = f.attrs["nexusbayes_spec"].replace("draws = 1000", "draws = 999")
        else:
            values = f["fit_data/value"][...]
            values[0] += 1
            f["fit_data/value"][...] = values
    with pytest.raises(FitFileError, match="do not match their SHA-256"):
        load(bad)


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

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small but complete nexusbayes file (the posterior is noise; load() does not look at it)."""
    from nexusbayes.fit import Fit
    from nexusbayes.simulate import simulate

    sim = simulate(n_regions=2, n_periods=2, seed=1)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"mu": (("chain", "draw"), np.zeros((1, 5)))}, coords={"chain": [0], "draw": np.arange(5)})})
    return Fit(tree=tree, spec=sim.spec, panel=sim.panel).save(tmp_path_factory.mktemp("synthetic") / "fit.nc")


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
    """Even when whoever edited the file also recomputed the hash, the stored spec is validated."""
    import tomllib

    import tomli_w

    from nexusbayes.fit import content_digest

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
        data = data.reset_index(drop=True)
        for col in ("country", "region", "indicator"):
            data[col] = data[col].astype(object)
        with h5py.File(bad, "r+") as f:
            f.attrs["nexusbayes_sha256"] = content_digest(text, data)
    with pytest.raises(FitFileError, match=r"\(stored spec\): invalid model specification\n  - `name`: use only "
                                           r"letters, digits"):
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

    from nexusbayes.fit import temp_dir_beside

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "table.csv", lambda tmp: Path(tmp).write_text("a\n1\n"))
        folder = temp_dir_beside(tmp_path / "run")
    finally:
        os.umask(old)
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755
