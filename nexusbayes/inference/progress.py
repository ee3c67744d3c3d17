"""Progress of a sampler run where no progress bar can be seen (logs, CI, captured output)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class ProgressLines:
    """Progress of a nutpie run as a line every :data:`PROGRESS_SECONDS`, where no progress bar can be shown.

    Without a terminal (a log file, CI, captured output) nutpie's bar prints nothing; this prints the draws
    done, the time elapsed and an estimate of the time left, through ``status`` (default: standard error).
    An instance is nutpie's ``progress_callback``: nutpie calls it with the progress of every chain.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> watch = ProgressLines(print)
    >>> watch([SimpleNamespace(finished_draws=650, total_draws=1300, tuning=False)] * 2)
    >>> watch.line(elapsed=60.0)
    'sampling: 1300 of 2600 draws (50%), 1 min 0 s elapsed, about 1 min 0 s left'
    """

    def __init__(self, status: Callable[[str], None] | None = None):
        self.status = status or (lambda message: print(message, file=sys.stderr, flush=True))
        self.chains: list = []

    def __call__(self, chains) -> None:
        """Keep the latest progress of every chain (nutpie calls this as it samples)."""
        self.chains = list(chains)

    def line(self, elapsed: float) -> str:
        """One line: draws done of all chains (tuning included), elapsed and remaining time."""
        done = sum(c.finished_draws for c in self.chains)
        total = sum(c.total_draws for c in self.chains)
        if not total:
            return f"sampling: starting, {_duration(elapsed)} elapsed"
        left = f"about {_duration(elapsed * (total - done) / done)} left" if done else "time left not known yet"
        tuning = ", tuning" if any(c.tuning for c in self.chains) else ""
        return f"sampling: {done} of {total} draws ({done / total:.0%}{tuning}), {_duration(elapsed)} elapsed, {left}"

    def follow(self, sampler) -> None:
        """Print a line every :data:`PROGRESS_SECONDS` until ``sampler`` (nutpie, non-blocking) has finished."""
        start = last = time.monotonic()
        while not sampler_finished(sampler):
            time.sleep(0.2)
            if time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                self.status(self.line(last - start))


def sampler_finished(sampler) -> bool:
    """Whether a non-blocking nutpie sampler has finished (nutpie 0.16 raises TimeoutError while it runs)."""
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


#: Seconds between two progress lines when no progress bar is shown (see :class:`ProgressLines`).
PROGRESS_SECONDS = 15.0


def shows_a_bar() -> bool:
    """Whether nutpie's progress bar is seen: on a terminal (standard error) or in a notebook."""
    from nutpie.sample import in_notebook

    return sys.stderr.isatty() or in_notebook()


def _duration(seconds: float) -> str:
    """Seconds as ``"42 s"`` or ``"3 min 5 s"``."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
