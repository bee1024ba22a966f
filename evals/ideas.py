"""The "not yet" registry: ideas with a bar to clear, re-checked when a larger checkpoint exists.

An idea names a task and metric (see `scaletrack.evals.evaluate`), a threshold and a
direction ("above": value >= threshold passes; "below": value <= threshold passes). Each
attempt records the checkpoint, its N (parameters), D (tokens), compute (FLOPs), the value
and pass/fail.

Scale is compared by compute: the checkpoint's FLOPs, else 6·N·D, ties broken by N. An open
idea (not-yet or due) is *due* when the largest checkpoint in the store is larger than any it
was tried on, or when it was never tried and any checkpoint exists. Due-ness is derived from
the data each time (`due_ideas`); `refresh_idea_statuses` writes it into the status column.
An idea's `max_flops_tried` and each attempt's `flops` hold that compared compute (FLOPs).
'works' and 'retired' ideas are closed and never due.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from scaletrack.errors import ConfigError, ScaletrackError
from scaletrack.evals.evaluate import LoadedCheckpoint, load_checkpoint, resolve_task, run_task

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike
    from scaletrack.store.records import IdeaRecord

DIRECTIONS = ("above", "below")
OPEN_STATUSES = ("not-yet", "due")
_REL_TOL = 1e-9


@dataclass(frozen=True, order=True)
class Scale:
    """Size of a checkpoint for "larger than" comparisons: compute (FLOPs), then N."""

    compute: float
    N: int


def checkpoint_scale(N: Any, tokens: Any, flops: Any) -> Scale:
    """Compute of a checkpoint: its recorded FLOPs, else 6·N·tokens (FLOPs)."""
    n = int(N) if is_finite(N) else 0
    if is_finite(flops) and float(flops) > 0:
        return Scale(float(flops), n)
    d = int(tokens) if is_finite(tokens) else 0
    return Scale(6.0 * n * d, n)


def is_finite(x: Any) -> bool:
    if x is None or x is pd.NA:
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _larger(a: Scale, b: Scale) -> bool:
    """True when `a` is strictly larger than `b` (compute first, then N)."""
    if a.compute > b.compute * (1 + _REL_TOL) and a.compute > b.compute:
        return True
    if abs(a.compute - b.compute) <= _REL_TOL * max(abs(a.compute), abs(b.compute), 1.0):
        return a.N > b.N
    return False


def passes(value: float, threshold: float, direction: str) -> bool:
    """Whether `value` clears `threshold` in `direction`; NaN never passes."""
    if not is_finite(value):
        return False
    return value >= threshold if direction == "above" else value <= threshold


# ---------------------------------------------------------------- registering


def add_idea(
    store: StoreLike,
    title: str,
    task: str,
    metric: str,
    threshold: float,
    direction: str = "above",
    hypothesis: str | None = None,
) -> int:
    """Register an idea; returns its id. The task must resolve and the metric must exist."""
    from scaletrack.store import IdeaRecord

    title = str(title).strip()
    if not title:
        raise ConfigError("an idea needs a non-empty title")
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction {direction!r} must be 'above' or 'below'")
    if not is_finite(threshold):
        raise ConfigError(f"threshold {threshold!r} must be a finite number")
    resolved = resolve_task(task)
    if resolved.metrics is not None and metric not in resolved.metrics:
        raise ConfigError(
            f"task {resolved.name!r} has no metric {metric!r}; "
            f"it reports {', '.join(resolved.metrics)}"
        )
    idea_id = store.add_idea(
        IdeaRecord(
            id=None,
            title=title,
            task=resolved.name,
            metric=str(metric),
            threshold=float(threshold),
            direction=direction,
            hypothesis=hypothesis,
        )
    )
    refresh_idea_statuses(store)
    return int(idea_id)


def get_idea_or_fail(store: StoreLike, idea_id: int) -> IdeaRecord:
    """The IdeaRecord `idea_id`, or a ConfigError naming it."""
    idea = store.get_idea(int(idea_id))
    if idea is None:
        raise ConfigError(f"no idea with id {idea_id} in {store.url}")
    return idea


def retire_idea(store: StoreLike, idea_id: int) -> None:
    """Close idea `idea_id`: it is never due again."""
    get_idea_or_fail(store, idea_id)
    store.update_idea(int(idea_id), status="retired")


# ---------------------------------------------------------------- due-ness


def _checkpoints(store: StoreLike) -> pd.DataFrame:
    df = store.checkpoints()
    if df.empty:
        return df
    df = df.copy()
    scales = [
        checkpoint_scale(n, d, c)
        for n, d, c in zip(df["N"], df["tokens"], df["flops"], strict=True)
    ]
    df["compute"] = [s.compute for s in scales]
    df["scale_N"] = [s.N for s in scales]
    return df


def largest_checkpoint(store: StoreLike) -> tuple[int, Scale] | None:
    """Id and scale of the largest checkpoint (compute, then N, then newest id); None if none."""
    df = _checkpoints(store)
    if df.empty:
        return None
    df = df.sort_values(["compute", "scale_N", "id"], ascending=False, kind="stable")
    row = df.iloc[0]
    return int(row["id"]), Scale(float(row["compute"]), int(row["scale_N"]))


def _tried_scale(idea: IdeaRecord) -> Scale | None:
    if not is_finite(idea.max_flops_tried) and not is_finite(idea.max_N_tried):
        return None
    compute = float(idea.max_flops_tried) if is_finite(idea.max_flops_tried) else 0.0
    n = int(idea.max_N_tried) if is_finite(idea.max_N_tried) else 0
    return Scale(compute, n)


def _is_due(idea: IdeaRecord, largest: Scale | None) -> bool:
    if idea.status not in OPEN_STATUSES or largest is None:
        return False
    tried = _tried_scale(idea)
    return tried is None or _larger(largest, tried)


def idea_records(store: StoreLike) -> list[IdeaRecord]:
    """Every idea in the store as an IdeaRecord, by id."""
    df = store.ideas()
    if df.empty:
        return []
    return [store.get_idea(int(i)) for i in sorted(df["id"])]


def due_ideas(store: StoreLike) -> list[IdeaRecord]:
    """Open ideas that the largest checkpoint in `store` has not been tried on (IdeaRecords)."""
    top = largest_checkpoint(store)
    largest = top[1] if top else None
    return [idea for idea in idea_records(store) if _is_due(idea, largest)]


def refresh_idea_statuses(store: StoreLike) -> list[int]:
    """Write 'due' / 'not-yet' into open ideas' status from the data; return the due ids."""
    top = largest_checkpoint(store)
    largest = top[1] if top else None
    due: list[int] = []
    for idea in idea_records(store):
        if idea.status not in OPEN_STATUSES:
            continue
        now_due = _is_due(idea, largest)
        if now_due:
            due.append(int(idea.id))
        want = "due" if now_due else "not-yet"
        if idea.status != want:
            store.update_idea(int(idea.id), status=want)
    return due


# ---------------------------------------------------------------- attempts


@dataclass(frozen=True)
class Attempt:
    """One re-check of an idea on one checkpoint (value in the idea's metric units)."""

    idea_id: int
    title: str
    checkpoint_id: int
    N: int
    tokens: int
    flops: float
    value: float
    threshold: float
    direction: str
    passed: bool
    status: str  # the idea's status after this attempt


@dataclass(frozen=True)
class RerunReport:
    """Result of `rerun_due`: attempts recorded and one-line errors per idea id."""

    checkpoint_id: int | None
    attempts: tuple[Attempt, ...]
    errors: dict[int, str]


def _stored_metric(store: StoreLike, checkpoint_id: int, task: str, metric: str) -> float | None:
    df = store.evals(task=task)
    if df.empty:
        return None
    hit = df[(df["checkpoint_id"] == checkpoint_id) & (df["metric"] == metric)]
    if hit.empty:
        return None
    return float(hit["value"].iloc[-1])


def _measure(
    store: StoreLike,
    idea: IdeaRecord,
    checkpoint_id: int,
    loaded: dict[int, LoadedCheckpoint],
    device: str,
    reuse: bool,
) -> float:
    """The idea's metric on the checkpoint: reused from the evals table or computed and stored."""
    if reuse:
        value = _stored_metric(store, checkpoint_id, idea.task, idea.metric)
        if value is not None:
            return value
    task = resolve_task(idea.task)
    if checkpoint_id not in loaded:
        loaded[checkpoint_id] = load_checkpoint(store, checkpoint_id, device=device)
    metrics = run_task(task, loaded[checkpoint_id])
    if idea.metric not in metrics:
        raise ScaletrackError(
            f"idea {idea.id}: task {idea.task!r} reported {', '.join(sorted(metrics))}, "
            f"not {idea.metric!r}"
        )
    for metric, value in metrics.items():
        store.add_eval(checkpoint_id, task.name, metric, value)
    return metrics[idea.metric]


def check_idea(
    store: StoreLike,
    idea_id: int,
    checkpoint_id: int,
    *,
    device: str = "cpu",
    reuse: bool = True,
    _loaded: dict[int, LoadedCheckpoint] | None = None,
) -> Attempt:
    """Evaluate idea `idea_id` on checkpoint `checkpoint_id` and record the attempt.

    The idea keeps the best value and the largest scale tried; it becomes 'works' when the
    value clears the bar and stays 'not-yet' otherwise. `reuse` takes the value from the evals
    table when this checkpoint x task x metric was evaluated already.
    """
    from scaletrack.store import IdeaAttemptRecord

    idea = get_idea_or_fail(store, idea_id)
    if idea.status == "retired":
        raise ConfigError(f"idea {idea_id} is retired")
    ckpt = store.get_checkpoint(int(checkpoint_id))
    if ckpt is None:
        raise ConfigError(f"no checkpoint with id {checkpoint_id} in {store.url}")
    value = _measure(store, idea, int(checkpoint_id), _loaded if _loaded is not None else {},
                     device, reuse)
    ok = passes(value, idea.threshold, idea.direction)
    scale = checkpoint_scale(ckpt.N, ckpt.tokens, ckpt.flops)
    store.add_idea_attempt(
        IdeaAttemptRecord(
            id=None,
            idea_id=int(idea.id),
            checkpoint_id=int(ckpt.id),
            N=int(ckpt.N),
            tokens=int(ckpt.tokens),
            flops=scale.compute,
            value=float(value),
            passed=ok,
        )
    )
    best = idea.best_value
    if is_finite(value) and (
        not is_finite(best)
        or (value > best if idea.direction == "above" else value < best)
    ):
        best = float(value)
    tried = _tried_scale(idea)
    new_max = scale if tried is None or _larger(scale, tried) else tried
    status = "works" if ok or idea.status == "works" else "not-yet"
    store.update_idea(
        int(idea.id),
        status=status,
        best_value=best,
        max_flops_tried=new_max.compute,
        max_N_tried=new_max.N,
    )
    return Attempt(
        idea_id=int(idea.id),
        title=idea.title,
        checkpoint_id=int(ckpt.id),
        N=int(ckpt.N),
        tokens=int(ckpt.tokens),
        flops=scale.compute,
        value=float(value),
        threshold=float(idea.threshold),
        direction=idea.direction,
        passed=ok,
        status=status,
    )


def rerun_due(store: StoreLike, *, device: str = "cpu", reuse: bool = True) -> RerunReport:
    """Evaluate every due idea on the largest checkpoint and record the attempts.

    An idea whose task fails gets a one-line error in the report and keeps its state; the
    others still run. Ideas that pass flip to 'works'.
    """
    top = largest_checkpoint(store)
    due = due_ideas(store)
    if top is None or not due:
        return RerunReport(top[0] if top else None, (), {})
    ckpt_id = top[0]
    loaded: dict[int, LoadedCheckpoint] = {}
    attempts: list[Attempt] = []
    errors: dict[int, str] = {}
    for idea in due:
        try:
            attempts.append(
                check_idea(store, int(idea.id), ckpt_id, device=device, reuse=reuse,
                           _loaded=loaded)
            )
        except ScaletrackError as exc:
            errors[int(idea.id)] = str(exc)
    refresh_idea_statuses(store)
    return RerunReport(ckpt_id, tuple(attempts), errors)


# ---------------------------------------------------------------- listing


def attempts_table(store: StoreLike, idea_id: int | None = None) -> pd.DataFrame:
    """Attempts with the idea's title.

    Columns: idea_id, title, checkpoint_id, N, tokens, flops (FLOPs), value, passed.
    """
    df = store.idea_attempts(idea_id)
    cols = ["idea_id", "checkpoint_id", "N", "tokens", "flops", "value", "passed"]
    if df.empty:
        return pd.DataFrame(columns=["idea_id", "title", *cols[1:]])
    titles = {int(i.id): i.title for i in idea_records(store)}
    out = df[cols].copy()
    out.insert(1, "title", [titles.get(int(i), "?") for i in out["idea_id"]])
    return out.reset_index(drop=True)
