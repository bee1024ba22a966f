"""Column types shared by the schema and its migrations (keep these stable: migrations use them).

- `UTCDateTime`: timezone-aware UTC datetimes on every backend (SQLite stores naive UTC text).
- `Float64Bits`: an exact float64 that keeps NaN/inf. PostgreSQL: DOUBLE PRECISION. SQLite: the
  8 little-endian IEEE-754 bytes as a BLOB (SQLite turns NaN into NULL, and the BLOB lets the
  metric reader decode a million values at C speed with `hex()` + `numpy.frombuffer`).
- `NaNFloat`: a float column whose NULL means NaN on SQLite (for non-null values such as evals).
- `JSONText`: JSON stored as text; NaN/inf and numpy scalars survive (PostgreSQL json
  rejects NaN).
"""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_F64 = struct.Struct("<d")
pack_f64 = _F64.pack
unpack_f64 = _F64.unpack


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always returned timezone-aware (UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


class Float64Bits(TypeDecorator[float]):
    """Exact float64 including NaN/inf: BLOB of IEEE-754 bytes on SQLite, DOUBLE elsewhere."""

    impl = sa.Double
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.LargeBinary())
        return dialect.type_descriptor(sa.Double())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return pack_f64(float(value))
        return float(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        if value is None:
            return None
        if isinstance(value, (bytes, memoryview)):
            return float(unpack_f64(bytes(value))[0])
        return float(value)


class NaNFloat(TypeDecorator[float]):
    """A float where NULL reads back as NaN (SQLite stores NaN as NULL); inf round-trips."""

    impl = sa.Double
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = float(value)
        return None if math.isnan(value) and dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> float:
        return math.nan if value is None else float(value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):  # numpy array
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serialisable")


def dumps_json(value: Any) -> str:
    """Serialise to JSON text (sorted keys; NaN/inf allowed)."""
    return json.dumps(value, sort_keys=True, default=_json_default, allow_nan=True)


class JSONText(TypeDecorator[Any]):
    """A JSON document stored as text; NaN/inf and numpy scalars round-trip."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else dumps_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)
