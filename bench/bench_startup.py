"""Start-up time of the `scaletrack` command: median of 5 wall times (seconds).

Runs `scaletrack --help` and `scaletrack version` as subprocesses with the venv's console
script, then reports which heavy modules (torch, pandas, sqlalchemy, scipy, matplotlib)
the same command imports, found with `python -X importtime`.

    .venv/bin/python bench/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "pandas", "sqlalchemy", "scipy", "matplotlib", "numpy", "ray")
COMMANDS = (("--help",), ("version",))


def scaletrack_exe() -> str:
    """The console script next to this interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).with_name("scaletrack")
    return str(candidate) if candidate.exists() else "scaletrack"


def wall_times(argv: list[str], repeats: int) -> list[float]:
    """Wall-clock seconds of `repeats` runs of `argv` (output discarded)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def heavy_imports(args: tuple[str, ...]) -> list[str]:
    """Top-level heavy packages imported by `scaletrack ARGS` (via -X importtime)."""
    code = ("import sys; from scaletrack.cli.main import main; "
            "sys.argv = ['scaletrack', *sys.argv[1:]]; main()")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *args],
        capture_output=True, text=True, check=False,
    )
    seen = set()
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        name = line.rsplit("|", 1)[-1].strip()
        top = name.split(".")[0]
        if top in HEAVY:
            seen.add(top)
    return sorted(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    exe = scaletrack_exe()
    for args in COMMANDS:
        times = wall_times([exe, *args], opts.repeats)
        label = "scaletrack " + " ".join(args)
        print(f"{label:22s} median {statistics.median(times):.3f} s "
              f"(min {min(times):.3f}, max {max(times):.3f}, n={len(times)}); "
              f"heavy imports: {', '.join(heavy_imports(args)) or 'none'}")


if __name__ == "__main__":
    main()
