"""Scoring draws against known values: the interval, the truth matched by label, the errors (synthetic, no fits)."""

import numpy as np
import pytest
import xarray as xr

from nexusbayes.analysis.recovery import correlation, correlation_by_trait, interval_covers, on_labels
from nexusbayes.analysis.typology import eti

REGIONS = ["C1-R01", "C1-R02", "C2-R01", "C10-R01"]


@pytest.fixture(scope="module")
def synthetic():
    """Draws (chain, draw, region, period, trait) around a truth (region, period, trait), single precision."""
    rng = np.random.default_rng(3)
    truth = xr.DataArray(rng.normal(size=(4, 5, 2)), dims=("region", "period", "trait"),
                         coords={"region": REGIONS, "period": list(range(2001, 2006)),
                                 "trait": ["capability", "willingness"]})
    mean = truth + rng.normal(0.0, 0.5, truth.shape)
    noise = xr.DataArray(rng.normal(0.0, 0.5, (2, 300, *truth.shape)), dims=("chain", "draw", *truth.dims))
    return (mean + noise).transpose("chain", "draw", ...).astype(np.float32), truth


def test_covered_means_inside_the_package_s_equal_tailed_interval(synthetic):
    draws, truth = synthetic
    for prob in (0.5, 0.9):
        lower, upper = eti(draws, prob)
        expected = (lower <= truth) & (truth <= upper)
        covered = interval_covers(draws, truth, prob)
        assert covered.dims == ("region", "period", "trait") and (covered == expected).all()
        assert 0 < int(covered.sum()) < covered.size
    # the ends belong to the interval
    lower, upper = eti(draws, 0.9)
    assert interval_covers(draws, lower).all() and interval_covers(draws, upper).all()


def test_the_truth_is_matched_by_label_not_by_position(synthetic):
    """A truth in another order (the panel sorts 'C10-R01' before 'C2-R01'), with cells the draws lack, scores the
    same as the truth laid out like the draws; by position it would not."""
    draws, truth = synthetic
    wider = xr.concat([truth, truth.isel(region=[0]).assign_coords(region=["C9-R01"])], "region")
    shuffled = wider.isel(region=[3, 4, 1, 0, 2]).transpose("trait", "region", "period")
    assert (interval_covers(draws, shuffled) == interval_covers(draws, truth)).all()
    mean = draws.mean(("chain", "draw"))
    assert correlation(mean, shuffled) == correlation(mean, truth)
    assert correlation_by_trait(mean, shuffled) == correlation_by_trait(mean, truth)
    positional = shuffled.isel(region=slice(0, 4)).transpose(*truth.dims).values
    assert correlation(mean, positional) != correlation(mean, truth)
    assert on_labels(shuffled, mean).dims == mean.dims


def test_a_truth_without_a_fitted_label_or_with_another_dimension_is_refused(synthetic):
    draws, truth = synthetic
    with pytest.raises(ValueError, match=r"no region \['C2-R01'\]"):
        interval_covers(draws, truth.drop_sel(region="C2-R01"))
    with pytest.raises(ValueError, match=r"dimensions \['indicator'\]"):
        correlation(draws.mean(("chain", "draw")), truth.expand_dims(indicator=["a", "b"]))
