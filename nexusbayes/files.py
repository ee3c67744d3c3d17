"""Files written whole or not at all, content digests, and the one CSV writer."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

import pandas as pd


def content_digest(spec_text: str, data: pd.DataFrame) -> str:
    """SHA-256 of a spec's TOML text and a data table (its CSV at full precision): what a fit is of."""
    buffer = io.StringIO()
    data.to_csv(buffer, index=False, float_format="%.17g")
    return hashlib.sha256((spec_text + "\n--\n" + buffer.getvalue()).encode()).hexdigest()


def temp_dir_beside(out_dir: Path) -> Path:
    """A new hidden temporary folder next to ``out_dir`` (to rename into place), with ordinary permissions.

    ``mkdtemp`` makes folders private (0700); an output folder is for reading, so it gets the umask's mode.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(path: Path, writer) -> None:
    """Call ``writer(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    An interruption leaves ``path`` as it was: either the old file or the complete new one. The file
    gets the umask's ordinary mode (``mkstemp`` alone would leave it private, 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: First characters that make a spreadsheet read a text cell as a formula (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# ---- spreadsheet-safe CSV ---------------------------------------------------------------------------
def spreadsheet_safe(value):
    """A text cell that a spreadsheet would run as a formula, prefixed with a single quote; anything else as is.

    Text starting with ``= + - @``, a tab or a carriage return gets a leading ``'`` (OWASP's advice
    against CSV injection); numbers, and text that is just a number (``-1.5``), are left alone.

    Examples
    --------
    >>> print(spreadsheet_safe('=HYPERLINK("http://x", "y")'))
    '=HYPERLINK("http://x", "y")
    >>> spreadsheet_safe("+1-1"), spreadsheet_safe("-1.5"), spreadsheet_safe(-2.0), spreadsheet_safe("Osh")
    ("'+1-1", '-1.5', -2.0, 'Osh')
    """
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def spreadsheet_safe_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with :func:`spreadsheet_safe` applied to every text cell and column name (numbers untouched)."""
    safe = table.copy(deep=False)
    safe.columns = [spreadsheet_safe(c) for c in table.columns]
    for i in range(table.shape[1]):
        column = table.iloc[:, i]
        if not pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_datetime64_any_dtype(column):
            safe.isetitem(i, column.astype(object).map(spreadsheet_safe))
    return safe


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    """Write ``table`` as CSV (no index) with formula-like text neutralised: the one CSV writer of nexusbayes."""
    spreadsheet_safe_table(table).to_csv(path, index=False)
