"""Sweeps and runs: registration, claims, heartbeats, take-over, release, listing, tags and notes.

A claim is taken by an atomic UPDATE ... RETURNING that bumps the run's claim generation; the
Store remembers the generation and fences its later writes to the run by it (`StoreBase`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scaletrack.store import schema
from scaletrack.store.base import StoreBase, typed_frame, utc_now
from scaletrack.store.engine import read_transaction, write_transaction
from scaletrack.store.errors import ClaimLost, StoreError
from scaletrack.store.records import RUN_ROLES, RUN_STATUSES, RunRecord
from scaletrack.store.run_config_fill import insert_runs

RUN_COLUMNS = (
    "run_key", "sweep", "family", "status", "N", "N_total", "D", "C", "seed", "lr",
    "final_loss", "attempts", "worker", "heartbeat_at", "error", "created_at", "updated_at",
    "config", "name", "tags", "note", "role", "parent_run_key", "branch_step",
)


class RunMethods(StoreBase):
    """The Store's methods for sweeps and runs (N, N_total parameters; D tokens; C FLOPs)."""

    # ------------------------------------------------------------------ sweeps
    def upsert_sweep(self, name: str, spec: dict[str, Any]) -> None:
        """Insert or replace the spec of sweep `name`."""
        now = utc_now()
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
            rows: list[Mapping[Any, Any]] = [r._mapping for r in conn.execute(query)]
            tags = self._tags_by_owner(conn, schema.sweep_tags, "sweep_id")
        rows = [{**r, "tags": tags.get(r["id"], [])} for r in rows]
        return typed_frame(rows, ("name", "spec", "created_at", "note", "tags"))

    # ------------------------------------------------------------------ runs
    def ensure_run(self, run: RunRecord) -> RunRecord:
        """Insert `run` if its run_key is absent (as given); return the stored row."""
        if run.status not in RUN_STATUSES:
            raise StoreError(f"invalid run status {run.status!r} (one of {RUN_STATUSES})")
        now = utc_now()
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
        import of a million rows), their config leaves filled in bulk in the same transaction
        (`run_config_fill`); returns how many were new."""
        # The column types' own bind processors encode the values (JSON, UTC datetimes), then
        # the driver's executemany runs one compiled statement: SQLAlchemy's per-row work
        # would cost more than the database here.
        now = utc_now()
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
                driver: Any = conn.connection.driver_connection
                cursor = driver.cursor()
                try:
                    new += insert_runs(cursor, dialect.name, compiled.string, rows)
                finally:
                    cursor.close()
        return new

    @staticmethod
    def _run_record(m: Mapping[Any, Any]) -> RunRecord:
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
        now = utc_now()
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
        now = utc_now()
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


    def heartbeat(self, run_key: str, worker: str) -> bool:
        """Refresh the heartbeat of a run held by `worker`; False if it no longer holds it
        (with the same claim, when the claim was taken through this Store)."""
        t = schema.runs
        now = utc_now()
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
            .values(status=status, final_loss=final_loss, error=error, updated_at=utc_now())
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
            .values(status="failed", error="interrupted", updated_at=utc_now())
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
    def _run_filter(query: sa.Select[Any], sweep: str | None, status: str | None,
                    tag: str | None = None, role: str | None = None) -> sa.Select[Any]:
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
            rows: list[Mapping[Any, Any]] = [r._mapping for r in conn.execute(query)]
            # a page reads only its own runs' tags, not the whole table
            paged = limit is not None or offset
            tags = self._tags_by_owner(conn, schema.run_tags, "run_id",
                                       [r["id"] for r in rows] if paged else None)
        rows = [{**r, "tags": tags.get(r["id"], [])} for r in rows]
        frame = typed_frame(rows, RUN_COLUMNS)
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
        stmt = sa.update(t).where(t.c.run_key == run_key).values(**fields, updated_at=utc_now())
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

