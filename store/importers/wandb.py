"""W&B runs on disk -> scaletrack runs with their whole history, config and summary.

Each W&B run (read by `wandb_reader` through the wandb SDK) becomes one run: family
"imported", run key from (project, run id) so the offline folder, the synced folder and a
resumed run's later folders are the same run; named after the W&B display name; filed under
the W&B project unless a sweep is given; its W&B tags become tags and its notes the note;
config and summary (NaN/inf as null) kept in the run's config. Every numeric history key
(keys starting with "_" aside; nested dicts as dotted keys) becomes metric rows (step =
`_step`, wall_time = `_runtime` seconds); NaN/±inf values are skipped and counted; text and
media keys are skipped and named.
Status: exit code 0 -> finished, another -> failed, no exit yet -> running (the next import
refreshes it). Final loss (nats/token): the last finite value of `loss_key` (default: the
first of FINAL_LOSS_METRICS the run logged), else its summary value.

N (parameters) and D (tokens) are never guessed: they come from the config (or summary) keys
named by `params_key` / `tokens_key` (dots reach into nested config, "model.n_params"), or a
sizes table `run,params[,tokens]` matched on run name or id; otherwise they stay empty and
the report says for which runs. Folders of one run id are merged in start order (a later
folder's value at a step wins). Everything is checked, then written in one transaction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack.errors import DataError
from scaletrack.json_values import plain_json
from scaletrack.store.importers import checks
from scaletrack.store.importers.history import FINAL_LOSS_METRICS, SKIPPED_SHOWN, _sizes
from scaletrack.store.importers.wandb_reader import WandbRun, find_run_logs, read_run

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

MAX_KEYS_SHOWN = 5


@dataclass(frozen=True)
class WandbReport:
    """What `import_wandb` did: run logs read, runs (new / refreshed), metric rows (given /
    new to the store), skipped NaN/inf values (first few as (run, key@step)), history keys
    skipped for holding text or media, runs whose N or D is unknown, runs still running."""

    logs: int
    runs: int
    runs_new: int
    runs_updated: int
    metric_rows: int
    metric_rows_new: int
    nonfinite: int
    nonfinite_cells: tuple[tuple[str, str], ...]
    skipped_keys: tuple[str, ...]
    unsized: tuple[str, ...]
    running: tuple[str, ...]
    torn: tuple[str, ...]


def _lookup(tree: dict[str, Any], key: str) -> Any:
    """`tree[key]`, or the nested value at the dotted path `key`; None when absent."""
    if key in tree:
        return tree[key]
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _flat(row: dict[str, Any]) -> list[tuple[str, Any]]:
    """A history row with nested dicts flattened to dotted keys ({"eval": {"loss": 1}} ->
    "eval.loss", as W&B shows them); media values (dicts with "_type") stay whole."""
    out: list[tuple[str, Any]] = []
    stack = list(row.items())[::-1]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict) and "_type" not in value and value:
            stack.extend((f"{key}.{k}", v) for k, v in reversed(list(value.items())))
        else:
            out.append((key, value))
    return out


def _merge(runs: list[WandbRun]) -> WandbRun:
    """One run from the folders of one run id (resumed runs), in start order."""
    runs = sorted(runs, key=lambda r: (r.start_time, str(r.path)))
    merged = WandbRun(path=runs[-1].path, run_id=runs[-1].run_id, project=runs[-1].project,
                      entity=runs[-1].entity, name=runs[-1].name, tags=runs[-1].tags,
                      notes=runs[-1].notes, start_time=runs[0].start_time,
                      exit_code=runs[-1].exit_code, torn=runs[-1].torn)
    for run in runs:
        merged.config.update(run.config)
        merged.summary.update(run.summary)
        merged.history.extend(run.history)
    return merged


def _count(run: WandbRun, key: str | None, sizes: dict[str, tuple[int, int | None]], which: int,
           what: str) -> int | None:
    if sizes and (run.name in sizes or run.run_id in sizes):
        return (sizes[run.name] if run.name in sizes else sizes[run.run_id])[which]
    if key is None:
        return None
    value = _lookup(run.config, key)
    source = "config"
    if value is None:
        value, source = _lookup(run.summary, key), "summary"
    return checks.whole(value, f"{run.path}: {source} {key!r} ({what})", minimum=1)


def import_wandb(store: StoreLike, paths: Iterable[str | Path], *, sweep: str | None = None,
                 params_key: str | None = None, tokens_key: str | None = None,
                 sizes: str | Path | None = None, loss_key: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> WandbReport:
    """Import the W&B runs under `paths` (see the module docstring)."""
    from scaletrack.store.importers.apply import ImportPlan, PlannedRun
    from scaletrack.store.records import RunRecord, make_run_key

    logs = find_run_logs(paths)
    known = _sizes(sizes)
    if sweep is not None:
        checks.text(sweep, "--sweep")
    by_id: dict[tuple[str, str], list[WandbRun]] = {}
    for i, log in enumerate(logs):
        run = read_run(log)
        by_id.setdefault((run.project, run.run_id), []).append(run)
        if progress is not None:
            progress(i + 1, len(logs))
    plan = ImportPlan()
    nonfinite = 0
    cells: list[tuple[str, str]] = []
    skipped_keys: set[str] = set()
    unsized: list[str] = []
    running: list[str] = []
    for (project, run_id), parts in sorted(by_id.items()):
        run = _merge(parts)
        where = f"{run.path}"
        checks.text(run_id, f"{where}: run id")
        group = sweep or checks.text(project or "wandb", f"{where}: project")
        name = checks.text(run.name or run_id, f"{where}: run name")
        if checks._depth(run.config) > checks.JSON_MAX_DEPTH or checks._depth(
                run.summary) > checks.JSON_MAX_DEPTH:
            raise DataError(f"{where}: config or summary nested deeper than "
                            f"{checks.JSON_MAX_DEPTH} levels")
        names, steps, values, walls = [], [], [], []
        for step, runtime, row in run.history:
            for key, value in _flat(row):
                if key.startswith("_"):
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    skipped_keys.add(key)
                    continue
                number = float(value)
                if not math.isfinite(number):
                    nonfinite += 1
                    if len(cells) < SKIPPED_SHOWN:
                        cells.append((name, f"{key}@{step}"))
                    continue
                names.append(key)
                steps.append(step)
                values.append(number)
                walls.append(np.nan if runtime is None else runtime)
        for key in set(names):
            checks.text(key, f"{where}: history key")
        metrics = pd.DataFrame({"name": names, "step": np.asarray(steps, dtype=np.int64),
                                "value": np.asarray(values, dtype=np.float64),
                                "wall_time": np.asarray(walls, dtype=np.float64)})
        metrics = metrics.drop_duplicates(["name", "step"], keep="last")
        final = _final_loss(metrics, run.summary, loss_key)
        n = _count(run, params_key, known, 0, "N, parameters")
        d = _count(run, tokens_key, known, 1, "D, tokens")
        if n is None or d is None:
            unsized.append(name)
        status = ("running" if run.exit_code is None else
                  "finished" if run.exit_code == 0 else "failed")
        if status == "running":
            running.append(name)
        config = {"source": "wandb", "project": project, "entity": run.entity,
                  "run_id": run_id, "config": plain_json({k: v for k, v in run.config.items()
                                                      if not str(k).startswith("_")}),
                  "summary": plain_json({k: v for k, v in run.summary.items()
                                     if not str(k).startswith("_")})}
        tags = tuple(t for t in run.tags if t.strip() and len(t) <= checks.TEXT_MAX
                     and t.isprintable())
        plan.sweeps.setdefault(group, {"imported_from": f"wandb:{project}"})
        plan.runs.append(PlannedRun(record=RunRecord(
            run_key=make_run_key({"source": "wandb", "project": project, "run_id": run_id}),
            sweep=group, family="imported", config=config, N=n, N_total=n, D=d,
            C=None if n is None or d is None else 6.0 * n * d, status=status,
            final_loss=final, name=name, note=run.notes or None,
            error=None if status != "failed" else f"W&B exit code {run.exit_code}",
        ), metrics=metrics, tags=tags))
    applied = store.apply_import(plan)
    return WandbReport(
        logs=len(logs), runs=len(plan.runs), runs_new=applied.runs_new,
        runs_updated=applied.runs_updated, metric_rows=applied.metric_rows,
        metric_rows_new=applied.metric_rows_new, nonfinite=nonfinite,
        nonfinite_cells=tuple(cells), skipped_keys=tuple(sorted(skipped_keys)),
        unsized=tuple(unsized), running=tuple(running),
        torn=tuple(str(r.path) for parts in by_id.values() for r in parts if r.torn),
    )


def _final_loss(metrics: pd.DataFrame, summary: dict[str, Any], loss_key: str | None
                ) -> float | None:
    keys = (loss_key,) if loss_key else FINAL_LOSS_METRICS
    for key in keys:
        hits = metrics[metrics["name"] == key]
        if not hits.empty:
            return float(hits.sort_values("step", kind="stable")["value"].iloc[-1])
    for key in keys:
        value = checks.finite(_lookup(summary, key))
        if value is not None:
            return value
    return None
