"""Signals received while a command runs, honoured at safe points even when an exception was swallowed.

The command line's handler for SIGINT and SIGTERM calls :func:`record`, then raises
:class:`~nexusbayes.errors.Interrupted` unless a :func:`deferred` section is running. A raised
exception can be lost: a signal that lands in a C callback (llvmlite's, while a model compiles)
has its exception printed and ignored. So the long steps call :func:`check` at their safe points
(after compiling, after sampling, before writing, before the final swap of an output folder),
which raises for any signal recorded so far.

:func:`written` keeps the output folders replaced so far, so the message printed after an
interrupt can say truthfully what was and was not written.

Examples
--------
>>> reset()
>>> check()            # nothing received: returns
>>> record(2)          # what the handler does; check() would now raise Interrupted
>>> received()
[2]
>>> reset()
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

from nexusbayes.errors import Interrupted

_received: list[int] = []
_written: list[Path] = []
_deferring = [0]


def reset() -> None:
    """Forget signals and written folders (at the start of each command)."""
    _received.clear()
    _written.clear()
    _deferring[0] = 0


def record(signum: int) -> None:
    """Note that ``signum`` was received (called by the signal handler)."""
    _received.append(int(signum))


def received() -> list[int]:
    """The signals received since :func:`reset`, in order."""
    return list(_received)


def is_deferred() -> bool:
    """True inside a :func:`deferred` section: the handler only records the signal."""
    return _deferring[0] > 0


def check() -> None:
    """Raise :class:`~nexusbayes.errors.Interrupted` when a signal was received (a safe point)."""
    if _received:
        signum = _received[-1]
        raise Interrupted(f"received {signal.Signals(signum).name}", signum=signum)


@contextlib.contextmanager
def deferred():
    """A section that must not be cut in two (an output folder's swap): signals are recorded, not raised."""
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1


def written(path: Path) -> None:
    """Note that the output folder ``path`` was replaced by a complete new one."""
    _written.append(Path(path))


def written_folders() -> list[Path]:
    """The output folders replaced since :func:`reset`, in order."""
    return list(_written)
