"""The Store's ground floor: engine and lifecycle, typed frames, run ids and claim fencing.

Every domain module (runs, metrics, checkpoints, ideas, fits, Slurm tasks) adds its methods
to `StoreBase`; `scaletrack.store.store.Store` combines them into the one facade users open.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from scaletrack.store import migrate, schema
from scaletrack.store.engine import (
    create_store_engine,
    parse_store_url,
    read_transaction,
    redact_url,
    resolve_store_url,
    store_failure,
    write_transaction,
)
from scaletrack.store.errors import ClaimLost, StoreError
from scaletrack.store.guard import check_server_tables, check_sqlite_store_file
from scaletrack.store.writer import MetricWriter

INT_COLUMNS = frozenset({"N", "N_total", "D", "seed", "tokens", "step", "max_N_tried", "attempts",
                         "id", "checkpoint_id", "idea_id", "n_shot", "branch_step"})
TIME_COLUMNS = frozenset({"created_at", "updated_at", "heartbeat_at"})
OBJECT_COLUMNS = frozenset({"config", "meta", "payload", "spec", "tags"})
FLOAT_COLUMNS = ("C", "lr", "final_loss", "flops", "value", "threshold", "best_value",
                 "max_flops_tried", "stderr")


def _is_memory_url(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (every stored timestamp)."""
    return datetime.now(UTC)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (of the driver's error when SQLAlchemy wraps it)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def typed_frame(rows: Sequence[Mapping[Any, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with exactly `columns`: nullable Int64 ints, UTC datetimes, dicts as objects."""
    data: dict[str, Any] = {}
    for col in columns:
        values = [r[col] for r in rows]
        if col in INT_COLUMNS:
            data[col] = pd.array(values, dtype="Int64")
        elif col in TIME_COLUMNS:
            data[col] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        elif col in OBJECT_COLUMNS:
            data[col] = pd.Series(values, dtype=object)
        else:
            data[col] = values
    frame = pd.DataFrame(data, columns=list(columns))
    for col in FLOAT_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].astype(np.float64)
    if "attempts" in frame.columns:
        frame["attempts"] = frame["attempts"].astype(np.int64)
    return frame


def _dispose_in_child(engine_ref: weakref.ReferenceType[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


class StoreBase:
    """What every domain of the Store shares: the engine, run ids and the claims it holds.

    Open with `Store.open(url)`; close with `close()` or use as a context manager.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self.url = url
        self._dialect = engine.dialect.name
        self._run_ids: dict[str, int] = {}
        self._run_ids_lock = threading.Lock()
        self._writers: weakref.WeakSet[MetricWriter] = weakref.WeakSet()
        # run_key -> (worker, claim generation) of the claims taken through this Store: every
        # write to such a run is fenced by that claim (see `_check_claim`).
        self._claims: dict[str, tuple[str, int]] = {}
        self._closed = False
        # A forked child must not reuse the parent's pooled connections.
        engine_ref = weakref.ref(engine)
        os.register_at_fork(after_in_child=lambda: _dispose_in_child(engine_ref))

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Self:
        """Open (creating and migrating the schema as needed) the store at `url`.

        `url` None -> $SCALETRACK_STORE -> sqlite:///scaletrack.db. A SQLite file that is not
        a scaletrack store is refused untouched; with `create` False a new or empty file is
        refused too (read-only commands). On PostgreSQL a database without scaletrack's tables
        is refused with `create` False, and one holding other tables named like scaletrack's
        is refused untouched. Raises StoreError.
        """
        resolved = resolve_store_url(url)
        parsed = parse_store_url(resolved)
        shown = redact_url(resolved)
        if parsed.get_backend_name() == "sqlite" and not _is_memory_url(parsed):
            check_sqlite_store_file(Path(parsed.database or "").expanduser().resolve(),
                                    create=create)
        engine = create_store_engine(parsed)
        try:
            if parsed.get_backend_name() != "sqlite":
                with engine.connect() as conn:
                    tables = set(sa.inspect(conn).get_table_names())
                check_server_tables(tables, set(schema.metadata.tables), shown, create=create)
            migrate.upgrade(engine)
        except StoreError:
            engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise store_failure(resolved, exc, "cannot open") from None
        except Exception as exc:  # alembic/driver errors of other kinds
            engine.dispose()
            raise StoreError(f"cannot open store {shown!r}: {first_line(exc)}") from None
        return cls(engine, parsed.render_as_string(hide_password=False))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations and tests; other parts use the methods)."""
        return self._engine

    def schema_version(self) -> str | None:
        """The alembic revision recorded in the database."""
        with self._engine.connect() as conn:
            return migrate.current_revision(conn)

    def close(self) -> None:
        """Close open metric writers (flushing them) and release connections."""
        if self._closed:
            return
        for writer in list(self._writers):
            writer.close()
        self._engine.dispose()
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r})"

    # ------------------------------------------------------------------ run ids
    def _insert(self, table: sa.Table) -> Any:
        if self._dialect == "sqlite":
            return sqlite_dialect.insert(table)
        if self._dialect == "postgresql":
            return pg_dialect.insert(table)
        raise StoreError(f"unsupported backend {self._dialect}")  # pragma: no cover

    def _run_id(self, conn: Connection, run_key: str) -> int | None:
        run_id = self._run_ids.get(run_key)
        if run_id is not None:
            return run_id
        found = conn.execute(
            sa.select(schema.runs.c.id).where(schema.runs.c.run_key == run_key)
        ).scalar_one_or_none()
        if found is not None:
            with self._run_ids_lock:
                self._run_ids[run_key] = found
        return found

    def _require_run_id(self, conn: Connection, run_key: str) -> int:
        run_id = self._run_id(conn, run_key)
        if run_id is None:
            raise StoreError(f"unknown run {run_key!r} (register it with ensure_run first)")
        return run_id

    def _key_map(self, run_keys: Sequence[str] | None = None) -> dict[int, str]:
        """run id -> run key, of every run or of `run_keys` only."""
        t = schema.runs
        with read_transaction(self._engine) as conn:
            if run_keys is None:
                return {i: k for i, k in conn.execute(sa.select(t.c.id, t.c.run_key))}
            out: dict[int, str] = {}
            wanted = sorted(set(run_keys))
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                out.update({i: k for i, k in conn.execute(
                    sa.select(t.c.id, t.c.run_key).where(t.c.run_key.in_(chunk)))})
            return out

    # ------------------------------------------------------------------ claim fencing
    def _claim_with(self, stmt: sa.Update, run_key: str, worker: str) -> bool:
        """Run a claiming UPDATE ... RETURNING claim; on success remember the claim generation,
        which fences this Store's later writes to the run."""
        with write_transaction(self._engine) as conn:
            generation = conn.execute(stmt).scalar_one_or_none()
        if generation is None:
            return False
        self._claims[run_key] = (worker, int(generation))
        return True

    def _held(self, run_key: str | None, worker: str | None = None
              ) -> sa.ColumnElement[bool] | None:
        """The WHERE clause "this Store's claim on `run_key` still stands", or None when this
        Store took no claim on it (or `worker` is not the one that did)."""
        held = self._claims.get(run_key) if run_key is not None else None
        if held is None or (worker is not None and held[0] != worker):
            return None
        t = schema.runs
        return sa.and_(t.c.run_key == run_key, t.c.worker == held[0], t.c.claim == held[1],
                       t.c.status == "running")

    def _check_claim(self, conn: Connection, run_key: str | None) -> None:
        """Raise ClaimLost (inside the caller's write transaction, which then writes nothing)
        when this Store claimed `run_key` and that claim was taken over since."""
        held = self._held(run_key)
        if held is None:
            return
        query = sa.select(schema.runs.c.id).where(held)
        if self._dialect == "postgresql":
            query = query.with_for_update()
        if conn.execute(query).first() is None:
            raise self._lost(conn, run_key)

    def _lost(self, conn: Connection, run_key: str | None) -> ClaimLost:
        # the claim stays recorded, so every later write of this Store to the run is refused too
        worker = self._claims.get(run_key, ("?", 0))[0] if run_key else "?"
        holder = conn.execute(
            sa.select(schema.runs.c.worker, schema.runs.c.status)
            .where(schema.runs.c.run_key == run_key)
        ).first()
        now = "gone" if holder is None else (
            f"now {holder.status}, held by {holder.worker}" if holder.status == "running"
            else f"now {holder.status}")
        return ClaimLost(f"worker {worker} lost its claim on run {run_key} ({now}); "
                         "it stopped without writing")

