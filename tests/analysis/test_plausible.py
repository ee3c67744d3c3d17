"""Plausible values: which draws (exact, on hand-made posteriors), their tables and files, and `nexusbayes export`."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from nexusbayes.analysis.plausible import PlausibleValuesError, pick_draws, plausible_values
from nexusbayes.analysis.typology import classify
from nexusbayes.cli import main
from nexusbayes.constants import TYPES
from nexusbayes.errors import OutputExistsError
from nexusbayes.fit import load
from nexusbayes.model.simulate import simulate


def hand_made(n_chain: int = 3, n_draw: int = 40, seed: int = 0):
    """A posterior of theta only: every value different, so a picked draw is identified by its values."""
    sim = simulate(n_countries=2, n_regions=2, n_periods=3, seed=1)
    panel = sim.panel
    rng = np.random.default_rng(seed)
    shape = (n_chain, n_draw, len(panel.regions), len(panel.periods), 2)
    theta = xr.DataArray(rng.normal(size=shape), dims=("chain", "draw", "region", "period", "trait"),
                         coords={"chain": np.arange(n_chain), "draw": np.arange(n_draw), "region": panel.regions,
                                 "period": panel.periods, "trait": sim.spec.traits})
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"theta": theta})})
    return tree, sim.spec, panel


@pytest.mark.parametrize(("n_chain", "n"), [(4, 10), (3, 3), (2, 7), (1, 5)])
def test_draws_are_distinct_and_spread_evenly_over_the_chains(n_chain, n):
    chain, draw = pick_draws(n_chain, 50, n, seed=3)
    assert len(set(zip(chain.tolist(), draw.tolist(), strict=True))) == n
    counts = np.bincount(chain, minlength=n_chain)
    assert counts.max() - counts.min() <= 1 and counts.sum() == n
    again = pick_draws(n_chain, 50, n, seed=3)
    assert np.array_equal(again[1], draw)
    other = pick_draws(n_chain, 50, n, seed=4)
    assert not np.array_equal(other[1], draw)


@pytest.mark.parametrize("n", [0, -1, 121, 2.5, True, "5"])
def test_an_impossible_number_of_draws_is_refused(n):
    with pytest.raises(PlausibleValuesError, match=r"from 1 to 120 \(the fit's 3 chain\(s\) x 40 draws\)"):
        pick_draws(3, 40, n)


def test_each_plausible_value_is_one_whole_posterior_draw_with_its_types():
    tree, spec, panel = hand_made()
    values = plausible_values(tree, spec, panel, 7, seed=2)
    ds = values.dataset
    assert values.n == 7
    assert ds["theta"].dims == ("pv", "region", "period", "trait")
    theta = tree["posterior"]["theta"]
    for i in range(7):
        c, d = int(ds["chain"][i]), int(ds["draw"][i])
        np.testing.assert_array_equal(ds["theta"].isel(pv=i).values, theta.sel(chain=c, draw=d).values)
        cap, will = (theta.sel(chain=c, draw=d, trait=t).values for t in ("capability", "willingness"))
        np.testing.assert_array_equal(ds["type"].isel(pv=i).values, np.asarray(TYPES)[classify(cap, will, 0, 0)])
    assert list(ds["country"].values) == [panel.country_of[r] for r in panel.regions]


def test_table_is_tidy_and_holds_the_same_values():
    tree, spec, panel = hand_made()
    values = plausible_values(tree, spec, panel, 5, seed=0)
    table = values.table()
    assert list(table.columns) == ["pv", "country", "region", "period", "capability", "willingness", "type"]
    assert len(table) == 5 * len(panel.regions) * len(panel.periods)
    assert not table.duplicated(["pv", "region", "period"]).any()
    row = table.iloc[-1]
    cell = values.dataset.sel(pv=row["pv"], region=row["region"], period=row["period"])
    assert row["capability"] == float(cell["theta"].sel(trait="capability"))
    assert row["type"] == str(cell["type"].values)
    assert row["country"] == panel.country_of[row["region"]]


def test_without_a_typology_there_is_no_type_column():
    tree, spec, panel = hand_made()
    spec = spec.model_copy(update={"traits": ["capability", "reach"]})
    theta = tree["posterior"]["theta"].assign_coords(trait=["capability", "reach"])
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"theta": theta})})
    table = plausible_values(tree, spec, panel, 3).table()
    assert list(table.columns) == ["pv", "country", "region", "period", "capability", "reach"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_written_tables_read_back_and_are_not_overwritten(tmp_path, suffix):
    tree, spec, panel = hand_made()
    values = plausible_values(tree, spec, panel, 4, seed=1)
    path = values.write(tmp_path / f"pv{suffix}")
    back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    expected = values.table()
    pd.testing.assert_frame_equal(back[["pv", "capability", "willingness", "type"]],
                                  expected[["pv", "capability", "willingness", "type"]], check_dtype=False)
    assert list(tmp_path.iterdir()) == [path]               # no temporary file left beside it
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite"):
        plausible_values(tree, spec, panel, 2, seed=9).write(path)
    assert path.read_bytes() == before
    plausible_values(tree, spec, panel, 2, seed=9).write(path, overwrite=True)
    assert path.read_bytes() != before


@pytest.mark.parametrize("name", ["pv.xlsx", "pv", "folder.csv"])
def test_unknown_formats_and_folders_are_refused(tmp_path, name):
    tree, spec, panel = hand_made()
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(PlausibleValuesError, match=r"\.csv or (\*\.)?\.?parquet"):
        plausible_values(tree, spec, panel, 2).write(tmp_path / name)


def test_export_command_writes_parquet_and_refuses_to_overwrite(hostile_run, tmp_path, capsys):
    status, run = hostile_run
    assert status == 0
    out = tmp_path / "pv.parquet"
    assert main(["export", str(run / "fit.nc"), "--draws", "6", "--out", str(out), "--seed", "2"]) == 0
    assert "Wrote 6 plausible values" in capsys.readouterr().out
    table = pd.read_parquet(out)
    fitted = load(run / "fit.nc")
    expected = fitted.plausible_values(6, seed=2).table()
    pd.testing.assert_frame_equal(table, expected)
    assert main(["export", str(run / "fit.nc"), "--draws", "3", "--out", str(out)]) == 2
    assert "exists; pass overwrite=True (or --overwrite)" in capsys.readouterr().err
    assert len(pd.read_parquet(out)) == len(table)
    assert main(["export", str(run / "fit.nc"), "--draws", "3", "--out", str(out), "--overwrite"]) == 0
    assert pd.read_parquet(out)["pv"].max() == 2
    assert main(["export", str(run / "fit.nc"), "--draws", "100000", "--out", str(tmp_path / "x.csv")]) == 2
    assert "from 1 to 120" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_export_help_explains_rubins_rules(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["export", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--draws N" in text and "--overwrite" in text and "Rubin's rules" in text
