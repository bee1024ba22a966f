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
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import StaticPool

from scaletrack.store.errors import StoreError

DEFAULT_STORE_URL = "sqlite:///scaletrack.db"
SQLITE_BUSY_TIMEOUT_MS = 60_000
# page cache per connection, KiB (SQLite's default is 2 MiB): a bulk import updates the runs
# table's page indexes and config values, and stalls on re-reading index pages with less;
# pages are held only once read, so a worker touching a few pages holds a few
SQLITE_CACHE_KIB = 65_536
PG_CONNECT_TIMEOUT_S = 10
# Database errors that may pass on a retry (a server restarting, a dropped connection).
TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
# Query parameters that carry secrets (libpq's password, sslpassword; tokens of proxies).
_SECRET_QUERY_RE = re.compile(
    r"([?&](?:password|passwd|pwd|pass|sslpassword|secret|token|access_token|api_?key)=)"
    r"""[^&#\s'"]*""", re.IGNORECASE)


def resolve_store_url(url: str | None) -> str:
    """`url`, else $SCALETRACK_STORE, else "sqlite:///scaletrack.db"."""
    if url:
        return url
    return os.environ.get("SCALETRACK_STORE") or DEFAULT_STORE_URL


def redact_url(url: str) -> str:
    """The URL safe to print: SQLAlchemy's own rendering with the password hidden (***), and
    secret query parameters (password=, sslpassword=, token=, ...) replaced by *** as well.
    A URL SQLAlchemy cannot parse (a port that is not a number, not a URL at all) is redacted
    by pattern instead (`redact_secrets`), so no secret is printed either way."""
    text = str(url)
    try:
        shown = make_url(_quote_password(text)).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return redact_secrets(text)
    return _SECRET_QUERY_RE.sub(r"\1***", shown)


_URL_PASSWORD_RE = re.compile(r"""(\b[a-zA-Z][\w+.-]*://[^\s:/'"@]*):[^\s'"]*@""")


def redact_secrets(text: str) -> str:
    """`text` (a message) with the password of every URL in it and every secret query
    parameter replaced by ***."""
    return _SECRET_QUERY_RE.sub(r"\1***", _URL_PASSWORD_RE.sub(r"\1:***@", str(text)))


def _quote_password(url: str) -> str:
    """An '@' inside the password percent-encoded, so the host is what follows the last '@'
    of the authority rather than a piece of the password."""
    scheme, sep, rest = url.partition("://")
    authority_end = len(rest)
    for stop in ("/", "?"):
        found = rest.find(stop, rest.rfind("@") + 1 if "@" in rest else 0)
        if found >= 0:
            authority_end = min(authority_end, found)
    authority = rest[:authority_end]
    if not sep or authority.count("@") < 2:
        return url
    userinfo, host = authority.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    return f"{scheme}{sep}{user}{colon}{password.replace('@', '%40')}@{host}{rest[authority_end:]}"


def parse_store_url(url: str) -> URL:
    """Parse and normalise a store URL: postgres(ql):// -> postgresql+psycopg://.

    Raises StoreError for malformed URLs and unsupported schemes.
    """
    shown = redact_url(url)
    try:
        parsed = make_url(_quote_password(url))
        _ = parsed.port  # a port that is not a number fails here, not in the driver
    except (ArgumentError, ValueError) as exc:
        why = "port is not a number" if "port" in str(exc).lower() or "int" in str(exc) else ""
        raise StoreError(
            f"malformed store URL {shown!r}{f' ({why})' if why else ''} (expected "
            "sqlite:///path.db or postgresql://user@host:5432/db)"
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
        if parsed.username or parsed.password is not None:
            what = "user or password"
        elif parsed.host or parsed.port:
            what = "host"
        else:
            return parsed.set(drivername="sqlite")
        raise StoreError(f"SQLite URLs take no {what}: {shown} (write sqlite:///relative/path.db"
                         " or sqlite:////absolute/path.db)")
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
    assert parsed.database is not None  # _is_memory: a file-backed URL names its file
    return Path(parsed.database).expanduser().resolve()


def sqlite_path_or_none(url: str) -> str | None:
    """The SQLite file of `url` as a string, or None (a server, a bad URL)."""
    try:
        path = sqlite_file(url)
    except StoreError:
        return None
    return None if path is None else str(path)


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
    dbapi_conn.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_store_engine(url: URL) -> Engine:
    """An engine for a normalised store URL; SQLite gets WAL, busy_timeout and BEGIN IMMEDIATE."""
    shown = redact_url(url.render_as_string(hide_password=False))
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
    return create_server_engine(url, {"connect_timeout": PG_CONNECT_TIMEOUT_S})


def create_server_engine(url: URL, connect_args: dict[str, Any]) -> Engine:
    """An engine for a database server (PostgreSQL); a missing driver is one line naming the
    extra that installs it, never an import traceback."""
    try:
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except ModuleNotFoundError as exc:
        shown = redact_url(url.render_as_string(hide_password=False))
        raise StoreError(
            f"cannot open store {shown!r}: its database driver {exc.name!r} is not installed "
            "(pip install 'scaletrack[postgres]')"
        ) from None


def store_failure(url: URL | str, exc: BaseException, doing: str = "cannot write") -> StoreError:
    """One line naming the store and the cause of a database error (a full disk, an I/O
    error, a read-only file, a damaged page), the URL's secrets redacted."""
    shown = redact_url(url.render_as_string(hide_password=False) if isinstance(url, URL) else url)
    cause = str(getattr(exc, "orig", None) or exc).strip()
    cause = cause.splitlines()[0] if cause else type(exc).__name__
    hint = ""
    if "malformed" in cause or "not a database" in cause:
        path = url.database if isinstance(url, URL) else sqlite_path_or_none(url)
        hint = (f"; try `sqlite3 {path} .recover | sqlite3 recovered.db` and open recovered.db"
                if path else "; try sqlite3's .recover")
    if doing == "cannot open":
        return StoreError(f"cannot open store {shown!r}: {cause}{hint}")
    return StoreError(f"store {shown!r}: {doing}: {cause}{hint}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction: BEGIN IMMEDIATE on SQLite (no lock-upgrade deadlocks).

    A database error (other than a constraint violation, which callers handle) becomes a
    one-line StoreError naming the store and the cause."""
    try:
        with engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn
    except (IntegrityError, StoreError):
        raise
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise store_failure(engine.url, exc) from exc


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (a consistent snapshot); a database error (a damaged page, an
    I/O error) becomes a one-line StoreError naming the store and the cause."""
    try:
        with engine.connect() as conn, conn.begin():
            yield conn
    except StoreError:
        raise
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise store_failure(engine.url, exc, "cannot read") from exc
