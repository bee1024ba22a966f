"""Store benchmark: metric rows/s into SQLite (MetricWriter, write_metrics) and the time to
read 1,000,000 metric rows into a DataFrame. Prints figures; asserts nothing.

Each figure is given per wall-clock second and per CPU second of this process (all threads):
on a shared, oversubscribed machine the CPU figure is the one that stays comparable.

Run: .venv/bin/python bench/bench_store.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.store import RunRecord, Store

NAMES = ("train/loss", "val/loss", "lr", "grad_norm", "tokens", "flops", "spike")


class Timer:
    """Wall and process-CPU seconds of a with-block."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, rows: int) -> str:
        return f"{rows / self.wall:>10,.0f} rows/s wall, {rows / self.cpu:>10,.0f} rows/s CPU"


def _run(store: Store, key: str) -> str:
    store.ensure_run(RunRecord(run_key=key, sweep="bench", family="gpt", config={"k": key},
                               N=1, N_total=1, D=1, C=6.0))
    return key


def bench_writer(store: Store, rows: int, runs: int) -> str:
    """rows/s logging through MetricWriter (log_many of all NAMES per step) incl. final flush."""
    per_run = rows // runs
    steps = per_run // len(NAMES)
    keys = [_run(store, f"writer-{i}") for i in range(runs)]
    with Timer() as timer:
        for key in keys:
            with store.metric_writer(key) as writer:
                for step in range(steps):
                    writer.log_many(step, dict.fromkeys(NAMES, 0.5 + step),
                                    tokens=step * 2048, wall_time=step * 0.01)
    return timer.rates(runs * steps * len(NAMES))


def bench_writer_log(store: Store, rows: int) -> str:
    """rows/s logging single values with MetricWriter.log, incl. final flush."""
    key = _run(store, "writer-log")
    with Timer() as timer, store.metric_writer(key) as writer:
        for step in range(rows):
            writer.log("train/loss", step, 1.0 / (step + 1), tokens=step, wall_time=step * 1e-3)
    return timer.rates(rows)


def bench_write_metrics(store: Store, rows: int, runs: int) -> str:
    """rows/s through write_metrics with one DataFrame per run."""
    per_run = rows // runs
    frames = []
    for i in range(runs):
        key = _run(store, f"frame-{i}")
        step = np.arange(per_run) // len(NAMES)
        frames.append(pd.DataFrame({
            "run_key": key, "name": np.tile(NAMES, per_run // len(NAMES) + 1)[:per_run],
            "step": step, "value": np.random.default_rng(i).random(per_run),
            "tokens": step * 2048, "wall_time": step * 0.01,
        }))
    with Timer() as timer:
        total = sum(store.write_metrics(frame) for frame in frames)
    return timer.rates(total)


def bench_read(store: Store) -> str:
    """Seconds to read every metric row into a DataFrame (best of 3)."""
    store.metrics(names=["lr"])  # warm the page cache
    best = None
    for _ in range(3):
        with Timer() as timer:
            frame = store.metrics()
        if best is None or timer.wall < best.wall:
            best = timer
    assert best is not None
    return f"{len(frame):,} rows in {best.wall:.3f} s wall ({best.cpu:.3f} s CPU)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows written (each path)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        with Store.open(url) as store:
            print("MetricWriter.log_many -> SQLite:", bench_writer(store, args.rows // 2, runs=10))
            print("MetricWriter.log      -> SQLite:", bench_writer_log(store, 200_000))
            print("write_metrics(frame)  -> SQLite:",
                  bench_write_metrics(store, args.rows // 2, runs=10))
            total = store.count_metrics()
            print(f"metrics() of all runs (store holds {total:,} rows):", bench_read(store))
            with Timer() as timer:
                part = store.metrics(run_keys=[f"writer-{i}" for i in range(5)])
            print(f"metrics(5 runs): {len(part):,} rows in {timer.wall:.3f} s wall")


if __name__ == "__main__":
    main()
