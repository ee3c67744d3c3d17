"""The package's own exceptions: every bad input ends in one of these, with a message that says how to fix it."""

import numpy as np


class NexusBayesError(Exception):
    """Base class of every error nexusbayes raises on purpose."""


class SpecError(NexusBayesError, ValueError):
    """The model specification is invalid (names the file and the key)."""


class DataError(NexusBayesError, ValueError):
    """The indicator table is invalid (names the file, rows and column)."""


class FitFileError(NexusBayesError, ValueError):
    """A saved fit cannot be loaded (not a nexusbayes file, truncated or tampered with)."""


class OutputExistsError(NexusBayesError, FileExistsError):
    """An output would overwrite an earlier one and overwriting was not asked for."""


class OutputError(NexusBayesError, OSError):
    """An output folder cannot be used: a symlink, a file, the current folder, unwritable, or used by another run."""


class SamplingError(NexusBayesError, RuntimeError):
    """Sampling failed or produced unusable draws (initialisation failure, NaN or infinite posterior)."""


class Interrupted(KeyboardInterrupt):
    """Sampling was stopped by Ctrl-C (SIGINT) or SIGTERM; no result is returned and nothing is written.

    A :class:`KeyboardInterrupt`, so that every clean-up path for Ctrl-C also runs for SIGTERM.
    ``signum`` is the signal received, when known.
    """

    def __init__(self, message: str = "interrupted", signum: int | None = None):
        super().__init__(message)
        self.signum = signum


class DataWarning(UserWarning):
    """The data allow a fit, but part of it rests on the prior alone (e.g. a trait unmeasured in a country).

    See :attr:`nexusbayes.data.panel.Panel.warnings`.
    """


class ReportWarning(UserWarning):
    """The report was built without a part it normally shows (e.g. PSIS-LOO on too few distinct draws); it says why.

    The command line prints it as a ``WARNING:`` line.
    """


class SettingsError(NexusBayesError, ValueError):
    """A run setting given as an argument (number of simulations, workers, draws ...) is out of range."""


def check_count(label: str, value, low: int, high: int | None = None, why: str = "") -> None:
    """Refuse (:class:`SettingsError`) a count given in Python that is not a whole number in ``low..high``.

    Booleans are refused (``True`` is not 1 worker); ``why`` ends the message.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low or \
            (high is not None and value > high):
        raise SettingsError(f"{label} must be a whole number {count_range(low, high)}, got {value!r}{why}")


def count_range(low: int, high: int | None) -> str:
    """The range of a count in words: ``">= 1"`` or ``"from 0 to 1,000"``."""
    return f">= {low}" if high is None else f"from {low} to {high:,}"
