"""A small formula language for second-stage regressions: ``outcome ~ capability + willingness + C(region_type)``.

What it reads, in the Wilkinson-Rogers notation of R, patsy, formulae and formulaic:

- ``y ~ a + b``: an intercept and a slope per term; ``- 1`` or ``+ 0`` drops the intercept;
- ``a:b`` the product of two terms, ``a * b`` short for ``a + b + a:b``;
- ``C(x)``, and every text, boolean or categorical column: treatment coding, one 0/1 column per level but the
  first (sorted) one, the reference; named ``C(x)[level]``.

Nothing else (no transformations such as ``np.log(x)`` or ``I(x ** 2)``: make such columns in the data
first); anything else is a clear error. The package has no formula dependency because these few rules are
all an ordinary least squares fit per plausible value needs.

Examples
--------
>>> import pandas as pd
>>> data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "x": [0.1, 0.2, 0.3, 0.5], "g": ["a", "b", "a", "c"]})
>>> f = Formula.parse("y ~ x * C(g)")
>>> f.outcome, f.terms
('y', [('x',), ('C(g)',), ('x', 'C(g)')])
>>> list(f.design(data).columns)
['Intercept', 'x', 'C(g)[b]', 'C(g)[c]', 'x:C(g)[b]', 'x:C(g)[c]']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nexusbayes.errors import NexusBayesError

INTERCEPT = "Intercept"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_CATEGORICAL = re.compile(r"C\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)")


class FormulaError(NexusBayesError, ValueError):
    """A formula that cannot be read, or that names columns the data lack (the message says how to fix it)."""


def _factor(text: str, formula: str) -> str:
    """One factor of a term: a column name or ``C(name)``, checked."""
    text = text.strip()
    if _NAME.fullmatch(text) or _CATEGORICAL.fullmatch(text):
        return re.sub(r"\s+", "", text)
    raise FormulaError(f"formula {formula!r}: cannot read {text!r}; terms are column names, C(name) for a "
                       "categorical one, a:b for a product and a*b for a + b + a:b (make transformed columns, "
                       "e.g. log(aid), in the data first)")


@dataclass(frozen=True)
class Formula:
    """A parsed formula: the outcome, the terms (tuples of factors) and whether there is an intercept."""

    outcome: str
    terms: list[tuple[str, ...]]
    intercept: bool = True

    @classmethod
    def parse(cls, formula: str) -> Formula:
        """Read ``outcome ~ term + term ...`` (see the module docstring)."""
        if not isinstance(formula, str) or formula.count("~") != 1:
            raise FormulaError(f"formula {formula!r}: write one `outcome ~ terms`, e.g. 'growth ~ capability + "
                               "willingness'")
        lhs, rhs = (part.strip() for part in formula.split("~"))
        if not _NAME.fullmatch(lhs):
            raise FormulaError(f"formula {formula!r}: the outcome must be one column name, got {lhs!r}")
        intercept = True
        terms: list[tuple[str, ...]] = []
        tokens = re.split(r"\s*([+-])\s*", rhs.strip())
        sign = "+"
        for position, token in enumerate(tokens):
            if token in ("+", "-"):
                sign = token
                continue
            if token == "":
                if position == 0:       # a leading sign, as in '~ -1 + x'
                    continue
                raise FormulaError(f"formula {formula!r}: an empty term (two operators in a row?)")
            if token in ("0", "1"):
                intercept = (token == "1") == (sign == "+")
                continue
            if sign == "-":
                raise FormulaError(f"formula {formula!r}: only '- 1' (no intercept) can be subtracted")
            if "*" in token:
                factors = [_factor(f, formula) for f in token.split("*")]
                new = [(f,) for f in factors] + [tuple(factors)]
            else:
                new = [tuple(_factor(f, formula) for f in token.split(":"))]
            terms.extend(t for t in new if t not in terms)
        if not terms and not intercept:
            raise FormulaError(f"formula {formula!r}: no terms and no intercept")
        return cls(lhs, terms, intercept)

    @property
    def columns(self) -> list[str]:
        """Every data column the formula reads: the outcome, then each factor's column once."""
        names = [self.outcome]
        for term in self.terms:
            for factor in term:
                name = _column(factor)
                if name not in names:
                    names.append(name)
        return names

    def design(self, data: pd.DataFrame) -> pd.DataFrame:
        """The design matrix of ``data`` (one column per coefficient, in order, the intercept first)."""
        parts: dict[str, np.ndarray] = {}
        if self.intercept:
            parts[INTERCEPT] = np.ones(len(data))
        for term in self.terms:
            block = {"": np.ones(len(data))}
            for factor in term:
                block = {_join(a, b): x * y for a, x in block.items() for b, y in _coded(factor, data).items()}
            parts.update(block)
        return pd.DataFrame(parts, index=data.index)


def _join(a: str, b: str) -> str:
    return b if not a else f"{a}:{b}"


def _column(factor: str) -> str:
    match = _CATEGORICAL.fullmatch(factor)
    return match.group(1) if match else factor


def _coded(factor: str, data: pd.DataFrame) -> dict[str, np.ndarray]:
    """A factor's columns: the values of a numeric column, or treatment-coded levels."""
    name = _column(factor)
    column = data[name]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and factor == name:
        return {name: column.to_numpy(dtype=float)}
    label = f"C({name})"
    levels = sorted(pd.unique(column), key=str)
    return {f"{label}[{level}]": (column == level).to_numpy(dtype=float) for level in levels[1:]}
