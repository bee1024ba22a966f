"""`scaletrack sweep run --executor ray` against the session's local Ray cluster: a plain run,
and Ctrl-C (SIGINT) mid-sweep followed by a run that resumes from the checkpoints."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from services import RayCluster

from scaletrack.store import Store

pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]

GRID = """
name = "{name}"
[data]
path = "{corpus}"
context = 32
[model]
family = "gpt"
sizes = [{{ n_layer = 1, n_head = 1, d_model = 16 }}]
[axes]
tokens = {tokens}
[train]
batch_size = 4
[eval]
every = {eval_every}
batches = 2
tasks = ["val_loss"]
[checkpoint]
every = 10
"""


def write_grid(directory: Path, name: str, steps: list[int], eval_every: int = 10) -> Path:
    corpus = directory / "corpus.txt"
    corpus.write_text("every loss of every run goes into the store, step by step. " * 500)
    grid = directory / f"{name}.toml"
    grid.write_text(GRID.format(name=name, corpus=corpus, tokens=[s * 128 for s in steps],
                                eval_every=eval_every))
    return grid


def running_cells(db: Path) -> tuple[int, int]:
    """(runs now running, runs with a checkpoint): a read-only peek at the SQLite file."""
    if not db.exists():
        return 0, 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        try:
            running = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'")
            saved = conn.execute("SELECT COUNT(DISTINCT run_id) FROM checkpoints")
            return int(running.fetchone()[0]), int(saved.fetchone()[0])
        except sqlite3.OperationalError:  # schema not created yet
            return 0, 0


def command(grid: Path, url: str, ckpt: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "scaletrack"), "sweep", "run", str(grid),
            "--executor", "ray", "--store", url, "--checkpoint-dir", str(ckpt)]


def cli_env(cluster: RayCluster) -> dict[str, str]:
    """Like a user's shell: RAY_ADDRESS and where the cluster's token is, but no RAY_AUTH_MODE
    (the executor turns token mode on itself when a token is available)."""
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "COLUMNS": "200",
           "RAY_USAGE_STATS_ENABLED": "0", **cluster.auth_env()}
    env.pop("RAY_AUTH_MODE", None)
    return env


def test_cli_runs_a_grid_on_the_cluster(ray_cluster: RayCluster, tmp_path: Path):
    grid = write_grid(tmp_path, "cli-ray", [20, 30])
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    done = subprocess.run(command(grid, url, tmp_path / "ckpt"), capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=cli_env(ray_cluster))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ray: 2 cells on 2 node(s)" in done.stdout
    assert "2 finished" in done.stdout
    with Store.open(url) as store:
        runs = store.runs()
        metrics = store.metrics(names=["train/loss"])
        evals = store.evals()
    assert set(runs["status"]) == {"finished"}
    assert sorted(metrics.groupby("run_key").size().tolist()) == [20, 30]
    # the grid's eval task ran on each final checkpoint, through the hub's store
    assert sorted(evals["run_key"]) == sorted(runs["run_key"])
    assert set(evals["task"]) == {"val_loss"} and (evals["value"] > 0).all()


def test_ctrl_c_stops_the_sweep_and_the_next_run_resumes(ray_cluster: RayCluster, tmp_path: Path):
    steps = [800, 840]  # long enough that Ctrl-C lands mid-cell even on a fast machine
    grid = write_grid(tmp_path, "cli-ray-interrupt", steps, eval_every=100)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(command(grid, url, ckpt), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env=cli_env(ray_cluster))
    try:
        deadline = time.monotonic() + 300
        while True:  # wait until both cells train and one has saved a checkpoint
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "cells never got going"
            running, saved = running_cells(tmp_path / "runs.db")
            if running == 2 and saved >= 1:
                break
            time.sleep(0.1)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    with Store.open(url) as store:
        runs = store.runs().set_index("run_key")
        stopped_at = {k: int(store.latest_checkpoints(k)[0].step or 0) for k in runs.index}
    # a cell still training when Ctrl-C came checkpointed and released its claim (resumable);
    # the cell that started first may already have finished
    interrupted = runs.index[runs["status"] == "failed"].tolist()
    assert interrupted, (out, runs[["status", "error"]])
    assert set(runs["status"]) <= {"failed", "finished"}
    assert set(runs.loc[interrupted, "error"]) == {"interrupted"}
    assert all(0 < stopped_at[k] < max(steps) for k in interrupted), stopped_at

    again = subprocess.run(command(grid, url, ckpt), capture_output=True, text=True,
                           timeout=600, cwd=tmp_path, env=cli_env(ray_cluster))
    assert again.returncode == 0, again.stdout + again.stderr
    with Store.open(url) as store:
        runs = store.runs().set_index("run_key")
        metrics = store.metrics(names=["train/loss"])
    assert set(runs["status"]) == {"finished"}
    assert set(runs.loc[interrupted, "attempts"]) == {2}
    assert not metrics.duplicated(["run_key", "step"]).any()
    assert sorted(metrics.groupby("run_key").size().tolist()) == steps
    print(f"\nSIGINT -> exit 130 in {stop_s:.1f} s; {len(interrupted)} cell(s) stopped at "
          f"{[stopped_at[k] for k in interrupted]} and resumed")
