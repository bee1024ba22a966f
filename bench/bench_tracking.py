"""Overhead of `scaletrack.init(...).log(...)` on a 1 ms training step (target: under 1 %).

A "step" is 1 ms of work: by default torch matrix products calibrated to 1 ms on one thread
(like a real training step, they release the GIL), or with --python-step a pure-Python busy
loop that holds the GIL (the worst case for a background writer thread). Each step logs
four metrics with `run.log({...}, step=, tokens=)` into a fresh SQLite store (every value is
checked where it is logged, as in real use). The figure is the
time the training thread spends inside `run.log` (timed around every call) divided by the 1 ms
step; the database work happens on the writer's background thread. The whole-loop wall time
with and without logging is printed too, but on a shared machine it is dominated by noise.
Run:

    .venv/bin/python bench/bench_tracking.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import scaletrack

STEP_S = 1e-3


def python_step() -> None:
    end = time.perf_counter() + STEP_S
    while time.perf_counter() < end:
        pass


def make_torch_step():
    """A function doing ~1 ms of float32 matrix products on one thread."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(96, 96)
    reps = 1

    def step() -> None:
        for _ in range(reps):
            a @ a

    for _ in range(20):  # calibrate: the fastest of a few timings of 100 reps
        t0 = time.perf_counter()
        for _ in range(100):
            a @ a
        per = (time.perf_counter() - t0) / 100
        reps = max(reps, 1) if per <= 0 else max(1, round(STEP_S / per))
    return step


busy_step = python_step


def loop(steps: int, run: scaletrack.tracking.Run | None) -> tuple[float, list[float]]:
    """(wall seconds, seconds spent in each run.log call)."""
    in_log: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        busy_step()
        if run is not None:
            a = time.perf_counter()
            run.log({"train/loss": 3.0 - step * 1e-4, "lr": 1e-3, "grad_norm": 0.5,
                     "tokens_per_s": 1e5}, step=step, tokens=step * 4096)
            in_log.append(time.perf_counter() - a)
    return time.perf_counter() - t0, in_log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--python-step", action="store_true",
                        help="a GIL-holding pure-Python step instead of torch work")
    args = parser.parse_args()
    global busy_step
    if not args.python_step:
        busy_step = make_torch_step()
    t0 = time.perf_counter()
    for _ in range(200):
        busy_step()
    print(f"step: {'python busy loop' if args.python_step else 'torch matmuls'}, measured "
          f"{(time.perf_counter() - t0) / 200 * 1e3:.2f} ms")
    import scaletrack.tracking  # noqa: F401 - for the type above

    overheads: list[float] = []
    medians: list[float] = []
    p99s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        for rep in range(args.repeats):
            base, _ = loop(args.steps, None)
            with scaletrack.init(sweep="bench", config={"rep": rep}, params=1_000_000,
                                 tokens=10**9, store=url) as run:
                logged, in_log = loop(args.steps, run)
                t_close = time.perf_counter()
            close_s = time.perf_counter() - t_close
            per_call = statistics.fmean(in_log)
            overheads.append(per_call / STEP_S * 100)
            medians.append(statistics.median(in_log) / STEP_S * 100)
            p99s.append(sorted(in_log)[int(0.99 * len(in_log))] / STEP_S * 100)
            print(f"repeat {rep}: {args.steps} steps: run.log mean {per_call * 1e6:.1f} us, "
                  f"median {statistics.median(in_log) * 1e6:.1f} us, "
                  f"p99 {sorted(in_log)[int(0.99 * len(in_log))] * 1e6:.1f} us; loop wall "
                  f"plain {base:.3f} s vs logged {logged:.3f} s; flush at close "
                  f"{close_s * 1e3:.0f} ms")
        from scaletrack.store import Store

        with Store.open(url) as store:
            rows = store.count_metrics()
    print(f"rows written: {rows:,} (expected {args.repeats * args.steps * 4:,})")
    print(f"tracking overhead on a 1 ms step (time in run.log / step): mean call "
          f"{statistics.median(overheads):.2f} %, median call {statistics.median(medians):.2f} %, "
          f"p99 call {statistics.median(p99s):.2f} % (target: mean < 1 %; medians of "
          f"{args.repeats} repeats)")


if __name__ == "__main__":
    main()
