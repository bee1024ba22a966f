"""Open a store for reading only: the database itself refuses every write.

SQLite is opened through a `mode=ro` URI with `PRAGMA query_only` (the file's bytes never
change); PostgreSQL sessions run with `default_transaction_read_only = on`. No migration is
run: a store at an older or newer schema revision than this code is refused with a message.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from scaletrack.store import migrate
from scaletrack.store.engine import (
    PG_CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_MS,
    _is_memory,
    _sqlite_on_begin,
    create_server_engine,
    parse_store_url,
    redact_url,
    resolve_store_url,
)
from scaletrack.store.errors import StoreError
from scaletrack.store.store import Store


def _sqlite_read_only_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event emits BEGIN itself
    dbapi_conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    dbapi_conn.execute("PRAGMA query_only = ON")


def _read_only_engine(url: str) -> sa.Engine:
    parsed = parse_store_url(url)
    shown = redact_url(url)
    if parsed.drivername == "sqlite":
        if _is_memory(parsed):
            raise StoreError(f"store {shown!r} is an in-memory database: nothing to read")
        path = Path(parsed.database or "").expanduser().resolve()
        if not path.is_file():
            raise StoreError(f"no scaletrack store at {path} (the SQLite file does not exist)")
        uri = f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"
        engine = sa.create_engine(uri, connect_args={"check_same_thread": False, "timeout": 60})
        event.listen(engine, "connect", _sqlite_read_only_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_server_engine(parsed, {
        "connect_timeout": PG_CONNECT_TIMEOUT_S,
        "options": "-c default_transaction_read_only=on",
    })


def open_read_only(url: str | None = None) -> Store:
    """A Store over `url` whose connections cannot write (no migration is attempted).

    Raises StoreError when the store is missing, unreachable or not at this code's schema.
    """
    resolved = resolve_store_url(url)
    shown = redact_url(resolved)
    engine = _read_only_engine(resolved)
    try:
        with engine.connect() as conn:
            found = migrate.current_revision(conn)
    except SQLAlchemyError as exc:
        engine.dispose()
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StoreError(f"cannot open store {shown!r}: {first[0] if first else exc}") from None
    head = migrate.head_revision()
    if found != head:
        engine.dispose()
        if found is None:
            raise StoreError(f"no scaletrack store at {shown} (no scaletrack schema revision; "
                             "`scaletrack sweep run` or `scaletrack import-csv` creates one)")
        raise StoreError(
            f"store {shown!r} is at schema revision {found!r}, this scaletrack reads {head!r} "
            "(open it once with a writing command such as `scaletrack runs` to upgrade it)"
        )
    return Store(engine, parse_store_url(resolved).render_as_string(hide_password=False))
