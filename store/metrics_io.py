"""Hot paths for metric rows: batched upserts through the raw DBAPI connection, and a fast reader.

Rows travel as tuples (run_id, name, step, value, tokens, wall_time). On SQLite value/wall_time
are stored as 8-byte IEEE-754 blobs (store.coltypes.Float64Bits) so the reader can decode a
whole (run, name) series in C: SQLite concatenates the blobs, numpy reads the bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from scaletrack.store.coltypes import pack_f64
from scaletrack.store.errors import ClaimLost

METRIC_COLUMNS = ("run_key", "name", "step", "value", "tokens", "wall_time")
_UPSERT = (
    "INSERT INTO metrics (run_id, name, step, value, tokens, wall_time) VALUES ({p}) "
    "ON CONFLICT (run_id, name, step) DO UPDATE SET value = excluded.value, "
    "tokens = excluded.tokens, wall_time = excluded.wall_time"
)
_SQLITE_UPSERT = _UPSERT.format(p=", ".join(["?"] * 6))
_PG_UPSERT = _UPSERT.format(p=", ".join(["%s"] * 6))
_NAN_HEX = "000000000000F87F"  # little-endian float64 NaN
_IN_CHUNK = 500

MetricItem = tuple[str, Any, Any, Any, Any]  # name, step, value, tokens, wall_time


def encode_items(dialect: str, run_id: int, items: Iterable[MetricItem]) -> list[tuple[Any, ...]]:
    """DBAPI parameter tuples for one run's (name, step, value, tokens, wall_time) items."""
    if dialect == "sqlite":
        pk = pack_f64
        return [
            (
                run_id,
                name,
                int(step),
                pk(value),
                None if tokens is None else int(tokens),
                None if wall is None else pk(wall),
            )
            for name, step, value, tokens, wall in items
        ]
    return [
        (
            run_id,
            name,
            int(step),
            float(value),
            None if tokens is None else int(tokens),
            None if wall is None else float(wall),
        )
        for name, step, value, tokens, wall in items
    ]


def _optional(column: pd.Series | None, n: int, kind: str, sqlite: bool) -> list[Any]:
    """A column as a list with None for missing values (floats packed on SQLite)."""
    if column is None:
        return [None] * n
    missing = column.isna().to_numpy()
    if kind == "int":
        values: list[Any] = column.fillna(0).to_numpy(np.int64).tolist()
    else:
        arr = column.to_numpy(np.float64, na_value=np.nan)
        values = arr.astype("<f8").view("V8").tolist() if sqlite else arr.tolist()
    if missing.any():
        values = [None if m else v for v, m in zip(values, missing.tolist(), strict=True)]
    return values


def encode_frame(dialect: str, run_id: int, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """DBAPI parameter tuples for one run's rows of a metrics DataFrame (vectorised)."""
    n = len(frame)
    sqlite = dialect == "sqlite"
    value = frame["value"].to_numpy(np.float64, na_value=np.nan)
    values = value.astype("<f8").view("V8").tolist() if sqlite else value.tolist()
    return list(
        zip(
            [run_id] * n,
            frame["name"].astype(str).tolist(),
            frame["step"].to_numpy(np.int64).tolist(),
            values,
            _optional(frame.get("tokens"), n, "int", sqlite),
            _optional(frame.get("wall_time"), n, "float", sqlite),
            strict=True,
        )
    )


class Fence(NamedTuple):
    """A claim the writer must still hold: runs row `run_id` running for `worker` with claim
    generation `claim`. Checked inside each write transaction, before any row is written."""

    run_key: str
    run_id: int
    worker: str
    claim: int


_FENCE = ("SELECT 1 FROM runs WHERE id = {p} AND worker = {p} AND claim = {p} "
          "AND status = 'running'")


def _check_fences(cur: Any, fences: Sequence[Fence], ph: str, lock: str = "") -> None:
    for fence in fences:
        cur.execute(_FENCE.format(p=ph) + lock, (fence.run_id, fence.worker, fence.claim))
        if cur.fetchone() is None:
            raise ClaimLost(f"worker {fence.worker} lost its claim on run {fence.run_key}; "
                            "its metrics were not written")


def write_encoded(engine: Engine, rows: Sequence[tuple[Any, ...]], batch_size: int,
                  fences: Sequence[Fence] = ()) -> None:
    """Upsert encoded rows, one transaction per `batch_size` rows (a crash loses whole batches).

    Each transaction first checks `fences` (raising ClaimLost, nothing written, when a claim
    was taken over). A failed transaction is rolled back only if the database still has one
    open: SQLite ends it by itself on some errors (a full disk), and a ROLLBACK then would
    mask the real error."""
    if not rows:
        return
    batch_size = max(1, batch_size)
    raw = engine.raw_connection()
    try:
        dbapi: Any = raw.driver_connection
        if engine.dialect.name == "sqlite":
            cur = dbapi.cursor()
            try:
                for start in range(0, len(rows), batch_size):
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        _check_fences(cur, fences, "?")
                        cur.executemany(_SQLITE_UPSERT, rows[start : start + batch_size])
                        cur.execute("COMMIT")
                    except BaseException:
                        if dbapi.in_transaction:
                            with contextlib.suppress(Exception):
                                cur.execute("ROLLBACK")
                        raise
            finally:
                cur.close()
        else:
            with dbapi.cursor() as cur:
                for start in range(0, len(rows), batch_size):
                    try:
                        _check_fences(cur, fences, "%s", " FOR UPDATE")
                        cur.executemany(_PG_UPSERT, rows[start : start + batch_size])
                        dbapi.commit()
                    except BaseException:
                        with contextlib.suppress(Exception):
                            dbapi.rollback()
                        raise
    finally:
        raw.close()


def _where(run_ids: Sequence[int] | None, names: Sequence[str] | None, ph: str
           ) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if run_ids is not None:
        clauses.append(f"run_id IN ({', '.join([ph] * len(run_ids))})")
        params.extend(run_ids)
    if names is not None:
        clauses.append(f"name IN ({', '.join([ph] * len(names))})")
        params.extend(names)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _chunks(run_ids: Sequence[int] | None) -> list[Sequence[int] | None]:
    if run_ids is None:
        return [None]
    return [run_ids[i : i + _IN_CHUNK] for i in range(0, len(run_ids), _IN_CHUNK)]


def _read_sqlite(dbapi: Any, run_ids: Sequence[int] | None, names: Sequence[str] | None
                 ) -> list[tuple[int, str, dict[str, np.ndarray]]]:
    """Per (run, name): steps and tokens as comma-joined text, value and wall_time as the raw
    concatenated float64 blobs (read as bytes, so no UTF-8 decoding touches them)."""
    groups = []
    old_factory = dbapi.text_factory
    dbapi.text_factory = bytes
    try:
        for ids in _chunks(run_ids):
            where, params = _where(ids, names, "?")
            sql = (
                "SELECT run_id, name, count(*), count(tokens), group_concat(step), "
                "group_concat(value, ''), group_concat(ifnull(tokens, 0)), "
                f"group_concat(ifnull(wall_time, x'{_NAN_HEX}'), '') "
                f"FROM metrics{where} GROUP BY run_id, name"
            )
            for run_id, name, n, n_tokens, steps, values, tokens, walls in dbapi.execute(
                sql, params
            ):
                cols = {
                    "step": np.fromstring(steps, dtype=np.int64, sep=","),
                    "value": np.frombuffer(values, dtype="<f8"),
                    "tokens": np.fromstring(tokens, dtype=np.int64, sep=","),
                    "tokens_na": np.zeros(n, dtype=bool),
                    "wall_time": np.frombuffer(walls, dtype="<f8"),
                }
                if any(len(v) != n for v in cols.values()):
                    raise RuntimeError(f"metrics of run id {run_id} / {name!r} decoded badly")
                if n_tokens != n:
                    cols["tokens_na"] = _token_nulls(dbapi, run_id, name, n)
                groups.append((run_id, name.decode("utf-8"), cols))
    finally:
        dbapi.text_factory = old_factory
    return groups


def _token_nulls(dbapi: Any, run_id: int, name: bytes, n: int) -> np.ndarray:
    row = dbapi.execute(
        "SELECT group_concat(tokens IS NULL, '') FROM metrics WHERE run_id = ? AND name = ?",
        (run_id, name.decode("utf-8")),
    ).fetchone()
    mask: np.ndarray = np.frombuffer(row[0], dtype=np.uint8) == ord("1")
    if len(mask) != n:
        raise RuntimeError(f"token nulls of run id {run_id} decoded badly")
    return mask


def _read_generic(dbapi: Any, run_ids: Sequence[int] | None, names: Sequence[str] | None
                  ) -> list[tuple[int, str, dict[str, np.ndarray]]]:
    groups = []
    for ids in _chunks(run_ids):
        where, params = _where(ids, names, "%s")
        with dbapi.cursor() as cur:
            cur.execute(
                "SELECT run_id, name, step, value, tokens, wall_time "
                f"FROM metrics{where} ORDER BY run_id, name, step",
                params,
            )
            rows = cur.fetchall()
        if not rows:
            continue
        frame = pd.DataFrame.from_records(
            rows, columns=["run_id", "name", "step", "value", "tokens", "wall_time"]
        )
        for (run_id, name), part in frame.groupby(["run_id", "name"], sort=False):
            tokens = part["tokens"]
            groups.append(
                (
                    int(run_id),
                    str(name),
                    {
                        "step": part["step"].to_numpy(np.int64),
                        "value": part["value"].to_numpy(np.float64, na_value=np.nan),
                        "tokens": tokens.fillna(0).to_numpy(np.int64),
                        "tokens_na": tokens.isna().to_numpy(),
                        "wall_time": part["wall_time"].to_numpy(np.float64, na_value=np.nan),
                    },
                )
            )
    return groups


def empty_metrics_frame() -> pd.DataFrame:
    """A metrics DataFrame with no rows and the contract's dtypes."""
    return pd.DataFrame(
        {
            "run_key": pd.Series([], dtype="str"),
            "name": pd.Series([], dtype="str"),
            "step": pd.Series([], dtype=np.int64),
            "value": pd.Series([], dtype=np.float64),
            "tokens": pd.Series([], dtype="Int64"),
            "wall_time": pd.Series([], dtype=np.float64),
        }
    )


def read_metrics(
    engine: Engine,
    run_ids: Sequence[int] | None,
    names: Sequence[str] | None,
    key_of: dict[int, str],
) -> pd.DataFrame:
    """Metrics as a DataFrame sorted by run_key, name, step (columns: METRIC_COLUMNS)."""
    if (run_ids is not None and not run_ids) or (names is not None and not names):
        return empty_metrics_frame()
    raw = engine.raw_connection()
    try:
        dbapi: Any = raw.driver_connection
        if engine.dialect.name == "sqlite":
            groups = _read_sqlite(dbapi, run_ids, names)
        else:
            groups = _read_generic(dbapi, run_ids, names)
        raw.rollback()
    finally:
        raw.close()
    groups = [g for g in groups if g[0] in key_of]
    if not groups:
        return empty_metrics_frame()
    groups.sort(key=lambda g: (key_of[g[0]], g[1]))
    parts: dict[str, list[Any]] = {
        c: [] for c in ("step", "value", "tokens", "tokens_na", "wall_time")}
    for _run_id, _name, cols in groups:
        step = cols["step"]
        if step.size > 1 and not bool(np.all(step[1:] > step[:-1])):
            order = np.argsort(step, kind="stable")
            cols = {k: v[order] for k, v in cols.items()}
        for k in parts:
            parts[k].append(cols[k])
    counts = np.array([len(g[2]["step"]) for g in groups])
    codes = np.repeat(np.arange(len(groups)), counts)
    keys = np.array([key_of[g[0]] for g in groups], dtype=object)
    names_arr = np.array([g[1] for g in groups], dtype=object)
    tokens = pd.arrays.IntegerArray(
        np.concatenate(parts["tokens"]), np.concatenate(parts["tokens_na"])
    )
    return pd.DataFrame(
        {
            "run_key": pd.array(keys[codes], dtype="str"),
            "name": pd.array(names_arr[codes], dtype="str"),
            "step": np.concatenate(parts["step"]),
            "value": np.concatenate(parts["value"]),
            "tokens": tokens,
            "wall_time": np.concatenate(parts["wall_time"]),
        }
    )
