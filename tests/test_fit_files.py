"""Saved fits: what `load` refuses (truncated, tampered, foreign files) and how `save` protects earlier files."""

import shutil

import h5py
import numpy as np
import pytest
import xarray as xr

from nexusbayes.errors import FitFileError, OutputExistsError
from nexusbayes.fit import atomic_write, load


@pytest.fixture(scope="module")
def saved(kyrgyzstan, tmp_path_factory):
    return kyrgyzstan.save(tmp_path_factory.mktemp("saved") / "fit.nc")


def test_save_refuses_to_overwrite(kyrgyzstan, saved):
    with pytest.raises(OutputExistsError, match="exists; pass overwrite=True"):
        kyrgyzstan.save(saved)


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
