"""The store: SQLAlchemy schema, migrations, the Store API and the batched MetricWriter."""

from store.engine import (
    TRANSIENT_DB_ERRORS,
    resolve_store_url,
    sqlite_file,
    with_absolute_sqlite_path,
)
from store.errors import StoreError
from store.records import (
    RUN_STATUSES,
    CheckpointRecord,
    IdeaAttemptRecord,
    IdeaRecord,
    MetricRow,
    RunRecord,
    make_run_key,
)
from store.store import Store
from store.writer import MetricWriter

__all__ = [
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
