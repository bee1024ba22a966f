"""Scale of the run table: a store holding 1,000,000 runs (as a big import leaves it), then the
default views a user opens: `runs`, `sweep status`, `show PREFIX`, each a fresh process timed
with its peak memory (targets: under 2 s and 500 MB each); and `import-csv` of a CSV of the
same size (target: under 60 s), with its run config values filled in bulk. Prints figures
(wall, CPU, peak RSS, the load average at the start and end of each); asserts nothing.

Run: .venv/bin/python bench/bench_runs_scale.py [--runs 1000000] [--import-rows 1000000]
     (--runs 0: only the import; --import-rows 0: only the views)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from scaletrack.store import Store
from scaletrack.store import schema as store_schema

REPO = Path(__file__).resolve().parents[1]


def fill(url: str, n: int, sweep: str, batch: int = 50_000) -> float:
    """`n` finished runs of one sweep, inserted in bulk; returns seconds."""
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    with Store.open(url) as store:
        store.upsert_sweep(sweep, {"imported_from": "bench"})
        engine = store.engine
        rng = np.random.default_rng(0)
        for start in range(0, n, batch):
            rows = []
            for i in range(start, min(n, start + batch)):
                N, D = int(rng.integers(10**5, 10**9)), int(rng.integers(10**8, 10**11))
                rows.append({"run_key": f"{i:016x}", "sweep": sweep, "family": "imported",
                             "status": "finished", "attempts": 0, "N": N, "N_total": N, "D": D,
                             "C": 6.0 * N * D, "final_loss": 2.0 + rng.random(),
                             "config": {"i": i}, "created_at": now, "updated_at": now})
            with engine.begin() as conn:
                conn.execute(sa.insert(store_schema.runs), rows)
    return time.perf_counter() - t0


def timed(args: list[str]) -> tuple[float, float, float, int, str]:
    """(wall s, CPU s, peak RSS MB, exit code, last line) of `scaletrack ARGS` in a fresh
    process. CPU seconds stay comparable on a shared, oversubscribed machine; wall does not."""
    import resource

    cmd = [sys.executable, "-m", "scaletrack.cli.main", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, "COLUMNS": "120"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return wall, cpu, after.ru_maxrss / 1024, proc.returncode, lines[-1] if lines else ""


def load() -> str:
    """The load average over 1, 5 and 15 minutes (timings on a shared machine need it)."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def views(tmp: str, n: int) -> None:
    """The default views on a store of `n` runs, each a fresh process."""
    empty = f"sqlite:///{Path(tmp) / 'empty.db'}"
    with Store.open(empty):
        pass
    wall, cpu, peak, rc, _ = timed(["runs", "--store", empty])
    print(f"baseline: runs on an empty store (interpreter, imports): {wall:6.2f} s wall "
          f"{cpu:6.2f} s CPU  peak RSS* {peak:5.0f} MB")
    url = f"sqlite:///{Path(tmp) / 'big.db'}"
    secs = fill(url, n, "big")
    print(f"filled {n:,} runs in {secs:.1f} s")
    for args in (["runs"], ["runs", "--sweep", "big", "--status", "finished"],
                 ["sweep", "status", "big"], ["show", "0000000000000"]):
        wall, cpu, peak, rc, last = timed([*args, "--store", url])
        print(f"scaletrack {' '.join(args):<40} {wall:6.2f} s wall {cpu:6.2f} s CPU  "
              f"peak RSS* {peak:5.0f} MB  exit {rc}  | {last[:60]}  ({load()})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--import-rows", type=int, default=1_000_000)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if opts.runs:
            views(tmp, opts.runs)
        if opts.import_rows:
            csv = Path(tmp) / "big.csv"
            rng = np.random.default_rng(1)
            n = opts.import_rows
            N = rng.integers(10**5, 10**9, n)
            D = rng.integers(10**8, 10**11, n)
            pd.DataFrame({"N": N, "D": D, "loss": 2.0 + rng.random(n)}).to_csv(csv, index=False)
            before = load()
            wall, cpu, peak, rc, last = timed(["import-csv", str(csv), "--sweep", "imp",
                                               "--store", f"sqlite:///{Path(tmp) / 'imp.db'}"])
            print(f"scaletrack import-csv ({n:,} rows)          {wall:6.2f} s wall "
                  f"{cpu:6.2f} s CPU  peak RSS* {peak:5.0f} MB  exit {rc}  | {last[:60]}")
            print(f"  {before} before, {load()} after", flush=True)
    print("* peak RSS of the largest child process so far (RUSAGE_CHILDREN), a ceiling")


if __name__ == "__main__":
    main()
