"""How a number is written for people: one rule for the CLI, the figures and the dashboard.

Two conventions, told apart by magnitude, so a value prints the same wherever it appears:

- Counts — parameters N, tokens D, FLOPs C, steps — from 10,000 up: three significant
  digits in e-notation with neither "+" nor leading zeros, 533,000,000 -> "5.33e8",
  5.76e23 -> "5.76e23" (never "533M" or "5.33e+08"). Below 10,000 a whole count is written
  out ("2500").
- Losses (nats/token) and other values between 0.001 and 10,000: four significant digits,
  2.21134 -> "2.211", 0.051239 -> "0.05124"; below 0.001, e-notation with three significant
  digits, 0.0004 -> "4e-4".

Missing values (None, NaN) are "-", infinities "inf" and "-inf". The rule rests on Python's
format specs ("{:.4g}", "{:.2e}"); the dashboard writes it once more, in the one `fmt`
function of scaletrack/ui/static/common.js, and a test checks that the two agree digit for
digit.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import SupportsFloat

MISSING = "-"
LARGE = 1e4  # from here up: e-notation (counts)
SMALL = 1e-3  # below this: e-notation
COUNT_DIGITS = 3  # significant digits in e-notation
PLAIN_DIGITS = 4  # significant digits between SMALL and LARGE (losses)


def _e_format(number: float, digits: int) -> tuple[float, int]:
    """(mantissa, exponent) of `number` to `digits` significant digits, an exact half
    rounded away from zero (as JavaScript's toPrecision does; Python's own "{:e}" rounds
    it to even)."""
    with localcontext() as context:
        context.rounding = ROUND_HALF_UP
        mantissa, exponent = format(Decimal(number), f".{digits - 1}e").split("e")
    return float(mantissa), int(exponent)


def e_notation(value: float, digits: int = COUNT_DIGITS) -> str:
    """`value` as "5.33e8": `digits` significant digits, trailing zeros, "+" and the
    exponent's leading zeros dropped."""
    mantissa, exponent = _e_format(float(value), digits)
    return f"{mantissa:g}e{exponent}"


def fmt_number(value: SupportsFloat | None) -> str:
    """`value` written by the rule of this module (counts from 10,000 up in e-notation with
    three significant digits, smaller values with four, "-" when missing)."""
    if value is None:
        return MISSING
    number = float(value)
    if math.isnan(number):
        return MISSING
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number == 0:
        return "0"
    mantissa, exponent = _e_format(number, PLAIN_DIGITS)
    plain = mantissa * 10.0**exponent
    if abs(number) >= SMALL and abs(plain) < LARGE:
        return f"{plain:.{PLAIN_DIGITS}g}"
    return e_notation(number)
