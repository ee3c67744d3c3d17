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
