"""The package's own exceptions: every bad input ends in one of these, with a message that says how to fix it."""


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

    See :attr:`nexusbayes.data.Panel.warnings`.
    """


class SettingsError(NexusBayesError, ValueError):
    """A run setting given as an argument (number of simulations, workers, draws ...) is out of range."""
