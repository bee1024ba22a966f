"""Claims: a worker that lost its cell to another writes nothing more and stops; a dead local
worker's cell is taken over at once (PID gone); `sweep run` exits non-zero naming the cells it
left unfinished; SIGTERM of the whole process group stops like Ctrl-C and exits 143."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reliability.harness import REPO, grid_toml, scaletrack_cmd
from scaletrack.store import ClaimLost, MetricRow, RunRecord, Store
from scaletrack.sweeps.liveness import holder_is_dead
from scaletrack.sweeps.train import TrainConfig, train_run

TINY = {"family": "gpt", "model": {"n_layer": 1, "n_head": 2, "d_model": 16},
        "data": {"corpus": "stdlib", "max_bytes": 200_000}, "context": 16, "batch_size": 4,
        "eval_every": 10, "checkpoint_every": 10, "log_every": 1}


def _run(store: Store, key: str) -> None:
    store.ensure_run(RunRecord(run_key=key, sweep=None, family="gpt", config={}, N=1, N_total=1,
                               D=1, C=1.0, seed=0, lr=1e-3))


def test_writes_of_a_worker_that_lost_its_claim_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store.open(url) as old, Store.open(url) as new:
        _run(old, "r")
        assert old.claim_run("r", "host:1:0")
        old.write_metrics([MetricRow("r", "train/loss", 0, 3.0)])
        assert new.claim_run("r", "host:2:0", stale_after_s=0)  # old looked stale
        with pytest.raises(ClaimLost):
            old.write_metrics([MetricRow("r", "train/loss", 1, 9.0)])
        writer = old.metric_writer("r")
        writer.log("train/loss", 2, 9.0)
        with pytest.raises(ClaimLost):
            writer.flush()
        assert not old.heartbeat("r", "host:1:0")
        with pytest.raises(ClaimLost):
            old.finish_run("r", "failed", error="should not land")
        with pytest.raises(ClaimLost):
            old.delete_metrics_after("r", -1)
        assert new.count_metrics("r") == 1 and new.get_run("r").worker == "host:2:0"
        assert new.get_run("r").status == "running" and new.heartbeat("r", "host:2:0")
        new.finish_run("r", "finished", final_loss=2.0)
        assert new.get_run("r").status == "finished"


def test_a_stalled_trainer_stops_without_writing_after_a_takeover(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = TrainConfig(**TINY, tokens=64 * 60)
    taken_at = 25

    with Store.open(url) as store, Store.open(url) as other:
        _run(store, "cell")
        assert store.claim_run("cell", "host:1:0")

        def on_step(done: int, total: int) -> None:
            if done == taken_at:  # as if this process were SIGSTOPped past --stale-after
                assert other.claim_run("cell", "host:2:0", stale_after_s=0)
                time.sleep(0.8)  # let the writer thread try (and fail) to write

        with pytest.raises(ClaimLost):
            train_run(cfg, store, "cell", tmp_path / "ckpt", worker="host:1:0", on_step=on_step)
        rows = other.metrics(["cell"])
        assert rows["step"].max() < taken_at, "rows written after the takeover"
        ckpts = other.latest_checkpoints("cell")
        assert all(c.step <= taken_at - taken_at % 10 for c in ckpts)
        run = other.get_run("cell")
        assert run.status == "running" and run.worker == "host:2:0" and run.error is None


def test_a_dead_local_pid_is_dead_and_a_live_one_is_not() -> None:
    import socket
    from datetime import UTC, datetime

    host = socket.gethostname()
    proc = subprocess.Popen(["sleep", "30"])
    try:
        now = datetime.now(UTC)
        assert not holder_is_dead(f"{host}:{proc.pid}:0", now)
        # the PID exists but its process started after the claim's heartbeat: reused
        assert holder_is_dead(f"{host}:{proc.pid}:0", datetime(2000, 1, 1, tzinfo=UTC))
    finally:
        proc.kill()
        proc.wait()
    assert holder_is_dead(f"{host}:{proc.pid}:0", now)
    assert not holder_is_dead(f"elsewhere:{proc.pid}:0", now)  # other hosts: by heartbeat
    assert not holder_is_dead("local", now)


def _sweep(grid: Path, url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        scaletrack_cmd("sweep", "run", str(grid), "--store", url, "--workers", "2", *extra),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, "COLUMNS": "200"},
    )


def _wait_for_checkpoints(url: str, n: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with Store.open(url) as store:
                if len(store.checkpoints()) >= n:
                    return
        except Exception:  # noqa: BLE001 - busy store: try again
            pass
        time.sleep(0.3)
    raise AssertionError("no checkpoint in time")


@pytest.mark.slow
def test_group_kill_then_immediate_rerun_and_sigterm(tmp_path: Path, figures: dict) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    grid = tmp_path / "g.toml"
    grid.write_text(grid_toml("claims", tokens=(25_600,), checkpoint_every=20, eval_every=20))

    # 1. SIGKILL the whole process group mid-cell (a closed terminal, `docker kill`)
    proc = _sweep(grid, url)
    _wait_for_checkpoints(url, 1, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    time.sleep(0.5)
    with Store.open(url) as store:
        running = store.runs(status="running")
        saved = len(store.checkpoints())
    assert len(running) >= 1, "the kill left no running cell to take over"

    # 2. SIGTERM of the group at once: dead claims are taken over (no 60 s wait), then the
    #    sweep stops like Ctrl-C: checkpoint, release, exit 143, nothing left running
    proc = _sweep(grid, url)
    _wait_for_checkpoints(url, saved + 2, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, (proc.returncode, out, err)
    assert "Traceback" not in out + err
    assert "is gone; taken over" in out, out
    with Store.open(url) as store:
        runs = store.runs()
    assert (runs["status"] != "running").all(), runs[["run_key", "status", "worker"]]

    # 3. a cell held by a live worker on another host: the rerun finishes the rest, then
    #    exits 1 naming only that cell
    with Store.open(url) as store:
        keys = list(store.runs()["run_key"])
        held = keys[0]
        assert store.claim_run(held, "otherhost:4242:0", stale_after_s=0)
    proc = _sweep(grid, url)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: 1 of 2 cells are not finished: ") and held in line, line
    assert "otherhost:4242:0" in line and keys[1] not in line, line

    # 4. the holder gives up; a rerun finishes it and exits 0, naming nothing
    with Store.open(url) as store:
        store.release_run(held, "otherhost:4242:0")
    proc = _sweep(grid, url)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (out, err)
    assert "not finished" not in out + err
    figures["kills survived"] = figures.get("kills survived", 0) + 2
