"""What a sweep does after training, supplied from above: evaluate new checkpoints, re-check ideas.

The sweep layer knows nothing of evaluations or ideas; the public `scaletrack.run_sweep`
passes these hooks in:

- `evaluate_new_checkpoint` goes into the `SweepJob` (a top-level function, so it pickles to
  local worker processes and Ray tasks) and runs the grid's eval tasks on each checkpoint a
  cell registers;
- `idea_rechecker(store_url)` is called in the sweep's own process after each finished cell
  and re-runs the "not yet" ideas that the new, larger checkpoint made due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scaletrack.errors import ScaletrackError
from scaletrack.evals.evaluate import (
    LoadedCheckpoint,
    evaluate_loaded,
    load_checkpoint,
    resolve_task,
)
from scaletrack.evals.ideas import refresh_idea_statuses, rerun_due
from scaletrack.number_format import fmt_number
from scaletrack.store import Store
from scaletrack.store.protocol import StoreLike, WorkerStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AfterCheckpointReport:
    """What `evaluate_after_checkpoint` did: values written, task errors, ideas now due."""

    checkpoint_id: int
    values: dict[str, dict[str, float]]
    errors: dict[str, str]
    due_ideas: tuple[int, ...]


def evaluate_after_checkpoint(
    store: WorkerStore,
    ckpt_id: int,
    tasks: Sequence[str] = (),
    *,
    device: str = "cpu",
    rerun_ideas: bool = False,
) -> AfterCheckpointReport:
    """Hook for the sweep runner after a checkpoint is registered.

    Evaluates each of `tasks` (a failing task is logged and reported, never raised, so a sweep
    keeps going), then marks ideas due that this checkpoint makes due; with `rerun_ideas` it
    also re-checks them at once.
    """
    values: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    loaded: LoadedCheckpoint | None = None
    for name in tasks:
        try:
            task = resolve_task(name)
            if loaded is None:
                loaded = load_checkpoint(store, ckpt_id, device=device)
            values.update(evaluate_loaded(store, loaded, [task]))
        except ScaletrackError as exc:
            errors[str(name)] = str(exc)
            log.warning("evaluation of checkpoint %s: %s", ckpt_id, exc)
    # Ideas are marked due where the store holds the registry; a worker behind the Ray hub
    # has the worker role only (the sweep's own process re-checks ideas after each cell).
    registry = store if isinstance(store, StoreLike) else None
    due = refresh_idea_statuses(registry) if registry is not None else []
    if registry is not None and rerun_ideas and due:
        rerun_due(registry, device=device)
        due = refresh_idea_statuses(registry)
    return AfterCheckpointReport(int(ckpt_id), values, errors, tuple(due))


def evaluate_new_checkpoint(
    store: WorkerStore, checkpoint_id: int, tasks: Sequence[str], device: str
) -> dict[str, str]:
    """The sweep's after-checkpoint hook: evaluate `tasks`, mark ideas due; errors by task."""
    return evaluate_after_checkpoint(store, checkpoint_id, tasks, device=device).errors


def idea_rechecker(store_url: str, device: str = "cpu") -> Callable[[], list[str]]:
    """Re-run the "not yet" ideas that a new, larger checkpoint made due; one line per attempt.

    Called in the sweep's own process after each finished cell, so ideas are re-checked
    once per checkpoint rather than by every worker at once.
    """

    def recheck() -> list[str]:
        with Store.open(store_url) as store:
            report = rerun_due(store, device=device)
        lines = [
            f"idea #{a.idea_id} {a.title!r} on checkpoint {a.checkpoint_id} "
            f"(N={fmt_number(a.N)}, C={fmt_number(a.flops)} FLOPs): {fmt_number(a.value)} vs bar "
            f"{fmt_number(a.threshold)} "
            f"-> {a.status}"
            for a in report.attempts
        ]
        lines += [f"idea #{idea_id}: {error}" for idea_id, error in report.errors.items()]
        return lines

    return recheck
