"""Alembic environment for the store. Run through store.migrate (no alembic.ini needed).

The caller passes an open SQLAlchemy connection (already inside a locked transaction) in
`config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context

from scaletrack.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - store.migrate always passes one
    raise RuntimeError("store migrations must be run through store.migrate with a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
