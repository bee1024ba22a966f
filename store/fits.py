"""Stored fit results, and the cache of fits keyed by their inputs.

A fit is stored as its `to_dict()` payload with its form, sweep and label. A fit saved with a
`key` (`fit_cache_key` of its form, points and options) is also a cache entry: `cached_fit`
answers the newest payload saved under that key, so a view asked again after a restart reads
the fit instead of computing it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from scaletrack.store import schema
from scaletrack.store.base import StoreBase, typed_frame, utc_now
from scaletrack.store.engine import read_transaction, write_transaction
from scaletrack.store.errors import StoreError

FIT_COLUMNS = ("id", "form", "sweep", "label", "payload", "created_at")
FIT_KEY_LENGTH = 64  # characters of a cache key (a SHA-256 in hex)
_KEY_VERSION = 1  # bumped when the canonical form below changes (old entries stop matching)


def _canonical(value: Any) -> Any:
    """`value` as plain JSON data: numpy scalars and arrays, tuples and NA made plain; floats
    kept exactly (JSON writes the shortest repr that reads back the same float)."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | pd.Series | pd.Index):
        return [_canonical(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan", "inf", "-inf": JSON has no such numbers
    if isinstance(value, bool | int | float | str):
        return value
    raise StoreError(f"cannot key a fit on a value of type {type(value).__name__}")


def fit_cache_key(form: str, points: pd.DataFrame | Mapping[str, Sequence[Any]],
                  options: Mapping[str, Any] | None = None) -> str:
    """The cache key of a fit: a SHA-256 (64 hex characters) of its form, its points (columns
    by name, rows in the order given: sort them first if the fit does not depend on their
    order) and its options (any JSON-like mapping, e.g. bootstrap draws and seed).

    The same inputs give the same key in any process; any changed value changes it.
    """
    columns = points.to_dict("list") if isinstance(points, pd.DataFrame) else dict(points)
    data = {"v": _KEY_VERSION, "form": str(form),
            "points": {str(name): _canonical(list(values))
                       for name, values in sorted(columns.items(), key=lambda kv: str(kv[0]))},
            "options": _canonical(dict(options or {}))}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= FIT_KEY_LENGTH:
        raise StoreError(f"invalid fit key {key!r} (1 to {FIT_KEY_LENGTH} characters; "
                         "use fit_cache_key)")
    return key


class FitMethods(StoreBase):
    """The Store's methods for fit results and the fit cache."""

    def save_fit(
        self, form: str, payload: dict[str, Any], *, sweep: str | None = None,
        label: str | None = None, key: str | None = None,
    ) -> int:
        """Store a fit result (payload: its to_dict()); returns its id. With `key` (see
        `fit_cache_key`) it is also the cache entry `cached_fit(key)` answers."""
        stmt = sa.insert(schema.fits).values(
            form=form, payload=payload, sweep=sweep, label=label, created_at=utc_now(),
            key=None if key is None else _check_key(key),
        ).returning(schema.fits.c.id)
        with write_transaction(self._engine) as conn:
            return int(conn.execute(stmt).scalar_one())

    def cached_fit(self, key: str) -> dict[str, Any] | None:
        """The payload of the newest fit saved under `key`, or None (one indexed lookup)."""
        t = schema.fits
        query = (sa.select(t.c.payload).where(t.c.key == _check_key(key))
                 .order_by(t.c.id.desc()).limit(1))
        with read_transaction(self._engine) as conn:
            payload = conn.execute(query).scalar_one_or_none()
        return None if payload is None else dict(payload)

    def fits(self, form: str | None = None, *, cached: bool = False) -> pd.DataFrame:
        """Columns: id, form, sweep, label, payload (dict), created_at; ordered by id.

        The fits someone saved; cache entries (saved with a key, e.g. the dashboard's scaling
        fits written when a sweep finishes) only with `cached=True`.
        """
        t = schema.fits
        query = sa.select(*(t.c[c] for c in FIT_COLUMNS)).order_by(t.c.id)
        if not cached:
            query = query.where(t.c.key.is_(None))
        if form is not None:
            query = query.where(t.c.form == form)
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(query)]
        return typed_frame(rows, FIT_COLUMNS)
