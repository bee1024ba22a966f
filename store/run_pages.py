"""Pages of the runs table for the dashboard: filtering, sorting, grouping and paging in SQL.

A store of 200,000 runs is never read whole: the count, the page (LIMIT / OFFSET over an
ORDER BY the database sorts), the per-group summaries (GROUP BY) and the status counts are
each one query. Filters: sweep, status, tag, a text search over run key, sweep and name, and
`field=value` pairs on a run column or a dotted config path (through `run_config_values`, the
config leaves the database keeps per run, indexed by path); a number matches within a
relative 1e-9, anything else as text, and "", "none" or "null" match a missing value. A
column that can be missing is paged in two index-ordered steps (values, then missing), and
counts over a text search are one pass over the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from scaletrack.store import schema
from scaletrack.store.base import StoreBase
from scaletrack.store.engine import read_transaction
from scaletrack.store.errors import StoreError

SORTABLE = ("run_key", "name", "sweep", "family", "status", "role", "N", "D", "C", "seed", "lr",
            "final_loss", "attempts", "updated_at", "created_at")
GROUPABLE = ("N", "D", "lr", "seed", "sweep", "family", "status", "role")
CONFIG_GROUP = "config."  # group="config.model.n_layer": by a config value
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


def _config_path(path: str, what: str) -> str:
    """A dotted config path as `run_config_values` keeps it (a StoreError if malformed)."""
    parts = [p for p in path.split(".") if p]
    if not parts or any(not p.replace("_", "").replace("-", "").isalnum() for p in parts):
        raise StoreError(f"{what} {path!r} is not a run column or a dotted config path")
    return ".".join(parts)


def _config_match(path: str, wanted: str) -> sa.ColumnElement[bool]:
    """Runs whose config leaf at dotted `path` matches `wanted` (as `_match`), looked up in
    `run_config_values` through its (path, number, text) index."""
    v = schema.run_config_values
    at = sa.select(v.c.run_id).where(v.c.path == _config_path(path, "filter field"))
    if wanted.strip().lower() in _NULL_WORDS:
        return schema.runs.c.id.not_in(at)
    try:
        w = float(wanted)
    except ValueError:
        w = math.nan
    # each branch one range of the (path, num, txt) index: text leaves have no number
    text = at.where(v.c.num.is_(None), v.c.txt == wanted)
    if wanted in ("true", "false"):
        flag = 1.0 if wanted == "true" else 0.0
        return schema.runs.c.id.in_(at.where(v.c.num == flag, v.c.txt == wanted))
    if not math.isfinite(w):
        return schema.runs.c.id.in_(text)
    tol = abs(w) * 1e-9
    return schema.runs.c.id.in_(sa.union_all(at.where(v.c.num.between(w - tol, w + tol)), text))


def _match(column: sa.Column[Any], wanted: str, numeric: bool) -> sa.ColumnElement[bool]:
    """A run column equal to `wanted`: a number within a relative 1e-9 (on the bare column,
    so its index serves), text exactly; a null word matches a missing value."""
    if wanted.strip().lower() in _NULL_WORDS:
        return column.is_(None)
    if not numeric:
        return column == wanted
    try:
        w = float(wanted)
    except ValueError:
        return sa.false()
    if not math.isfinite(w):
        return sa.false()
    tol = abs(w) * 1e-9
    return column.between(w - tol, w + tol)


_NUMERIC = {"N", "N_total", "D", "C", "seed", "lr", "final_loss", "attempts"}


def _reads_rows(f: RunFilter) -> bool:
    """Whether the filter reads every run's row (a text search), so a count or group is
    best one pass over the table in storage order."""
    return bool(f.search)


def _grouping(column: sa.Column[Any], scan: bool) -> sa.ColumnElement[Any]:
    """`column`, or with `scan` the same values as an expression no index matches: SQLite
    would otherwise walk an index on it and fetch each run's row out of storage order."""
    return sa.func.coalesce(column, column).label(column.name) if scan else column


@dataclass(frozen=True)
class _GroupBy:
    """How to group: the FROM (runs, or runs joined to one config leaf), the GROUP BY keys and
    the group order (missing values last)."""

    source: sa.FromClause
    keys: tuple[sa.ColumnElement[Any], ...]
    order: tuple[sa.ColumnElement[Any], ...]
    by_status: bool = False  # the key is the status itself (not grouped by it twice)

    def value(self, key: tuple[Any, ...]) -> Any:
        """A group's value from its key: the column's value, or the config leaf's number
        (an int when whole) or else its text."""
        if len(key) == 1:
            return key[0]
        num, text = key
        if num is None:
            return text
        return int(num) if float(num).is_integer() and abs(num) < 2**53 else float(num)


def _group_by(group: str, scan: bool) -> _GroupBy:
    t = schema.runs
    if group in GROUPABLE:
        g = _grouping(t.c[group], scan)
        order = (g.is_(None), g) if t.c[group].nullable else (g,)
        return _GroupBy(t, (g,), order, by_status=group == "status")
    if not group.startswith(CONFIG_GROUP):
        raise StoreError(f"cannot group runs by {group!r} (one of {', '.join(GROUPABLE)}, or "
                         f"{CONFIG_GROUP}<dotted config path>)")
    path = _config_path(group[len(CONFIG_GROUP):], "group field")
    if path in FILTERABLE:  # not kept among the config values (see migration 0009)
        raise StoreError(f"group by the run column {path!r} itself, not {group!r}")
    v = schema.run_config_values.alias("grouped")
    source = t.outerjoin(v, sa.and_(v.c.run_id == t.c.id, v.c.path == path))
    text = sa.case((v.c.num.is_(None), v.c.txt), else_=None)
    missing = sa.and_(v.c.num.is_(None), text.is_(None))
    return _GroupBy(source, (v.c.num, text), (missing, v.c.num.is_(None), v.c.num, text))


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
            query = query.where(_config_match(field, wanted))
    return query


def _order(column: sa.Column[Any], descending: bool) -> list[sa.ColumnElement[Any]]:
    """Missing values last in either direction (a column that cannot be missing is sorted
    plainly, so its index serves the page)."""
    key = column.desc() if descending else column.asc()
    return [column.is_(None), key] if column.nullable else [key]


def _sorted_ids(conn: sa.Connection, engine: sa.Engine, f: RunFilter, sort: str,
                descending: bool, offset: int, limit: int) -> list[int]:
    """Ids of one ungrouped page, missing values last in either direction. A column that can
    be missing is paged in two steps (the runs that have a value, in the order of the
    column's index, then the runs without, by id), so neither step sorts every run."""
    t = schema.runs
    column = t.c[sort]
    key = column.desc() if descending else column.asc()
    tie = t.c.id.desc() if descending else t.c.id.asc()
    base = _filtered(engine, sa.select(t.c.id), f)
    if not column.nullable:
        return list(conn.execute(base.order_by(key, tie).limit(limit).offset(offset)).scalars())
    ids = list(conn.execute(base.where(column.is_not(None)).order_by(key, tie)
                            .limit(limit).offset(offset)).scalars())
    if len(ids) == limit:
        return ids
    if ids:  # the runs with a value end on this page
        valued = offset + len(ids)
    else:
        count = _filtered(engine, sa.select(sa.func.count()).select_from(t), f)
        valued = int(conn.execute(count.where(column.is_not(None))).scalar_one())
    rest = base.where(column.is_(None)).order_by(tie).limit(limit - len(ids)) \
        .offset(max(0, offset - valued))
    return ids + list(conn.execute(rest).scalars())


def runs_page(engine: sa.Engine, f: RunFilter, *, sort: str = "created_at",
              descending: bool = False, group: str | None = None, offset: int = 0,
              limit: int = 100) -> dict[str, Any]:
    """One page: total (matching runs), rows (dicts of PAGE_COLUMNS plus tags), groups
    (with `group`, a GROUPABLE column or "config." and a dotted config path: value, count,
    by_status, best and mean finite final loss, in the group order; a config value groups by
    its number, else its text), statuses (runs per status under every filter but the
    status) and tags (all)."""
    if sort not in SORTABLE:
        raise StoreError(f"cannot sort runs by {sort!r} (one of {', '.join(SORTABLE)})")
    t = schema.runs
    grouped = _group_by(group, _reads_rows(f)) if group is not None else None
    status = _grouping(t.c.status, _reads_rows(f))
    statuses = _filtered(engine, sa.select(status, sa.func.count()).group_by(status), f,
                         with_status=False)
    with read_transaction(engine) as conn:
        if grouped is not None:
            order = [*grouped.order, *_order(t.c[sort], descending),
                     t.c.id.desc() if descending else t.c.id.asc()]
            query = _filtered(engine, sa.select(t.c.id).select_from(grouped.source), f) \
                .order_by(*order)
            ids = list(conn.execute(query.limit(limit).offset(offset)).scalars())
        else:
            ids = _sorted_ids(conn, engine, f, sort, descending, offset, limit)
        found = {r.id: dict(r._mapping) for r in conn.execute(
            sa.select(*(t.c[c] for c in PAGE_COLUMNS), t.c.id).where(t.c.id.in_(ids)))} \
            if ids else {}
        rows = [found[i] for i in ids if i in found]
        by_status = {s: int(n) for s, n in conn.execute(statuses)}  # one scan gives the total
        total = by_status.get(f.status, 0) if f.status is not None else sum(by_status.values())
        tags_of: dict[int, list[str]] = {}
        if rows:
            tq = sa.select(schema.run_tags.c.run_id, schema.run_tags.c.tag).where(
                schema.run_tags.c.run_id.in_(ids))
            for run_id, tag in conn.execute(tq):
                tags_of.setdefault(run_id, []).append(tag)
        all_tags = sorted(conn.execute(sa.select(schema.run_tags.c.tag).distinct()).scalars())
        groups = _groups(conn, engine, f, grouped) if grouped is not None else None
    for r in rows:
        r["tags"] = sorted(tags_of.get(r.pop("id"), []))
    return {"total": total, "rows": rows, "groups": groups, "statuses": by_status,
            "tags": all_tags}


def _groups(conn: sa.Connection, engine: sa.Engine, f: RunFilter,
            grouped: _GroupBy) -> list[dict[str, Any]]:
    t = schema.runs
    status = _grouping(t.c.status, _reads_rows(f))
    finite = sa.and_(t.c.final_loss.is_not(None), t.c.final_loss == t.c.final_loss)
    loss = sa.case((finite, t.c.final_loss), else_=None)
    per_status = () if grouped.by_status else (status,)
    query = _filtered(engine, sa.select(*grouped.keys, *per_status, sa.func.count(),
                                        sa.func.min(loss), sa.func.sum(loss),
                                        sa.func.count(loss)).select_from(grouped.source), f)
    query = query.group_by(*grouped.keys, *per_status).order_by(*grouped.order)
    out: dict[Any, dict[str, Any]] = {}
    k = len(grouped.keys)
    for row in conn.execute(query):
        key, rest = tuple(row[:k]), tuple(row[k:])
        status, n, best, total, n_loss = (key[0], *rest) if grouped.by_status else rest
        entry = out.setdefault(key, {"value": grouped.value(key), "count": 0, "by_status": {},
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
