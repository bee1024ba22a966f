"""Store: the one place that speaks SQL. SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from scaletrack.store import metrics_io, migrate, schema
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
from scaletrack.store.guard import check_sqlite_store_file
from scaletrack.store.records import (
    CHECKPOINT_KINDS,
    IDEA_DIRECTIONS,
    IDEA_STATUSES,
    RUN_ROLES,
    RUN_STATUSES,
    CheckpointRecord,
    IdeaAttemptRecord,
    IdeaRecord,
    MetricRow,
    RunRecord,
)
from scaletrack.store.writer import MetricWriter

RUN_COLUMNS = (
    "run_key", "sweep", "family", "status", "N", "N_total", "D", "C", "seed", "lr",
    "final_loss", "attempts", "worker", "heartbeat_at", "error", "created_at", "updated_at",
    "config", "name", "tags", "note", "role", "parent_run_key", "branch_step",
)
CHECKPOINT_COLUMNS = (
    "id", "run_key", "kind", "N", "tokens", "flops", "step", "path", "sha256", "loader", "meta",
    "created_at",
)
EVAL_COLUMNS = (
    "checkpoint_id", "run_key", "task", "metric", "value", "N", "tokens", "flops", "created_at",
    "stderr", "n_shot",
)
IDEA_COLUMNS = tuple(f.name for f in dataclasses.fields(IdeaRecord))
IDEA_ATTEMPT_COLUMNS = tuple(f.name for f in dataclasses.fields(IdeaAttemptRecord))
FIT_COLUMNS = ("id", "form", "sweep", "label", "payload", "created_at")
_INT_COLUMNS = {"N", "N_total", "D", "seed", "tokens", "step", "max_N_tried", "attempts", "id",
                "checkpoint_id", "idea_id", "n_shot", "branch_step"}
_TIME_COLUMNS = {"created_at", "updated_at", "heartbeat_at"}


def _is_memory_url(url: Any) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _now() -> datetime:
    return datetime.now(UTC)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with exactly `columns`: nullable Int64 ints, UTC datetimes, dicts as objects."""
    data: dict[str, Any] = {}
    for col in columns:
        values = [r[col] for r in rows]
        if col in _INT_COLUMNS:
            data[col] = pd.array(values, dtype="Int64")
        elif col in _TIME_COLUMNS:
            data[col] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        elif col in ("config", "meta", "payload", "spec", "tags"):
            data[col] = pd.Series(values, dtype=object)
        else:
            data[col] = values
    frame = pd.DataFrame(data, columns=list(columns))
    for col in ("C", "lr", "final_loss", "flops", "value", "threshold", "best_value",
                "max_flops_tried", "stderr"):
        if col in frame.columns:
            frame[col] = frame[col].astype(np.float64)
    if "attempts" in frame.columns:
        frame["attempts"] = frame["attempts"].astype(np.int64)
    return frame


def _dispose_in_child(engine_ref: weakref.ReferenceType[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


class Store:
    """Experiment database: sweeps, runs, metrics, checkpoints, evals, ideas and fits.

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
    def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """Open (creating and migrating the schema as needed) the store at `url`.

        `url` None -> $SCALETRACK_STORE -> sqlite:///scaletrack.db. A SQLite file that is not
        a scaletrack store is refused untouched; with `create` False a new or empty file is
        refused too (read-only commands). Raises StoreError.
        """
        resolved = resolve_store_url(url)
        parsed = parse_store_url(resolved)
        shown = redact_url(resolved)
        if parsed.get_backend_name() == "sqlite" and not _is_memory_url(parsed):
            check_sqlite_store_file(Path(parsed.database or "").expanduser().resolve(),
                                    create=create)
        engine = create_store_engine(parsed)
        try:
            migrate.upgrade(engine)
        except StoreError:
            engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise store_failure(resolved, exc, "cannot open") from None
        except Exception as exc:  # alembic/driver errors of other kinds
            engine.dispose()
            raise StoreError(f"cannot open store {shown!r}: {_first_line(exc)}") from None
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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({redact_url(self.url)!r})"

    # ------------------------------------------------------------------ helpers
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

    # ------------------------------------------------------------------ sweeps
    def upsert_sweep(self, name: str, spec: dict) -> None:
        """Insert or replace the spec of sweep `name`."""
        now = _now()
        stmt = self._insert(schema.sweeps).values(
            name=name, spec=spec, created_at=now, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={"spec": stmt.excluded.spec, "updated_at": now}
        )
        with write_transaction(self._engine) as conn:
            conn.execute(stmt)

    def sweeps(self, tag: str | None = None) -> pd.DataFrame:
        """Columns: name, spec (dict), created_at, note, tags (list); optionally only those
        carrying `tag`."""
        t = schema.sweeps
        query = sa.select(t.c.id, t.c.name, t.c.spec, t.c.created_at, t.c.note).order_by(t.c.name)
        if tag is not None:
            query = query.where(t.c.id.in_(
                sa.select(schema.sweep_tags.c.sweep_id).where(schema.sweep_tags.c.tag == tag)))
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(query)]
            tags = self._tags_by_owner(conn, schema.sweep_tags, "sweep_id")
        rows = [{**r, "tags": tags.get(r["id"], [])} for r in rows]
        return _frame(rows, ("name", "spec", "created_at", "note", "tags"))

    # ------------------------------------------------------------------ runs
    def ensure_run(self, run: RunRecord) -> RunRecord:
        """Insert `run` if its run_key is absent (as given); return the stored row."""
        if run.status not in RUN_STATUSES:
            raise StoreError(f"invalid run status {run.status!r} (one of {RUN_STATUSES})")
        now = _now()
        values = {
            f.name: getattr(run, f.name)
            for f in dataclasses.fields(RunRecord)
            if f.name not in ("created_at", "updated_at")
        }
        values["created_at"] = run.created_at or now
        values["updated_at"] = run.updated_at or now
        stmt = self._insert(schema.runs).values(**values).on_conflict_do_nothing(
            index_elements=["run_key"]
        )
        with write_transaction(self._engine) as conn:
            conn.execute(stmt)
            row = conn.execute(
                sa.select(schema.runs).where(schema.runs.c.run_key == run.run_key)
            ).one()
        return self._run_record(row._mapping)

    def ensure_runs(self, runs: Sequence[RunRecord], *, batch_size: int = 10_000) -> int:
        """Insert the runs whose run_key is absent, one transaction per `batch_size` runs (an
        import of a million rows); returns how many were new."""
        # The column types' own bind processors encode the values (JSON, UTC datetimes), then
        # the driver's executemany runs one compiled statement: SQLAlchemy's per-row work
        # would cost more than the database here.
        now = _now()
        names = [f.name for f in dataclasses.fields(RunRecord)]
        dialect = self._engine.dialect
        t = schema.runs
        stmt = self._insert(t).values({n: sa.bindparam(n) for n in names})
        compiled = stmt.on_conflict_do_nothing(index_elements=["run_key"]).compile(
            dialect=dialect)
        order = list(compiled.positiontup or []) if compiled.positional else names
        procs = {n: t.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names}
        new = 0
        for start in range(0, len(runs), batch_size):
            rows = []
            for run in runs[start:start + batch_size]:
                if run.status not in RUN_STATUSES:
                    raise StoreError(f"invalid run status {run.status!r} (one of {RUN_STATUSES})")
                values = {n: getattr(run, n) for n in names}
                values["created_at"] = run.created_at or now
                values["updated_at"] = run.updated_at or now
                for n, proc in procs.items():
                    if proc is not None and values[n] is not None:
                        values[n] = proc(values[n])
                rows.append(tuple(values[n] for n in order) if compiled.positional else values)
            with write_transaction(self._engine) as conn:
                cursor = conn.connection.driver_connection.cursor()
                try:
                    cursor.executemany(compiled.string, rows)
                    new += max(0, cursor.rowcount)
                finally:
                    cursor.close()
        return new

    @staticmethod
    def _run_record(m: Mapping[str, Any]) -> RunRecord:
        return RunRecord(**{f.name: m[f.name] for f in dataclasses.fields(RunRecord)})

    def get_run(self, run_key: str) -> RunRecord | None:
        """The stored run, or None."""
        with read_transaction(self._engine) as conn:
            row = conn.execute(
                sa.select(schema.runs).where(schema.runs.c.run_key == run_key)
            ).one_or_none()
        return None if row is None else self._run_record(row._mapping)

    def claim_run(self, run_key: str, worker: str, stale_after_s: float = 60.0) -> bool:
        """Atomically take a run for `worker`.

        pending/failed, or running with a heartbeat older than `stale_after_s` seconds (or held by
        the same worker) -> running, attempts+1, True. finished/diverged/live elsewhere -> False.
        """
        t = schema.runs
        now = _now()
        cutoff = now - timedelta(seconds=stale_after_s)
        claimable = sa.or_(
            t.c.status.in_(("pending", "failed")),
            sa.and_(
                t.c.status == "running",
                sa.or_(t.c.heartbeat_at.is_(None), t.c.heartbeat_at < cutoff, t.c.worker == worker),
            ),
        )
        stmt = (
            sa.update(t)
            .where(t.c.run_key == run_key, claimable)
            .values(status="running", worker=worker, heartbeat_at=now, claim=t.c.claim + 1,
                    attempts=t.c.attempts + 1, error=None, updated_at=now)
            .returning(t.c.claim)
        )
        return self._claim_with(stmt, run_key, worker)

    def take_over_run(self, run_key: str, dead_worker: str, worker: str) -> bool:
        """Claim a running run from `dead_worker` (known dead, e.g. its PID is gone on this
        host) without waiting for its heartbeat to go stale; False if it no longer holds it."""
        t = schema.runs
        now = _now()
        stmt = (
            sa.update(t)
            .where(t.c.run_key == run_key, t.c.status == "running", t.c.worker == dead_worker)
            .values(worker=worker, heartbeat_at=now, claim=t.c.claim + 1,
                    attempts=t.c.attempts + 1, error=None, updated_at=now)
            .returning(t.c.claim)
        )
        return self._claim_with(stmt, run_key, worker)

    def claim_generation(self, run_key: str) -> int | None:
        """The generation of the claim this Store holds on `run_key` (None when it holds none).
        A command cell hands it to its program, which adopts it (`adopt_claim`)."""
        held = self._claims.get(run_key)
        return None if held is None else held[1]

    def adopt_claim(self, run_key: str, worker: str, claim: int) -> bool:
        """Fence this Store's writes to `run_key` by a claim another process took (a command
        cell's worker): True when the run is running for `worker` at generation `claim`, and
        from then on every write of this Store to the run checks that it still is."""
        t = schema.runs
        query = sa.select(t.c.id).where(t.c.run_key == run_key, t.c.worker == worker,
                                        t.c.claim == int(claim), t.c.status == "running")
        with read_transaction(self._engine) as conn:
            if conn.execute(query).first() is None:
                return False
        self._claims[run_key] = (worker, int(claim))
        return True

    def _claim_with(self, stmt: sa.Update, run_key: str, worker: str) -> bool:
        """Run a claiming UPDATE ... RETURNING claim; on success remember the claim generation,
        which fences this Store's later writes to the run."""
        with write_transaction(self._engine) as conn:
            generation = conn.execute(stmt).scalar_one_or_none()
        if generation is None:
            return False
        self._claims[run_key] = (worker, int(generation))
        return True

    def _held(self, run_key: str | None, worker: str | None = None) -> sa.ColumnElement | None:
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

    def heartbeat(self, run_key: str, worker: str) -> bool:
        """Refresh the heartbeat of a run held by `worker`; False if it no longer holds it
        (with the same claim, when the claim was taken through this Store)."""
        t = schema.runs
        now = _now()
        held = self._held(run_key, worker)
        where = held if held is not None else sa.and_(
            t.c.run_key == run_key, t.c.worker == worker, t.c.status == "running")
        stmt = sa.update(t).where(where).values(heartbeat_at=now)
        with write_transaction(self._engine) as conn:
            return conn.execute(stmt).rowcount == 1

    def finish_run(
        self, run_key: str, status: str, final_loss: float | None = None,
        error: str | None = None,
    ) -> None:
        """Set the final status (finished/failed/diverged/...), final loss (nats/token), error."""
        if status not in RUN_STATUSES:
            raise StoreError(f"invalid run status {status!r} (one of {RUN_STATUSES})")
        if final_loss is not None:
            final_loss = float(final_loss)
        t = schema.runs
        held = self._held(run_key)
        stmt = (
            sa.update(t)
            .where(t.c.run_key == run_key if held is None else held)
            .values(status=status, final_loss=final_loss, error=error, updated_at=_now())
        )
        with write_transaction(self._engine) as conn:
            if conn.execute(stmt).rowcount != 1:
                if held is not None:
                    raise self._lost(conn, run_key)
                raise StoreError(f"unknown run {run_key!r}")
        self._claims.pop(run_key, None)

    def release_run(self, run_key: str, worker: str) -> None:
        """running -> failed("interrupted"), only if `worker` holds the run."""
        t = schema.runs
        held = self._held(run_key, worker)
        stmt = (
            sa.update(t)
            .where(held if held is not None else sa.and_(
                t.c.run_key == run_key, t.c.worker == worker, t.c.status == "running"))
            .values(status="failed", error="interrupted", updated_at=_now())
        )
        with write_transaction(self._engine) as conn:
            conn.execute(stmt)
        if held is not None:
            self._claims.pop(run_key, None)

    def release_after_failure(self, run_key: str, worker: str) -> bool:
        """`release_run` when the store just failed a write (a full disk): if the release
        fails too, move SQLite's write-ahead log into the database file (which frees the log's
        space) and try once more. True when the run is no longer left running by `worker`."""
        for attempt in range(2):
            try:
                self.release_run(run_key, worker)
                return True
            except ClaimLost:
                return True  # not ours any more: nothing to release
            except StoreError:
                if attempt or self._dialect != "sqlite":
                    return False
                try:
                    with self._engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                except Exception:  # noqa: BLE001 - best effort; the retry says if it helped
                    pass
        return False

    @staticmethod
    def _run_filter(query: sa.Select, sweep: str | None, status: str | None,
                    tag: str | None = None, role: str | None = None) -> sa.Select:
        t = schema.runs
        if role is not None:
            if role not in RUN_ROLES:
                raise StoreError(f"invalid run role {role!r} (one of {RUN_ROLES})")
            query = query.where(t.c.role == role)
        if tag is not None:
            tagged = sa.select(schema.run_tags.c.run_id).where(schema.run_tags.c.tag == tag)
            query = query.where(t.c.id.in_(tagged))
        if sweep is not None:
            query = query.where(t.c.sweep == sweep)
        if status is not None:
            if status not in RUN_STATUSES:
                raise StoreError(f"invalid run status {status!r} (one of {RUN_STATUSES})")
            query = query.where(t.c.status == status)
        return query

    def runs(self, sweep: str | None = None, status: str | None = None, tag: str | None = None,
             *, role: str | None = None, limit: int | None = None, offset: int = 0,
             order: str = "created") -> pd.DataFrame:
        """Runs (optionally of one sweep / status / role / carrying `tag`), columns RUN_COLUMNS
        (tags: a sorted list per run); `order` "created" (created_at) or "compute" (C, N, D,
        seed, lr); a page of `limit` rows from `offset` (paged in SQL, so a store of millions
        of runs reads only the page). Fits want cells and branches, never trunks: `fit_runs`."""
        t = schema.runs
        keys = ((t.c.C, t.c.N, t.c.D, t.c.seed, t.c.lr, t.c.id) if order == "compute"
                else (t.c.created_at, t.c.id))
        query = self._run_filter(sa.select(t).order_by(*keys), sweep, status, tag, role)
        if limit is not None or offset:
            # sort narrow (ids and keys only), then read the page's full rows
            page = self._run_filter(sa.select(t.c.id).order_by(*keys), sweep, status, tag, role)
            page = page.limit(None if limit is None else int(limit)).offset(int(offset))
            query = sa.select(t).where(t.c.id.in_(page.scalar_subquery())).order_by(*keys)
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(query)]
            # a page reads only its own runs' tags, not the whole table
            paged = limit is not None or offset
            tags = self._tags_by_owner(conn, schema.run_tags, "run_id",
                                       [r["id"] for r in rows] if paged else None)
        rows = [{**r, "tags": tags.get(r["id"], [])} for r in rows]
        frame = _frame(rows, RUN_COLUMNS)
        return frame

    # ------------------------------------------------------------------ names, tags, notes
    @staticmethod
    def _tags_by_owner(conn: Connection, table: sa.Table, owner: str,
                       owner_ids: Sequence[int] | None = None) -> dict[int, list[str]]:
        """Tags per owner id: all owners, or only `owner_ids` (read in chunks that stay under
        SQLite's bound-parameter limit)."""
        query = sa.select(table.c[owner], table.c.tag)
        if owner_ids is None:
            queries = [query]
        else:
            ids = list(owner_ids)
            queries = [query.where(table.c[owner].in_(ids[i:i + 500]))
                       for i in range(0, len(ids), 500)]
        out: dict[int, list[str]] = {}
        for chunk in queries:
            for owner_id, tag in conn.execute(chunk):
                out.setdefault(owner_id, []).append(tag)
        return {k: sorted(v) for k, v in out.items()}

    def _sweep_id(self, conn: Connection, name: str) -> int:
        found = conn.execute(
            sa.select(schema.sweeps.c.id).where(schema.sweeps.c.name == name)
        ).scalar_one_or_none()
        if found is None:
            raise StoreError(f"unknown sweep {name!r}")
        return int(found)

    def tag(self, *, run_key: str | None = None, sweep: str | None = None,
            add: Sequence[str] = (), remove: Sequence[str] = (),
            note: str | None = None) -> list[str]:
        """Add/remove tags (and set the note, if given) of one run or one sweep; returns the
        tags it now has."""
        if (run_key is None) == (sweep is None):
            raise StoreError("tag exactly one of a run or a sweep")
        for text in (*add, *remove):
            if not str(text).strip() or len(str(text)) > 200:
                raise StoreError(f"invalid tag {text!r} (1 to 200 characters)")
        if run_key is not None:
            table, owner, owners = schema.run_tags, "run_id", schema.runs
        else:
            table, owner, owners = schema.sweep_tags, "sweep_id", schema.sweeps
        with write_transaction(self._engine) as conn:
            oid = (self._require_run_id(conn, run_key) if run_key is not None
                   else self._sweep_id(conn, str(sweep)))
            for text in add:
                stmt = self._insert(table).values({owner: oid, "tag": str(text).strip()})
                conn.execute(stmt.on_conflict_do_nothing())
            if remove:
                conn.execute(sa.delete(table).where(
                    table.c[owner] == oid, table.c.tag.in_([str(x).strip() for x in remove])))
            if note is not None:
                conn.execute(sa.update(owners).where(owners.c.id == oid).values(note=note))
            return sorted(conn.execute(
                sa.select(table.c.tag).where(table.c[owner] == oid)).scalars())

    def update_run(self, run_key: str, **fields: Any) -> None:
        """Set descriptive fields of a run: name, note, N, N_total, D, C, seed, lr, config."""
        allowed = {"name", "note", "N", "N_total", "D", "C", "seed", "lr", "config", "family",
                   "sweep"}
        unknown = set(fields) - allowed
        if unknown:
            raise StoreError(f"cannot update run fields {sorted(unknown)} (allowed: "
                             f"{sorted(allowed)})")
        t = schema.runs
        stmt = sa.update(t).where(t.c.run_key == run_key).values(**fields, updated_at=_now())
        with write_transaction(self._engine) as conn:
            if conn.execute(stmt).rowcount != 1:
                raise StoreError(f"unknown run {run_key!r}")

    def count_runs(self, sweep: str | None = None, status: str | None = None,
                   tag: str | None = None) -> int:
        """Number of runs (of one sweep / status / carrying `tag`), counted in SQL."""
        query = self._run_filter(sa.select(sa.func.count()).select_from(schema.runs),
                                 sweep, status, tag)
        with read_transaction(self._engine) as conn:
            return int(conn.execute(query).scalar_one())

    def run_status_counts(self, sweep: str | None = None) -> dict[str, int]:
        """Runs per status (every status listed, zeros included), aggregated in SQL."""
        t = schema.runs
        query = self._run_filter(
            sa.select(t.c.status, sa.func.count()).group_by(t.c.status), sweep, None)
        with read_transaction(self._engine) as conn:
            found = {status: int(n) for status, n in conn.execute(query)}
        return {s: found.get(s, 0) for s in RUN_STATUSES}

    def find_run_keys(self, prefix: str, limit: int = 2) -> list[str]:
        """Run keys starting with `prefix` (at most `limit`), through the run_key index."""
        t = schema.runs
        query = sa.select(t.c.run_key)
        if prefix:  # a key range rather than LIKE, so the unique index on run_key is used
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            query = query.where(t.c.run_key >= prefix, t.c.run_key < upper)
        query = (query.order_by(t.c.run_key).limit(limit))
        with read_transaction(self._engine) as conn:
            return [r[0] for r in conn.execute(query)]

    def fit_runs(self, sweep: str | None = None) -> pd.DataFrame:
        """Finished runs that are points of a grid (cells and branches, never trunks)."""
        runs = self.runs(sweep=sweep, status="finished")
        return runs[runs["role"] != "trunk"].reset_index(drop=True)

    # ------------------------------------------------------------------ metrics
    def _fence(self, run_key: str, run_id: int) -> metrics_io.Fence | None:
        held = self._claims.get(run_key)
        return None if held is None else metrics_io.Fence(run_key, run_id, held[0], held[1])

    def _metric_sink(self, run_key: str, run_id: int, batch_size: int):
        def sink(items: list) -> None:
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
            by_run: dict[str, list] = {}
            for r in rows:
                by_run.setdefault(r.run_key, []).append(
                    (r.name, r.step, r.value, r.tokens, r.wall_time)
                )
            parts = list(by_run.items())
        with self._engine.connect() as conn:
            ids = {key: self._require_run_id(conn, key) for key, _ in parts}
        encoded: list[tuple] = []
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

    # ------------------------------------------------------------------ checkpoints
    def add_checkpoint(self, ckpt: CheckpointRecord) -> int:
        """Register a checkpoint (upsert on path); returns its id."""
        if ckpt.kind not in CHECKPOINT_KINDS:
            raise StoreError(f"invalid checkpoint kind {ckpt.kind!r} (one of {CHECKPOINT_KINDS})")
        with write_transaction(self._engine) as conn:
            run_id = None if ckpt.run_key is None else self._require_run_id(conn, ckpt.run_key)
            self._check_claim(conn, ckpt.run_key)
            values = {
                "run_id": run_id, "kind": ckpt.kind, "N": int(ckpt.N), "tokens": int(ckpt.tokens),
                "flops": None if ckpt.flops is None else float(ckpt.flops),
                "step": None if ckpt.step is None else int(ckpt.step), "path": str(ckpt.path),
                "sha256": ckpt.sha256, "loader": ckpt.loader, "meta": dict(ckpt.meta or {}),
                "created_at": ckpt.created_at or _now(),
            }
            c = schema.checkpoints
            stmt = self._insert(c).values(**values)
            update = {k: stmt.excluded[k] for k in values if k not in ("path", "created_at")}
            # A re-save may refresh a record, never hand it to another run or kind.
            same_owner = sa.and_(c.c.kind == stmt.excluded.kind,
                                 c.c.run_id.is_not_distinct_from(stmt.excluded.run_id))
            stmt = stmt.on_conflict_do_update(
                index_elements=["path"], set_=update, where=same_owner
            ).returning(c.c.id)
            found = conn.execute(stmt).scalar_one_or_none()
            if found is None:
                raise StoreError(f"checkpoint {ckpt.path} is already registered to another run "
                                 "or as another kind; not replaced")
            return int(found)

    def _checkpoint_query(self) -> sa.Select:
        c, r = schema.checkpoints, schema.runs
        return sa.select(
            c.c.id, r.c.run_key, c.c.kind, c.c.N, c.c.tokens, c.c.flops, c.c.step, c.c.path,
            c.c.sha256, c.c.loader, c.c.meta, c.c.created_at,
        ).select_from(c.outerjoin(r, c.c.run_id == r.c.id))

    def checkpoints(self, run_key: str | None = None, kind: str | None = None) -> pd.DataFrame:
        """Columns CHECKPOINT_COLUMNS, ordered by id."""
        c, r = schema.checkpoints, schema.runs
        query = self._checkpoint_query().order_by(c.c.id)
        if run_key is not None:
            query = query.where(r.c.run_key == run_key)
        if kind is not None:
            query = query.where(c.c.kind == kind)
        with read_transaction(self._engine) as conn:
            rows = [row._mapping for row in conn.execute(query)]
        return _frame(rows, CHECKPOINT_COLUMNS)

    def get_checkpoint(self, id: int) -> CheckpointRecord | None:
        """The checkpoint with this id, or None."""
        query = self._checkpoint_query().where(schema.checkpoints.c.id == id)
        with read_transaction(self._engine) as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else CheckpointRecord(**row._mapping)

    def latest_checkpoints(self, run_key: str) -> list[CheckpointRecord]:
        """The run's checkpoints, newest (highest step) first."""
        c, r = schema.checkpoints, schema.runs
        query = (
            self._checkpoint_query()
            .where(r.c.run_key == run_key)
            .order_by(sa.func.coalesce(c.c.step, -1).desc(), c.c.id.desc())
        )
        with read_transaction(self._engine) as conn:
            return [CheckpointRecord(**row._mapping) for row in conn.execute(query)]

    # ------------------------------------------------------------------ evals
    def add_eval(self, checkpoint_id: int, task: str, metric: str, value: float,
                 stderr: float | None = None, n_shot: int | None = None) -> None:
        """Record (upsert) an evaluation result of a checkpoint (with its standard error and
        the number of few-shot examples, when known)."""
        now = _now()
        stmt = self._insert(schema.evals).values(
            checkpoint_id=checkpoint_id, task=task, metric=metric, value=float(value),
            created_at=now, stderr=None if stderr is None else float(stderr),
            n_shot=None if n_shot is None else int(n_shot),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["checkpoint_id", "task", "metric"],
            set_={"value": stmt.excluded.value, "created_at": now,
                  "stderr": stmt.excluded.stderr, "n_shot": stmt.excluded.n_shot},
        )
        try:
            with write_transaction(self._engine) as conn:
                self._check_checkpoint_claim(conn, checkpoint_id)
                conn.execute(stmt)
        except sa.exc.IntegrityError:
            raise StoreError(f"unknown checkpoint id {checkpoint_id}") from None

    def _check_checkpoint_claim(self, conn: Connection, checkpoint_id: int) -> None:
        """`_check_claim` for the run owning a checkpoint (only when this Store holds claims)."""
        if not self._claims:
            return
        c, r = schema.checkpoints, schema.runs
        owner = conn.execute(sa.select(r.c.run_key).select_from(
            c.join(r, c.c.run_id == r.c.id)).where(c.c.id == int(checkpoint_id))).scalar()
        if owner is not None:
            self._check_claim(conn, owner)

    def add_evals(self, checkpoint_id: int,
                  rows: Iterable[tuple[str, str, float, float | None, int | None]]) -> int:
        """Record (upsert) many results of one checkpoint in one transaction; rows are
        (task, metric, value, stderr, n_shot). Returns how many."""
        now = _now()
        values = [
            {"checkpoint_id": int(checkpoint_id), "task": str(t), "metric": str(m),
             "value": float(v), "stderr": None if se is None else float(se),
             "n_shot": None if k is None else int(k), "created_at": now}
            for t, m, v, se, k in rows
        ]
        if not values:
            return 0
        stmt = self._insert(schema.evals)
        stmt = stmt.on_conflict_do_update(
            index_elements=["checkpoint_id", "task", "metric"],
            set_={"value": stmt.excluded.value, "created_at": now,
                  "stderr": stmt.excluded.stderr, "n_shot": stmt.excluded.n_shot},
        )
        try:
            with write_transaction(self._engine) as conn:
                self._check_checkpoint_claim(conn, checkpoint_id)
                conn.execute(stmt, values)
        except sa.exc.IntegrityError:
            raise StoreError(f"unknown checkpoint id {checkpoint_id}") from None
        return len(values)

    def evals(self, task: str | None = None) -> pd.DataFrame:
        """Columns EVAL_COLUMNS (N params, tokens, flops FLOPs of the checkpoint)."""
        e, c, r = schema.evals, schema.checkpoints, schema.runs
        query = (
            sa.select(e.c.checkpoint_id, r.c.run_key, e.c.task, e.c.metric, e.c.value, c.c.N,
                      c.c.tokens, c.c.flops, e.c.created_at, e.c.stderr, e.c.n_shot)
            .select_from(e.join(c, e.c.checkpoint_id == c.c.id).outerjoin(r, c.c.run_id == r.c.id))
            .order_by(e.c.checkpoint_id, e.c.task, e.c.metric)
        )
        if task is not None:
            query = query.where(e.c.task == task)
        with read_transaction(self._engine) as conn:
            rows = [row._mapping for row in conn.execute(query)]
        return _frame(rows, EVAL_COLUMNS)

    # ------------------------------------------------------------------ ideas
    @staticmethod
    def _check_idea_fields(fields: Mapping[str, Any]) -> None:
        if "direction" in fields and fields["direction"] not in IDEA_DIRECTIONS:
            raise StoreError(f"invalid idea direction {fields['direction']!r} ({IDEA_DIRECTIONS})")
        if "status" in fields and fields["status"] not in IDEA_STATUSES:
            raise StoreError(f"invalid idea status {fields['status']!r} ({IDEA_STATUSES})")

    def add_idea(self, idea: IdeaRecord) -> int:
        """Register an idea; returns its id."""
        values = {f.name: getattr(idea, f.name) for f in dataclasses.fields(IdeaRecord)}
        values.pop("id")
        self._check_idea_fields(values)
        now = _now()
        values["created_at"] = idea.created_at or now
        values["updated_at"] = idea.updated_at or now
        stmt = sa.insert(schema.ideas).values(**values).returning(schema.ideas.c.id)
        with write_transaction(self._engine) as conn:
            return int(conn.execute(stmt).scalar_one())

    def get_idea(self, idea_id: int) -> IdeaRecord | None:
        """The idea with this id, or None."""
        with read_transaction(self._engine) as conn:
            row = conn.execute(
                sa.select(schema.ideas).where(schema.ideas.c.id == idea_id)
            ).one_or_none()
        return None if row is None else IdeaRecord(**row._mapping)

    def update_idea(self, idea_id: int, **fields: Any) -> None:
        """Set some fields of an idea (any IdeaRecord field except id/created_at)."""
        allowed = set(IDEA_COLUMNS) - {"id", "created_at", "updated_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise StoreError(f"unknown idea fields {sorted(unknown)} (allowed: {sorted(allowed)})")
        self._check_idea_fields(fields)
        stmt = (
            sa.update(schema.ideas)
            .where(schema.ideas.c.id == idea_id)
            .values(**fields, updated_at=_now())
        )
        with write_transaction(self._engine) as conn:
            if conn.execute(stmt).rowcount != 1:
                raise StoreError(f"unknown idea id {idea_id}")

    def delete_idea(self, idea_id: int) -> None:
        """Delete an idea and its attempts (cascade)."""
        with write_transaction(self._engine) as conn:
            conn.execute(sa.delete(schema.idea_attempts)
                         .where(schema.idea_attempts.c.idea_id == idea_id))
            if conn.execute(sa.delete(schema.ideas)
                            .where(schema.ideas.c.id == idea_id)).rowcount != 1:
                raise StoreError(f"unknown idea id {idea_id}")

    def ideas(self) -> pd.DataFrame:
        """Columns: the IdeaRecord fields, ordered by id."""
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(
                sa.select(schema.ideas).order_by(schema.ideas.c.id))]
        return _frame(rows, IDEA_COLUMNS)

    def add_idea_attempt(self, attempt: IdeaAttemptRecord) -> int:
        """Record one evaluation of an idea on a checkpoint; returns its id."""
        values = {f.name: getattr(attempt, f.name) for f in dataclasses.fields(IdeaAttemptRecord)}
        values.pop("id")
        values["created_at"] = attempt.created_at or _now()
        values["passed"] = bool(values["passed"])
        stmt = sa.insert(schema.idea_attempts).values(**values).returning(
            schema.idea_attempts.c.id
        )
        try:
            with write_transaction(self._engine) as conn:
                return int(conn.execute(stmt).scalar_one())
        except sa.exc.IntegrityError:
            raise StoreError(
                f"unknown idea {attempt.idea_id} or checkpoint {attempt.checkpoint_id}"
            ) from None

    def idea_attempts(self, idea_id: int | None = None) -> pd.DataFrame:
        """Columns: the IdeaAttemptRecord fields, ordered by id."""
        t = schema.idea_attempts
        query = sa.select(t).order_by(t.c.id)
        if idea_id is not None:
            query = query.where(t.c.idea_id == idea_id)
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(query)]
        frame = _frame(rows, IDEA_ATTEMPT_COLUMNS)
        frame["passed"] = frame["passed"].astype(bool)
        return frame

    # ------------------------------------------------------------------ fits
    def save_fit(
        self, form: str, payload: dict, *, sweep: str | None = None, label: str | None = None
    ) -> int:
        """Store a fit result (payload: its to_dict()); returns its id."""
        stmt = sa.insert(schema.fits).values(
            form=form, payload=payload, sweep=sweep, label=label, created_at=_now()
        ).returning(schema.fits.c.id)
        with write_transaction(self._engine) as conn:
            return int(conn.execute(stmt).scalar_one())

    def fits(self, form: str | None = None) -> pd.DataFrame:
        """Columns: id, form, sweep, label, payload (dict), created_at; ordered by id."""
        t = schema.fits
        query = sa.select(t).order_by(t.c.id)
        if form is not None:
            query = query.where(t.c.form == form)
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(query)]
        return _frame(rows, FIT_COLUMNS)

