"""Store: the one place that speaks SQL. SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
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
    write_transaction,
)
from scaletrack.store.errors import StoreError
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
    "config", "role", "parent_run_key", "branch_step",
)
CHECKPOINT_COLUMNS = (
    "id", "run_key", "kind", "N", "tokens", "flops", "step", "path", "sha256", "loader", "meta",
    "created_at",
)
EVAL_COLUMNS = (
    "checkpoint_id", "run_key", "task", "metric", "value", "N", "tokens", "flops", "created_at",
)
IDEA_COLUMNS = tuple(f.name for f in dataclasses.fields(IdeaRecord))
IDEA_ATTEMPT_COLUMNS = tuple(f.name for f in dataclasses.fields(IdeaAttemptRecord))
FIT_COLUMNS = ("id", "form", "sweep", "label", "payload", "created_at")
_INT_COLUMNS = {"N", "N_total", "D", "seed", "tokens", "step", "max_N_tried", "attempts", "id",
                "checkpoint_id", "idea_id", "branch_step"}
_TIME_COLUMNS = {"created_at", "updated_at", "heartbeat_at"}


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
        elif col in ("config", "meta", "payload", "spec"):
            data[col] = pd.Series(values, dtype=object)
        else:
            data[col] = values
    frame = pd.DataFrame(data, columns=list(columns))
    for col in ("C", "lr", "final_loss", "flops", "value", "threshold", "best_value",
                "max_flops_tried"):
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
        self._closed = False
        # A forked child must not reuse the parent's pooled connections.
        engine_ref = weakref.ref(engine)
        os.register_at_fork(after_in_child=lambda: _dispose_in_child(engine_ref))

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, url: str | None = None) -> Store:
        """Open (creating and migrating the schema as needed) the store at `url`.

        `url` None -> $SCALETRACK_STORE -> sqlite:///scaletrack.db. Raises StoreError.
        """
        resolved = resolve_store_url(url)
        parsed = parse_store_url(resolved)
        shown = redact_url(resolved)
        engine = create_store_engine(parsed)
        try:
            migrate.upgrade(engine)
        except StoreError:
            engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise StoreError(f"cannot open store {shown!r}: {_first_line(exc)}") from None
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

    def sweeps(self) -> pd.DataFrame:
        """Columns: name, spec (dict), created_at."""
        t = schema.sweeps
        with read_transaction(self._engine) as conn:
            rows = conn.execute(sa.select(t.c.name, t.c.spec, t.c.created_at).order_by(t.c.name))
            return _frame([r._mapping for r in rows], ("name", "spec", "created_at"))

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
            .values(status="running", worker=worker, heartbeat_at=now,
                    attempts=t.c.attempts + 1, error=None, updated_at=now)
        )
        with write_transaction(self._engine) as conn:
            return conn.execute(stmt).rowcount == 1

    def heartbeat(self, run_key: str, worker: str) -> bool:
        """Refresh the heartbeat of a run held by `worker`; False if it no longer holds it."""
        t = schema.runs
        now = _now()
        stmt = (
            sa.update(t)
            .where(t.c.run_key == run_key, t.c.worker == worker, t.c.status == "running")
            .values(heartbeat_at=now)
        )
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
        stmt = (
            sa.update(t)
            .where(t.c.run_key == run_key)
            .values(status=status, final_loss=final_loss, error=error, updated_at=_now())
        )
        with write_transaction(self._engine) as conn:
            if conn.execute(stmt).rowcount != 1:
                raise StoreError(f"unknown run {run_key!r}")

    def release_run(self, run_key: str, worker: str) -> None:
        """running -> failed("interrupted"), only if `worker` holds the run."""
        t = schema.runs
        stmt = (
            sa.update(t)
            .where(t.c.run_key == run_key, t.c.worker == worker, t.c.status == "running")
            .values(status="failed", error="interrupted", updated_at=_now())
        )
        with write_transaction(self._engine) as conn:
            conn.execute(stmt)

    def runs(
        self, sweep: str | None = None, status: str | None = None, role: str | None = None
    ) -> pd.DataFrame:
        """All runs (optionally of one sweep / status / role), columns RUN_COLUMNS, by created_at.

        Fits want ``role="cell"`` plus branches: use :meth:`fit_runs`.
        """
        t = schema.runs
        query = sa.select(t).order_by(t.c.created_at, t.c.id)
        if role is not None:
            if role not in RUN_ROLES:
                raise StoreError(f"invalid run role {role!r} (one of {RUN_ROLES})")
            query = query.where(t.c.role == role)
        if sweep is not None:
            query = query.where(t.c.sweep == sweep)
        if status is not None:
            if status not in RUN_STATUSES:
                raise StoreError(f"invalid run status {status!r} (one of {RUN_STATUSES})")
            query = query.where(t.c.status == status)
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(query)]
        frame = _frame(rows, RUN_COLUMNS)
        return frame

    def fit_runs(self, sweep: str | None = None) -> pd.DataFrame:
        """Finished runs that are points of a grid (cells and branches, never trunks)."""
        runs = self.runs(sweep=sweep, status="finished")
        return runs[runs["role"] != "trunk"].reset_index(drop=True)

    # ------------------------------------------------------------------ metrics
    def _metric_sink(self, run_id: int, batch_size: int):
        def sink(items: list) -> None:
            rows = metrics_io.encode_items(self._dialect, run_id, items)
            metrics_io.write_encoded(self._engine, rows, batch_size)

        return sink

    def metric_writer(
        self, run_key: str, *, batch_size: int = 1000, flush_interval_s: float = 0.5
    ) -> MetricWriter:
        """A background-thread, batched writer for one run's metrics (the run must exist)."""
        with self._engine.connect() as conn:
            run_id = self._require_run_id(conn, run_key)
        writer = MetricWriter(
            self._metric_sink(run_id, batch_size), run_key, batch_size=batch_size,
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
        try:
            metrics_io.write_encoded(self._engine, encoded, batch_size)
        except SQLAlchemyError as exc:
            raise StoreError(f"writing metrics failed: {_first_line(exc)}") from exc
        return len(encoded)

    def _key_map(self) -> dict[int, str]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(sa.select(schema.runs.c.id, schema.runs.c.run_key))
            return {i: k for i, k in rows}

    def metrics(
        self, run_keys: Sequence[str] | None = None, names: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Columns run_key, name, step (int64), value (float64, NaN/inf kept), tokens (Int64),
        wall_time (float64 seconds); sorted by run_key, name, step."""
        key_of = self._key_map()
        run_ids = None
        if run_keys is not None:
            if isinstance(run_keys, str):
                run_keys = [run_keys]
            wanted = set(run_keys)
            run_ids = sorted(i for i, k in key_of.items() if k in wanted)
        if isinstance(names, str):
            names = [names]
        return metrics_io.read_metrics(
            self._engine, run_ids, None if names is None else list(names), key_of
        )

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

    def delete_metrics_after(self, run_key: str, step: int) -> int:
        """Delete the run's metric rows with step > `step`; returns how many."""
        m = schema.metrics
        with write_transaction(self._engine) as conn:
            run_id = self._require_run_id(conn, run_key)
            return conn.execute(sa.delete(m).where(m.c.run_id == run_id, m.c.step > step)).rowcount

    # ------------------------------------------------------------------ checkpoints
    def add_checkpoint(self, ckpt: CheckpointRecord) -> int:
        """Register a checkpoint (upsert on path); returns its id."""
        if ckpt.kind not in CHECKPOINT_KINDS:
            raise StoreError(f"invalid checkpoint kind {ckpt.kind!r} (one of {CHECKPOINT_KINDS})")
        with write_transaction(self._engine) as conn:
            run_id = None if ckpt.run_key is None else self._require_run_id(conn, ckpt.run_key)
            values = {
                "run_id": run_id, "kind": ckpt.kind, "N": int(ckpt.N), "tokens": int(ckpt.tokens),
                "flops": None if ckpt.flops is None else float(ckpt.flops),
                "step": None if ckpt.step is None else int(ckpt.step), "path": str(ckpt.path),
                "sha256": ckpt.sha256, "loader": ckpt.loader, "meta": dict(ckpt.meta or {}),
                "created_at": ckpt.created_at or _now(),
            }
            stmt = self._insert(schema.checkpoints).values(**values)
            update = {k: stmt.excluded[k] for k in values if k not in ("path", "created_at")}
            stmt = stmt.on_conflict_do_update(index_elements=["path"], set_=update).returning(
                schema.checkpoints.c.id
            )
            return int(conn.execute(stmt).scalar_one())

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
    def add_eval(self, checkpoint_id: int, task: str, metric: str, value: float) -> None:
        """Record (upsert) an evaluation result of a checkpoint."""
        now = _now()
        stmt = self._insert(schema.evals).values(
            checkpoint_id=checkpoint_id, task=task, metric=metric, value=float(value),
            created_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["checkpoint_id", "task", "metric"],
            set_={"value": stmt.excluded.value, "created_at": now},
        )
        try:
            with write_transaction(self._engine) as conn:
                conn.execute(stmt)
        except sa.exc.IntegrityError:
            raise StoreError(f"unknown checkpoint id {checkpoint_id}") from None

    def evals(self, task: str | None = None) -> pd.DataFrame:
        """Columns EVAL_COLUMNS (N params, tokens, flops FLOPs of the checkpoint)."""
        e, c, r = schema.evals, schema.checkpoints, schema.runs
        query = (
            sa.select(e.c.checkpoint_id, r.c.run_key, e.c.task, e.c.metric, e.c.value, c.c.N,
                      c.c.tokens, c.c.flops, e.c.created_at)
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

