"""Names, bounds and sizes a spec may hold, with the messages that explain them."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
)

FamilyName = Literal["negbin", "normal", "binomial", "ordinal", "bernoulli"]


Sign = Literal["positive", "negative", "free"]


Dynamics = Literal["gaussian_rw", "student_t_rw", "ar1"]


Sampler = Literal["nutpie", "pymc"]


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


Year = Annotated[int, Field(ge=-9999, le=9999)]


#: Longest name of an indicator, region, country, rater, trait, era or group: names become table rows,
#: figure labels and file names, and a 100,000-character name made figures of 700,000 pixels.
MAX_NAME_LENGTH = 200


#: Largest spec file read: a spec is a few kilobytes; the cap keeps e.g. /dev/zero from filling memory.
MAX_SPEC_BYTES = 10 * 2**20


#: Prior scales and shapes outside these bounds make the log-density underflow or overflow (a normal of
#: SD 1e-300 has a density of inf at 0 and 0 elsewhere); traits are standardised, so useful scales are near 1.
PRIOR_BOUNDS = (1e-6, 1e6)


#: Upper bounds of the sampler settings, far above any useful run; :func:`nexusbayes.fit.fit` also checks
#: that the draws fit in memory.
MAX_DRAWS = 10_000_000


MAX_CHAINS = 1_000


def name_problem(name: str, variable: bool = False) -> str | None:
    """Why ``name`` cannot name an indicator, region, country, rater, trait, era or group, or None.

    Names become figure labels and netCDF coordinates: a control character (NUL, newline, tab ...)
    breaks the saved fit and the tables, and a very long name makes figures of absurd size. Indicator
    and trait names (``variable=True``) also become variable names of the saved fit and file names of
    the report's figures, where a ``/`` is a path separator; a region named "Chuy/Bishkek" is fine.

    Examples
    --------
    >>> name_problem("staff/1000", variable=True)
    "contains '/'"
    >>> name_problem("Chuy/Bishkek") is None
    True
    """
    if variable and "/" in name:
        return "contains '/'"
    bad = sorted({unicodedata.name(c, f"U+{ord(c):04X}") if c != "\0" else "NUL" for c in name
                  if unicodedata.category(c) == "Cc"})
    if bad:
        return f"contains control character(s) {', '.join(bad)}"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name):,} characters long (at most {MAX_NAME_LENGTH})"
    return None


def name_advice(variable: bool = False) -> str:
    """What a refused name is used for, and the fix: the end of every message about a :func:`name_problem`."""
    return "names become " + ("variable and file names, " if variable else "") + \
        "figure labels and coordinates of the saved fit, so rename it"


def _tuple(value):
    """TOML has arrays, not tuples: accept a list where a pair is wanted (strict mode would not)."""
    return tuple(value) if isinstance(value, list) else value


def _prior_bound(value: float) -> float:
    low, high = PRIOR_BOUNDS
    if not low <= value <= high:
        raise ValueError(f"{value:g} is outside {low:g}..{high:g}: a prior this extreme makes the log-density "
                         "underflow or overflow where sampling starts (traits are standardised, so scales near 1 "
                         "are the useful ones); use a value in that range")
    return value


PriorScale = Annotated[float, Field(gt=0), AfterValidator(_prior_bound)]


def _short(name: str, limit: int = 40) -> str:
    """``repr(name)``, cut to ``limit`` characters (a name may be 100,000 characters long)."""
    return repr(name) if len(name) <= limit else repr(name[:limit]) + f"... ({len(name):,} characters)"
