"""Real W&B offline runs for the import tests, written by the wandb SDK itself.

`write_runs(folder, grid)` runs the SDK (WANDB_MODE=offline) in a child process and returns
what it logged, so tests compare every stored value with the source. `log_records(path)`
gives the byte offset after each record of a transaction log (read with the SDK's reader),
so a test can cut a finished run's log back to an earlier moment of its life (the log is
append-only: a prefix is exactly what was on disk while it ran).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent('''
    import json, math, sys
    import numpy as np
    import wandb

    spec = json.loads(sys.argv[1])
    out = {}
    for cell in spec["runs"]:
        rng = np.random.default_rng(cell["seed"])
        run = wandb.init(project=cell.get("project", spec["project"]), name=cell["name"],
                         dir=cell.get("dir", spec["dir"]),
                         config={"n_params": cell["N"], "tokens": cell["D"],
                                 "model": {"d_model": cell["d_model"]}, "lr": 3e-3},
                         tags=["ladder"], notes=cell["name"] + " baseline")
        losses = (4.0 - np.cumsum(rng.uniform(0.0, 0.05, size=cell["steps"]))).tolist()
        logged = []
        for i, loss in enumerate(losses):
            row = {"train/loss": loss, "tokens_seen": (i + 1) * 4096}
            if i == 0:
                row["phase"] = "warmup"  # text: skipped and named
            if i == cell.get("nan_at", -1):
                row["grad_norm"] = float("nan")  # NaN: skipped and counted
            run.log(row, step=i * 10)
            logged.append(row)
        val = losses[-1] + 0.05
        run.log({"val/loss": val}, step=(cell["steps"] - 1) * 10)
        run.summary["best_val"] = val
        out[cell.get("key", cell["name"])] = {"id": run.id, "losses": losses, "val": val,
                             "dir": str(run.dir)}
        run.finish(exit_code=cell.get("exit_code", 0))
    print(json.dumps(out))
''')


def write_runs(folder: Path, runs: list[dict], project: str = "ladder") -> dict:
    """Log `runs` (dicts: name, N, D, d_model, steps, seed[, nan_at, exit_code, and dir,
    project, key to override the folder, the project and the key of the result]) as offline
    W&B runs under `folder`/wandb, all in one child process; returns key (default: name) ->
    {id, losses, val, dir}."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true", "WANDB_CONSOLE": "off"}
    spec = json.dumps({"project": project, "dir": str(folder), "runs": runs})
    done = subprocess.run([sys.executable, "-c", _SCRIPT, spec], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wandb failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def log_records(path: Path) -> list[tuple[int, str]]:
    """(byte offset after the record, record type) for each record of a `.wandb` log."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    store = datastore.DataStore()
    store.open_for_scan(str(path))
    out = []
    try:
        while True:
            data = store.scan_data()
            if data is None:
                return out
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            out.append((store._index, record.WhichOneof("record_type")))
    finally:
        store._fp.close()


def sdk_history(path: Path) -> list[dict]:
    """Every history row of a `.wandb` log as the SDK's reader gives it: {key: value}."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    store = datastore.DataStore()
    store.open_for_scan(str(path))
    rows = []
    try:
        while True:
            data = store.scan_data()
            if data is None:
                return rows
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            if record.WhichOneof("record_type") == "history":
                rows.append({(".".join(i.nested_key) or i.key): json.loads(i.value_json)
                             for i in record.history.item})
    finally:
        store._fp.close()
