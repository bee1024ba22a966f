"""Any value as plain JSON data: the one coercion used wherever a config, summary or record is
written as JSON (store exports, W&B imports, framework hyperparameters).

`plain_json` maps, element by element:

- None, bool, int, str: unchanged; a float unchanged when finite, else None (JSON has no NaN);
- missing values (pandas NA and NaT, NaN of any kind): None;
- numpy scalars and 0-d arrays: their Python value; arrays: lists;
- dates and timestamps: ISO 8601 text; enums: their value;
- mappings: dicts with text keys; lists, tuples and sets: lists;
- anything else: its text (`str`).

numpy and pandas are recognised by their methods, so this module imports neither.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


def _is_missing(value: Any) -> bool:
    """NaN of any type, pandas NaT and NA (whose comparisons are not booleans)."""
    try:
        return bool(value != value)
    except TypeError:  # pandas NA: "boolean value of NA is ambiguous"
        return type(value).__name__ == "NAType"
    except Exception:  # an object whose comparison is not a truth value: not missing
        return False


def plain_json(value: Any) -> JsonValue:
    """`value` as plain JSON data (see the module's table)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_json(v) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy scalar or array
        return plain_json(value.tolist())
    if _is_missing(value):
        return None
    if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
        return str(value.isoformat())
    enum_value = getattr(value, "value", None)
    if isinstance(enum_value, str | int | float):
        return plain_json(enum_value)
    return str(value)
