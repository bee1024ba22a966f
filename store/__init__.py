"""The store: SQLAlchemy schema, migrations, the Store API and the batched MetricWriter."""

from scaletrack.store.engine import (
    TRANSIENT_DB_ERRORS,
    resolve_store_url,
    sqlite_file,
    with_absolute_sqlite_path,
)
from scaletrack.store.errors import StoreError
from scaletrack.store.records import (
    RUN_ROLES,
    RUN_STATUSES,
    CheckpointRecord,
    IdeaAttemptRecord,
    IdeaRecord,
    MetricRow,
    RunRecord,
    make_run_key,
)
from scaletrack.store.store import Store
from scaletrack.store.writer import MetricWriter

__all__ = [
    "RUN_ROLES",
    "RUN_STATUSES",
    "TRANSIENT_DB_ERRORS",
    "CheckpointRecord",
    "IdeaAttemptRecord",
    "IdeaRecord",
    "MetricRow",
    "MetricWriter",
    "RunRecord",
    "Store",
    "StoreError",
    "make_run_key",
    "resolve_store_url",
    "sqlite_file",
    "with_absolute_sqlite_path",
]
