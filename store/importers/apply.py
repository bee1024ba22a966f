"""One import, one transaction: a checked plan of runs, metric rows, tags, checkpoints and
evals is written all at once, or (on any error) not at all.

Importers build an `ImportPlan` after every value of the input was checked, then call
`Store.apply_import`. Re-applying a plan for the same source updates what changed and adds nothing
twice: runs are matched on their run key (status, final loss, name, config and the stated
N, D, C are refreshed; N/D/C the plan leaves empty keep what is stored), metric rows on
(run, name, step), checkpoints on their path and evals on (checkpoint, task, metric).
Units: N and D and tokens in parameters and tokens, C and flops in FLOPs, losses in
nats/token, wall_time in seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from scaletrack.store import metrics_io, schema
from scaletrack.store.base import StoreBase
from scaletrack.store.engine import write_transaction
from scaletrack.store.records import RUN_STATUSES, CheckpointRecord, RunRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


# Fields of a stored run an import refreshes (when the plan states them).
_REFRESHED = ("status", "final_loss", "name", "config", "sweep", "note", "error")
_STATED = ("N", "N_total", "D", "C")


@dataclass
class PlannedRun:
    """A run to insert or refresh, with its metric rows (columns name, step, value and
    optionally tokens, wall_time; already checked: finite values, 64-bit steps)."""

    record: RunRecord
    metrics: pd.DataFrame | None = None
    tags: tuple[str, ...] = ()


@dataclass
class PlannedCheckpoint:
    """An external checkpoint (its run must be in the plan or stored) and its eval rows
    (task, metric, value, stderr, n_shot)."""

    record: CheckpointRecord
    evals: tuple[tuple[str, str, float, float | None, int | None], ...] = ()


@dataclass
class ImportPlan:
    """Everything one import writes. `sweeps` maps a name to the spec it gets if new (an
    existing sweep is left as it is)."""

    sweeps: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[PlannedRun] = field(default_factory=list)
    checkpoints: list[PlannedCheckpoint] = field(default_factory=list)


@dataclass(frozen=True)
class Applied:
    """What `Store.apply_import` changed: runs new and refreshed, metric rows new (not stored
    before) and given, checkpoints and eval rows written."""

    runs_new: int = 0
    runs_updated: int = 0
    metric_rows_new: int = 0
    metric_rows: int = 0
    checkpoints: int = 0
    evals: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


def _insert(dialect: str, table: sa.Table) -> Any:
    return (sqlite_dialect if dialect == "sqlite" else pg_dialect).insert(table)


def _upsert_run(conn: Connection, dialect: str, run: RunRecord, now: datetime) -> tuple[int, str]:
    """(run id, "new" | "updated" | "same")."""
    t = schema.runs
    row = conn.execute(sa.select(t).where(t.c.run_key == run.run_key)).one_or_none()
    if row is None:
        values = {f.name: getattr(run, f.name) for f in dataclasses.fields(RunRecord)}
        values["created_at"] = run.created_at or now
        values["updated_at"] = now
        run_id = conn.execute(_insert(dialect, t).values(**values).returning(t.c.id)).scalar_one()
        return int(run_id), "new"
    stored = row._mapping
    changes = {name: getattr(run, name) for name in _REFRESHED
               if not (name == "note" and run.note is None)}
    changes.update({name: getattr(run, name) for name in _STATED
                    if getattr(run, name) is not None})
    changes = {k: v for k, v in changes.items() if stored[k] != v}
    if not changes:
        return int(stored["id"]), "same"
    conn.execute(sa.update(t).where(t.c.id == stored["id"]).values(**changes, updated_at=now))
    return int(stored["id"]), "updated"


def _count_metrics(conn: Connection, run_ids: Sequence[int]) -> int:
    m = schema.metrics
    total = 0
    for start in range(0, len(run_ids), 500):
        chunk = list(run_ids[start:start + 500])
        total += int(conn.execute(sa.select(sa.func.count()).select_from(m)
                                  .where(m.c.run_id.in_(chunk))).scalar_one())
    return total


def _write_metrics(conn: Connection, dialect: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    sql = metrics_io._SQLITE_UPSERT if dialect == "sqlite" else metrics_io._PG_UPSERT
    driver: Any = conn.connection.driver_connection
    cursor = driver.cursor()
    try:
        for start in range(0, len(rows), 50_000):
            cursor.executemany(sql, rows[start:start + 50_000])
    finally:
        cursor.close()


def _upsert_checkpoint(conn: Connection, dialect: str, ckpt: CheckpointRecord, run_id: int | None,
                       now: datetime) -> int | None:
    c = schema.checkpoints
    values = {
        "run_id": run_id, "kind": ckpt.kind, "N": int(ckpt.N), "tokens": int(ckpt.tokens),
        "flops": None if ckpt.flops is None else float(ckpt.flops),
        "step": None if ckpt.step is None else int(ckpt.step), "path": str(ckpt.path),
        "sha256": ckpt.sha256, "loader": ckpt.loader, "meta": dict(ckpt.meta or {}),
        "created_at": ckpt.created_at or now,
    }
    stmt = _insert(dialect, c).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in ("path", "created_at")}
    same_owner = sa.and_(c.c.kind == stmt.excluded.kind,
                         c.c.run_id.is_not_distinct_from(stmt.excluded.run_id))
    stmt = stmt.on_conflict_do_update(index_elements=["path"], set_=update,
                                      where=same_owner).returning(c.c.id)
    found = conn.execute(stmt).scalar_one_or_none()
    return None if found is None else int(found)


class ImportMethods(StoreBase):
    """The store's side of an import: one plan, one transaction."""

    def apply_import(self, plan: ImportPlan) -> Applied:
        """Write `plan` in one transaction; a StoreError (or any database error) leaves the
        store exactly as it was."""
        return _apply_checked(self._engine, plan)


def _apply_checked(engine: Any, plan: ImportPlan) -> Applied:
    from scaletrack.store.errors import StoreError

    for planned in plan.runs:
        if planned.record.status not in RUN_STATUSES:
            raise StoreError(f"invalid run status {planned.record.status!r}")
    try:
        return _apply(engine, plan)
    except sa.exc.IntegrityError as exc:
        raise StoreError(f"import refused by the store ({str(exc.orig).splitlines()[0]}); "
                         "nothing imported") from None


def _apply(engine: Any, plan: ImportPlan) -> Applied:
    from scaletrack.store.errors import StoreError

    dialect = engine.dialect.name
    now = _now()
    runs_new = runs_updated = metric_rows = checkpoints = evals = 0
    with write_transaction(engine) as conn:
        for name, spec in plan.sweeps.items():
            conn.execute(_insert(dialect, schema.sweeps).values(
                name=name, spec=spec, created_at=now, updated_at=now,
            ).on_conflict_do_nothing(index_elements=["name"]))
        ids: dict[str, int] = {}
        encoded: list[tuple[Any, ...]] = []
        for planned in plan.runs:
            run_id, what = _upsert_run(conn, dialect, planned.record, now)
            ids[planned.record.run_key] = run_id
            runs_new += what == "new"
            runs_updated += what == "updated"
            for tag in planned.tags:
                conn.execute(_insert(dialect, schema.run_tags).values(run_id=run_id, tag=tag)
                             .on_conflict_do_nothing())
            if planned.metrics is not None and len(planned.metrics):
                encoded.extend(metrics_io.encode_frame(dialect, run_id, planned.metrics))
        with_rows = sorted({row[0] for row in encoded})
        before = _count_metrics(conn, with_rows)
        _write_metrics(conn, dialect, encoded)
        metric_rows_new = _count_metrics(conn, with_rows) - before
        metric_rows = len(encoded)
        for planned_ckpt in plan.checkpoints:
            ckpt = planned_ckpt.record
            owner_id: int | None = None
            if ckpt.run_key is not None:
                owner_id = ids.get(ckpt.run_key) or conn.execute(
                    sa.select(schema.runs.c.id).where(schema.runs.c.run_key == ckpt.run_key)
                ).scalar_one_or_none()
                if owner_id is None:
                    raise StoreError(f"unknown run {ckpt.run_key!r} for checkpoint {ckpt.path}")
            ckpt_id = _upsert_checkpoint(conn, dialect, ckpt, owner_id, now)
            if ckpt_id is None:
                raise StoreError(f"checkpoint {ckpt.path} is already registered to another run "
                                 "or as another kind; nothing imported")
            checkpoints += 1
            rows = [{"checkpoint_id": ckpt_id, "task": t, "metric": m, "value": float(v),
                     "stderr": None if se is None else float(se),
                     "n_shot": None if k is None else int(k), "created_at": now}
                    for t, m, v, se, k in planned_ckpt.evals]
            if rows:
                stmt = _insert(dialect, schema.evals)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["checkpoint_id", "task", "metric"],
                    set_={"value": stmt.excluded.value, "created_at": now,
                          "stderr": stmt.excluded.stderr, "n_shot": stmt.excluded.n_shot},
                ), rows)
                evals += len(rows)
    return Applied(runs_new=runs_new, runs_updated=runs_updated,
                   metric_rows_new=metric_rows_new, metric_rows=metric_rows,
                   checkpoints=checkpoints, evals=evals)
