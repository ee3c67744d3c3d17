"""Reading indicator tables (CSV, Parquet, named readers) into validated panels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nexusbayes.data.panel import MAX_SHOWN, REQUIRED, Panel, validate
from nexusbayes.errors import DataError
from nexusbayes.spec.document import Spec


def read_table(source: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str, bool]:
    """Read CSV or Parquet (or take a DataFrame). Returns the frame, a label, and whether rows are file lines.

    For a CSV file the frame's index is the position of the data line (line number - 2: the header is
    line 1), blank lines included, so that errors can name the lines of the file.
    """
    if isinstance(source, pd.DataFrame):
        return source.copy(), "<DataFrame>", False
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    if not path.is_file():
        raise DataError(f"{path}: is not a regular file (a directory, pipe or device); give the path of a .csv "
                        "or .parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # blank lines are kept while reading (then dropped) so that index + 2 is the line number
            frame = pd.read_csv(path, dtype={"country": str, "region": str, "indicator": str, "rater": str,
                                             "period": str}, keep_default_na=False, na_values=[""],
                                skip_blank_lines=False, encoding="utf-8-sig")
            if not isinstance(frame.index, pd.RangeIndex):
                raise DataError(_extra_fields(path))
            _check_header(path, list(frame.columns))
            frame = frame.dropna(how="all")
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"{path}: unknown data format {suffix!r}; use a .csv or .parquet file")
    except DataError:
        raise
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; it needs a header line with columns "
                        f"{', '.join(REQUIRED)} and one row per observation") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read as {suffix[1:].upper()}: {exc}") from None
    return frame, str(path), suffix == ".csv"


def _not_utf8(path: Path) -> str:
    """Message for a CSV that is not UTF-8 (e.g. Latin-1 from a spreadsheet), naming its first such line.

    pandas reports a byte offset within its read buffer, which locates nothing for the user.
    """
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return (f"{path}: line {number} is not UTF-8 text (byte {line[exc.start]:#04x}; the file may be "
                        "Latin-1 or Windows-1252, as some spreadsheets save it); re-save the file as UTF-8 "
                        "(e.g. 'CSV UTF-8')")
    return f"{path}: is not UTF-8 text; re-save the file as UTF-8"


def _check_header(path: Path, columns: list[str]) -> None:
    """Refuse a CSV header with a repeated column or a single column holding ';' or tabs (another delimiter).

    pandas renames a repeated ``value`` to ``value.1``, which would otherwise be reported as unknown.
    """
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        header = [c.strip() for c in next(csv.reader(f), [])]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise DataError(f"{path}: column(s) {', '.join(map(repr, repeated))} appear more than once in the header "
                        "(line 1); keep one column of each name")
    if len(columns) == 1:
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs")):
            if delimiter in str(columns[0]):
                raise DataError(f"{path}: the header (line 1) is one column holding {name}: the file seems to be "
                                f"delimited by {name}, not commas; re-save it as comma-separated CSV")


def _extra_fields(path: Path) -> str:
    """Message for a CSV whose data lines have more fields than its header (pandas would shift columns)."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    width = len(lines[0]) if lines else 0
    bad = [i + 1 for i, line in enumerate(lines) if len(line) > width]
    shown = ", ".join(map(str, bad[:MAX_SHOWN])) + (f" (and {len(bad) - MAX_SHOWN} more)" if len(bad) > MAX_SHOWN
                                                    else "")
    return (f"{path}: line(s) {shown} have more fields than the header's {width} columns; quote values "
            "that contain commas, or remove the extra fields")


def load_panel(source: str | Path | pd.DataFrame | Sequence[str | Path | pd.DataFrame], spec: Spec,
               whole: bool = True) -> Panel:
    """Load and validate an indicator table against a spec.

    Parameters
    ----------
    source : path, DataFrame, or a list of them
        CSV or Parquet file, or a DataFrame in the long format described in the module docstring.
        A list (e.g. one file per country) is read as one table; its rows are then named
        ``file:line`` (``file:label`` for DataFrames, numbered from 1 in the list). For a spec whose
        ``[data] format`` names a public layout (e.g. ``"martin_quinn"``), the path is read by that
        layout's loader in :mod:`nexusbayes.data.datasets`.
    spec : Spec
        The model specification the table must match.
    whole : bool
        False for a part of a panel (an update's new periods): its rows are checked, not what only a whole
        panel must have (see :func:`~nexusbayes.data.panel.validate`).

    Returns
    -------
    Panel

    Raises
    ------
    DataError
        With the file, the rows and the column at fault and what is allowed there.
    """
    if isinstance(source, list | tuple):
        return _load_many(list(source), spec, whole)
    if spec.data_format != "long" and not isinstance(source, pd.DataFrame):
        from nexusbayes.data.datasets import READERS  # the loaders build on this module

        frame = READERS[spec.data_format](source, **spec.data.options())
        return validate(frame, spec, f"{source} ({spec.data_format} format)", whole=whole)
    frame, label, lines = read_table(source)
    return validate(frame, spec, label, file_lines=lines, whole=whole)


def _load_many(sources: list, spec: Spec, whole: bool = True) -> Panel:
    """Concatenate several tables; rows keep their origin as ``file:line`` labels."""
    if not sources:
        raise DataError("an empty list of data files: give at least one")
    frames, labels = [], []
    for i, source in enumerate(sources, start=1):
        frame, label, lines = read_table(source)
        name = Path(label).name if label != "<DataFrame>" else f"<DataFrame {i}>"
        frame.index = [f"{name}:{r + 2 if lines else r}" for r in frame.index]
        frames.append(frame)
        labels.append(label)
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    frame = pd.concat([f.reindex(columns=columns) for f in frames])
    return validate(frame, spec, " + ".join(labels), row_kind="file:line", whole=whole)
