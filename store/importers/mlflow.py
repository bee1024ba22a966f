"""MLflow runs -> scaletrack runs with their metric histories, through the mlflow client.

Needs the `mlflow` extra (`pip install 'scaletrack[mlflow]'`, which installs mlflow-skinny).
Each MLflow run becomes a run (family "imported", named after the MLflow run, filed under the
experiment's name unless a sweep is given); every metric's full history becomes metric rows
(step, value, wall time since the run started in seconds); MLflow tags that are not
`mlflow.*` become tags `key=value`, and the MLflow note becomes the note. N and D come from
the run's params (`params` and `tokens` by default), never guessed: without them they stay
empty. Status: FINISHED -> finished, FAILED/KILLED -> failed, otherwise running.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from scaletrack.errors import ConfigError, DataError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed"}
FINAL_LOSS_METRICS = ("val/loss", "eval/loss", "loss", "train/loss")
PAGE = 1000


@dataclass(frozen=True)
class MlflowReport:
    experiments: int
    runs: int
    runs_new: int
    metric_rows: int


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("importing from MLflow needs the mlflow client: "
                          "pip install 'scaletrack[mlflow]' (mlflow-skinny)") from None
    return MlflowClient(tracking_uri=tracking_uri)


def _whole(value: str | None, what: str, run_name: str) -> int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"MLflow run {run_name!r}: param {what}={value!r} is not a number") \
            from None
    if not math.isfinite(number) or number <= 0:
        raise DataError(f"MLflow run {run_name!r}: param {what}={value!r} must be positive")
    return int(round(number))


def _all_runs(client: Any, experiment_ids: list[str]) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, max_results=PAGE, page_token=token)
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


def import_mlflow(store: StoreLike, tracking_uri: str, *, experiments: Sequence[str] | None = None,
                  sweep: str | None = None, params_key: str = "params",
                  tokens_key: str = "tokens") -> MlflowReport:
    """Import the runs of `experiments` (names; default all) at `tracking_uri`."""
    from mlflow.exceptions import MlflowException

    from scaletrack.store.records import RunRecord, make_run_key

    client = _client(tracking_uri)
    try:
        found = client.search_experiments()
        wanted = list(experiments) if experiments else None
        if wanted:
            names = {e.name for e in found}
            for name in wanted:
                if name not in names:
                    raise DataError(f"no MLflow experiment named {name!r} at {tracking_uri} "
                                    f"(have: {', '.join(sorted(names))})")
            found = [e for e in found if e.name in wanted]
        by_id = {e.experiment_id: e.name for e in found}
        runs = _all_runs(client, list(by_id)) if by_id else []
        histories = {
            run.info.run_id: {key: client.get_metric_history(run.info.run_id, key)
                              for key in run.data.metrics}
            for run in runs
        }
    except MlflowException as exc:
        raise DataError(f"MLflow at {tracking_uri}: {str(exc).splitlines()[0]}") from None

    runs_new = written = 0
    for run in runs:
        info, data = run.info, run.data
        run_name = info.run_name or info.run_id
        group = sweep or by_id[info.experiment_id]
        n = _whole(data.params.get(params_key), params_key, run_name)
        d = _whole(data.params.get(tokens_key), tokens_key, run_name)
        key = make_run_key({"source": "mlflow", "run_id": info.run_id})
        rows = [
            (name, int(m.step), float(m.value), m.timestamp)
            for name, history in histories[info.run_id].items() for m in history
        ]
        frame = pd.DataFrame(rows, columns=["name", "step", "value", "timestamp"])
        # several values at one step: the last logged wins (as a re-logged step does here)
        frame = frame.sort_values(["name", "step", "timestamp"], kind="stable").drop_duplicates(
            ["name", "step"], keep="last")
        final = None
        for metric in FINAL_LOSS_METRICS:
            hits = frame[frame["name"] == metric]
            if not hits.empty:
                final = float(hits["value"].iloc[-1])
                break
        if group not in set(store.sweeps()["name"]):
            store.upsert_sweep(group, {"imported_from": f"mlflow:{by_id[info.experiment_id]}"})
        if store.get_run(key) is None:
            runs_new += 1
        status = STATUS.get(str(info.status), "running")
        store.ensure_run(RunRecord(
            run_key=key, sweep=group, family="imported",
            config={"source": "mlflow", "run_id": info.run_id,
                    "experiment": by_id[info.experiment_id], "params": dict(data.params)},
            N=n, N_total=n, D=d, C=None if n is None or d is None else 6.0 * n * d,
            status=status, final_loss=final if final is not None and math.isfinite(final)
            else None, name=run_name,
        ))
        tags = [f"{k}={v}" for k, v in sorted(data.tags.items()) if not k.startswith("mlflow.")]
        note = data.tags.get("mlflow.note.content")
        if tags or note:
            store.tag(run_key=key, add=tags, note=note)
        if not frame.empty:
            start = info.start_time or int(frame["timestamp"].min())
            written += store.write_metrics(pd.DataFrame({
                "run_key": key, "name": frame["name"], "step": frame["step"],
                "value": frame["value"], "wall_time": (frame["timestamp"] - start) / 1000.0,
            }))
    return MlflowReport(experiments=len(by_id), runs=len(runs), runs_new=runs_new,
                        metric_rows=written)
