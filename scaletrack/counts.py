"""Whole-number counts as the store keeps them: parameters N, tokens D, steps.

Every backend stores a count in a 64-bit integer column, so a count is a whole number from
`minimum` (0 for tokens and steps, 1 for parameters) to 2**63 - 1. `whole_count` is the one
check: ints, numpy and 0-d tensor integers and whole floats such as 1e9 are accepted; anything
else is one `ConfigError` line naming the argument.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from scaletrack.errors import ConfigError

MAX_COUNT = 2**63 - 1  # the largest value of a 64-bit integer column


def whole_count(value: Any, what: str, *, minimum: int = 0) -> int:
    """`value` as an int in [minimum, 2**63 - 1]; a ConfigError naming `what` otherwise."""
    if type(value) is int and minimum <= value <= MAX_COUNT:  # the common case, first
        return value
    if isinstance(value, bool | str | bytes):
        raise ConfigError(f"{what} must be {_range(minimum)}, got a {type(value).__name__}")
    try:
        number = operator.index(value)
    except TypeError:
        whole = (isinstance(value, numbers.Real) and math.isfinite(float(value))
                 and float(value) == int(float(value)))
        if not whole:
            raise ConfigError(f"{what} must be {_range(minimum)}, got {value!r:.40}") from None
        number = int(float(value))
    if number < minimum or number > MAX_COUNT:
        raise ConfigError(f"{what} must be {_range(minimum)}, got {_shown(number)}")
    return number


def _shown(number: int) -> str:
    """A refused whole number, short: written out up to 20 digits, else in e-notation."""
    if abs(number) < 10**20:
        return str(number)
    if number.bit_length() > 1000:  # beyond a float (and too long to write out)
        return f"{'-' if number < 0 else ''}about 2**{number.bit_length()}"
    return f"{float(number):.3g}"


def _range(minimum: int) -> str:
    return f"a whole number from {minimum} to 2**63 - 1"
