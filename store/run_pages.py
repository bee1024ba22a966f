"""Pages of the runs table for the dashboard: filtering, sorting, grouping and paging in SQL.

A store of 200,000 runs is never read whole: the count, the page (LIMIT / OFFSET over an
ORDER BY the database sorts), the per-group summaries (GROUP BY) and the status counts are
each one query. Filters: sweep, status, tag, a text search over run key, sweep and name, and
`field=value` pairs on a run column or a dotted config path (SQLite `json_extract`,
PostgreSQL `#>>`); a number matches within a relative 1e-9, anything else as text, and
"", "none" or "null" match a missing value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from scaletrack.store import schema
from scaletrack.store.base import StoreBase
from scaletrack.store.engine import read_transaction
from scaletrack.store.errors import StoreError

SORTABLE = ("run_key", "name", "sweep", "family", "status", "role", "N", "D", "C", "seed", "lr",
            "final_loss", "attempts", "updated_at", "created_at")
GROUPABLE = ("N", "D", "lr", "seed", "sweep", "family", "status", "role")
FILTERABLE = ("run_key", "name", "sweep", "family", "status", "role", "N", "N_total", "D", "C",
              "seed", "lr", "final_loss", "attempts", "parent_run_key")
PAGE_COLUMNS = ("run_key", "name", "sweep", "family", "status", "role", "N", "D", "C", "seed",
                "lr", "final_loss", "attempts", "created_at", "updated_at", "config",
                "parent_run_key", "branch_step")
_NULL_WORDS = ("", "none", "null")


@dataclass(frozen=True)
class RunFilter:
    """Which runs: every field optional; `where` holds (field, value) pairs."""

    sweep: str | None = None
    status: str | None = None
    tag: str | None = None
    search: str | None = None
    where: Sequence[tuple[str, str]] = ()


def _config_path(engine: sa.Engine, path: str) -> sa.ColumnElement[Any]:
    parts = [p for p in path.split(".") if p]
    if not parts or any(not p.replace("_", "").replace("-", "").isalnum() for p in parts):
        raise StoreError(f"filter field {path!r} is not a run column or a dotted config path")
    t = schema.runs
    if engine.dialect.name == "sqlite":
        return sa.func.json_extract(t.c.config, "$." + ".".join(parts))
    return sa.func.jsonb_extract_path_text(sa.cast(sa.cast(t.c.config, sa.Text), JSONB), *parts)


def _match(expr: sa.ColumnElement[Any], wanted: str, numeric_column: bool
           ) -> sa.ColumnElement[bool]:
    if wanted.strip().lower() in _NULL_WORDS:
        return expr.is_(None)
    try:
        w = float(wanted)
    except ValueError:
        w = math.nan
    text_eq = sa.cast(expr, sa.Text) == wanted
    if not math.isfinite(w):
        return sa.false() if numeric_column else text_eq
    tol = abs(w) * 1e-9
    number = sa.cast(expr, sa.Float)
    near = sa.and_(number >= w - tol, number <= w + tol)
    return near if numeric_column else sa.or_(near, text_eq)


_NUMERIC = {"N", "N_total", "D", "C", "seed", "lr", "final_loss", "attempts"}


def _filtered(engine: sa.Engine, query: sa.Select[Any], f: RunFilter, *,
              with_status: bool = True) -> sa.Select[Any]:
    t = schema.runs
    if f.sweep is not None:
        query = query.where(t.c.sweep == f.sweep)
    if f.status is not None and with_status:
        query = query.where(t.c.status == f.status)
    if f.tag is not None:
        query = query.where(t.c.id.in_(
            sa.select(schema.run_tags.c.run_id).where(schema.run_tags.c.tag == f.tag)))
    if f.search:
        needle = "%" + f.search.lower().replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        # SQLite's LIKE ignores ASCII case by itself; elsewhere ILIKE
        like: Callable[[Any], Any] = (lambda c: c.like(needle, escape="\\")) \
            if engine.dialect.name == "sqlite" else (lambda c: c.ilike(needle, escape="\\"))
        query = query.where(sa.or_(*(like(c) for c in (t.c.run_key, t.c.sweep, t.c.name))))
    for field, wanted in f.where:
        if field in FILTERABLE:
            query = query.where(_match(t.c[field], wanted, field in _NUMERIC))
        else:
            query = query.where(_match(_config_path(engine, field), wanted, False))
    return query


def _order(column: sa.Column[Any], descending: bool) -> list[sa.ColumnElement[Any]]:
    """Missing values last in either direction (a column that cannot be missing is sorted
    plainly, so its index serves the page)."""
    key = column.desc() if descending else column.asc()
    return [column.is_(None), key] if column.nullable else [key]


def runs_page(engine: sa.Engine, f: RunFilter, *, sort: str = "created_at",
              descending: bool = False, group: str | None = None, offset: int = 0,
              limit: int = 100) -> dict[str, Any]:
    """One page: total (matching runs), rows (dicts of PAGE_COLUMNS plus tags), groups
    (with `group`: value, count, by_status, best and mean finite final loss, in the group
    order), statuses (runs per status under every filter but the status) and tags (all)."""
    if sort not in SORTABLE:
        raise StoreError(f"cannot sort runs by {sort!r} (one of {', '.join(SORTABLE)})")
    if group is not None and group not in GROUPABLE:
        raise StoreError(f"cannot group runs by {group!r} (one of {', '.join(GROUPABLE)})")
    t = schema.runs
    order = (_order(t.c[group], False) if group else []) + _order(t.c[sort], descending)
    order.append(t.c.id.desc() if descending else t.c.id.asc())
    ids = _filtered(engine, sa.select(t.c.id), f).order_by(*order).limit(limit).offset(offset)
    page = sa.select(*(t.c[c] for c in PAGE_COLUMNS), t.c.id).where(
        t.c.id.in_(ids.scalar_subquery())).order_by(*order)
    statuses = _filtered(engine, sa.select(t.c.status, sa.func.count()).group_by(t.c.status), f,
                         with_status=False)
    with read_transaction(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(page)]
        by_status = {s: int(n) for s, n in conn.execute(statuses)}  # one scan gives the total
        total = by_status.get(f.status, 0) if f.status is not None else sum(by_status.values())
        tags_of: dict[int, list[str]] = {}
        if rows:
            tq = sa.select(schema.run_tags.c.run_id, schema.run_tags.c.tag).where(
                schema.run_tags.c.run_id.in_([r["id"] for r in rows]))
            for run_id, tag in conn.execute(tq):
                tags_of.setdefault(run_id, []).append(tag)
        all_tags = sorted(conn.execute(sa.select(schema.run_tags.c.tag).distinct()).scalars())
        groups = _groups(conn, engine, f, group) if group else None
    for r in rows:
        r["tags"] = sorted(tags_of.get(r.pop("id"), []))
    return {"total": total, "rows": rows, "groups": groups, "statuses": by_status,
            "tags": all_tags}


def _groups(conn: sa.Connection, engine: sa.Engine, f: RunFilter,
            group: str) -> list[dict[str, Any]]:
    t = schema.runs
    g = t.c[group]
    finite = sa.and_(t.c.final_loss.is_not(None), t.c.final_loss == t.c.final_loss)
    loss = sa.case((finite, t.c.final_loss), else_=None)
    query = _filtered(engine, sa.select(g, t.c.status, sa.func.count(), sa.func.min(loss),
                                        sa.func.sum(loss), sa.func.count(loss)), f)
    query = query.group_by(g, t.c.status).order_by(g.is_(None), g)
    out: dict[Any, dict[str, Any]] = {}
    for value, status, n, best, total, n_loss in conn.execute(query):
        entry = out.setdefault(value, {"value": value, "count": 0, "by_status": {},
                                       "best_final_loss": None, "_sum": 0.0, "_n": 0})
        entry["count"] += int(n)
        entry["by_status"][status] = int(n)
        if best is not None and (entry["best_final_loss"] is None
                                 or best < entry["best_final_loss"]):
            entry["best_final_loss"] = float(best)
        if n_loss:
            entry["_sum"] += float(total)
            entry["_n"] += int(n_loss)
    groups = []
    for entry in out.values():
        n_loss, total = entry.pop("_n"), entry.pop("_sum")
        entry["mean_final_loss"] = total / n_loss if n_loss else None
        groups.append(entry)
    return groups


def status_counts_by_sweep(engine: sa.Engine) -> dict[str | None, dict[str, int]]:
    """{sweep (None: runs outside any sweep): {status: runs}}, one GROUP BY."""
    t = schema.runs
    out: dict[str | None, dict[str, int]] = {}
    query = sa.select(t.c.sweep, t.c.status, sa.func.count()).group_by(t.c.sweep, t.c.status)
    with read_transaction(engine) as conn:
        for sweep, status, n in conn.execute(query):
            out.setdefault(sweep, {})[status] = int(n)
    return out


FIT_POINT_COLUMNS = ("run_key", "sweep", "N", "D", "C", "final_loss", "lr", "seed")


def fit_points(engine: sa.Engine, sweep: str | None = None) -> list[tuple[Any, ...]]:
    """(run_key, sweep, N, D, C, final_loss, lr, seed) of the finished runs that are points of
    a grid (cells and branches, never cooldown trunks): the columns a fit needs and nothing
    else (no config to decode), in no particular order."""
    t = schema.runs
    query = sa.select(*(t.c[c] for c in FIT_POINT_COLUMNS)).where(
        t.c.status == "finished", t.c.role != "trunk")
    if sweep is not None:
        query = query.where(t.c.sweep == sweep)
    # unordered: sorting 200,000 rows through the compute index costs a page read per row
    compiled = query.compile(dialect=engine.dialect)
    with read_transaction(engine) as conn:
        # plain numbers and text: the driver's rows as they are, without per-value processing
        driver: Any = conn.connection.driver_connection
        cursor = driver.cursor()
        try:
            params = compiled.params
            if compiled.positional:
                cursor.execute(str(compiled), [params[k] for k in compiled.positiontup or []])
            else:
                cursor.execute(str(compiled), params)
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()


class RunPageMethods(StoreBase):
    """The dashboard's reads of the runs table, each done in the database (see the module)."""

    def runs_page(self, f: RunFilter, *, sort: str = "created_at", descending: bool = False,
                  group: str | None = None, offset: int = 0, limit: int = 100
                  ) -> dict[str, Any]:
        """One page of runs under filter `f` (see `runs_page`)."""
        return runs_page(self._engine, f, sort=sort, descending=descending, group=group,
                         offset=offset, limit=limit)

    def status_counts_by_sweep(self) -> dict[str | None, dict[str, int]]:
        """sweep (None: runs outside any sweep) -> status -> number of runs."""
        return status_counts_by_sweep(self._engine)

    def fit_point_rows(self, sweep: str | None = None) -> list[tuple[Any, ...]]:
        """(run_key, sweep, N, D, C, final_loss, lr, seed) of the finished grid points (see
        `fit_points`)."""
        return fit_points(self._engine, sweep)
