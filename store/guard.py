"""Before a SQLite file is opened as a store: refuse what is not one, untouched.

Opening a file through the store's engine switches it to WAL and migrating creates tables, so
a file that is not a scaletrack store must be recognised first, with a plain read-only sqlite3
connection: another application's database (tables, but not ours), a file that is not SQLite
at all, or a damaged one. A new or empty file becomes a store only when the caller creates
stores (`sweep run`, imports); read-only commands get a one-line error instead.

A PostgreSQL database is judged the same way by its table names (`check_server_tables`), and
`sqlite_file_holds_rows` tells a store file that a failed command created, still empty, from
one holding data.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from scaletrack.store.errors import StoreError

# Tables that only a scaletrack store has together (alembic_version alone is any Alembic app's).
SCALETRACK_TABLES = frozenset({"alembic_version", "runs", "metrics", "sweeps"})
_SHOWN_TABLES = 5


def recover_hint(path: Path | str) -> str:
    return f"try `sqlite3 {path} .recover | sqlite3 recovered.db` and open recovered.db"


def check_sqlite_store_file(path: Path, *, create: bool) -> None:
    """Raise StoreError (touching nothing) unless `path` is a scaletrack store, or a new or
    empty file and `create` is true."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        if create:
            return
        raise StoreError(f"no scaletrack store at {path} (`scaletrack sweep run` or "
                         "`scaletrack import-csv` creates one)")
    if not path.is_file():
        raise StoreError(f"store path {path} is not a file")
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from None
    try:
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "malformed" in text:
            raise StoreError(f"store {path} is damaged ({text}); {recover_hint(path)}") from None
        if "not a database" in text:
            raise StoreError(f"{path} is not a SQLite database, so not a scaletrack store; "
                             "left untouched") from None
        raise StoreError(f"cannot read store {path}: {text}") from None
    finally:
        conn.close()
    tables.discard("sqlite_sequence")
    if not tables:
        if create:
            return
        raise StoreError(f"no scaletrack store at {path} (the database is empty; "
                         "`scaletrack sweep run` or `scaletrack import-csv` creates one)")
    if not tables >= SCALETRACK_TABLES:
        shown = ", ".join(sorted(tables)[:_SHOWN_TABLES])
        more = len(tables) - _SHOWN_TABLES
        raise StoreError(
            f"{path} is not a scaletrack store (no scaletrack schema version; it holds tables "
            f"{shown}"
            + (f" and {more} more" if more > 0 else "")
            + "); refusing to touch it")


def check_server_tables(tables: set[str], store_tables: set[str], shown: str, *,
                        create: bool) -> None:
    """Raise StoreError unless a server database (PostgreSQL) with `tables` in its default
    schema is a scaletrack store, or may become one: with `create` false it must already be
    one; with `create` true it must hold no table named like one of scaletrack's
    (`store_tables`). `shown` is the URL with its secrets masked. Nothing is written."""
    if tables >= SCALETRACK_TABLES:
        return
    if not create:
        raise StoreError(f"no scaletrack store at {shown} (the database has no scaletrack "
                         "tables; `scaletrack sweep run` or `scaletrack import-csv` creates one)")
    clashes = sorted(tables & (store_tables | {"alembic_version"}))
    if clashes:
        named = ", ".join(clashes[:_SHOWN_TABLES])
        more = len(clashes) - _SHOWN_TABLES
        raise StoreError(
            f"{shown} is not a scaletrack store but holds other tables named like scaletrack's "
            f"({named}{f' and {more} more' if more > 0 else ''}); nothing was changed (use an "
            "empty database)")


def sqlite_file_holds_rows(path: Path) -> bool:
    """Whether the SQLite file at `path` holds a row in any table but the schema version (a
    file that cannot be read counts as holding rows: it is never taken for an empty one)."""
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error:
        return True
    try:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return any(conn.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone() is not None
                   for name in tables if name != "alembic_version")
    except sqlite3.Error:
        return True
    finally:
        conn.close()
