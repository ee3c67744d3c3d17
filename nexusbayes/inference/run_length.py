"""Run length by need: sample until the convergence gates pass, or a cap is reached.

With ``until_converged = true`` in ``[sampler]`` (see :class:`~nexusbayes.spec.sections.SamplerSpec`),
:func:`nexusbayes.inference.sample.sample` starts nutpie without blocking for ``draws`` (the cap) draws
per chain and hands the running sampler to :func:`until_converged`. That watches the chains' progress;
each time every chain has passed the next check point (a multiple of ``check_every`` post-warm-up
draws), it copies the trace so far (nutpie's ``inspect``), cuts every chain to exactly that many draws
and judges them against the :class:`Gates` (R-hat and bulk and tail ESS of every posterior element, as
:func:`~nexusbayes.analysis.diagnostics.diagnose` computes them). At the first check that passes it
cancels the sampler and returns that trace; otherwise the sampler runs to the cap.

A check is cheap, then full. The cheap check (``quick``, given by the sampler's caller: see
:func:`arrow_posterior`) reads the free variables' draws straight from nutpie's Arrow trace, without
building a DataTree or copying the deterministics, and judges their rank-normalised R-hat and bulk and
tail ESS (vectorised, :func:`~nexusbayes.analysis.diagnostics.element_diagnostics`); rank statistics do
not change under the elementwise monotone transforms between constrained and unconstrained values, so
these are the unconstrained draws' figures. Only when the cheap check passes is the whole posterior
(deterministics included, oriented) judged. The sampler is paused during every check: its chains would
otherwise take the check's cores and draw past the check point for nothing; it resumes when a check
fails. What a check costs: ``python -m benchmarks.run_length SIZE --check-cost DRAWS``.

A check point is skipped when the last check says it cannot plausibly pass (:func:`next_check`): ESS
grows about in proportion to the draws and R-hat - 1 shrinks about in inverse proportion, so the next
check is at :data:`MARGIN` of the length projected to pass, and at most twice the draws of the last
check. And a check first judges the variables that were worst at the last one
(:meth:`Gates.quick_judge`): while they fail, so does the whole, at the cost of a few variables.

Check points are judged in order, and each on exactly its first ``k`` draws per chain, so which draws are
kept depends on the seed alone, never on how fast the chains ran or how often the progress was looked
at: a check point the polling missed is judged later on the longer trace, cut to its length. nutpie's
draws do not depend on the number of draws asked for, so the kept trace is the one a fixed run of that
length gives with the same seed.

Examples
--------
>>> import numpy as np, xarray as xr
>>> draws = np.random.default_rng(0).normal(size=(4, 300, 2))
>>> post = xr.Dataset({"x": (("chain", "draw", "k"), draws)})
>>> verdict = Gates(ess_min=100).judge(post)
>>> verdict.passed, verdict.draws
(True, 300)
>>> Gates(ess_min=2000).judge(post).passed     # 4 x 300 independent draws: about 1,200
False
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from nexusbayes.analysis.diagnostics import element_diagnostics
from nexusbayes.constants import ESS_MIN, RHAT_MAX
from nexusbayes.inference.progress import PROGRESS_SECONDS, ProgressLines, sampler_finished

#: Seconds between two looks at the chains' progress.
POLL_SECONDS = 0.25
#: Share of the projected length at which the next check is made (below 1: checks a little early rather
#: than late, since the projection is rough).
MARGIN = 0.8
#: What ``stopped_by`` says: the gates passed at a check point before the cap, or the cap was reached.
STOPPED_BY = ("gates", "cap")


@dataclass(frozen=True)
class Verdict:
    """The gates judged on the first ``draws`` draws of every chain.

    ``worst`` names the variables where R-hat is largest and bulk and tail ESS smallest; ``partial`` marks
    a verdict on those variables of the previous check alone (a failure there is a failure of the whole,
    whose worst values can only be worse).
    """

    draws: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    passed: bool
    worst: tuple[str, ...] = ()
    partial: bool = False
    cheap: bool = False

    def text(self) -> str:
        """One line, e.g. ``"300 draws: max R-hat 1.004, min bulk ESS 512, min tail ESS 431 (pass)"``."""
        verdict = "pass" if self.passed else "not yet" + (", judged on the last check's worst variables"
                                                           if self.partial else "")
        what = ", free variables" if self.cheap else ""
        return (f"{self.draws} draws{what}: max R-hat {self.max_rhat:.4g}, min bulk ESS {self.min_ess_bulk:.0f}, "
                f"min tail ESS {self.min_ess_tail:.0f} ({verdict})")


@dataclass(frozen=True)
class Gates:
    """What ``until_converged`` waits for: R-hat at most ``rhat_max`` and bulk and tail ESS at least ``ess_min``.

    The defaults are the thresholds of the fit's diagnostics (:data:`~nexusbayes.constants.RHAT_MAX`,
    :data:`~nexusbayes.constants.ESS_MIN`); other values are for tests and experiments.
    """

    rhat_max: float = RHAT_MAX
    ess_min: float = ESS_MIN

    def judge(self, posterior: xr.Dataset) -> Verdict:
        """The worst R-hat and ESS over every element of every floating-point variable of ``posterior``.

        Elements that never vary have no R-hat and are skipped, as in the diagnostics; a posterior where no
        R-hat can be computed (one chain) fails.
        """
        stats = element_diagnostics(posterior)
        found = []
        for key, pick in (("rhat", np.nanmax), ("ess_bulk", np.nanmin), ("ess_tail", np.nanmin)):
            per_variable = {v: float(pick(values)) for v in stats[key].data_vars
                            if np.isfinite(values := stats[key][v].values).any()}
            name = (max if pick is np.nanmax else min)(per_variable, key=per_variable.get, default=None)
            found.append((per_variable[name], name) if name else (float("nan"), None))
        (rhat, r_at), (bulk, b_at), (tail, t_at) = found
        passed = bool(rhat <= self.rhat_max and bulk >= self.ess_min and tail >= self.ess_min)
        worst = tuple(dict.fromkeys(n for n in (r_at, b_at, t_at) if n))
        return Verdict(int(posterior.sizes["draw"]), rhat, bulk, tail, passed, worst)

    def quick_judge(self, posterior: xr.Dataset, suspects: tuple[str, ...]) -> Verdict:
        """Judge the ``suspects`` (the last check's worst variables) first, and everything only if they pass.

        The gates are a maximum and minima over every element, so a failure among the suspects is a failure
        of the whole; a check far from passing then costs a few variables' diagnostics, not all of them.
        """
        suspects = tuple(v for v in suspects if v in posterior.data_vars)
        if suspects and len(suspects) < len(posterior.data_vars):
            verdict = self.judge(posterior[list(suspects)])
            if not verdict.passed:
                return replace(verdict, partial=True)
        return self.judge(posterior)


@dataclass
class Outcome:
    """How a run by need ended: the trace kept, its draws per chain, why it stopped and every check made."""

    tree: xr.DataTree
    draws: int
    stopped_by: str
    checks: list[Verdict] = field(default_factory=list)
    seconds_checks: float = 0.0
    seconds_full: float = 0.0


def describe(attrs) -> str | None:
    """How long a fit's chains ran and why they stopped, from its attrs; None for a fixed-length run.

    >>> describe({"draws": 300, "draws_cap": 4000, "check_every": 100, "stopped_by": "gates"})
    'by need: 300 draws per chain kept, where R-hat and ESS first passed (checked every 100, cap 4000)'
    >>> describe({"draws": 4000, "draws_cap": 4000, "check_every": 100, "stopped_by": "cap"})
    'by need: stopped at the cap of 4000 draws per chain, R-hat or ESS not passed at any check every 100 before it'
    >>> describe({"draws": 1000}) is None
    True
    """
    stopped_by = attrs.get("stopped_by")
    if stopped_by is None:
        return None
    draws, cap, every = (int(attrs.get(k, -1)) for k in ("draws", "draws_cap", "check_every"))
    if str(stopped_by) == "gates":
        return (f"by need: {draws} draws per chain kept, where R-hat and ESS first passed (checked every {every}, "
                f"cap {cap})")
    return f"by need: stopped at the cap of {cap} draws per chain, R-hat or ESS not passed at any check every " \
           f"{every} before it"


def check_points(cap: int, every: int) -> list[int]:
    """The draws per chain at which the gates are judged: multiples of ``every`` below the ``cap``.

    >>> check_points(1000, 300)
    [300, 600, 900]
    """
    return list(range(every, cap, every))


def until_converged(sampler, cap: int, every: int, tune: int, watch: ProgressLines, *, gates: Gates | None = None,
                    prepare: Callable[[xr.DataTree], xr.DataTree] = lambda tree: tree,
                    quick: Callable[[int, xr.DataTree | None], xr.Dataset | None] | None = None,
                    status: Callable[[str], None] | None = None, show_progress: bool = False,
                    poll: float = POLL_SECONDS) -> Outcome:
    """Follow a running nutpie sampler (``blocking=False``, ``draws=cap``) until the gates pass or the cap.

    Parameters
    ----------
    sampler : nutpie's background sampler
        Sampling ``cap`` draws per chain after ``tune`` warm-up draws, with ``watch`` as its
        ``progress_callback``.
    cap, every, tune : int
        The most draws per chain, the draws between two checks, the warm-up draws per chain.
    watch : ProgressLines
        Keeps the chains' latest progress; with ``show_progress`` also prints a line every
        :data:`~nexusbayes.inference.progress.PROGRESS_SECONDS` through its ``status``.
    gates : Gates, optional
        Default :class:`Gates` (the diagnostics' thresholds).
    prepare : callable
        Applied to each trace before judging it (the model's orientation of the traits, so the gates
        see the draws the fit will hold).
    quick : callable, optional
        ``quick(k, trace)``: the cheap check's draws, the first ``k`` draws of every chain (a Dataset with
        ``chain`` and ``draw`` dims), from the running sampler (``trace`` None; None while it does not hold
        them yet) or from the finished ``trace``. Without it every check is full. Check points are judged
        the same way (cheap, then full) whether the polling reached them or the chains finished first, so
        the draws kept do not depend on timing.
    status : callable, optional
        Called with one line per check.

    Returns
    -------
    Outcome
        Its ``tree`` is nutpie's trace (not prepared), every chain with exactly ``draws`` draws.

    The sampler is cancelled when the gates pass; an exception (Ctrl-C) propagates and the caller cancels.
    """
    gates, say = gates or Gates(), status or (lambda message: None)
    pending, checks, spent = check_points(cap, every), [], [0.0, 0.0]
    suspects: dict[bool, tuple[str, ...]] = {True: (), False: ()}     # the last worst variables, cheap and full

    def judged(verdict: Verdict) -> bool:
        checks.append(verdict)
        say(f"convergence check at {verdict.text()}")
        suspects[verdict.cheap] = verdict.worst or suspects[verdict.cheap]
        if not verdict.passed:
            target = next_check(verdict, gates)
            pending[:] = [point for point in pending if point >= target]
        return verdict.passed

    def cheap_passes(point: int, finished: xr.DataTree | None) -> bool | None:
        """The cheap check at ``point``: passed, failed, or None when the trace does not hold its draws yet."""
        with _checking(sampler, finished is None, spent, full=False):
            draws = quick(point, finished)
            if draws is None:
                return None
            return judged(replace(gates.quick_judge(draws, suspects[True]), cheap=True))

    def first_passing(get_trace: Callable[[], xr.DataTree], available: int,
                      finished: xr.DataTree | None = None) -> xr.DataTree | None:
        trace = finished
        while pending and pending[0] <= available:
            point = pending[0]
            if quick is not None:
                verdict = cheap_passes(point, finished)
                if verdict is None:
                    return None         # the progress ran ahead of the trace: at the next look
                if verdict is False:
                    continue            # judged() moved the pending points on
            with _checking(sampler, finished is None, spent, full=True):
                trace = get_trace() if trace is None else trace
                if common_draws(trace) < point:
                    return None
                pending.pop(0)
                part = truncate(trace, point)
                if judged(gates.quick_judge(prepare(part)["posterior"].to_dataset(), suspects[False])):
                    return part
        return None

    start = last_line = time.monotonic()
    while not sampler_finished(sampler):
        time.sleep(poll)
        if show_progress and time.monotonic() - last_line >= PROGRESS_SECONDS:
            last_line = time.monotonic()
            watch.status(watch.line(last_line - start))
        if pending and (done := _progress_draws(watch.chains, tune)) >= pending[0]:
            found = first_passing(sampler.inspect, done)
            if found is not None:
                sampler.cancel()
                return Outcome(found, checks[-1].draws, "gates", checks, *spent)
    trace = sampler.wait()
    found = first_passing(lambda: trace, cap, trace)    # check points the polling missed before the chains finished
    if found is not None:
        return Outcome(found, checks[-1].draws, "gates", checks, *spent)
    return Outcome(trace, cap, "cap", checks, *spent)


@contextmanager
def _checking(sampler, running: bool, spent: list[float], full: bool) -> Iterator[None]:
    """A check's block: the chains of a ``running`` sampler paused during it, its seconds added to ``spent``.

    Paused, the chains neither take the check's cores nor draw past its point (draws made while a full check
    runs would be waste); a sampler without ``pause`` (tests' stand-ins) runs on. ``spent[0]`` counts every
    check's seconds, ``spent[1]`` the ``full`` checks' only.
    """
    began = time.perf_counter()
    paused = running and hasattr(sampler, "pause")
    if paused:
        sampler.pause()
    try:
        yield
    finally:
        if paused:
            sampler.resume()
        seconds = time.perf_counter() - began
        spent[0] += seconds
        if full:
            spent[1] += seconds


def raw_sampler(sampler):
    """The raw sampler behind nutpie's background ``sampler`` (private ``_sampler``), or None when it has none.

    Its ``inspect()`` copies the trace so far as Arrow batches (:func:`arrow_posterior` reads them); samplers
    that are not nutpie's, and tests' stand-ins, have none.
    """
    raw = getattr(sampler, "_sampler", None)
    return raw if hasattr(raw, "inspect") else None


def next_check(verdict: Verdict, gates: Gates) -> float:
    """The fewest draws per chain at which a check could plausibly pass, after the failed check ``verdict``.

    ESS grows about in proportion to the draws, and R-hat - 1 shrinks about in inverse proportion; the
    projected length, times :data:`MARGIN`, and at most twice the draws checked. Without a projection (a
    NaN), the next check point.

    >>> next_check(Verdict(100, 1.063, 125.0, 84.0, False), Gates())      # R-hat: 6.3 x 0.8 -> at most 2x
    200.0
    >>> next_check(Verdict(400, 1.016, 526.0, 787.0, False), Gates())     # R-hat: 1.6 x 0.8 x 400
    512.0
    """
    worst = [verdict.max_rhat, verdict.min_ess_bulk, verdict.min_ess_tail]
    if not all(np.isfinite(worst)) or min(worst[1:]) <= 0 or gates.rhat_max <= 1:
        return float(verdict.draws)
    factor = max((verdict.max_rhat - 1) / (gates.rhat_max - 1), gates.ess_min / min(worst[1:]))
    return round(verdict.draws * min(max(factor * MARGIN, 1.0), 2.0), 6)


def _progress_draws(chains: list, tune: int) -> int:
    """Post-warm-up draws every chain has finished, from nutpie's progress (0 before it reports)."""
    if not chains:
        return 0
    return max(min(c.finished_draws for c in chains) - tune, 0)


def common_draws(trace: xr.DataTree) -> int:
    """Post-warm-up draws every chain of a (possibly unfinished) nutpie trace holds.

    nutpie pads the chains that are behind with NaN; every real draw has a finite log density.

    >>> stats = xr.Dataset({"logp": (("chain", "draw"), [[-1.0, -2.0, -3.0], [-1.5, np.nan, np.nan]])})
    >>> common_draws(xr.DataTree.from_dict({"sample_stats": stats}))
    1
    """
    logp = trace["sample_stats"]["logp"].transpose("chain", "draw").values
    return int(np.isfinite(logp).sum(axis=1).min()) if logp.size else 0


def truncate(trace: xr.DataTree, draws: int) -> xr.DataTree:
    """The trace with every chain cut to its first ``draws`` post-warm-up draws (warm-up groups untouched)."""
    groups = {}
    for name, node in trace.children.items():
        data = node.to_dataset()
        if not name.startswith("warmup") and "draw" in data.dims:
            data = data.isel(draw=slice(0, draws))
        groups[name] = data
    out = xr.DataTree.from_dict(groups)
    out.attrs.update(trace.attrs)
    return out


def arrow_posterior(sampler, draws: int, names: list[str], coords: dict | None = None) -> xr.Dataset | None:
    """The first ``draws`` post-warm-up draws of every chain of the variables ``names``, from nutpie's Arrow trace.

    What the cheap check reads: nutpie's raw copy of the trace so far (its background sampler's
    ``_sampler.inspect()``, the Arrow batches its own ``inspect`` turns into a DataTree), only the columns
    asked for and only the rows wanted, as a Dataset with nutpie's dims (and ``coords`` for them where
    given). None when a chain has fewer draws, or the sampler is not nutpie's (no raw trace).
    """
    raw = raw_sampler(sampler)
    if raw is None:
        return None
    import pyarrow

    draw_batches, stat_batches = raw.inspect().get_arrow_trace()
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    dims: dict[str, list[str]] = {}
    for batch, stats in zip(draw_batches, stat_batches, strict=True):
        tuning = int(pyarrow.array(stats.column("tuning")).to_numpy(zero_copy_only=False).sum())
        if batch.num_rows - tuning < draws:
            return None
        for name in names:
            column = batch.column(name)       # nutpie's own Arrow arrays: through pyarrow, as nutpie reads them
            meta = column.field.metadata or {}
            shape = [int(n) for n in meta.get(b"shape", b"").decode().split(",") if n]
            dims[name] = [d for d in meta.get(b"dims", b"").decode().split(",") if d]
            part = pyarrow.array(column).slice(tuning, draws)
            flat = part.flatten() if hasattr(part, "flatten") else part
            columns[name].append(np.asarray(flat.to_numpy(zero_copy_only=False), dtype=float).reshape(draws, *shape))
    data = {}
    for name, chains in columns.items():
        named = dims[name] if len(dims[name]) == chains[0].ndim - 1 else [f"{name}_dim_{i}"
                                                                         for i in range(chains[0].ndim - 1)]
        data[name] = (("chain", "draw", *named), np.stack(chains))
    used = {d for entry in data.values() for d in entry[0]}
    return xr.Dataset(data, coords={d: values for d, values in (coords or {}).items() if d in used})
