"""`scaletrack emergence` over a whole lm-eval import: the Pythia evaluations (294 files, 300
task x metric x shot curves) imported into a fresh store, then every curve classified with
200 bootstrap refits. Prints the wall and CPU time of each command (children's rusage) and
the machine's load; asserts nothing. Target: < 30 s wall on a 2-core machine.

Run: .venv/bin/python bench/bench_emergence_import.py [--data ../shared/data] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str, str]:
    """(wall s, CPU s of the child, stdout, stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall, cpu, done.stdout, done.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--keep", type=Path, help="keep the store in this folder")
    args = ap.parse_args()
    pythia = args.data / "lm_eval_pythia"
    if not pythia.is_dir():
        raise SystemExit(f"{pythia} is absent")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-emergence-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'pythia.db'}"
    exe = str(Path(sys.executable).with_name("scaletrack"))
    try:
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
              f"({os.cpu_count()} cores)")
        wall, cpu, out, _ = timed([exe, "import", "lm-eval", str(pythia), "--sizes",
                                   str(ROOT / "examples/lm_eval/pythia_sizes.csv"),
                                   "--store", url], folder)
        print(f"scaletrack import lm-eval: wall {wall:.1f} s, CPU {cpu:.1f} s  "
              f"[{out.strip().splitlines()[-1]}]")
        wall, cpu, out, err = timed([exe, "emergence", "--store", url], folder)
        curves = sum(1 for line in out.splitlines() if line.startswith("│"))
        print(f"scaletrack emergence (200 bootstrap refits per curve): wall {wall:.1f} s, "
              f"CPU {cpu:.1f} s, {curves} curves in the table")
        print(f"  progress lines on stderr: {err.count('classifying:')}")
        wall, cpu, _, _ = timed([exe, "emergence", "--store", url, "--task", "lambada_openai",
                                 "--plot", str(folder / "lambada.png")], folder)
        print(f"scaletrack emergence --task lambada_openai --plot: wall {wall:.1f} s, "
              f"CPU {cpu:.1f} s -> {folder / 'lambada.png'}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
