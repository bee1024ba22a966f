"""Wall time of the Chinchilla fit on the Epoch AI data (240 points): all 4,500 starts, 1,000
bootstrap resamples, and each part separately. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_fit.py [--repeats 3] [--exhaustive]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaletrack.analysis import fit_chinchilla, load_epoch_chinchilla  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = SHARED / "epoch_chinchilla_svg_extracted_data.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--exhaustive", action="store_true", help="also time every start run "
                        "to convergence (no screening)")
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"skip: {DATA} is absent")
        return
    df = load_epoch_chinchilla(DATA)
    print(f"data: {len(df)} points; cpus: {os.cpu_count()}; load avg: {os.getloadavg()[0]:.1f}")
    totals, fits, boots = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = fit_chinchilla(df, n_bootstrap=args.bootstrap)
        totals.append(time.perf_counter() - t0)
        fits.append(res.extra["fit_seconds"])
        boots.append(res.extra["bootstrap_seconds"])
    p = res.params
    print(f"params: E={p['E']:.4f} A={p['A']:.2f} B={p['B']:.2f} "
          f"alpha={p['alpha']:.4f} beta={p['beta']:.4f}")
    print(f"starts: {res.extra['n_starts']}, bootstrap converged: "
          f"{res.extra['n_bootstrap_converged']}/{args.bootstrap}")
    for name, xs in (("4,500 starts (fit)", fits), (f"{args.bootstrap} bootstraps", boots),
                     ("total", totals)):
        print(f"{name:>22}: median {statistics.median(xs):6.2f} s  min {min(xs):6.2f} s")
    if args.exhaustive:
        t0 = time.perf_counter()
        full = fit_chinchilla(df, n_bootstrap=0, exhaustive=True)
        print(f"{'exhaustive 4,500 starts':>22}: {time.perf_counter() - t0:6.2f} s  "
              f"(objective {full.extra['objective']:.12g} vs {res.extra['objective']:.12g})")


if __name__ == "__main__":
    main()
