"""The Slurm tasks of a sweep: which Slurm job ran which cell, its state, requeues and logs.

Written by the Slurm executor (one row per submitted task, its state refreshed while the
sweep runs) and by `sweep cancel` (the `cancelled` flag tells a running executor not to
resubmit the cells whose tasks it sees disappear). Read by `sweep status`.

The methods live on the Store (`SlurmTaskMethods`); the functions below call them, for the
executor and the CLI that take a store as their first argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from scaletrack.store import schema
from scaletrack.store.base import StoreBase, utc_now
from scaletrack.store.engine import read_transaction, write_transaction

if TYPE_CHECKING:
    pass

COLUMNS = ("sweep", "run_key", "job_id", "state", "restarts", "node", "stdout", "stderr",
           "cancelled", "submitted_at", "updated_at")


@dataclass(frozen=True)
class SlurmTaskRecord:
    """One submitted Slurm task; `job_id` is "<array job>_<task>" or a plain job id."""

    sweep: str
    run_key: str
    job_id: str
    state: str = "PENDING"
    restarts: int = 0
    node: str | None = None
    stdout: str | None = None
    stderr: str | None = None


class SlurmTaskMethods(StoreBase):
    """The Store's methods for the Slurm tasks of sweeps."""

    def add_slurm_tasks(self, tasks: Iterable[SlurmTaskRecord]) -> int:
        """Record newly submitted tasks; returns how many were recorded."""
        now = utc_now()
        rows = [
            {"sweep": t.sweep, "run_key": t.run_key, "job_id": t.job_id, "state": t.state,
             "restarts": int(t.restarts), "node": t.node, "stdout": t.stdout,
             "stderr": t.stderr, "cancelled": False, "submitted_at": now, "updated_at": now}
            for t in tasks
        ]
        if rows:
            with write_transaction(self._engine) as conn:
                conn.execute(sa.insert(schema.slurm_tasks), rows)
        return len(rows)

    def update_slurm_task(self, job_id: str, *, state: str, restarts: int,
                          node: str | None) -> None:
        """Store the state, restart count and node last seen for `job_id`."""
        t = schema.slurm_tasks
        stmt = (
            sa.update(t)
            .where(t.c.job_id == job_id)
            .values(state=state, restarts=int(restarts), node=node, updated_at=utc_now())
        )
        with write_transaction(self._engine) as conn:
            conn.execute(stmt)

    def mark_slurm_cancelled(self, sweep: str) -> list[str]:
        """Flag every task of `sweep` as cancelled by the user; returns their job ids."""
        t = schema.slurm_tasks
        with write_transaction(self._engine) as conn:
            ids = [str(r[0]) for r in
                   conn.execute(sa.select(t.c.job_id).where(t.c.sweep == sweep))]
            conn.execute(sa.update(t).where(t.c.sweep == sweep)
                         .values(cancelled=True, updated_at=utc_now()))
        return ids

    def cancelled_job_ids(self, sweep: str) -> set[str]:
        """Job ids of `sweep` that `sweep cancel` has flagged."""
        t = schema.slurm_tasks
        with read_transaction(self._engine) as conn:
            rows = conn.execute(sa.select(t.c.job_id).where(t.c.sweep == sweep, t.c.cancelled))
            return {str(r[0]) for r in rows}

    def slurm_tasks(self, sweep: str | None = None) -> pd.DataFrame:
        """Every recorded task (of `sweep`), oldest submission first; columns COLUMNS."""
        t = schema.slurm_tasks
        query = sa.select(*[t.c[c] for c in COLUMNS]).order_by(t.c.id)
        if sweep is not None:
            query = query.where(t.c.sweep == sweep)
        with read_transaction(self._engine) as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return pd.DataFrame(rows, columns=list(COLUMNS))
