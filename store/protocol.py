"""The typed seams between the store and everything that writes or reads through it.

One small Protocol per role, so each caller states what it needs:

- `WorkerStore`: what a worker holding runs uses (executors, the trainer, command cells, the
  tracking API): `ClaimStore` (claims, heartbeats, finish and release) + `MetricSink` +
  `CheckpointLog` (checkpoints and the evals of each). The Ray hub's proxy
  (`sweeps.executors.ray.HubStore`) forwards exactly this protocol to the one process that
  owns a SQLite file, generated from it by `store_methods(WorkerStore)`.
- `StoreLike`: the whole facade, `WorkerStore` plus `RunCatalog`, `MetricReader`,
  `EvalCatalog`, `IdeaStore`, `FitStore` and `SlurmTaskLog`. `Store` satisfies it.

Code outside store/ takes one of these, never a concrete Store. A method added to `Store`
that callers outside store/ use is declared in the role it belongs to.

N and N_total are parameters, D and tokens are tokens, C and flops are FLOPs, losses are nats
per token. Readers return pandas DataFrames; writers take the frozen records of
`scaletrack.store.records`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from scaletrack.store.importers.apply import Applied, ImportPlan
    from scaletrack.store.records import (
        CheckpointRecord,
        IdeaAttemptRecord,
        IdeaRecord,
        MetricRow,
        RunRecord,
    )
    from scaletrack.store.run_pages import RunFilter
    from scaletrack.store.slurm_tasks import SlurmTaskRecord


@runtime_checkable
class MetricLogger(Protocol):
    """Buffered metric logging for one run (`Store.metric_writer` returns one)."""

    run_key: str

    def log(self, name: str, step: int, value: float, *, tokens: int | None = None,
            wall_time: float | None = None) -> None: ...

    def log_many(self, step: int, values: Mapping[str, float], *, tokens: int | None = None,
                 wall_time: float | None = None) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- worker roles


@runtime_checkable
class ClaimStore(Protocol):
    """Runs as a worker takes, holds and gives them back (claims fence its later writes)."""

    def get_run(self, run_key: str) -> RunRecord | None: ...
    def ensure_run(self, run: RunRecord) -> RunRecord: ...
    def update_run(self, run_key: str, **fields: Any) -> None: ...
    def claim_run(self, run_key: str, worker: str, stale_after_s: float = 60.0) -> bool: ...
    def take_over_run(self, run_key: str, dead_worker: str, worker: str) -> bool: ...
    def claim_generation(self, run_key: str) -> int | None: ...
    def adopt_claim(self, run_key: str, worker: str, claim: int) -> bool: ...
    def heartbeat(self, run_key: str, worker: str) -> bool: ...
    def finish_run(self, run_key: str, status: str, final_loss: float | None = None,
                   error: str | None = None) -> None: ...
    def release_run(self, run_key: str, worker: str) -> None: ...
    def release_after_failure(self, run_key: str, worker: str) -> bool: ...


@runtime_checkable
class MetricSink(Protocol):
    """Where a worker's metrics go (one row per run, name and step; a re-logged step replaces)."""

    def metric_writer(self, run_key: str, *, batch_size: int = 1000,
                      flush_interval_s: float = 0.5) -> MetricLogger: ...
    def write_metrics(self, rows: pd.DataFrame | Iterable[MetricRow], *,
                      batch_size: int = 10_000) -> int: ...
    def delete_metrics_after(self, run_key: str, step: int) -> int: ...


@runtime_checkable
class CheckpointLog(Protocol):
    """The checkpoints a worker saves or resumes from, and the evals it records on them."""

    def add_checkpoint(self, ckpt: CheckpointRecord) -> int: ...
    def get_checkpoint(self, id: int) -> CheckpointRecord | None: ...
    def latest_checkpoints(self, run_key: str) -> list[CheckpointRecord]: ...
    def add_eval(self, checkpoint_id: int, task: str, metric: str, value: float,
                 stderr: float | None = None, n_shot: int | None = None) -> None: ...


@runtime_checkable
class WorkerStore(ClaimStore, MetricSink, CheckpointLog, Protocol):
    """What a worker holding runs uses: claims, a metric sink and the checkpoint log."""

    url: str

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- reader roles


@runtime_checkable
class RunCatalog(Protocol):
    """Sweeps and runs as listed, counted, tagged and noted (paged and counted in SQL)."""

    def upsert_sweep(self, name: str, spec: dict[str, Any]) -> None: ...
    def sweeps(self, tag: str | None = None) -> pd.DataFrame: ...
    def ensure_runs(self, runs: Sequence[RunRecord], *, batch_size: int = 10_000) -> int: ...
    def runs(self, sweep: str | None = None, status: str | None = None, tag: str | None = None,
             *, role: str | None = None, limit: int | None = None, offset: int = 0,
             order: str = "created") -> pd.DataFrame: ...
    def fit_runs(self, sweep: str | None = None) -> pd.DataFrame: ...
    def count_runs(self, sweep: str | None = None, status: str | None = None,
                   tag: str | None = None) -> int: ...
    def run_status_counts(self, sweep: str | None = None) -> dict[str, int]: ...
    def find_run_keys(self, prefix: str, limit: int = 2) -> list[str]: ...
    def tag(self, *, run_key: str | None = None, sweep: str | None = None,
            add: Sequence[str] = (), remove: Sequence[str] = (),
            note: str | None = None) -> list[str]: ...


@runtime_checkable
class MetricReader(Protocol):
    """Metric rows as stored, and their counts."""

    def metrics(self, run_keys: Sequence[str] | None = None,
                names: Sequence[str] | None = None) -> pd.DataFrame: ...
    def count_metrics(self, run_key: str | None = None) -> int: ...
    def metric_counts(self, run_key: str) -> dict[str, int]: ...


@runtime_checkable
class EvalCatalog(Protocol):
    """Checkpoints and evals as tables, a cheap fingerprint of the evals (changes with any
    eval or checkpoint), and many evals of a checkpoint written at once."""

    def checkpoints(self, run_key: str | None = None, kind: str | None = None
                    ) -> pd.DataFrame: ...
    def evals(self, task: str | None = None) -> pd.DataFrame: ...
    def evals_version(self) -> str: ...
    def add_evals(self, checkpoint_id: int,
                  rows: Iterable[tuple[str, str, float, float | None, int | None]]) -> int: ...


@runtime_checkable
class IdeaStore(Protocol):
    """The ideas registry and the attempts at each idea."""

    def add_idea(self, idea: IdeaRecord) -> int: ...
    def get_idea(self, idea_id: int) -> IdeaRecord | None: ...
    def update_idea(self, idea_id: int, **fields: Any) -> None: ...
    def delete_idea(self, idea_id: int) -> None: ...
    def ideas(self) -> pd.DataFrame: ...
    def add_idea_attempt(self, attempt: IdeaAttemptRecord) -> int: ...
    def idea_attempts(self, idea_id: int | None = None) -> pd.DataFrame: ...


@runtime_checkable
class FitStore(Protocol):
    """Stored fit results, and the cache of fits keyed by their inputs (`fit_cache_key`)."""

    def save_fit(self, form: str, payload: dict[str, Any], *, sweep: str | None = None,
                 label: str | None = None, key: str | None = None) -> int: ...
    def fits(self, form: str | None = None, *, cached: bool = False) -> pd.DataFrame: ...
    def cached_fit(self, key: str) -> dict[str, Any] | None: ...


@runtime_checkable
class SlurmTaskLog(Protocol):
    """The Slurm tasks of sweeps: which job ran which cell, its state, requeues and logs."""

    def add_slurm_tasks(self, tasks: Iterable[SlurmTaskRecord]) -> int: ...
    def update_slurm_task(self, job_id: str, *, state: str, restarts: int,
                          node: str | None) -> None: ...
    def mark_slurm_cancelled(self, sweep: str) -> list[str]: ...
    def cancelled_job_ids(self, sweep: str) -> set[str]: ...
    def slurm_tasks(self, sweep: str | None = None) -> pd.DataFrame: ...


@runtime_checkable
class RunPages(Protocol):
    """The dashboard's reads of the runs table, done in the database: a filtered, sorted,
    grouped page; run counts by sweep and status; the columns a fit needs."""

    def runs_page(self, f: RunFilter, *, sort: str = "created_at", descending: bool = False,
                  group: str | None = None, offset: int = 0, limit: int = 100
                  ) -> dict[str, Any]: ...
    def status_counts_by_sweep(self) -> dict[str | None, dict[str, int]]: ...
    def fit_point_rows(self, sweep: str | None = None) -> list[tuple[Any, ...]]: ...


@runtime_checkable
class ImportSink(Protocol):
    """Where an importer writes: its whole plan in one transaction, or nothing."""

    def apply_import(self, plan: ImportPlan) -> Applied: ...


@runtime_checkable
class StoreLike(WorkerStore, RunCatalog, MetricReader, EvalCatalog, IdeaStore, FitStore,
                SlurmTaskLog, RunPages, ImportSink, Protocol):
    """What a store offers: every role above (the whole `Store` facade)."""


def store_methods(protocol: type = StoreLike) -> frozenset[str]:
    """Names of the methods `protocol` declares, its base protocols' included (data attributes,
    such as `url`, excluded)."""
    return frozenset(
        name
        for cls in protocol.__mro__ if getattr(cls, "_is_protocol", False) and cls is not Protocol
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(value)
    )
