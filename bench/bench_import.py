"""Import and export speed: prints figures, asserts nothing.

- `import wandb`: one real offline run written by the wandb SDK (STEPS steps x 3 keys), read
  with the SDK's reader and written in one transaction; then the same import again (nothing
  new: every row compared and kept);
- `import history`: a long CSV of ROWS rows (10 runs x 3 metrics);
- `export metrics` of that store as CSV, parquet and JSON lines (atomic writes);
- `import-csv` in process: a results table of CSV_RUNS rows (N, D, loss) becomes runs, their
  config values filled in bulk (wall and CPU seconds, the load average).

Usage: .venv/bin/python bench/bench_import.py [--steps 20000] [--rows 1000000]
       [--csv-runs 20000]   (0 skips a part)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.analysis.io import read_fit_csv
from scaletrack.store import Store
from scaletrack.store.csv_import import import_runs
from scaletrack.store.exporters import export_frame, write_frame
from scaletrack.store.importers.history import import_history, read_table
from scaletrack.store.importers.wandb import import_wandb

_LOG = """
import sys, wandb
steps = int(sys.argv[1])
run = wandb.init(project="bench", name="long", dir=sys.argv[2],
                 config={"n_params": 1_000_000, "tokens": 20_000_000})
for i in range(steps):
    run.log({"train/loss": 4.0 - i * 1e-5, "lr": 3e-4, "tokens_seen": i * 4096}, step=i)
run.finish()
"""


def _timed(label: str, fn, rows: int | None = None):
    start = time.perf_counter()
    out = fn()
    took = time.perf_counter() - start
    rate = f"  ({rows / took:,.0f} rows/s)" if rows else ""
    print(f"{label:<44} {took:8.2f} s{rate}", flush=True)
    return out


def import_csv_runs(root: Path, n: int) -> None:
    """`n` CSV rows imported as runs in this process (as `scaletrack import-csv` does)."""
    rng = np.random.default_rng(1)
    csv = root / "results.csv"
    pd.DataFrame({"N": rng.integers(10**5, 10**9, n), "D": rng.integers(10**8, 10**11, n),
                  "loss": 2.0 + rng.random(n)}).to_csv(csv, index=False)
    table = read_fit_csv(csv, required=("N", "D", "loss"))
    with Store.open(f"sqlite:///{root / 'runs.db'}") as st:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        counts = import_runs(st, table, source=csv.name, sweep="imp")
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert counts.new_runs == n
    print(f"{f'import-csv in process ({n:,} runs)':<44} {wall:8.2f} s wall {cpu:8.2f} s CPU  "
          f"(load average {load} before, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--csv-runs", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.csv_runs:
            import_csv_runs(root, args.csv_runs)
        if args.steps:
            env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
            _timed(f"wandb SDK logs {args.steps:,} steps x 3 keys", lambda: subprocess.run(
                [sys.executable, "-c", _LOG, str(args.steps), tmp], env=env, check=True))
            log = next(root.glob("wandb/offline-run-*/*.wandb"))
            print(f"{'  transaction log size':<44} {log.stat().st_size / 2**20:8.1f} MiB")
            with Store.open(f"sqlite:///{root / 'w.db'}") as st:
                rows = 3 * args.steps
                report = _timed("import wandb (new store)", lambda: import_wandb(
                    st, [log.parent], params_key="n_params", tokens_key="tokens"), rows)
                assert report.metric_rows_new == rows
                _timed("import wandb again (0 new rows)", lambda: import_wandb(
                    st, [log.parent], params_key="n_params", tokens_key="tokens"), rows)

        if args.rows:
            rng = np.random.default_rng(0)
            n = args.rows // 10
            frame = pd.DataFrame({
                "run": np.repeat([f"run-{i}" for i in range(10)], n),
                "_step": np.tile(np.arange(n) * 10, 10),
                "train/loss": rng.uniform(2, 4, args.rows),
                "val/loss": rng.uniform(2, 4, args.rows),
                "lr": np.full(args.rows, 3e-4),
            })
            csv = root / "history.csv"
            frame.to_csv(csv, index=False)
            print(f"{'  history CSV size':<44} {csv.stat().st_size / 2**20:8.1f} MiB")
            with Store.open(f"sqlite:///{root / 'h.db'}") as st:
                table = _timed(f"read history CSV ({args.rows:,} rows)", lambda: read_table(csv),
                               args.rows)
                _timed(f"import history ({3 * args.rows:,} values)",
                       lambda: import_history(st, table, source=csv.name), 3 * args.rows)
                metrics = _timed("read metrics back", lambda: export_frame(st, "metrics"))
                for fmt in ("csv", "parquet", "jsonl"):
                    out = root / f"m.{fmt}"
                    _timed(f"export metrics -o m.{fmt}",
                           lambda out=out: write_frame(metrics, out), len(metrics))
                    size = out.stat().st_size / 2**20
                    print(f"{'  ' + out.name + ' size':<44} {size:8.1f} MiB")


if __name__ == "__main__":
    main()
