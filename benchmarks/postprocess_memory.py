"""Peak memory of a fit's post-processing (issue 24's large case) and of a real fit, by phase.

``python -m benchmarks.postprocess_memory large`` (the harness of HISTORY.md's 08:37 and 11:27 entries): the
large case's post-processing alone, on 4 x 1,000 synthetic draws, not NUTS's: unconstrained points at
0.3 x standard normal, expanded with the lean compiled model's own expand callback and rounded to single
precision as a lean trace is (:mod:`nexusbayes.inference.lean_trace`), so the posterior has the sizes and
dtypes of a real fit; then ``add_predictions`` and the prior predictive, as :func:`~nexusbayes.inference.sample.
sample` runs them. ``python -m benchmarks.postprocess_memory medium``: a real fit of the medium case (its
spec's sampler settings and seed), the diagnosis after, the fit saved, the report's PSIS-LOO. Both print one
JSON line: the peak resident memory (MB, sampled every 20 ms) by phase, the groups' sizes and the process CPU
seconds.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

#: How often the resident memory is sampled (seconds).
EVERY = 0.02


class Peaks:
    """The process's resident memory sampled in a thread; the peak of each phase named by :meth:`phase`."""

    def __init__(self):
        self.current, self.peaks, self._stop = "start", {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def phase(self, name: str) -> None:
        """From now on, samples count towards ``name``."""
        self._sample()
        self.current = name

    def _sample(self) -> None:
        with open("/proc/self/status") as status:
            rss = int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024
        self.peaks[self.current] = max(self.peaks.get(self.current, 0.0), rss)

    def _run(self) -> None:
        while not self._stop.wait(EVERY):
            self._sample()

    def stop(self) -> dict[str, float]:
        """Stop sampling; the peak (MB) of each phase."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return {k: round(v, 1) for k, v in self.peaks.items()}


def _mb(dataset) -> float:
    return round(dataset.nbytes / 2**20, 1)


def large(peaks: Peaks, chains: int = 4, draws: int = 1000, seed: int = 1) -> dict:
    """The large case's post-processing on synthetic draws (module docstring)."""
    import arviz
    import pandas as pd
    import xarray as xr

    from benchmarks.cases import make_case
    from nexusbayes.inference import compile_cache
    from nexusbayes.inference.lean_trace import _expand, layout
    from nexusbayes.model.build import Model

    case = make_case("large")
    model = Model(case.spec, case.panel)
    peaks.phase("compile")
    compiled, source = compile_cache.compile_nutpie(model.pymc, case.panel, case.spec, lean=True)
    peaks.phase("draws")
    full = layout(compiled)
    n_expanded = full[-1][1].stop
    dropped = set(compiled.reparameterized_names or [])
    variables = [entry for entry in full if entry[0] not in dropped]
    posterior = {name: np.empty((chains, draws, *shape), dtype=np.float32) for name, _, shape in variables}
    expand, rng = _expand(compiled, n_expanded), np.random.default_rng(seed)
    for chain in range(chains):
        values = np.empty((draws, n_expanded), dtype=np.float32)
        for i in range(draws):
            values[i] = expand(0.3 * rng.standard_normal(compiled.n_dim))
        for name, part, shape in variables:
            posterior[name][chain] = values[:, part].reshape(draws, *shape)
        del values
    coords = {name: pd.Index(values) for name, values in compiled.coords.items()}
    dims = {name: list(d) for name, d in (compiled.dims or {}).items() if name in posterior}
    tree = xr.DataTree.from_dict({"posterior": arviz.from_dict({"posterior": posterior}, dims=dims,
                                                               coords=coords)["posterior"].to_dataset()})
    del posterior
    before = peaks.peaks.get("draws", 0.0)
    peaks.phase("predictions")
    cpu = time.process_time()
    tree = model.add_predictions(tree, seed)
    cpu = time.process_time() - cpu
    peaks.phase("prior predictive")
    tree["prior_predictive"] = xr.DataTree(model.prior_predictive(seed=seed))
    return {"case": "large (synthetic draws)", "compile_source": source, "peak_before_predictions_mb": before,
            "predictions_cpu_s": round(cpu, 1),
            "groups_mb": {g: _mb(tree[g].to_dataset()) for g in tree.children}}


def medium(peaks: Peaks) -> dict:
    """A real fit of the medium case with its diagnosis, saved (module docstring)."""
    from benchmarks.cases import make_case
    from nexusbayes.analysis.diagnostics import diagnose
    from nexusbayes.fit import fit
    from nexusbayes.report.checks import loo

    case = make_case("medium")
    peaks.phase("fit")
    result = fit(case.spec, case.panel, progress=False, check=False)
    peaks.phase("diagnose")
    diagnose(result.tree)
    peaks.phase("save")
    with tempfile.TemporaryDirectory() as tmp:
        result.save(Path(tmp) / "fit.nc")
    peaks.phase("report's LOO")
    cpu = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        terms = loo(result).terms
    cpu = time.process_time() - cpu
    return {"case": "medium (real fit)", "compile_source": result.tree.attrs["compile_source"],
            "seconds": result.timings, "report_loo_cpu_s": round(cpu, 1),
            "loo_terms": terms.to_dict("records"),
            "groups_mb": {g: _mb(result.tree[g].to_dataset()) for g in result.tree.children}}


def main(argv: list[str] | None = None) -> None:
    """Run ``large`` or ``medium`` and print its record as one JSON line."""
    (which,) = argv if argv is not None else sys.argv[1:]
    peaks, cpu, wall = Peaks(), time.process_time(), time.perf_counter()
    record = {"large": large, "medium": medium}[which](peaks)
    record.update({"peak_mb_by_phase": peaks.stop(), "cpu_s": round(time.process_time() - cpu, 1),
                   "wall_s": round(time.perf_counter() - wall, 1)})
    print(json.dumps(record))


if __name__ == "__main__":
    main()
