"""Value checks every importer runs before anything is written.

Each check takes the value and `where` (the file and field it came from, e.g.
"sizes.csv row 3: params") and either returns a clean Python value or raises a one-line
DataError naming `where`. Counts (parameters N, tokens D, steps) are whole numbers the store
keeps as signed 64-bit integers; text goes into columns of at most 200 characters; JSON files
are read with a size cap, a nesting cap, and their integers held to 64 bits, with NaN and
Infinity read as floats so the caller can count and skip them.
"""

from __future__ import annotations

import json
import math
import os
import stat
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from scaletrack.errors import DataError
from scaletrack.safe_text import code_point, first_unsafe

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
TEXT_MAX = 200  # characters of a name, tag, sweep, metric or task column
JSON_MAX_BYTES = 256 * 2**20  # one lm-eval result file (bytes)
JSON_MAX_DEPTH = 64  # nesting of objects and arrays


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: str | Path, what: str = "file") -> Path:
    """`path` if it is an existing regular file (stat first: opening a FIFO would block);
    otherwise a DataError saying what it is."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{what} {str(path)!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"{what} {str(path)!r}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{what} {str(path)!r} is {_kind(mode)}, not a regular file")
    return path


def special_kind(path: Path) -> str | None:
    """What `path` is when it exists and is not a regular file (a folder, a FIFO, ...)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else _kind(mode)


def whole(value: Any, where: str, *, minimum: int = 0, maximum: int = INT64_MAX,
          required: bool = False) -> int | None:
    """A whole number in [minimum, maximum] from an int, float or text ("1e9", "1,000" is
    refused); empty/None/NaN -> None (a DataError when `required`). Never rounds: 0.4 or
    1e6+0.5 is refused, 10**20 is refused as beyond 64 bits."""
    if value is None or (isinstance(value, str) and not value.strip()) or (
            isinstance(value, float) and math.isnan(value)):
        if required:
            raise DataError(f"{where}: missing (a whole number is needed)")
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars: exact Python ints and floats
    if isinstance(value, bool):
        raise DataError(f"{where}: expected a whole number, got {value!r}")
    try:
        # a float converts exactly (2.0**62 stays 2**62); numpy numbers through float/int
        number = Decimal(value.strip() if isinstance(value, str) else
                         value if isinstance(value, int) else float(value))
    except (InvalidOperation, TypeError, ValueError):
        raise DataError(f"{where}: expected a whole number, got {_show(value)}") from None
    if number.is_nan():
        if required:
            raise DataError(f"{where}: missing (a whole number is needed)")
        return None
    if not number.is_finite():
        raise DataError(f"{where}: expected a whole number, got {_show(value)}")
    if number != number.to_integral_value():
        raise DataError(f"{where}: {_show(value)} is not a whole number")
    result = int(number)
    if result > maximum:
        raise DataError(f"{where}: {_show(value)} is beyond the store's 64-bit integers"
                        if maximum == INT64_MAX else f"{where}: {_show(value)} is more than "
                        f"{maximum:,}")
    if result < minimum:
        raise DataError(f"{where}: {_show(value)} must be at least {minimum}")
    return result


def finite(value: Any) -> float | None:
    """A finite float, or None for anything else (NaN, ±inf, text, bools, None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def text(value: Any, where: str, *, limit: int = TEXT_MAX) -> str:
    """`value` as text of 1..limit characters without an unsafe character (control or
    invisible formatting, `scaletrack.safe_text`)."""
    out = str(value)
    if not out.strip():
        raise DataError(f"{where}: empty")
    if len(out) > limit:
        raise DataError(f"{where}: {len(out)} characters; at most {limit} are kept "
                        f"({_show(out[:40])}...)")
    found = first_unsafe(out)
    if found is not None:
        raise DataError(f"{where}: {_show(out)} contains the control or formatting character "
                        f"{code_point(found[1])}")
    return out


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


class _JsonLimit(Exception):
    pass


def _int_64(digits: str) -> int:
    if len(digits.lstrip("-")) > 19 or not -INT64_MAX - 1 <= int(digits) <= INT64_MAX:
        raise _JsonLimit(f"integer {digits[:24]}{'...' if len(digits) > 24 else ''} is "
                         "beyond 64 bits")
    return int(digits)


def load_json(path: str | Path, *, max_bytes: int = JSON_MAX_BYTES,
              max_depth: int = JSON_MAX_DEPTH) -> tuple[Any, bytes]:
    """(parsed JSON, raw bytes) of a regular file, or a one-line DataError naming it: over
    `max_bytes`, nested deeper than `max_depth`, an integer beyond 64 bits, not UTF-8, not
    JSON. NaN / Infinity / -Infinity are read as floats (callers count and skip them)."""
    path = regular_file(path, "result file")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{path}: {size:,} bytes; files over {max_bytes:,} bytes are refused")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(raw, parse_int=_int_64)
    except _JsonLimit as exc:
        raise DataError(f"{path}: {exc}") from None
    except RecursionError:
        raise DataError(f"{path}: nested deeper than {max_depth} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({str(exc).splitlines()[0][:120]})") from None
    except ValueError as exc:  # e.g. Python's limit on digits in a number
        raise DataError(f"{path}: not JSON ({str(exc).splitlines()[0][:120]})") from None
    if _depth(data) > max_depth:
        raise DataError(f"{path}: nested deeper than {max_depth} levels")
    return data, raw


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


_VALUE_DECODER = json.JSONDecoder(parse_int=lambda s: int(s) if len(s) <= 19 else float(s))


def loads_value(raw: str, where: str) -> Any:
    """One JSON value (a W&B history or config item): integers held to 64 bits (a bigger one
    becomes a float, as W&B itself treats it), NaN/Infinity as floats; DataError otherwise."""
    try:
        return _VALUE_DECODER.decode(raw)
    except RecursionError:
        raise DataError(f"{where}: nested too deep") from None
    except ValueError as exc:
        raise DataError(f"{where}: not JSON ({str(exc).splitlines()[0][:80]})") from None
