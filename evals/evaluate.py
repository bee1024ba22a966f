"""Task evaluations on checkpoints: built-in tasks, user `module:function` tasks, the evals table.

A task takes a `LoadedCheckpoint` and returns a number or a mapping of metric name -> number.
Built-in tasks:

- ``val_loss``: mean next-token loss on the run's fixed held-out batches (metric ``loss``,
  nats/token).
- ``addition``, ``reversal`` (and every other probe in `models.tasks.TASKS`): metrics
  ``exact_match`` and ``token_accuracy`` (fractions in [0, 1]) and ``logprob_per_token``
  (mean log-likelihood of the answer tokens, nats/token).
- ``continuation``: log-likelihood of the second half of each held-out window given the first
  half (metrics ``logprob_per_token``, nats/token, and ``loss`` = -logprob_per_token).

A user task is named ``pkg.module:function``; a scalar result is stored under metric ``value``.
"""

from __future__ import annotations

import logging
import math
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.counts import whole_count
from scaletrack.errors import ConfigError, DataError, ScaletrackError, one_line
from scaletrack.references import load_callable
from scaletrack.store import CheckpointRecord

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike, WorkerStore
    from scaletrack.store.records import CheckpointRecord, RunRecord

log = logging.getLogger(__name__)

SCALAR_METRIC = "value"


class TaskError(ScaletrackError):
    """An evaluation task raised or returned something that is not a number."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint's model, ready to evaluate, with what a task needs to find its data.

    `data` is the data configuration of the run that produced the checkpoint (or the
    ``"data"`` entry of an external checkpoint's meta); `context` is its context length in tokens.
    """

    model: Any  # torch.nn.Module; None for an external checkpoint registered without a loader
    record: CheckpointRecord
    device: str = "cpu"
    run: RunRecord | None = None  # for own checkpoints
    data: Mapping[str, Any] = field(default_factory=dict)
    context: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)  # the run's full train config, if any

    @property
    def N(self) -> int:
        """Parameters used for fits."""
        return int(self.record.N)


TaskFn = Callable[[LoadedCheckpoint], Any]


@dataclass(frozen=True)
class Task:
    """A resolved evaluation task; `metrics` lists the metric names a built-in task returns."""

    name: str
    fn: TaskFn
    metrics: tuple[str, ...] | None = None

    @property
    def builtin(self) -> bool:
        return ":" not in self.name


# ---------------------------------------------------------------- loading


def load_checkpoint(
    store: WorkerStore, checkpoint_id: int, device: str = "cpu"
) -> LoadedCheckpoint:
    """Load checkpoint `checkpoint_id` from `store` onto `device` in eval mode.

    Own checkpoints and external ones with loader ``gpt``/``lstm`` go through
    `models.checkpoint.load_checkpoint_model`; a ``module:function`` loader is called with the
    `CheckpointRecord` and must return the model.
    """
    record = store.get_checkpoint(int(checkpoint_id))
    if record is None:
        raise DataError(f"no checkpoint with id {checkpoint_id} in {store.url}")
    run = store.get_run(record.run_key) if record.run_key else None
    meta = dict(record.meta or {})
    # the training loop's own copy of the train config wins; then the run row; then meta itself
    config: dict[str, Any] = {}
    if isinstance(meta.get("train"), Mapping):
        config = dict(meta["train"])
    elif run is not None and isinstance(run.config, Mapping) and "data" in run.config:
        config = dict(run.config)
    data = dict(config.get("data") or meta.get("data") or {})
    context = config.get("context", meta.get("context"))

    loader = record.loader
    try:
        if loader is None and record.kind == "external":
            _verify(record)
            model: Any = None  # user tasks may read record.path themselves; built-ins need a loader
        elif loader and ":" in loader:
            _verify(record)
            load_fn = load_callable(loader, "checkpoint loader")
            model = load_fn(record)
        else:
            from scaletrack.models.checkpoint import load_checkpoint_model

            model = load_checkpoint_model(record, device=device)
    except ScaletrackError:
        raise
    except Exception as exc:  # noqa: BLE001 - report which checkpoint failed, in one line
        raise DataError(
            f"cannot load checkpoint {record.id} from {record.path} (loader {loader or 'own'}): "
            f"{one_line(exc)}"
        ) from exc
    if hasattr(model, "to"):
        model = model.to(device)
    if hasattr(model, "eval"):
        model.eval()
    return LoadedCheckpoint(
        model=model,
        record=record,
        device=device,
        run=run,
        data=data,
        context=int(context) if context is not None else None,
        config=config,
    )


def _verify(record: CheckpointRecord) -> None:
    """Check a user-loaded checkpoint's file (or directory) against its recorded sha256."""
    path = Path(record.path)
    if not path.exists():
        raise DataError(f"checkpoint {record.id}: {path} does not exist")
    from scaletrack.models.checkpoint import file_sha256

    if record.sha256 and file_sha256(path) != record.sha256:
        raise DataError(
            f"checkpoint {record.id}: {path} changed since it was registered (sha256 differs)"
        )


# ---------------------------------------------------------------- built-in tasks


def _model_context(loaded: LoadedCheckpoint) -> int:
    """Sequence length to evaluate at: the run's context, capped by the model's own."""
    cfg = getattr(loaded.model, "config", None)
    model_ctx = getattr(cfg, "context", None) if cfg is not None else None
    ctx = loaded.context or model_ctx or 128
    return int(min(ctx, model_ctx)) if model_ctx else int(ctx)


def _require_model(loaded: LoadedCheckpoint) -> Any:
    if loaded.model is None:
        raise DataError(
            f"checkpoint {loaded.record.id} was registered without a loader; built-in tasks need "
            "one (--loader gpt|lstm|package.module:function)"
        )
    return loaded.model


def _logits(model: Any, x: Any) -> Any:
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def _heldout_tokens(loaded: LoadedCheckpoint) -> Any:
    from scaletrack.models.data import load_tokens

    if not loaded.data:
        raise DataError(
            f"checkpoint {loaded.record.id} names no data to evaluate on; register it with "
            "--meta '{\"data\": {\"corpus\": \"stdlib\"}}' (or a path/tokens spec)"
        )
    return load_tokens(loaded.data).val


def _heldout_windows(loaded: LoadedCheckpoint) -> list[tuple[Any, Any]]:
    from scaletrack.models.data import eval_batches

    n_batches = int(loaded.config.get("eval_batches", 8))
    batch_size = int(loaded.config.get("batch_size", 16))
    return eval_batches(_heldout_tokens(loaded), n_batches, batch_size, _model_context(loaded))


def _val_loss(loaded: LoadedCheckpoint) -> dict[str, float]:
    """Mean next-token cross-entropy on the run's fixed held-out batches (nats/token)."""
    import torch
    import torch.nn.functional as F

    model = _require_model(loaded)
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in _heldout_windows(loaded):
            x, y = x.to(loaded.device), y.to(loaded.device)
            logits = _logits(model, x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                   reduction="sum")
            total += float(loss)
            count += y.numel()
    return {"loss": total / count}


def _continuation(loaded: LoadedCheckpoint) -> dict[str, float]:
    """Log-likelihood of the second half of each held-out window given the first half.

    `logprob_per_token` is the mean over continuation tokens (nats/token, <= 0); `loss` is its
    negative.
    """
    import torch
    import torch.nn.functional as F

    model = _require_model(loaded)
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in _heldout_windows(loaded):
            x, y = x.to(loaded.device), y.to(loaded.device)
            half = x.shape[1] // 2
            logp = F.log_softmax(_logits(model, x).float(), dim=-1)
            picked = logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)[:, half:]
            total += float(picked.sum())
            count += picked.numel()
    logprob = total / count
    return {"logprob_per_token": logprob, "loss": -logprob}


PROBE_METRICS = ("exact_match", "token_accuracy", "logprob_per_token")
PROBE_EXAMPLES = 200


def _probe(task_name: str) -> TaskFn:
    """A task scoring the synthetic probe `task_name` of `models.tasks` on fresh examples."""

    def run(loaded: LoadedCheckpoint) -> dict[str, float]:
        from scaletrack.models.tasks import evaluate_task

        model = _require_model(loaded)
        scores = evaluate_task(model, task_name, n=PROBE_EXAMPLES, device=loaded.device)
        return {m: float(scores[m]) for m in PROBE_METRICS}

    run.__name__ = f"probe_{task_name}"
    return run


def builtin_tasks() -> dict[str, Task]:
    """Built-in tasks by name: val_loss, continuation and every probe in `models.tasks.TASKS`."""
    from scaletrack.models.tasks import TASKS

    tasks = {
        "val_loss": Task("val_loss", _val_loss, ("loss",)),
        "continuation": Task("continuation", _continuation, ("logprob_per_token", "loss")),
    }
    for name in TASKS:
        tasks[name] = Task(name, _probe(name), PROBE_METRICS)
    return tasks


def resolve_task(name: str) -> Task:
    """The task named `name`: a built-in name or ``pkg.module:function``; else a ConfigError."""
    name = str(name).strip()
    builtins = builtin_tasks()
    if name in builtins:
        return builtins[name]
    if ":" in name:
        return Task(name, load_callable(name, "task"))
    raise ConfigError(
        f"unknown task {name!r}: use one of {', '.join(builtins)} "
        "or a user function as 'package.module:function'"
    )


def run_task(task: Task, loaded: LoadedCheckpoint) -> dict[str, float]:
    """Run `task` on `loaded`; return metric -> value. Failures become a one-line TaskError."""
    try:
        result = task.fn(loaded)
    except ScaletrackError as exc:
        raise TaskError(f"task {task.name!r} failed: {str(exc).strip().splitlines()[0]}") from exc
    except Exception as exc:  # noqa: BLE001 - a user function may raise anything
        raise TaskError(f"task {task.name!r} raised {one_line(exc)}") from exc
    return _as_metrics(task, result)


def _as_float(task: Task, metric: str, value: Any) -> float:
    try:
        if hasattr(value, "item"):
            value = value.item()
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TaskError(
            f"task {task.name!r} returned {type(value).__name__} for metric {metric!r}; "
            "expected a number"
        ) from exc


def _as_metrics(task: Task, result: Any) -> dict[str, float]:
    if isinstance(result, Mapping):
        if not result:
            raise TaskError(f"task {task.name!r} returned an empty mapping of metrics")
        return {str(k): _as_float(task, str(k), v) for k, v in result.items()}
    if isinstance(result, bool) or result is None:
        raise TaskError(
            f"task {task.name!r} returned {result!r}; expected a number or a dict of numbers"
        )
    return {SCALAR_METRIC: _as_float(task, SCALAR_METRIC, result)}


# ---------------------------------------------------------------- evals table


def evaluate_loaded(
    store: WorkerStore, loaded: LoadedCheckpoint, tasks: Sequence[str | Task]
) -> dict[str, dict[str, float]]:
    """Run `tasks` on an already loaded checkpoint and store every task x metric value.

    All tasks run before anything is written, so a failing task leaves the evals table as it was.
    """
    resolved = [t if isinstance(t, Task) else resolve_task(t) for t in tasks]
    results: dict[str, dict[str, float]] = {}
    for task in resolved:
        results[task.name] = run_task(task, loaded)
    assert loaded.record.id is not None  # a checkpoint read from the store has its id
    for task_name, metrics in results.items():
        for metric, value in metrics.items():
            store.add_eval(int(loaded.record.id), task_name, metric, value)
    return results


def evaluate_checkpoint(
    store: StoreLike, checkpoint_id: int, tasks: Sequence[str], *, device: str = "cpu"
) -> dict[str, dict[str, float]]:
    """Evaluate `tasks` on checkpoint `checkpoint_id`; write and return {task: {metric: value}}.

    Unknown task names raise ConfigError before the checkpoint is loaded; a task that raises
    gives a one-line TaskError naming it and nothing is written.
    """
    resolved = [resolve_task(t) for t in tasks]
    if not resolved:
        return {}
    loaded = load_checkpoint(store, checkpoint_id, device=device)
    return evaluate_loaded(store, loaded, resolved)


# ---------------------------------------------------------------- external checkpoints

LOADERS = ("gpt", "lstm")


class CheckpointExists(ConfigError):
    """The path is already registered; `identical` when the same bytes, N, D and FLOPs were
    given again (a no-op), so a script may register idempotently."""

    def __init__(self, message: str, checkpoint_id: int, identical: bool) -> None:
        super().__init__(message)
        self.checkpoint_id = checkpoint_id
        self.identical = identical


def checkpoint_source(path: str | Path) -> Path:
    """The real path (symlinks resolved) of a checkpoint file or folder; refuses anything that
    is neither a regular file nor a folder (FIFOs, devices, sockets would block or never end)."""
    p = Path(path).expanduser()
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"checkpoint path {p} does not exist") from None
    except OSError as exc:
        raise DataError(f"checkpoint path {p} cannot be read: {exc.strerror or exc}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DataError(f"checkpoint path {p} is not a regular file or a folder")
    return p.resolve()


def _registered_at(store: StoreLike, real: Path) -> Any:
    """The stored checkpoint whose path is `real` (compared after resolving symlinks), or None."""
    table = store.checkpoints()
    for row in table.itertuples(index=False):
        stored = str(row.path)
        if stored == str(real) or (
            not stored.startswith("imported:") and Path(stored).resolve() == real
        ):
            return store.get_checkpoint(int(row.id))
    return None


def register_external_checkpoint(
    store: StoreLike,
    path: str | Path,
    *,
    params: int,
    tokens: int,
    flops: float | None = None,
    loader: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> int:
    """Register a checkpoint trained elsewhere (kind 'external'); returns its id.

    params: N (parameters, 1 to 2**63 - 1); tokens: D (training tokens, 0 to 2**63 - 1);
    flops: C (FLOPs), default 6·N·D (none recorded for D = 0: no training compute).
    loader: 'gpt' / 'lstm' (meta holds the model config) or 'package.module:function'
    called with the CheckpointRecord. The file's (or folder's) sha256 is computed and stored.
    Registering the same path with the same content and details again raises
    `CheckpointExists` with `identical` set (a no-op); other details for a registered path
    are refused.
    """
    from scaletrack.models.checkpoint import file_sha256

    p = checkpoint_source(path)
    n, d = whole_count(params, "params", minimum=1), whole_count(tokens, "tokens")
    if flops is not None and not (isinstance(flops, int | float) and not isinstance(flops, bool)
                                  and math.isfinite(flops) and flops > 0):
        raise ConfigError(f"flops must be a positive number of FLOPs, got {flops!r:.40}")
    c = stated_or_derived_flops(n, d, flops)
    if loader is not None and loader not in LOADERS:
        if ":" not in loader:
            raise ConfigError(
                f"unknown loader {loader!r}: use gpt, lstm or 'package.module:function'"
            )
        load_callable(loader, "checkpoint loader")
    sha = file_sha256(p)
    existing = _registered_at(store, p)
    if existing is not None:
        # a checkpoint registered before C defaulted to 6·N·D holds no FLOPs: the same one
        same_c = existing.flops == c or (flops is None and existing.flops is None)
        same = (existing.kind == "external" and existing.sha256 == sha
                and n == existing.N and existing.tokens == d and same_c
                and existing.loader == loader and dict(existing.meta or {}) == dict(meta or {}))
        owner = (f"run {existing.run_key} step {existing.step}" if existing.run_key
                 else existing.kind)
        if same:
            raise CheckpointExists(f"{p} is already registered as checkpoint {existing.id} "
                                   "with the same content; nothing changed", existing.id, True)
        changed = "different content" if existing.sha256 != sha else "other N, D or details"
        raise CheckpointExists(
            f"{p} is already registered as checkpoint {existing.id} ({owner}); refusing to "
            f"replace it with {changed} (register a copy under a new path)", existing.id, False)
    record = CheckpointRecord(
        id=None,
        run_key=None,
        kind="external",
        N=n,
        tokens=d,
        flops=c,
        step=None,
        path=str(p),
        sha256=sha,
        loader=loader,
        meta=dict(meta or {}),
    )
    return int(store.add_checkpoint(record))


def stated_or_derived_flops(n: int, d: int, flops: float | None) -> float | None:
    """C in FLOPs of an external checkpoint: `flops` when stated, else 6·N·D (None for
    D = 0 tokens: no training compute to record)."""
    if flops is not None:
        return float(flops)
    return 6.0 * n * d if d > 0 and n > 0 else None
