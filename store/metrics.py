"""Metrics: the batched background writer, synchronous upserts, reads and counts.

One row per (run, name, step); writing a step again replaces its value. Writes to a run this
Store claimed are fenced by the claim (a run taken over by another worker gets nothing more).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from scaletrack.store import metrics_io, schema
from scaletrack.store.base import StoreBase
from scaletrack.store.engine import read_transaction, store_failure, write_transaction
from scaletrack.store.errors import ClaimLost, StoreError
from scaletrack.store.records import MetricRow
from scaletrack.store.writer import MetricWriter


class MetricMethods(StoreBase):
    """The Store's methods for metrics (values as logged; tokens seen; wall_time seconds)."""

    # ------------------------------------------------------------------ metrics
    def _fence(self, run_key: str, run_id: int) -> metrics_io.Fence | None:
        held = self._claims.get(run_key)
        return None if held is None else metrics_io.Fence(run_key, run_id, held[0], held[1])

    def _metric_sink(self, run_key: str, run_id: int, batch_size: int
                     ) -> Callable[[list[Any]], None]:
        def sink(items: list[Any]) -> None:
            rows = metrics_io.encode_items(self._dialect, run_id, items)
            fence = self._fence(run_key, run_id)
            try:
                metrics_io.write_encoded(self._engine, rows, batch_size,
                                         fences=() if fence is None else (fence,))
            except (ClaimLost, StoreError):
                raise
            except Exception as exc:  # a full disk, an I/O error: name the store and the cause
                raise store_failure(self._engine.url, exc) from exc

        return sink

    def metric_writer(
        self, run_key: str, *, batch_size: int = 1000, flush_interval_s: float = 0.5
    ) -> MetricWriter:
        """A background-thread, batched writer for one run's metrics (the run must exist)."""
        with self._engine.connect() as conn:
            run_id = self._require_run_id(conn, run_key)
        writer = MetricWriter(
            self._metric_sink(run_key, run_id, batch_size), run_key, batch_size=batch_size,
            flush_interval_s=flush_interval_s,
        )
        self._writers.add(writer)
        return writer

    def write_metrics(self, rows: pd.DataFrame | Iterable[MetricRow], *,
                      batch_size: int = 10_000) -> int:
        """Synchronous idempotent upsert (one transaction per `batch_size` rows); returns the
        number of rows given. A DataFrame needs run_key, name, step, value; tokens and
        wall_time are optional."""
        if isinstance(rows, pd.DataFrame):
            missing = {"run_key", "name", "step", "value"} - set(rows.columns)
            if missing:
                raise StoreError(f"metrics frame lacks columns {sorted(missing)}")
            parts = [(str(key), part) for key, part in rows.groupby("run_key", sort=False)]
        else:
            by_run: dict[str, list[tuple[Any, ...]]] = {}
            for r in rows:
                by_run.setdefault(r.run_key, []).append(
                    (r.name, r.step, r.value, r.tokens, r.wall_time)
                )
            parts = list(by_run.items())
        with self._engine.connect() as conn:
            ids = {key: self._require_run_id(conn, key) for key, _ in parts}
        encoded: list[tuple[Any, ...]] = []
        for key, part in parts:
            if isinstance(part, pd.DataFrame):
                encoded.extend(metrics_io.encode_frame(self._dialect, ids[key], part))
            else:
                encoded.extend(metrics_io.encode_items(self._dialect, ids[key], part))
        fences = [f for f in (self._fence(key, ids[key]) for key, _ in parts) if f is not None]
        try:
            metrics_io.write_encoded(self._engine, encoded, batch_size, fences=fences)
        except (ClaimLost, StoreError):
            raise
        except Exception as exc:
            raise store_failure(self._engine.url, exc, "writing metrics failed") from exc
        return len(encoded)


    def metrics(
        self, run_keys: Sequence[str] | None = None, names: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Columns run_key, name, step (int64), value (float64, NaN/inf kept), tokens (Int64),
        wall_time (float64 seconds); sorted by run_key, name, step."""
        run_ids = None
        if run_keys is not None:
            if isinstance(run_keys, str):
                run_keys = [run_keys]
            key_of = self._key_map(list(run_keys))  # only these: a store may hold millions
            run_ids = sorted(key_of)
        else:
            key_of = self._key_map()
        if isinstance(names, str):
            names = [names]
        try:
            return metrics_io.read_metrics(
                self._engine, run_ids, None if names is None else list(names), key_of
            )
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise store_failure(self._engine.url, exc, "cannot read") from exc

    def count_metrics(self, run_key: str | None = None) -> int:
        """Number of metric rows (of one run, or all)."""
        query = sa.select(sa.func.count()).select_from(schema.metrics)
        with read_transaction(self._engine) as conn:
            if run_key is not None:
                run_id = self._run_id(conn, run_key)
                if run_id is None:
                    return 0
                query = query.where(schema.metrics.c.run_id == run_id)
            return int(conn.execute(query).scalar_one())

    def metric_counts(self, run_key: str) -> dict[str, int]:
        """Rows per metric name of one run ({} for an unknown run), counted in SQL on the
        (run, name, step) key, so no metric values are read."""
        m = schema.metrics
        with read_transaction(self._engine) as conn:
            run_id = self._run_id(conn, run_key)
            if run_id is None:
                return {}
            query = (sa.select(m.c.name, sa.func.count()).where(m.c.run_id == run_id)
                     .group_by(m.c.name).order_by(m.c.name))
            return {str(name): int(n) for name, n in conn.execute(query)}

    def delete_metrics_after(self, run_key: str, step: int) -> int:
        """Delete the run's metric rows with step > `step`; returns how many."""
        m = schema.metrics
        with write_transaction(self._engine) as conn:
            run_id = self._require_run_id(conn, run_key)
            self._check_claim(conn, run_key)
            return conn.execute(sa.delete(m).where(m.c.run_id == run_id, m.c.step > step)).rowcount

