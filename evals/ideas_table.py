"""The "not yet" registry read as a table: each idea's points across scale, its outlook
(past / near / far of its bar, with the predicted crossing in FLOPs) and its figure.

Everything here reads; nothing writes. The statuses shown are the stored ones: the
registry's one write of them is `scaletrack.evals.ideas.refresh_idea_statuses`, which the
callers that want them current (`scaletrack ideas list`, checkpoint registration) run first.
The curve of an idea is classified by `scaletrack.analysis.classify.classify_task`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from scaletrack.errors import ConfigError, ScaletrackError
from scaletrack.evals.ideas import checkpoint_scale, idea_records, is_finite, stored_id

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from scaletrack.store.protocol import StoreLike
    from scaletrack.store.records import IdeaRecord

TABLE_COLUMNS = [
    "id", "title", "task", "metric", "direction", "threshold", "status", "best_value",
    "attempts", "max_N_tried", "max_flops_tried", "class", "predicted_crossing", "hypothesis",
]
_CEILINGS = {"exact_match": 1.0, "token_accuracy": 1.0, "logprob_per_token": 0.0, "loss": 0.0}
_CHANCE = {"exact_match": 0.0, "token_accuracy": 0.0}


def idea_points(store: StoreLike, idea: IdeaRecord) -> pd.DataFrame:
    """Every measurement of the idea's task/metric vs scale: columns checkpoint_id, N, D, C, value.

    Combines the idea's attempts with the evals table (one row per checkpoint), sorted by C.
    """
    rows: dict[int, dict[str, Any]] = {}
    evals = store.evals(task=idea.task)
    if not evals.empty:
        evals = evals[evals["metric"] == idea.metric]
        for r in evals.itertuples(index=False):
            scale = checkpoint_scale(r.N, r.tokens, r.flops)
            rows[int(r.checkpoint_id)] = {
                "checkpoint_id": int(r.checkpoint_id), "N": scale.N,
                "D": int(r.tokens) if is_finite(r.tokens) else 0,
                "C": scale.compute, "value": float(r.value),
            }
    attempts = store.idea_attempts(stored_id(idea))
    for r in attempts.itertuples(index=False):
        scale = checkpoint_scale(r.N, r.tokens, r.flops)
        rows[int(r.checkpoint_id)] = {
            "checkpoint_id": int(r.checkpoint_id), "N": scale.N, "D": int(r.tokens),
            "C": scale.compute, "value": float(r.value),
        }
    df = pd.DataFrame(rows.values(), columns=["checkpoint_id", "N", "D", "C", "value"])
    return df.sort_values("C", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class IdeaOutlook:
    """Class of an idea's curve ('past' / 'near' / 'far' or '-') and predicted crossing (FLOPs)."""

    cls: str
    crossing_flops: float | None


def idea_outlook(store: StoreLike, idea: IdeaRecord) -> IdeaOutlook:
    """Classify the idea's metric-vs-compute curve with analysis.classify, when enough points."""
    points = idea_points(store, idea)
    return classify_points(
        points, idea.threshold, idea.direction, metric=idea.metric, task=idea.task
    )


def classify_points(
    points: pd.DataFrame, threshold: float, direction: str, *, metric: str = "value",
    task: str = "task", n_bootstrap: int = 50,
) -> IdeaOutlook:
    """Classify (C, value) points with `analysis.classify.classify_task` (past / near / far).

    Returns '-' and no crossing when there are too few distinct scales to fit a floored sigmoid
    (3 with a known chance level, else 4) or when the classifier cannot fit them.
    """
    from scaletrack.analysis.classify import classify_task

    if points.empty:
        return IdeaOutlook("-", None)
    ok = points[[is_finite(v) and is_finite(c) and c > 0
                 for v, c in zip(points["value"], points["C"], strict=True)]]
    chance = _CHANCE.get(metric)
    needed = 3 if chance is not None else 4
    if ok["C"].nunique() < needed:
        return IdeaOutlook("-", None)
    try:
        result = classify_task(
            ok["C"].to_numpy(dtype=float), ok["value"].to_numpy(dtype=float),
            task=task, metric=metric, chance=chance, threshold=float(threshold),
            increasing=direction == "above", ceil_limit=_CEILINGS.get(metric),
            n_bootstrap=n_bootstrap,
        )
    except (ScaletrackError, ValueError, FloatingPointError):
        return IdeaOutlook("-", None)
    if result.fit is None:
        return IdeaOutlook("-", None)
    crossing = float(result.crossing)
    return IdeaOutlook(result.label, crossing if not math.isnan(crossing) else None)


def _passed_outlook(look: IdeaOutlook, attempts: pd.DataFrame, idea_id: int) -> IdeaOutlook:
    """A passed idea's outlook: 'past', crossed no later than its first passing attempt."""
    mine = attempts[(attempts["idea_id"] == idea_id) & attempts["passed"].astype(bool)] \
        if len(attempts) else attempts
    scales = [checkpoint_scale(n, d, c).compute
              for n, d, c in zip(mine.get("N", []), mine.get("tokens", []),
                                 mine.get("flops", []), strict=True)]
    scales = [c for c in scales if is_finite(c) and c > 0]
    first = min(scales) if scales else None
    crossing = look.crossing_flops
    if first is not None:
        crossing = first if crossing is None else min(crossing, first)
    return IdeaOutlook("past", crossing)


def ideas_table(store: StoreLike, *, outlook: bool = True) -> pd.DataFrame:
    """One row per idea, read only: id, title, task, metric, direction, threshold, status (as
    stored), best_value, attempts, max_N_tried, max_flops_tried (FLOPs), class,
    predicted_crossing (FLOPs), hypothesis. `outlook=False` skips the classification."""
    attempts = store.idea_attempts()
    counts = attempts.groupby("idea_id").size().to_dict() if not attempts.empty else {}
    rows = []
    for idea in idea_records(store):
        look = idea_outlook(store, idea) if outlook else IdeaOutlook("-", None)
        if idea.status == "works":  # it passed: no crossing lies in its future
            look = _passed_outlook(look, attempts, stored_id(idea))
        rows.append({
            "id": stored_id(idea), "title": idea.title, "task": idea.task, "metric": idea.metric,
            "direction": idea.direction, "threshold": float(idea.threshold),
            "status": idea.status,
            "best_value": float(idea.best_value) if is_finite(idea.best_value) else None,
            "attempts": int(counts.get(stored_id(idea), 0)),
            "max_N_tried": int(idea.max_N_tried) if is_finite(idea.max_N_tried) else None,
            "max_flops_tried": (
                float(idea.max_flops_tried) if is_finite(idea.max_flops_tried) else None
            ),
            "class": look.cls, "predicted_crossing": look.crossing_flops,
            "hypothesis": idea.hypothesis,
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def plot_ideas(store: StoreLike, *, ax: Sequence[Axes] | None = None) -> Figure:
    """Draw every idea's attempts against compute (FLOPs) with its bar, one panel per idea
    (`ax`: one Axes per idea, else a new figure); returns the Figure. Save it with
    `scaletrack.analysis.figures.save_figure`."""
    from scaletrack.analysis.emergence_plots import plot_idea_timeline

    if not idea_records(store):
        raise ConfigError("no ideas to plot: add one with `scaletrack ideas add`")
    attempts = store.idea_attempts()
    if not attempts.empty:
        attempts = attempts.copy()
        attempts["flops"] = [
            checkpoint_scale(n, d, c).compute
            for n, d, c in zip(attempts["N"], attempts["tokens"], attempts["flops"], strict=True)
        ]
    return plot_idea_timeline(attempts, ideas_table(store, outlook=False), ax=ax)
