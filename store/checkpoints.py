"""Checkpoints (own or external, with N, tokens and FLOPs) and the evaluations of each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scaletrack.store import schema
from scaletrack.store.base import StoreBase, typed_frame, utc_now
from scaletrack.store.engine import read_transaction, write_transaction
from scaletrack.store.errors import StoreError
from scaletrack.store.records import CHECKPOINT_KINDS, CheckpointRecord

CHECKPOINT_COLUMNS = (
    "id", "run_key", "kind", "N", "tokens", "flops", "step", "path", "sha256", "loader", "meta",
    "created_at",
)
EVAL_COLUMNS = (
    "checkpoint_id", "run_key", "task", "metric", "value", "N", "tokens", "flops", "created_at",
    "stderr", "n_shot",
)


class CheckpointMethods(StoreBase):
    """The Store's methods for checkpoints and evals (N parameters, tokens, flops FLOPs)."""

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
                "created_at": ckpt.created_at or utc_now(),
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

    def _checkpoint_query(self) -> sa.Select[Any]:
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
        return typed_frame(rows, CHECKPOINT_COLUMNS)

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
        self.add_evals(checkpoint_id, [(task, metric, value, stderr, n_shot)])

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
        now = utc_now()
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
        return typed_frame(rows, EVAL_COLUMNS)

    def evals_version(self) -> str:
        """A fingerprint of everything `evals()` answers, from three aggregate queries in one
        transaction (no rows read): counts, the newest write time and column sums of the
        evals, of their checkpoints (N, tokens, FLOPs, owner) and of the runs. Adding,
        changing or removing any of them changes it, so a reader may keep what it derived
        from `evals()` while the fingerprint holds."""
        e, c, r = schema.evals, schema.checkpoints, schema.runs

        def total(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
            return sa.func.sum(sa.cast(col, sa.Double))  # as a float: no integer overflow

        parts = (
            sa.select(sa.func.count(), sa.func.max(e.c.created_at), total(e.c.value),
                      total(e.c.n_shot), total(e.c.checkpoint_id),
                      total(sa.func.length(e.c.task) + 7 * sa.func.length(e.c.metric))),
            sa.select(sa.func.count(), sa.func.max(c.c.id), total(c.c.N), total(c.c.tokens),
                      total(c.c.flops), total(c.c.run_id)),
            sa.select(sa.func.count(), sa.func.max(r.c.id)),
        )
        with read_transaction(self._engine) as conn:
            rows = [conn.execute(q).one() for q in parts]
        return "|".join(repr(v) for row in rows for v in row)
