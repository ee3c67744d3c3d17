"""Issue 24's targets checked against one run of ``python -m benchmarks``: met, not met or not measured, and why.

The targets are medians over at least three seeds of converged fits (max R-hat <= 1.01, bulk and tail ESS
>= 400, no divergences):

==========================================================  ===========================================
target                                                      goal
==========================================================  ===========================================
large synthetic panel, end to end                           <= 300 s (the aim: <= 60 s)
large: peak memory (the case's process)                     <= 3,000 MB
item panel (1 x 190 x 30, 4 + 7 ordinal items), end to end  <= 300 s
the example's command, compiled model cached                <= 15 s
the example's command on a new machine                      <= 60 s
the example's saved fit                                     <= 30 MB, loading lazily
medium: ESS/s against the straightforward model's           >= 10x, ours converged (the issue's run: 110x)
medium: converged                                           the criteria above
==========================================================  ===========================================

Each row holds the measured value (the run's median), the number of runs behind it, the goal, the verdict
(``met``, ``not met``, ``not measured``) and why: a case not in this run, a failed case (a target missed),
a fit not converged, fewer runs than the three the target's median asks. A time over its goal is not met
whatever the fit's convergence.
"""

from __future__ import annotations

import pandas as pd

#: Convergence as the targets define it (the fit's own verdict, ``diagnose``, also checks E-BFMI and tree depth).
RHAT_MAX, ESS_MIN = 1.01, 400
#: Runs whose median a target asks for.
RUNS_MIN = 3
#: ESS/s of ours over the straightforward model's, medium panel, same run (the issue's: 21.4 / 0.19 = 110x).
LEAD_MIN = 10.0


def converged(case: dict) -> tuple[bool | None, str]:
    """Whether a case's fit converged by the targets' criteria, and what failed (None: nothing measured)."""
    rhat, bulk, tail, div = (case.get(k) for k in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences"))
    if rhat is None or bulk is None or tail is None or div is None:
        return None, "no convergence figures"
    failed = [text for bad, text in ((rhat > RHAT_MAX, f"max R-hat {rhat:.4f}"),
                                     (min(bulk, tail) < ESS_MIN, f"min ESS bulk/tail {bulk:.0f}/{tail:.0f}"),
                                     (div > 0, f"{div:g} divergences")) if bad]
    return not failed, "; ".join(failed)


def targets(cases: list[dict]) -> pd.DataFrame:
    """Issue 24's targets in this run: one row each (see the module docstring).

    Columns ``target``, ``measured`` (the case's median; text for the side-by-side rows), ``runs``, ``goal``,
    ``verdict``, ``why`` and ``met`` (True, False, or None when not measured).

    Examples
    --------
    >>> t = targets([{"size": "large", "sampler": "nutpie", "end_to_end_s": 250.0, "max_rhat": 1.004,
    ...               "min_ess_bulk": 900, "min_ess_tail": 1500, "divergences": 0, "repeats": 3}])
    >>> t.set_index("target").loc["large: end to end (s), converged", ["verdict", "runs"]].tolist()
    ['met', 3]
    """
    index = {(c["size"], c["sampler"]): c for c in cases}
    rows = [
        _timed(index, "large", "large: end to end (s), converged", "end_to_end_s", 300, "<= 300 (aim <= 60)"),
        _bounded(index, "large", "large: peak memory (MB), the case's process", "peak_memory_mb", 3000, "<= 3000"),
        _timed(index, "item_panel", "item panel: end to end (s), converged", "end_to_end_s", 300, "<= 300"),
        _timed(index, "small", "example: `nexusbayes fit models/kyrgyzstan.toml`, compiled model cached (s)",
               "command_cached_s", 15, "<= 15"),
        _timed(index, "small", "example: the same command on a new machine (s)", "command_cold_s", 60, "<= 60"),
        _fit_file(index),
        _lead(index),
        _converged_row(index, "medium"),
    ]
    return pd.DataFrame(rows, dtype=object)


def _row(name, measured, runs, goal, met: bool | None, why: str = "") -> dict:
    verdict = {True: "met", False: "not met", None: "not measured"}[met]
    few = f"{runs} run(s), the target's median asks for >= {RUNS_MIN}"
    if met is not None and runs and runs < RUNS_MIN and few not in why:
        why = "; ".join(filter(None, [why, few]))
    if isinstance(measured, float):
        measured = round(measured, 3)
    return {"target": name, "measured": measured, "runs": runs, "goal": goal, "verdict": verdict, "why": why,
            "met": met}


def _case(index, size, sampler="nutpie") -> tuple[dict | None, str]:
    """The case, or None and why it is missing."""
    case = index.get((size, sampler))
    if case is None:
        return None, f"no {size} / {sampler} case in this run"
    return case, ""


def _runs(case: dict) -> int:
    return int(case.get("repeats", 1)) - sum(1 for r in case.get("runs", []) if "error" in r)


def _failed(case: dict) -> str | None:
    """The error of a case none of whose runs succeeded."""
    return case["error"] if "error" in case and not any("error" not in r for r in case.get("runs", [])) else None


def _bounded(index, size, name, key, limit, goal) -> dict:
    case, why = _case(index, size)
    if case is None:
        return _row(name, None, None, goal, None, why)
    if (error := _failed(case)) is not None:
        return _row(name, "failed", 0, goal, False, f"the case failed: {error}")
    value = case.get(key)
    if value is None:
        return _row(name, None, _runs(case), goal, None, f"{key} not recorded")
    return _row(name, value, _runs(case), goal, value <= limit)


def _timed(index, size, name, key, limit, goal) -> dict:
    """A time target: within ``limit`` and the case's fit converged."""
    row = _bounded(index, size, name, key, limit, goal)
    if row["met"] is None or row["measured"] == "failed":
        return row
    ok, why = converged(index[(size, "nutpie")])
    if ok is None:   # over time is not met whatever the convergence
        return _row(name, row["measured"], row["runs"], goal, None if row["met"] else False,
                    "; ".join(filter(None, [row["why"], f"in time, but {why}" if row["met"] else why])))
    if not ok:
        return _row(name, row["measured"], row["runs"], goal, False,
                    "; ".join(filter(None, [row["why"], f"not converged: {why}"])))
    return row


def _fit_file(index) -> dict:
    name, goal = "example: saved fit (MB), loading lazily", "<= 30, lazy"
    row = _bounded(index, "small", name, "fit_file_mb", 30, goal)
    if row["met"] is None or row["measured"] == "failed":
        return row
    case = index[("small", "nutpie")]
    lazy = case.get("fit_file_lazy")
    why = (f"load {case.get('fit_load_s')} s, first read of theta {case.get('fit_first_read_s')} s; "
           f"{'lazy' if lazy else 'NOT lazy: the load read the draws'}")
    return _row(name, row["measured"], row["runs"], goal, bool(row["met"] and lazy), why)


def _lead(index) -> dict:
    name = "medium: ESS/s of sampling, ours / the straightforward model's (same run)"
    goal = f">= {LEAD_MIN:g}x, ours converged (the issue's run: 110x)"
    ours, why = _case(index, "medium")
    theirs, why_theirs = _case(index, "medium", "straightforward")
    if ours is None or theirs is None:
        return _row(name, None, None, goal, None, why or why_theirs)
    if (error := _failed(ours) or _failed(theirs)) is not None:
        return _row(name, None, None, goal, None, f"a case failed: {error}")
    rate, rate_theirs = ours.get("ess_bulk_per_s_sampling"), theirs.get("ess_bulk_per_s_sampling")
    if not rate or not rate_theirs:
        return _row(name, None, None, goal, None, "no ESS/s recorded")
    ok, problem = converged(ours)
    theirs_ok, theirs_problem = converged(theirs)
    why = (f"ours {rate:g} ESS/s, max R-hat {ours.get('max_rhat')}, recovery r {ours.get('recovery_r')}; "
           f"straightforward {rate_theirs:g} ESS/s, max R-hat {theirs.get('max_rhat')}, "
           f"{theirs.get('divergences')} divergences, recovery r {theirs.get('recovery_r')}, "
           f"{'converged' if theirs_ok else 'not converged'}")
    if ok is False:
        why = f"ours not converged: {problem}; {why}"
    met = None if ok is None else bool(ok and rate / rate_theirs >= LEAD_MIN)
    return _row(name, rate / rate_theirs, min(_runs(ours), _runs(theirs)), goal, met, why)


def _converged_row(index, size) -> dict:
    name = f"{size}: converged (max R-hat, bulk and tail ESS, divergences)"
    goal = f"R-hat <= {RHAT_MAX}, ESS >= {ESS_MIN}, 0 divergences"
    case, why = _case(index, size)
    if case is None:
        return _row(name, None, None, goal, None, why)
    if (error := _failed(case)) is not None:
        return _row(name, "failed", 0, goal, False, f"the case failed: {error}")
    ok, why = converged(case)
    measured = None if ok is None else (f"{case['max_rhat']:.4f}, {case['min_ess_bulk']:.0f} / "
                                        f"{case['min_ess_tail']:.0f}, {case['divergences']:g}")
    return _row(name, measured, _runs(case), goal, ok, why)

