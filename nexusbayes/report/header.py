"""The report's header: run facts (spec, data digests, sampler, times), library versions, rows per indicator."""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from nexusbayes.constants import CI_PROB
from nexusbayes.files import content_digest
from nexusbayes.fit import Fit
from nexusbayes.inference import compile_cache
from nexusbayes.inference.run_length import describe

LIBRARIES = ("nexusbayes", "pymc", "pytensor", "nutpie", "arviz", "arviz-base", "arviz-stats", "arviz-plots",
             "numpy", "xarray", "pandas", "matplotlib", "jinja2")


def library_version(lib: str) -> str:
    """The installed version of ``lib``, or "not installed"."""
    try:
        return version(lib)
    except PackageNotFoundError:
        return "not installed"


def run_facts(fit: Fit) -> tuple[dict[str, str], pd.DataFrame, pd.DataFrame]:
    """Run facts (key -> text), versions, and row counts per indicator."""
    attrs = fit.tree.attrs
    panel = fit.panel
    spec_text = attrs.get("nexusbayes_spec") or fit.spec.to_toml()
    digest = attrs.get("nexusbayes_sha256") or content_digest(spec_text, panel.data_table())
    source = str(panel.source)     # a loaded fit's: the data-source attribute, covered by the file's digest
    facts = {
        "spec name": fit.spec.name,
        "data source": source,
        **({"data given (in place of the spec's)": attrs["data_given"]} if "data_given" in attrs else {}),
        "SHA-256 of spec and data (as fitted)": digest,
        **file_digests(source),
        "observations": str(panel.n_obs),
        "countries / regions / periods / indicators": (f"{len(panel.countries)} / {len(panel.regions)} / "
                                                       f"{len(panel.periods)} / {len(panel.indicators)}"),
        "region-periods without observations": str(len(panel.empty_cells)),
        "sampler": str(attrs.get("sampler", "unknown")),
        "chains x draws (tune)": f"{attrs.get('chains')} x {attrs.get('draws')} ({attrs.get('tune')})",
        **({"run length": run_length} if (run_length := describe(attrs)) else {}),
        "target_accept": str(attrs.get("target_accept")),
        "mass-matrix adaptation": str(attrs.get("adaptation", "unknown")),
        "seed": str(attrs.get("seed")),
        "compile time (s)": f"{float(attrs.get('seconds_compile', np.nan)):.1f}",
        "compiled model": compile_cache.SOURCES.get(str(attrs.get("compile_source")), "not recorded")
        + (" (the slowest Dask worker's)" if "scheduler" in attrs else ""),
        **({"chains run": f"as tasks on the Dask cluster at {attrs['scheduler']}, each with its own seed "
                          f"({', '.join(map(str, np.atleast_1d(attrs.get('chain_seeds', []))))})"}
           if "scheduler" in attrs else {}),
        "sampling time (s)": f"{float(attrs.get('seconds_sampling', np.nan)):.1f}",
        "post-processing time (s)": f"{float(attrs.get('seconds_postprocess', np.nan)):.1f}",
        "credible intervals": f"{CI_PROB:.0%} equal-tailed",
        **({"update (no full refit)": f"added {attrs.get('update_added_periods')}; {attrs['update_held']}"}
           if "update_held" in attrs else {}),
        **({"diagnostics that apply": attrs["update_diagnostics"]} if "update_diagnostics" in attrs else {}),
    }
    fitted = {lib.removeprefix("version_"): str(v) for lib, v in attrs.items() if lib.startswith("version_")}
    fitted["nexusbayes"] = str(attrs.get("nexusbayes_version", library_version("nexusbayes")))   # unsaved: this one
    rows = [{"library": lib, "at fit": fitted.get(lib, "(not recorded)"), "at report": library_version(lib)}
            for lib in LIBRARIES]
    versions = pd.DataFrame(rows)
    frame = panel.frame
    counts = frame.groupby("indicator", sort=False).agg(observations=("value", "size"),
                                                          regions=("region", "nunique"),
                                                          periods=("period", "nunique"))
    counts = counts.reindex(panel.indicators).reset_index()
    counts.insert(1, "family", [fit.spec.indicators[n].family for n in counts["indicator"]])
    counts.insert(2, "label", [fit.spec.indicators[n].label or "" for n in counts["indicator"]])
    return facts, versions, counts


def file_digests(source: str) -> dict[str, str]:
    """SHA-256 of each data file as it is now, one fact per file (a fit on several files joins them with " + ").

    A file that cannot be found is named as such; a table given as a DataFrame has no file.
    """
    files = [source] if Path(source).is_file() else source.split(" + ")
    if len(files) == 1:
        return {"SHA-256 of the data file now": file_digest(files[0])}
    return {f"SHA-256 of data file {k} now ({Path(name).name})": file_digest(name)
            for k, name in enumerate(files, start=1)}


def file_digest(name: str) -> str:
    """SHA-256 of one data file as it is now, or why there is none."""
    path = Path(name)
    if name.startswith("<"):
        return f"(no file: the data were given as {name})"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else f"(file not found: {name})"
