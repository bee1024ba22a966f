"""Store URLs and engines: URL resolution, password redaction, SQLite pragmas, BEGIN IMMEDIATE."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool

from scaletrack.store.errors import StoreError

DEFAULT_STORE_URL = "sqlite:///scaletrack.db"
SQLITE_BUSY_TIMEOUT_MS = 60_000
PG_CONNECT_TIMEOUT_S = 10
# Database errors that may pass on a retry (a server restarting, a dropped connection).
TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
_PASSWORD_RE = re.compile(r"(://[^:/@]*:)[^@]*@")


def resolve_store_url(url: str | None) -> str:
    """`url`, else $SCALETRACK_STORE, else "sqlite:///scaletrack.db"."""
    if url:
        return url
    return os.environ.get("SCALETRACK_STORE") or DEFAULT_STORE_URL


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return _PASSWORD_RE.sub(r"\1***@", url)


def parse_store_url(url: str) -> URL:
    """Parse and normalise a store URL: postgres(ql):// -> postgresql+psycopg://.

    Raises StoreError for malformed URLs and unsupported schemes.
    """
    shown = redact_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"malformed store URL {shown!r} (expected sqlite:///path.db or "
            "postgresql://user:password@host/db)"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise StoreError(
                f"unsupported PostgreSQL driver {driver!r} in store URL {shown!r} "
                "(use postgresql:// or postgresql+psycopg://)"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise StoreError(f"unsupported SQLite driver {driver!r} in store URL {shown!r}")
        return parsed.set(drivername="sqlite")
    raise StoreError(
        f"unsupported store URL scheme {parsed.drivername!r} in {shown!r} "
        "(use sqlite:///path.db or postgresql://...)"
    )


def sqlite_file(url: str) -> Path | None:
    """The absolute database file of a SQLite store URL; None for a server database.

    Raises StoreError for a malformed URL or an in-memory SQLite store (which has no file).
    """
    parsed = parse_store_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if _is_memory(parsed):
        raise StoreError(f"store URL {redact_url(url)!r} is an in-memory SQLite database")
    return Path(parsed.database).expanduser().resolve()


def with_absolute_sqlite_path(url: str) -> str:
    """`url` with a relative SQLite file path made absolute (server URLs unchanged)."""
    path = sqlite_file(url)
    if path is None:
        return url
    return parse_store_url(url).set(database=str(path)).render_as_string(hide_password=False)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or bool(url.query.get("mode") == "memory")


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" event emits BEGIN [IMMEDIATE] itself.
    dbapi_conn.isolation_level = None
    dbapi_conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:  # switching a fresh file to WAL needs a moment of exclusive access
        try:
            mode = dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() not in ("wal", "memory"):
                dbapi_conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    dbapi_conn.execute("PRAGMA synchronous = NORMAL")
    dbapi_conn.execute("PRAGMA foreign_keys = ON")


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_store_engine(url: URL) -> Engine:
    """An engine for a normalised store URL; SQLite gets WAL, busy_timeout and BEGIN IMMEDIATE."""
    shown = url.render_as_string(hide_password=True)
    if url.drivername == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 60}}
        if _is_memory(url):
            kwargs["poolclass"] = StaticPool
        else:
            path = Path(url.database or "")
            if not path.parent.is_dir():
                raise StoreError(
                    f"cannot open SQLite store {shown!r}: directory {str(path.parent)!r} "
                    "does not exist"
                )
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
    )


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction: BEGIN IMMEDIATE on SQLite (no lock-upgrade deadlocks)."""
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (a consistent snapshot)."""
    with engine.connect() as conn, conn.begin():
        yield conn
