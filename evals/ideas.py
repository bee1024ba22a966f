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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from scaletrack.errors import ConfigError, ScaletrackError
from scaletrack.evals.evaluate import LoadedCheckpoint, load_checkpoint, resolve_task, run_task
from scaletrack.store import CheckpointRecord, IdeaAttemptRecord, IdeaRecord

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13

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


def is_finite(x: Any) -> TypeIs[int | float]:
    """A finite number (None, NA, NaN, infinities and non-numbers are not)."""
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
    title = str(title).strip()
    if not title:
        raise ConfigError("an idea needs a non-empty title")
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction {direction!r} must be 'above' or 'below'")
    if not is_finite(threshold):
        raise ConfigError(f"threshold {threshold!r} must be a finite number")
    try:
        resolved = resolve_task(task)
    except ConfigError as exc:
        # a task that is only recorded (e.g. imported lm-eval results) is judged on its values
        if not _recorded_checkpoints(store, str(task).strip(), str(metric)):
            raise ConfigError(f"{exc}; nor is {str(task).strip()}/{metric} recorded for any "
                              "checkpoint in the store") from None
        task_name = str(task).strip()
    else:
        if resolved.metrics is not None and metric not in resolved.metrics:
            raise ConfigError(
                f"task {resolved.name!r} has no metric {metric!r}; "
                f"it reports {', '.join(resolved.metrics)}"
            )
        task_name = resolved.name
    idea_id = store.add_idea(
        IdeaRecord(
            id=None,
            title=title,
            task=task_name,
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


def remove_idea(store: StoreLike, idea_id: int) -> Any:
    """Delete idea `idea_id` and its attempts; returns the removed IdeaRecord."""
    idea = get_idea_or_fail(store, idea_id)
    store.delete_idea(int(idea_id))
    return idea


def edit_idea(store: StoreLike, idea_id: int, **changes: Any) -> Any:
    """Change an idea's title, hypothesis, task, metric, threshold or direction (None = keep);
    validated like `add_idea`. Returns the updated IdeaRecord."""
    idea = get_idea_or_fail(store, idea_id)
    fields = {k: v for k, v in changes.items() if v is not None}
    allowed = {"title", "hypothesis", "task", "metric", "threshold", "direction"}
    unknown = set(fields) - allowed
    if unknown:
        raise ConfigError(f"cannot edit idea field(s) {sorted(unknown)}")
    if "title" in fields:
        fields["title"] = str(fields["title"]).strip()
        if not fields["title"]:
            raise ConfigError("an idea needs a non-empty title")
    if "direction" in fields and fields["direction"] not in DIRECTIONS:
        raise ConfigError(f"direction {fields['direction']!r} must be 'above' or 'below'")
    if "threshold" in fields:
        if not is_finite(fields["threshold"]):
            raise ConfigError(f"threshold {fields['threshold']!r} must be a finite number")
        fields["threshold"] = float(fields["threshold"])
    if "task" in fields or "metric" in fields:
        resolved = resolve_task(fields.get("task", idea.task))
        metric = str(fields.get("metric", idea.metric))
        if resolved.metrics is not None and metric not in resolved.metrics:
            raise ConfigError(f"task {resolved.name!r} has no metric {metric!r}; "
                              f"it reports {', '.join(resolved.metrics)}")
        fields["task"], fields["metric"] = resolved.name, metric
    if not fields:
        raise ConfigError("nothing to change: give --title, --threshold, --direction, --task, "
                          "--metric or --hypothesis")
    store.update_idea(int(idea_id), **fields)
    refresh_idea_statuses(store)
    return get_idea_or_fail(store, idea_id)


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


def _recorded_checkpoints(store: StoreLike, task: str, metric: str) -> set[int]:
    """Ids of checkpoints with a recorded value of task/metric."""
    df = store.evals(task=task)
    if df.empty:
        return set()
    return {int(i) for i in df.loc[df["metric"] == metric, "checkpoint_id"]}


def _runnable(task: str) -> bool:
    try:
        resolve_task(task)
    except ScaletrackError:
        return False
    return True


def largest_checkpoint_for(store: StoreLike, idea: IdeaRecord,
                           ckpts: pd.DataFrame | None = None) -> tuple[int, Scale] | None:
    """The largest checkpoint the idea can be judged on: one with a recorded value of its
    task/metric, or (for a task that runs) any checkpoint that has a model to load — an
    imported, file-less one (external, no file at its path) only counts through recorded
    values."""
    df = _checkpoints(store) if ckpts is None else ckpts
    if df.empty:
        return None
    recorded = _recorded_checkpoints(store, idea.task, idea.metric)
    keep = df["id"].astype(int).isin(recorded)
    if _runnable(idea.task):
        has_file = df["path"].map(lambda p: Path(str(p)).is_file())
        keep |= (df["kind"] != "external") | has_file
    df = df[keep]
    if df.empty:
        return None
    row = df.sort_values(["compute", "scale_N", "id"], ascending=False, kind="stable").iloc[0]
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


def stored_id(record: IdeaRecord | CheckpointRecord) -> int:
    """The id of a record read from the store (records not yet stored have none)."""
    if record.id is None:
        raise ConfigError(f"{type(record).__name__} has no id: it was never stored")
    return int(record.id)


def idea_records(store: StoreLike) -> list[IdeaRecord]:
    """Every idea in the store as an IdeaRecord, by id."""
    df = store.ideas()
    if df.empty:
        return []
    found = (store.get_idea(int(i)) for i in sorted(df["id"]))
    return [rec for rec in found if rec is not None]


def _largest_by_idea(
    store: StoreLike, ideas: list[IdeaRecord]
) -> dict[int, tuple[int, Scale] | None]:
    ckpts = _checkpoints(store)
    return {stored_id(i): largest_checkpoint_for(store, i, ckpts) for i in ideas
            if i.status in OPEN_STATUSES}


def due_ideas(store: StoreLike) -> list[IdeaRecord]:
    """Open ideas that the largest checkpoint they can be judged on has not been tried on."""
    ideas = idea_records(store)
    top = _largest_by_idea(store, ideas)
    return [i for i in ideas if _is_due(i, (top.get(stored_id(i)) or (None, None))[1])]


def refresh_idea_statuses(store: StoreLike) -> list[int]:
    """Write 'due' / 'not-yet' into open ideas' status from the data; return the due ids."""
    ideas = idea_records(store)
    top = _largest_by_idea(store, ideas)
    due: list[int] = []
    for idea in idea_records(store):
        if idea.status not in OPEN_STATUSES:
            continue
        now_due = _is_due(idea, (top.get(stored_id(idea)) or (None, None))[1])
        if now_due:
            due.append(stored_id(idea))
        want = "due" if now_due else "not-yet"
        if idea.status != want:
            store.update_idea(stored_id(idea), status=want)
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
    if not _runnable(idea.task):
        raise ConfigError(f"idea {idea.id}: task {idea.task!r} only has recorded values and "
                          f"checkpoint {checkpoint_id} has none for {idea.metric!r}")
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
            idea_id=stored_id(idea),
            checkpoint_id=stored_id(ckpt),
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
        stored_id(idea),
        status=status,
        best_value=best,
        max_flops_tried=new_max.compute,
        max_N_tried=new_max.N,
    )
    return Attempt(
        idea_id=stored_id(idea),
        title=idea.title,
        checkpoint_id=stored_id(ckpt),
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
    targets = _largest_by_idea(store, due)
    loaded: dict[int, LoadedCheckpoint] = {}
    attempts: list[Attempt] = []
    errors: dict[int, str] = {}
    for idea in due:
        target = targets.get(stored_id(idea))
        if target is None:
            continue
        try:
            attempts.append(
                check_idea(store, stored_id(idea), target[0], device=device, reuse=reuse,
                           _loaded=loaded)
            )
        except ScaletrackError as exc:
            errors[stored_id(idea)] = str(exc)
    refresh_idea_statuses(store)
    return RerunReport(top[0], tuple(attempts), errors)


# ---------------------------------------------------------------- listing


def attempts_table(store: StoreLike, idea_id: int | None = None) -> pd.DataFrame:
    """Attempts with the idea's title.

    Columns: idea_id, title, checkpoint_id, N, tokens, flops (FLOPs), value, passed.
    """
    df = store.idea_attempts(idea_id)
    cols = ["idea_id", "checkpoint_id", "N", "tokens", "flops", "value", "passed"]
    if df.empty:
        return pd.DataFrame(columns=["idea_id", "title", *cols[1:]])
    titles = {stored_id(i): i.title for i in idea_records(store)}
    out = df[cols].copy()
    out.insert(1, "title", [titles.get(int(i), "?") for i in out["idea_id"]])
    return out.reset_index(drop=True)
