"""Schema migrations (alembic, shipped in store/migrations), applied on Store.open.

Concurrent opens are serialised: SQLite by a BEGIN IMMEDIATE transaction around the whole
upgrade (SQLite has transactional DDL), PostgreSQL by a transaction-scoped advisory lock.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from scaletrack.store.engine import redact_url, write_transaction
from scaletrack.store.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x5CA1E7  # advisory-lock id for "scaletrack schema migration"


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config pointing into the package (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every schema revision this code ships."""
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the database's alembic_version table (None if empty)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade the schema to `revision` under a lock; returns the revision now recorded."""
    target = head_revision() if revision == "head" else revision
    with engine.connect() as conn:  # fast path: already there, no write lock needed
        current = current_revision(conn)
    if current == target:
        return target
    if current is not None and current not in known_revisions():
        number = current.split("_", 1)[0]
        shown = redact_url(engine.url.render_as_string(hide_password=False))
        raise StoreError(f"{shown}: this store was written by a newer scaletrack (schema "
                         f"{number}, revision {current}); upgrade scaletrack")
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        if current_revision(conn) != target:
            command.upgrade(alembic_config(conn), revision)
        return current_revision(conn)
