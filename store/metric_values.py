"""What a metric row may hold, checked where a value is logged (never later, in a batch).

`run.log({...})` turns one call into rows with `coerce_metric_values`: numbers, numpy scalars
and 0-d torch tensors are kept; None is skipped; nested mappings are flattened to "a/b";
anything else (a string, a list, a 2-element tensor, a complex number) is refused for that key
alone. Names are checked against the one limit every backend keeps (`MAX_METRIC_NAME`
characters, no control or invisible formatting characters, no lone surrogates), so a name
SQLite would take and PostgreSQL would refuse never reaches a batch. The result says what was
refused, so the caller can warn once.

A value is taken as it is when logged: a CPU tensor is read at once; a 0-d tensor on a device
is copied there (reading it would wait for the device) and the background writer reads the
copy (`to_float`), so a later in-place update never changes a logged value.
"""

from __future__ import annotations

import decimal
import math
import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scaletrack.safe_text import code_point, first_unsafe, shown

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


def unsafe_text(text: str) -> str | None:
    """Why `text` cannot be stored and shown as a name (None when it can): it holds an unsafe
    character (`scaletrack.safe_text`: C0 and C1 controls, bidirectional overrides,
    zero-width marks, line separators, lone surrogates)."""
    found = first_unsafe(text)
    if found is None:
        return None
    return f"contains the control or formatting character {code_point(found[1])}"


def check_metric_name(name: Any) -> str | None:
    """Why `name` cannot be a metric name (None when it can)."""
    if not isinstance(name, str):
        return f"a metric name must be text, got {type(name).__name__}"
    if not name:
        return "a metric name must not be empty"
    if len(name) > MAX_METRIC_NAME:
        return f"a metric name has at most {MAX_METRIC_NAME} characters (got {len(name)})"
    why = unsafe_text(name)
    return None if why is None else f"a metric name {why}"


def _torch_scalar(value: Any) -> tuple[Any, str | None]:
    """(value, None) for a 0-d real tensor, else (None, why not). A CPU tensor is read now
    (no device to wait for); a device tensor is copied on its device, without waiting, so a
    later in-place update (an optimiser step, `acc.zero_()`) cannot change what was logged."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        return None, "not a tensor"
    if value.dim() != 0:
        shape = tuple(value.shape)
        return None, f"expected a number or a 0-d tensor, got a tensor of shape {shape}"
    if value.is_complex():
        return None, "expected a real number, got a complex tensor"
    try:
        if value.device.type == "cpu":
            return _real(value.item())
        if value.device.type == "meta":
            return None, "a tensor on the meta device has no value"
        return value.detach().clone(), None
    except Exception as exc:  # noqa: BLE001 - a value that cannot be read is refused alone
        return None, f"the tensor could not be read ({type(exc).__name__})"


def _real(number: Any) -> tuple[Any, str | None]:
    """float(number), refusing what does not fit a 64-bit float (1e400 is not inf)."""
    try:
        converted = float(number)
    except OverflowError:
        return None, "expected a number that fits a 64-bit float"
    except Exception as exc:  # noqa: BLE001 - a __float__ that raises costs only its key
        return None, f"the value could not be read as a number ({type(exc).__name__})"
    if math.isinf(converted):
        try:
            fits = bool(number == converted)
        except Exception:  # noqa: BLE001
            fits = False
        if not fits:
            return None, "expected a number that fits a 64-bit float"
    return converted, None


def scalar_value(value: Any) -> tuple[Any, str | None]:
    """(value to store, None) or (None, why it is refused): one logged value by the rules of
    the module docstring (a device tensor comes back as a copy, read later by the writer)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic | numpy.ndarray):
        if value.ndim != 0:
            return None, f"expected a number or a 0-d array, got an array of shape {value.shape}"
        if value.dtype.kind not in "biuf":
            return None, f"expected a real number, got numpy {value.dtype}"
        return _real(value)
    if isinstance(value, numbers.Real | decimal.Decimal):  # int, float, bool, Fraction, ...
        return _real(value)
    tensor, why = _torch_scalar(value)
    if why is None:
        return tensor, None
    if why != "not a tensor":
        return None, why
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
    try:
        for key, value in values.items():
            if type(value) is float and key in _CHECKED_NAMES:  # the common case
                kept[key] = value
            else:
                _one(key, value, "", out, 0)
    except Exception as exc:  # noqa: BLE001 - a mapping that cannot be read: keep what was read
        out.refused.append(Refused("<values>", f"the logged mapping could not be read "
                                               f"({type(exc).__name__})"))
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
        try:
            for k, v in value.items():
                _one(k, v, f"{name}/", out, depth + 1)
        except Exception as exc:  # noqa: BLE001 - a nested mapping that cannot be read
            out.refused.append(Refused(_printable(name), f"the nested mapping could not be "
                                                         f"read ({type(exc).__name__})"))
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
    """A name as it may be printed: control and formatting characters escaped, long names
    cut."""
    text = shown(name if isinstance(name, str) else repr(name))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_float(value: Any) -> float:
    """A coerced value as a float (reads a tensor off its device: call it off the hot path)."""
    return float(value.item()) if hasattr(value, "item") and not isinstance(value, float) \
        else float(value)
