"""CPU time of the Chinchilla fit: Epoch AI's 240 points (all 4,500 starts, 1,000 bootstrap
resamples, the inner hold-out calibration the API and CLI apply by default) and simulated
sets of 2,000 and 20,000 points, each with its peak memory (resident set size of a fresh
child process). Prints figures; asserts nothing.

CPU time is process time (all threads), so it is not inflated by other processes waiting
for the cores, but threads of the BLAS library that spin between calls do count: the
figures are printed as run, and `--blas-threads 1` reruns them with OPENBLAS_NUM_THREADS=1.
Targets: Epoch 240 points with 1,000 bootstraps <= 1.5 s CPU; 20,000 points
<= 20 s CPU.

    .venv/bin/python bench/bench_fit.py [--repeats 3] [--sizes 2000 20000] [--blas-threads 1]
        [--exhaustive]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
DATA = SHARED / "epoch_chinchilla_svg_extracted_data.csv"
TRUE = {"E": 1.7, "A": 400.0, "B": 1800.0, "alpha": 0.34, "beta": 0.36}


def child(kind: str, size: int, bootstrap: int, repeats: int) -> dict:
    """One measurement, run in this (fresh) process: CPU seconds per phase and peak RSS."""
    import numpy as np
    import pandas as pd

    from scaletrack.analysis import fit_chinchilla, load_epoch_chinchilla

    if kind == "epoch":
        df = load_epoch_chinchilla(DATA, drop_highest_loss=5)
    else:
        rng = np.random.default_rng(0)
        n = np.exp(rng.uniform(np.log(5e7), np.log(2e10), size))
        d = np.exp(rng.uniform(np.log(1e9), np.log(5e11), size))
        loss = TRUE["E"] + TRUE["A"] * n ** -TRUE["alpha"] + TRUE["B"] * d ** -TRUE["beta"]
        df = pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(rng.normal(0, 0.01, size))})
    fit_chinchilla(df.iloc[:40], n_bootstrap=5)  # imports and first-call set-up
    out: dict = {"points": len(df), "runs": []}
    for _ in range(repeats):
        row, wall = {}, {}
        for name, kw in (("fit only", {"n_bootstrap": 0}),
                         (f"fit + {bootstrap} bootstraps",
                          {"n_bootstrap": bootstrap, "calibrate": False}),
                         ("fit + bootstraps + calibration", {"n_bootstrap": bootstrap})):
            t0, w0 = time.process_time(), time.perf_counter()
            res = fit_chinchilla(df, **kw)
            row[name] = time.process_time() - t0
            wall[name] = time.perf_counter() - w0
        out["runs"].append(row)
        out.setdefault("wall", []).append(wall)
    p = res.params
    out["params"] = {k: round(v, 4) for k, v in p.items()}
    out["ci_E"] = [round(v, 4) for v in res.ci95["E"]]
    out["bootstrap_method"] = res.extra["bootstrap_method"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(kind: str, size: int, bootstrap: int, repeats: int, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(size), str(bootstrap), str(repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(label: str, out: dict) -> None:
    print(f"{label}: {out['points']} points; params {out['params']}; E 95% {out['ci_E']}; "
          f"bootstrap: {out['bootstrap_method']}; peak RSS {out['peak_rss_mb']:.0f} MB")
    for name in out["runs"][0]:
        xs = [r[name] for r in out["runs"]]
        ws = [r[name] for r in out["wall"]]
        print(f"  {name:>32}: CPU median {statistics.median(xs):6.2f} s  min {min(xs):6.2f} s"
              f"  (wall median {statistics.median(ws):6.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 20000])
    parser.add_argument("--blas-threads", type=int, default=None)
    parser.add_argument("--exhaustive", action="store_true", help="also time every start run "
                        "to convergence (no screening) on Epoch's points")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size, boot, reps = args.child
        print(json.dumps(child(kind, int(size), int(boot), int(reps))))
        return
    env = dict(os.environ)
    if args.blas_threads:
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(args.blas_threads)
    print(f"cpus: {os.cpu_count()}; load avg at start: {os.getloadavg()[0]:.1f} (a shared "
          f"machine inflates even CPU time); BLAS threads: {args.blas_threads or 'default'}")
    if DATA.is_file():
        report("Epoch AI", run_child("epoch", 0, args.bootstrap, args.repeats, env))
    else:
        print(f"skip Epoch: {DATA} is absent")
    for size in args.sizes:
        report(f"simulated {size:,}", run_child("sim", size, args.bootstrap, 1, env))
    print(f"load avg at end: {os.getloadavg()[0]:.1f}")
    if args.exhaustive and DATA.is_file():
        from scaletrack.analysis import fit_chinchilla, load_epoch_chinchilla

        df = load_epoch_chinchilla(DATA, drop_highest_loss=5)
        screened = fit_chinchilla(df, n_bootstrap=0, calibrate=False)
        t0 = time.process_time()
        full = fit_chinchilla(df, n_bootstrap=0, exhaustive=True)
        print(f"exhaustive 4,500 starts: {time.process_time() - t0:6.2f} s CPU (objective "
              f"{full.extra['objective']:.12g} vs screened {screened.extra['objective']:.12g})")


if __name__ == "__main__":
    main()
