"""The store: SQLAlchemy schema, migrations, the Store API and the batched MetricWriter."""

from scaletrack.store.engine import (
    TRANSIENT_DB_ERRORS,
    resolve_store_url,
    sqlite_file,
    with_absolute_sqlite_path,
)
from scaletrack.store.errors import ClaimLost, StoreError
from scaletrack.store.fits import fit_cache_key
from scaletrack.store.protocol import MetricLogger, StoreLike, WorkerStore
from scaletrack.store.readonly import open_read_only
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
    "MetricLogger",
    "MetricRow",
    "MetricWriter",
    "RunRecord",
    "Store",
    "StoreError",
    "ClaimLost",
    "StoreLike",
    "WorkerStore",
    "fit_cache_key",
    "make_run_key",
    "open_read_only",
    "resolve_store_url",
    "sqlite_file",
    "with_absolute_sqlite_path",
]
