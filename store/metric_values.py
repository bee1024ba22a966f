"""What a metric row may hold, checked where a value is logged (never later, in a batch).

`run.log({...})` turns one call into rows with `coerce_metric_values`: numbers, numpy scalars
and 0-d torch tensors are kept; None is skipped; nested mappings are flattened to "a/b";
anything else (a string, a list, a 2-element tensor, a complex number) is refused for that key
alone. Names are checked against the one limit every backend keeps (`MAX_METRIC_NAME`
characters, no control characters), so a name SQLite would take and PostgreSQL would refuse
never reaches a batch. The result says what was refused, so the caller can warn once.

A 0-d torch tensor is kept as the tensor: reading its value would wait for the device, so the
background writer converts it (`to_float`).
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_METRIC_NAME = 200  # characters; the metrics.name column (store.schema)
_NEST_LIMIT = 16  # nesting depth of a logged mapping


@dataclass(frozen=True)
class Refused:
    """One logged key that was not kept, and why (one short phrase)."""

    name: str
    reason: str


@dataclass
class CoercedValues:
    """The rows of one `log` call: name -> value to write, and the keys refused."""

    values: dict[str, Any] = field(default_factory=dict)
    refused: list[Refused] = field(default_factory=list)


# Names already checked in this process: a training loop logs the same few names every step,
# and `log` must cost microseconds (bench/bench_tracking.py).
_CHECKED_NAMES: set[str] = set()


def check_metric_name(name: Any) -> str | None:
    """Why `name` cannot be a metric name (None when it can)."""
    if not isinstance(name, str):
        return f"a metric name must be text, got {type(name).__name__}"
    if not name:
        return "a metric name must not be empty"
    if len(name) > MAX_METRIC_NAME:
        return f"a metric name has at most {MAX_METRIC_NAME} characters (got {len(name)})"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        return "a metric name must not contain control characters"
    return None


def _torch_scalar(value: Any) -> tuple[Any, str | None]:
    """(the tensor, None) for a 0-d real tensor, else (None, why not)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        return None, "not a tensor"
    if value.dim() != 0:
        shape = tuple(value.shape)
        return None, f"expected a number or a 0-d tensor, got a tensor of shape {shape}"
    if value.is_complex():
        return None, "expected a real number, got a complex tensor"
    return value.detach(), None


def scalar_value(value: Any) -> tuple[Any, str | None]:
    """(value to store, None) or (None, why it is refused): one logged value by the rules of
    the module docstring (a 0-d tensor comes back as the tensor)."""
    if isinstance(value, numbers.Real):  # int, float, bool, numpy real scalars, Fraction
        try:
            return float(value), None
        except (OverflowError, ValueError, TypeError):
            return None, "expected a number that fits a 64-bit float"
    tensor, why = _torch_scalar(value)
    if tensor is not None:
        return tensor, None
    if why != "not a tensor":
        return None, why
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
        return float(value), None
    if numpy is not None and isinstance(value, numpy.ndarray):
        if value.ndim == 0 and value.dtype.kind in "biuf":
            return float(value), None
        return None, (f"expected a number or a 0-d array, got an array of shape {value.shape}")
    if isinstance(value, numbers.Complex):
        return None, "expected a real number, got a complex number"
    return None, f"expected a number, got {type(value).__name__}"


def coerce_metric_values(values: Mapping[Any, Any]) -> CoercedValues:
    """Check one `log` call's values; see the module docstring."""
    out = CoercedValues()
    if not isinstance(values, Mapping):
        out.refused.append(Refused("<values>", f"expected a dict of metric values, got "
                                               f"{type(values).__name__}"))
        return out
    kept = out.values
    for key, value in values.items():
        if type(value) is float and key in _CHECKED_NAMES:  # the common case
            kept[key] = value
        else:
            _one(key, value, "", out, 0)
    return out


def _one(key: Any, value: Any, prefix: str, out: CoercedValues, depth: int) -> None:
    """Check one (key, value) of a logged mapping whose names start with `prefix`."""
    if not isinstance(key, str):
        out.refused.append(Refused(_printable(f"{prefix}{key!r}"),
                                   f"a metric name must be text, got {type(key).__name__}"))
        return
    name = f"{prefix}{key}"
    if value is None:  # documented: None means "nothing to log for this key"
        return
    if isinstance(value, Mapping):
        if depth >= _NEST_LIMIT:
            out.refused.append(Refused(_printable(name),
                                       f"nested more than {_NEST_LIMIT} levels deep"))
            return
        for k, v in value.items():
            _one(k, v, f"{name}/", out, depth + 1)
        return
    why = None if name in _CHECKED_NAMES else check_metric_name(name)
    kept = None
    if why is None:
        _CHECKED_NAMES.add(name)
        kept, why = scalar_value(value)
    if why is not None:
        out.refused.append(Refused(_printable(name), why))
    else:
        out.values[name] = kept


def _printable(name: Any, limit: int = 80) -> str:
    """A name as it may be printed: control characters escaped, long names cut."""
    text = name if isinstance(name, str) else repr(name)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_float(value: Any) -> float:
    """A coerced value as a float (reads a tensor off its device: call it off the hot path)."""
    return float(value.item()) if hasattr(value, "item") and not isinstance(value, float) \
        else float(value)
