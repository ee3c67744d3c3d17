"""The bundled example's measurement problems (issue 23, part 5): the full spec recovers them, the naive one suffers.

``data/kyrgyzstan.csv`` carries the memo's three measurement problems, drawn by ``data/generate_kyrgyzstan.py``
with their true values in ``data/kyrgyzstan_measurement_truth.csv``: non-reports of the staff and trafficking-officer
series where capability is low, quota heaping of seizures and of the quota series, and abuse-report monitoring
that widens after 2005 (an intercept drift). ``models/kyrgyzstan.toml`` models each; ``models/kyrgyzstan_naive.toml``
is the same spec without them. The full fit is the session's ``kyrgyzstan`` fixture (4 x 1,000 draws, the
example's defaults), so the checks on it cost nothing extra; the naive spec's fit is the one slow test here.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nexusbayes.fit import fit

ROOT = Path(__file__).resolve().parents[1]
TRUTH = pd.read_csv(ROOT / "data" / "kyrgyzstan_truth.csv")
MEASURED = pd.read_csv(ROOT / "data" / "kyrgyzstan_measurement_truth.csv")


def _interval(draws, q=(0.05, 0.95)):
    return np.quantile(draws.stack(s=("chain", "draw")).values, q, axis=-1)


def theta_errors(result) -> dict[str, dict[str, float]]:
    """Per trait: RMSE of the posterior mean theta against the truth, its correlation, and 90% coverage."""
    truth = TRUTH.pivot_table(index=["region", "period"], columns="trait", values="value")
    theta = result.tree["posterior"]["theta"]
    out = {}
    for trait in ("capability", "willingness"):
        draws = theta.sel(trait=trait).stack(s=("chain", "draw")).transpose("region", "period", "s").values
        true = np.array([[truth.loc[(r, p), trait] for p in theta["period"].values] for r in theta["region"].values])
        mean = draws.mean(-1)
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=-1)
        out[trait] = {"rmse": float(np.sqrt(((mean - true) ** 2).mean())),
                      "r": float(np.corrcoef(mean.ravel(), true.ravel())[0, 1]),
                      "coverage": float(((true >= lo) & (true <= hi)).mean())}
    return out


def test_the_truth_files_describe_the_planted_problems():
    panel = pd.read_csv(ROOT / "data" / "kyrgyzstan.csv")
    silent = panel[panel["status"] == "not_reported"]
    assert set(silent["indicator"]) == {"staff", "trafficking_officers"} and silent["value"].isna().all()
    seizures = panel[panel["indicator"] == "seizures"]
    assert seizures["seizure_quota"].notna().all() and panel.loc[panel["indicator"] != "seizures",
                                                                  "seizure_quota"].isna().all()
    drift = MEASURED[MEASURED["quantity"] == "drift"].set_index("period")["value"]
    assert abs(drift.mean()) < 1e-5 and (drift.loc[2005:].diff().dropna() > 0).all()
    assert drift.loc[:2004].nunique() == 1          # flat before 2005: the monitoring widens after it


def test_the_full_spec_recovers_the_planted_problems(kyrgyzstan):
    post = kyrgyzstan.tree["posterior"]
    # the drift of abuse reports: the true path inside its 90% band in most years, and its rise since 2004 found
    drift = post["drift"].sel(indicator_drifting="abuse_reports")
    true = MEASURED[MEASURED["quantity"] == "drift"].set_index("period")["value"].loc[drift["period"].values].values
    lo, hi = _interval(drift)
    assert np.mean((true >= lo) & (true <= hi)) >= 0.8, (lo, hi, true)
    rise = drift.sel(period=2016) - drift.sel(period=2004)
    assert float(rise.quantile(0.05)) > 0.5
    # the reporting models: P(reported) rises with capability, the true loading inside the 90% interval
    for name in ("staff", "trafficking_officers"):
        load = post["reporting_loading"].sel(indicator_informative=name, trait="capability")
        lo, hi = _interval(load)
        assert 0 < lo <= 1.5 <= hi, (name, lo, hi)
    # the heaps: each intercept's 90% interval holds the truth (logit 0.15)
    heap = MEASURED[MEASURED["quantity"] == "heap_intercept"].set_index("indicator")["value"]
    for name in ("seizures", "quota"):
        lo, hi = _interval(post["heap_intercept"].sel(indicator_heaped=name))
        assert lo <= heap[name] <= hi, (name, lo, hi, heap[name])


@pytest.mark.slow
def test_the_naive_spec_is_worse_than_the_full_one(kyrgyzstan):
    naive = fit(ROOT / "models" / "kyrgyzstan_naive.toml", chains=2, draws=300, tune=300, progress=False,
                check=False)
    worse, full = theta_errors(naive), theta_errors(kyrgyzstan)
    print({"naive": worse, "full": full})
    for trait in ("capability", "willingness"):
        assert worse[trait]["rmse"] > full[trait]["rmse"] + 0.02, (trait, worse, full)
        assert worse[trait]["r"] < full[trait]["r"], (trait, worse, full)
    # the cell that the ignored problems move most: Osh & Jalal-Abad 2010-2015 is degraded less surely
    cell = ("Osh & Jalal-Abad", "2010-2015")
    p_naive = naive.group_era_summary().set_index(["group", "era"]).loc[cell, "degraded"]
    p_full = kyrgyzstan.group_era_summary().set_index(["group", "era"]).loc[cell, "degraded"]
    print({"degraded, naive": p_naive, "full": p_full})
    assert p_naive < p_full - 0.1, (p_naive, p_full)


def test_the_run_folder_holds_the_measurement_tables(kyrgyzstan_run):
    _, out = kyrgyzstan_run
    reporting = pd.read_csv(out / "reporting_model.csv")
    assert set(reporting["indicator"]) == {"staff", "trafficking_officers"}
    loading = reporting[(reporting["parameter"].str.contains("capability"))].set_index("indicator")
    assert (loading["q05"] > 0).all(), loading            # fewer reports where capability is low
    shares = pd.read_csv(out / "report" / "heap_share.csv")
    assert set(shares["indicator"]) == {"seizures", "quota"} and set(shares["component"]) == {"heap"}


def test_the_generator_reproduces_the_bundled_files(tmp_path, monkeypatch, capsys):
    """The five files are exactly what ``data/generate_kyrgyzstan.py`` writes (it once broke unnoticed)."""
    import importlib.util

    source = ROOT / "data" / "generate_kyrgyzstan.py"
    module_spec = importlib.util.spec_from_file_location("generate_kyrgyzstan", source)
    generator = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(generator)
    names = ("OUT_DATA", "OUT_TRUTH", "OUT_PLAIN", "OUT_NAIVE", "OUT_MEASUREMENT_TRUTH")
    for name in names:
        monkeypatch.setattr(generator, name, tmp_path / getattr(generator, name).name)
    assert generator.main() == 0
    for name in names:
        written = getattr(generator, name)
        assert written.read_bytes() == (ROOT / "data" / written.name).read_bytes(), written.name
    assert "not reported" in capsys.readouterr().out
