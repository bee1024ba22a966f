"""Many processes on one SQLite store: concurrent fresh opens, writers, claims, SIGKILL."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from scaletrack.store import RunRecord, Store
from scaletrack.store.engine import SQLITE_CACHE_KIB
from scaletrack.store.migrate import head_revision

N_PROCS = 8
ROWS_PER_PROC = 3000
REPO = Path(__file__).resolve().parents[1]


def _run(key: str) -> RunRecord:
    return RunRecord(run_key=key, sweep="conc", family="gpt", config={"k": key}, N=1, N_total=1,
                     D=1, C=6.0)


def _worker(url: str, index: int, start_at: float) -> list[str]:
    """Open a (possibly fresh) store at the same moment as the others, claim, log metrics."""
    while time.time() < start_at:
        time.sleep(0.001)
    with Store.open(url) as store:
        shared = [f"shared-{i}" for i in range(4)]
        for key in shared:
            store.ensure_run(_run(key))
        won = [key for key in shared if store.claim_run(key, f"worker-{index}")]
        own = f"own-{index}"
        store.ensure_run(_run(own))
        half = ROWS_PER_PROC // 2
        with store.metric_writer(own, batch_size=100, flush_interval_s=0.01) as writer:
            for step in range(half):
                writer.log("train/loss", step, index + step / 1e4, tokens=step)
        import pandas as pd

        store.write_metrics(pd.DataFrame({
            "run_key": own, "name": "val/loss", "step": np.arange(ROWS_PER_PROC - half),
            "value": float(index)}))
        for key in won:
            store.heartbeat(key, f"worker-{index}")
    return won


@pytest.mark.slow
def test_eight_processes_open_claim_and_write_at_once(store_url: str):
    ctx = mp.get_context("spawn")
    start_at = time.time() + 4.0  # enough for the spawned interpreters to import everything
    with ctx.Pool(N_PROCS) as pool:
        results = pool.starmap(_worker, [(store_url, i, start_at) for i in range(N_PROCS)])
    with Store.open(store_url) as store:
        assert store.count_metrics() == N_PROCS * ROWS_PER_PROC
        frame = store.metrics(names=["train/loss"])
        for i in range(N_PROCS):
            part = frame[frame["run_key"] == f"own-{i}"]
            assert part["step"].tolist() == list(range(ROWS_PER_PROC // 2))
            assert np.allclose(part["value"].to_numpy(), i + part["step"].to_numpy() / 1e4)
        # every shared run was claimed by exactly one process
        winners = [key for won in results for key in won]
        assert sorted(winners) == [f"shared-{i}" for i in range(4)]
        runs = store.runs(status="running").set_index("run_key")
        for i in range(4):
            assert runs.loc[f"shared-{i}", "attempts"] == 1
        assert store.schema_version() == head_revision()


_KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    from scaletrack.store import RunRecord, Store
    store = Store.open(sys.argv[1])
    store.ensure_run(RunRecord(run_key="victim", sweep=None, family="gpt", config={},
                               N=1, N_total=1, D=1, C=1.0))
    writer = store.metric_writer("victim", batch_size=int(sys.argv[2]), flush_interval_s=3600)
    step = 0
    while True:
        writer.log("train/loss", step, 1.0 / (step + 1), tokens=step)
        step += 1
        if step % 50 == 0:
            time.sleep(0.0005)
    """
)


@pytest.mark.slow
def test_sigkill_mid_logging_leaves_whole_batches(store_url: str):
    batch = 100
    with Store.open(store_url):
        pass  # create the schema first, so the child starts logging at once
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, store_url, str(batch)],
                             env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        with Store.open(store_url) as store:
            while store.count_metrics() < 20 * batch:
                assert child.poll() is None, "child died on its own"
                assert time.monotonic() < deadline, "child never logged"
                time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    assert child.returncode == -signal.SIGKILL
    with Store.open(store_url) as store:
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        frame = store.metrics(["victim"])
        n = len(frame)
        assert n >= 20 * batch and n % batch == 0
        assert frame["step"].tolist() == list(range(n))
        assert np.array_equal(frame["value"].to_numpy(), 1.0 / (np.arange(n) + 1.0))
        assert store.count_metrics() == n


def test_sqlite_connections_use_wal_and_busy_timeout(store: Store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
    assert sa.inspect(store.engine).get_pk_constraint("metrics")["constrained_columns"] == [
        "run_id", "name", "step"]
