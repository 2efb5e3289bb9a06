"""Exact arithmetic on the decimal numbers users write (2.5, 1.1), so that ceil never sees float noise."""

from __future__ import annotations

import math
from fractions import Fraction


def exact(value: float) -> Fraction:
    """The decimal the number was written as: `exact(1.1) == Fraction(11, 10)`, not the binary float."""
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return Fraction(repr(value))
    return Fraction(value)


def format_number(value: float) -> str:
    """`3` for 3.0, `2.5` for 2.5: how the number reads in the spec."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_sample(value: float) -> str:
    """A measured value as status and messages show it: `812.5`, `3`, `0.333333` (six significant digits)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
