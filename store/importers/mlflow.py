"""MLflow runs -> scaletrack runs with their metric histories, through the mlflow client.

Needs the `mlflow` extra (`pip install 'scaletrack[mlflow]'`, which installs mlflow-skinny).
Each MLflow run becomes a run (family "imported", named after the MLflow run, filed under the
experiment's name unless a sweep is given); every metric's full history becomes metric rows
(step, value, wall time since the run started in seconds; NaN/±inf values skipped and
counted); MLflow tags that are not `mlflow.*` become tags `key=value` (one longer than 200
characters is kept only in the run's config, and counted), and the MLflow note becomes the
note. N and D come from the run's params (`params` and `tokens` by default), never guessed:
without them they stay empty. Status: FINISHED -> finished, FAILED/KILLED -> failed,
otherwise (RUNNING, SCHEDULED) running; the next import refreshes status, final loss and rows.

Where: a file store (`file:///path/mlruns` or a plain path) must exist and hold MLflow
experiments; it is opened read-only in spirit (mlflow 3 wants MLFLOW_ALLOW_FILE_STORE for
file stores: set for this client only) and never created. A tracking server
(`http(s)://host:port`) is tried once with a short timeout: an unreachable one fails within
about 10 s. Everything is read and checked first, then written in one transaction.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd

from scaletrack.errors import ConfigError, DataError, one_line
from scaletrack.store.importers import checks

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed"}
FINAL_LOSS_METRICS = ("val/loss", "eval/loss", "loss", "train/loss")
PAGE = 1000
CONNECT_TIMEOUT_S = 3.0  # reachability check of a tracking server
REQUEST_TIMEOUT_S = 5  # each REST request, no retries
SHOWN = 3


@dataclass(frozen=True)
class MlflowReport:
    """What `import_mlflow` did: experiments and runs read, runs new / refreshed, metric
    rows given / new, NaN/inf values skipped (first few (run, metric@step)), tags kept only
    in the config for being longer than 200 characters, runs still running."""

    experiments: int
    runs: int
    runs_new: int
    metric_rows: int
    runs_updated: int = 0
    metric_rows_new: int = 0
    nonfinite: int = 0
    nonfinite_cells: tuple[tuple[str, str], ...] = ()
    long_tags: int = 0
    running: tuple[str, ...] = ()


def _shown(uri: str) -> str:
    from scaletrack.store.engine import redact_url

    return redact_url(uri) if "@" in uri else uri


def check_location(tracking_uri: str) -> str:
    """The tracking URI to use, after checking it: a file store must be an existing folder
    holding MLflow experiments (never created); a server must answer a TCP connect within
    CONNECT_TIMEOUT_S seconds. Returns the URI (a plain path becomes file://)."""
    parsed = urlparse(tracking_uri)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        host = parsed.hostname
        if not host:
            raise DataError(f"MLflow URI {_shown(tracking_uri)!r} has no host")
        try:
            port = parsed.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise DataError(f"MLflow URI {_shown(tracking_uri)!r}: bad port") from None
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise DataError(f"cannot reach the MLflow server at {_shown(tracking_uri)} "
                            f"({why})") from None
        return tracking_uri
    if scheme in ("", "file"):
        root = Path(unquote(parsed.path) if scheme == "file" else tracking_uri).expanduser()
        kind = checks.special_kind(root)
        if not root.exists():
            raise DataError(f"no MLflow file store at {str(root)!r}: it does not exist "
                            "(nothing was created)")
        if kind != "a folder":
            raise DataError(f"no MLflow file store at {str(root)!r}: it is {kind or 'a file'}")
        if not any(p.is_file() for p in root.glob("*/meta.yaml")):
            raise DataError(f"no MLflow file store at {str(root)!r}: no experiments "
                            "(<id>/meta.yaml) in it")
        return root.resolve().as_uri()
    if scheme in ("databricks", "postgresql", "mysql", "sqlite", "mssql") or "+" in scheme:
        return tracking_uri
    raise DataError(f"MLflow URI {_shown(tracking_uri)!r}: unknown scheme {scheme!r} "
                    "(file:///path/mlruns, http://host:5000, ...)")


@contextmanager
def _client_env() -> Iterator[None]:
    """The environment this import's client runs in: file stores allowed, one try per request
    with a short timeout. Restored afterwards."""
    wanted = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S)}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("importing from MLflow needs the mlflow client: "
                          "pip install 'scaletrack[mlflow]' (mlflow-skinny)") from None
    return MlflowClient(tracking_uri=tracking_uri)


def _all_runs(client: Any, experiment_ids: list[str]) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, max_results=PAGE, page_token=token)
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


def _read(client: Any, uri: str, experiments: Sequence[str] | None
          ) -> tuple[dict[str, str], list[Any], dict[str, dict[str, list[Any]]]]:
    """(experiment id -> name, runs, run id -> {metric: history}); any failure of the store
    (a damaged meta.yaml, a garbage metric line, a server error) is a one-line DataError
    naming the experiment, run and metric being read."""
    doing = "listing experiments"
    try:
        found = client.search_experiments()
        if experiments:
            names = {e.name for e in found}
            for name in experiments:
                if name not in names:
                    raise DataError(f"no MLflow experiment named {name!r} at {_shown(uri)} "
                                    f"(have: {', '.join(sorted(names))})")
            found = [e for e in found if e.name in experiments]
        by_id = {e.experiment_id: e.name for e in found}
        doing = "listing runs"
        runs = _all_runs(client, list(by_id)) if by_id else []
        histories: dict[str, dict[str, list[Any]]] = {}
        for run in runs:
            histories[run.info.run_id] = {}
            for key in run.data.metrics:
                doing = (f"experiment {run.info.experiment_id}, run {run.info.run_id}, "
                         f"metric {key!r}")
                histories[run.info.run_id][key] = client.get_metric_history(run.info.run_id,
                                                                           key)
    except DataError:
        raise
    except Exception as exc:  # MlflowException, yaml / value errors of a damaged file store
        where = _damaged_file(client, uri) if uri.startswith("file:") else None
        raise DataError(f"MLflow at {_shown(uri)}: {where or doing}: {one_line(exc)[:200]}") \
            from None
    return by_id, runs, histories


def _damaged_file(client: Any, uri: str) -> str | None:
    """The first file of a file store the client cannot read (an experiment's meta.yaml, a
    run's meta.yaml, a metric, param or tag file), found by reading each on its own."""
    root = Path(unquote(urlparse(uri).path))
    for exp_dir in sorted(p for p in root.iterdir() if (p / "meta.yaml").is_file()):
        try:
            client.get_experiment(exp_dir.name)
        except Exception:
            return f"file {exp_dir / 'meta.yaml'}"
        for run_dir in sorted(p for p in exp_dir.iterdir() if (p / "meta.yaml").is_file()):
            try:
                client.get_run(run_dir.name)
            except Exception:
                for metric in sorted((run_dir / "metrics").rglob("*")):
                    if metric.is_file():
                        key = str(metric.relative_to(run_dir / "metrics"))
                        try:
                            client.get_metric_history(run_dir.name, key)
                        except Exception:
                            return f"file {metric}"
                return f"run {run_dir} (its meta.yaml, params or tags)"
    return None


def import_mlflow(store: StoreLike, tracking_uri: str, *, experiments: Sequence[str] | None = None,
                  sweep: str | None = None, params_key: str = "params",
                  tokens_key: str = "tokens") -> MlflowReport:
    """Import the runs of `experiments` (names; default all) at `tracking_uri`."""
    from scaletrack.store.importers.apply import ImportPlan, PlannedRun
    from scaletrack.store.records import RunRecord, make_run_key

    uri = check_location(tracking_uri)
    if sweep is not None:
        checks.text(sweep, "--sweep")
    with _client_env():
        by_id, runs, histories = _read(_client(uri), uri, list(experiments or []))
    plan = ImportPlan()
    cells: list[Any] = []
    running: list[Any] = []
    nonfinite, long_tags = 0, 0
    for run in runs:
        info, data = run.info, run.data
        where = f"MLflow run {info.run_id}"
        run_name = checks.text(info.run_name or info.run_id, f"{where}: run name")
        group = sweep or checks.text(by_id[info.experiment_id], f"{where}: experiment name")
        n = checks.whole(data.params.get(params_key), f"{where}: param {params_key}",
                         minimum=1)
        d = checks.whole(data.params.get(tokens_key), f"{where}: param {tokens_key}",
                         minimum=1)
        rows = []
        for name, history in histories[info.run_id].items():
            checks.text(name, f"{where}: metric name")
            for m in history:
                step = checks.whole(m.step, f"{where}: metric {name!r} step", required=True)
                if not math.isfinite(float(m.value)):
                    nonfinite += 1
                    if len(cells) < SHOWN:
                        cells.append((run_name, f"{name}@{step}"))
                    continue
                rows.append((name, step, float(m.value), int(m.timestamp)))
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
        status = STATUS.get(str(info.status), "running")
        if status == "running":
            running.append(run_name)
        tags = []
        for k, v in sorted(data.tags.items()):
            if k.startswith("mlflow."):
                continue
            tag = f"{k}={v}"
            if len(tag) > checks.TEXT_MAX or not tag.strip() or not tag.isprintable():
                long_tags += 1
            else:
                tags.append(tag)
        note = data.tags.get("mlflow.note.content")
        start = info.start_time or (int(frame["timestamp"].min()) if len(frame) else 0)
        plan.sweeps.setdefault(group, {"imported_from": f"mlflow:{by_id[info.experiment_id]}"})
        plan.runs.append(PlannedRun(record=RunRecord(
            run_key=make_run_key({"source": "mlflow", "run_id": info.run_id}),
            sweep=group, family="imported",
            config={"source": "mlflow", "run_id": info.run_id,
                    "experiment": by_id[info.experiment_id], "params": dict(data.params),
                    "tags": {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}},
            N=n, N_total=n, D=d, C=None if n is None or d is None else 6.0 * n * d,
            status=status, final_loss=final, name=run_name, note=note,
        ), metrics=pd.DataFrame({
            "name": frame["name"], "step": frame["step"], "value": frame["value"],
            "wall_time": (frame["timestamp"] - start) / 1000.0,
        }), tags=tuple(tags)))
    applied = store.apply_import(plan)
    return MlflowReport(
        experiments=len(by_id), runs=len(runs), runs_new=applied.runs_new,
        metric_rows=applied.metric_rows, runs_updated=applied.runs_updated,
        metric_rows_new=applied.metric_rows_new, nonfinite=nonfinite,
        nonfinite_cells=tuple(cells), long_tags=long_tags, running=tuple(running),
    )
