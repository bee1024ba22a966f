"""Frozen records exchanged with the store, run statuses and run keys."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scaletrack.store.coltypes import dumps_json

RUN_STATUSES = ("pending", "running", "finished", "failed", "diverged")
# "cell": a point of the grid (fits use it); "trunk": the shared warmup + stable phase that
# cooldown branches leave (never a cell); "branch": a cell that starts from a trunk's checkpoint
RUN_ROLES = ("cell", "trunk", "branch")
CHECKPOINT_KINDS = ("own", "external")
IDEA_STATUSES = ("not-yet", "due", "works", "retired")
IDEA_DIRECTIONS = ("above", "below")


def make_run_key(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of the sha256 of the config's canonical JSON (sorted keys)."""
    canonical = dumps_json(dict(config))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class RunRecord:
    """One cell of a sweep. N/N_total in parameters, D in tokens, C in FLOPs, loss in nats/token."""

    run_key: str
    sweep: str | None
    family: str
    config: dict[str, Any]
    N: int | None
    N_total: int | None
    D: int | None
    C: float | None
    seed: int | None = None
    lr: float | None = None
    status: str = "pending"
    attempts: int = 0
    worker: str | None = None
    heartbeat_at: datetime | None = None
    final_loss: float | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    name: str | None = None  # a human name (e.g. the model's), not part of the key
    note: str | None = None
    role: str = "cell"  # one of RUN_ROLES
    parent_run_key: str | None = None  # a branch's trunk
    branch_step: int | None = None  # the trunk step a branch starts from


@dataclass(frozen=True)
class CheckpointRecord:
    """A saved model: own (from a run) or external. N params, tokens seen, flops FLOPs."""

    id: int | None
    run_key: str | None
    kind: str
    N: int
    tokens: int
    flops: float | None
    step: int | None
    path: str
    sha256: str | None
    loader: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class IdeaRecord:
    """An idea that must clear `threshold` on task/metric in `direction` to count as working."""

    id: int | None
    title: str
    task: str
    metric: str
    threshold: float
    direction: str = "above"
    hypothesis: str | None = None
    status: str = "not-yet"
    best_value: float | None = None
    max_flops_tried: float | None = None
    max_N_tried: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class IdeaAttemptRecord:
    """One evaluation of an idea on one checkpoint (N params, tokens, flops FLOPs)."""

    id: int | None
    idea_id: int
    checkpoint_id: int
    N: int
    tokens: int
    flops: float | None
    value: float
    passed: bool
    created_at: datetime | None = None


@dataclass(frozen=True)
class MetricRow:
    """One metric value of a run at a step; tokens seen so far, wall_time in seconds since start."""

    run_key: str
    name: str
    step: int
    value: float
    tokens: int | None = None
    wall_time: float | None = None
