"""A spec's validation errors explained: the key, what it holds, and the nearest valid key for a misspelt one."""

from __future__ import annotations

import difflib
import tomllib
from typing import get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)


def _model_in(annotation) -> type[BaseModel] | None:
    """The pydantic model class inside an annotation such as ``list[Era] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _valid_keys(loc: tuple, root: type[BaseModel]) -> list[str]:
    """Field names of the table at ``loc`` (for 'did you mean' suggestions)."""
    current: type[BaseModel] | None = root
    parts = list(loc[:-1])
    while parts and current is not None:
        part = parts.pop(0)
        if isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        current = _model_in(field.annotation) if field is not None else None
        if field is not None and get_origin(field.annotation) is dict and parts:
            parts.pop(0)  # the user's key, e.g. the indicator's name in indicators.NAME.family
    return list(current.model_fields) if current is not None else []


def explain_errors(exc: ValidationError, raw: dict, source: str, root: type[BaseModel]) -> str:
    """The message of a :class:`~nexusbayes.errors.SpecError`: each error of ``exc`` by its key, with the fix.

    ``raw`` is the document as read, ``source`` its file name, ``root`` the model of the whole document (``Spec``).
    """
    lines = [f"{source}: invalid model specification"]
    thresholds_done = set()
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-after",))))
        if loc[:2] == ("typology", "thresholds") and len(loc) >= 4:
            # a threshold is `float | AnchoredThreshold`: pydantic reports each branch, tagged by type name
            loc = loc[:3] + loc[4:]
            if len(loc) == 3 or err["type"] == "model_type":
                if loc in thresholds_done:
                    continue
                thresholds_done.add(loc)
                if not isinstance(err.get("input"), dict):
                    lines.append(f"  - `{'.'.join(map(str, loc))}`: a threshold is a finite number or a table "
                                 f"{{indicator = \"NAME\", value = NUMBER}} (got {err.get('input')!r})")
                continue
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "string_pattern_mismatch" and loc == ("name",):
            lines.append("  - `name`: use only letters, digits, '_', '.' and '-', starting with a letter or "
                         f"digit (output goes to reports/<name>/; got {err.get('input')!r})")
        elif err["type"] == "extra_forbidden":
            valid = _valid_keys(loc, root)
            guess = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else f"; valid keys here: {', '.join(valid)}"
            lines.append(f"  - unknown key `{key}`{hint}")
        elif err["type"] == "missing":
            if not _misspelt(loc, exc):   # a typo of the key is reported once, as an unknown key
                lines.append(f"  - missing required key `{key}`")
        elif err["type"] in _WANTED:
            got = err.get("input")
            unquote = isinstance(got, str) and _parses_as(got, err["type"])
            lines.append(f"  - `{key}`: expected {_WANTED[err['type']]}, got {_toml_value(got)} "
                         f"({_TOML_TYPES.get(type(got), type(got).__name__)}); values are not converted between "
                         "types" + ("; remove the quotes" if unquote else ""))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  - `{key}`: {msg} (got {err.get('input')!r})" if err["type"] != "value_error"
                         else f"  - {('`' + key + '`: ') if loc else ''}{msg}")
    return "\n".join(lines)


def _misspelt(loc: tuple, exc: ValidationError) -> bool:
    """Whether a missing key at ``loc`` is present under a near spelling (an unknown key beside it)."""
    return any(e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == loc[:-1]
               and difflib.get_close_matches(str(e["loc"][-1]), [str(loc[-1])], n=1) for e in exc.errors())


def _parses_as(text: str, error_type: str) -> bool:
    """Whether the quoted ``text`` would be a valid value without its quotes (then say: remove them)."""
    try:
        value = tomllib.loads(f"x = {text.strip()}")["x"]
    except tomllib.TOMLDecodeError:
        return False
    wanted = {"int_type": (int,), "float_type": (int, float), "bool_type": (bool,)}.get(error_type, ())
    return isinstance(value, wanted) and (error_type == "bool_type" or not isinstance(value, bool))


#: What a field of each pydantic type error wants, in words (strict mode: no coercion between types).
_WANTED = {"int_type": "a whole number (e.g. 1000)", "float_type": "a number (e.g. 1.5)",
           "bool_type": "true or false", "string_type": "a string in quotes", "list_type": "an array [...]",
           "tuple_type": "an array of two values [a, b]", "dict_type": "a table", "model_type": "a table",
           "model_attributes_type": "a table"}


_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
               tuple: "an array", dict: "a table"}


def _toml_value(value) -> str:
    """A value as TOML writes it (true, not True), cut short."""
    text = "true" if value is True else "false" if value is False else repr(value)
    return text if len(text) <= 60 else text[:60] + "..."
