"""Emergence over a whole lm-eval import: the Pythia evaluations (294 files, 300 task x metric x
shot curves) imported into a fresh store, then

1. the dashboard's `/api/emergence` (first page, 12 curves) on that store as imported: cold
   (first ask after a fresh `scaletrack ui`, at once, and again once the server's background
   import of the fitting code is done) and warm (median of the next five);
2. `scaletrack emergence --store` over every curve (N_BOOTSTRAP refits each), which also
   saves each curve's answer in the store's fit cache;
3. `/api/emergence` again, cold after a restart (answered from the store's cache) and warm,
   first page and a page further on (offset 120);
4. `scaletrack emergence --task lambada_openai --plot`.

Prints wall time, CPU time (the command's, or the server's for an answer) and the load
average; asserts nothing. Targets (2-core machine): `scaletrack emergence` < 30 s wall;
`/api/emergence` < 300 ms warm, < 1 s cold after a restart.

Run: .venv/bin/python bench/bench_emergence_import.py [--data ../shared/data] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ui import free_port, get, start_ui, stop_ui  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
PAGES = (("first page", "/api/emergence?limit=12"),
         ("page at offset 120", "/api/emergence?offset=120&limit=12"))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


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


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, quiet_s: float = 0.5, limit_s: float = 60.0) -> float:
    """Wait until the process used under 2 % CPU for `quiet_s` (the dashboard's background
    import of the fitting code done); seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        before = process_cpu(pid)
        time.sleep(quiet_s)
        if process_cpu(pid) - before < 0.02 * quiet_s:
            break
    return time.perf_counter() - t0


def answers(url: str, label: str) -> None:
    """Each page cold in a fresh `scaletrack ui` (asked at once, and asked once the server's
    background imports are done), then warm (median of five more); wall time of the answer
    as a client sees it, and the server's CPU time for it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    for name, path in PAGES:
        proc, _ = start_ui(url, port)
        try:
            cpu0 = process_cpu(proc.pid)
            at_once = get(base + path)[0]
            at_once_cpu = process_cpu(proc.pid) - cpu0
        finally:
            stop_ui(proc)
        proc, started = start_ui(url, port)
        try:
            waited = settle(proc.pid)
            cpu0 = process_cpu(proc.pid)
            cold, size = get(base + path)
            cold_cpu = process_cpu(proc.pid) - cpu0
            warm, warm_cpu = [], []
            for _ in range(5):
                cpu0 = process_cpu(proc.pid)
                warm.append(get(base + path)[0])
                warm_cpu.append(process_cpu(proc.pid) - cpu0)
        finally:
            stop_ui(proc)
        print(f"/api/emergence {label}, {name}:\n"
              f"  cold at once {at_once * 1000:6.0f} ms (server CPU {at_once_cpu * 1000:5.0f} ms"
              f"); cold after the server's warm-up ({started + waited:.1f} s) "
              f"{cold * 1000:6.0f} ms (CPU {cold_cpu * 1000:5.0f} ms); warm "
              f"{statistics.median(warm) * 1000:5.0f} ms (CPU "
              f"{statistics.median(warm_cpu) * 1000:4.0f} ms); {size / 1e3:,.0f} kB; "
              f"load {load()}", flush=True)


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
    (folder / "pythia.db").unlink(missing_ok=True)
    url = f"sqlite:///{folder / 'pythia.db'}"
    exe = str(Path(sys.executable).with_name("scaletrack"))
    try:
        print(f"load average before: {load()} ({os.cpu_count()} cores)")
        wall, cpu, out, _ = timed([exe, "import", "lm-eval", str(pythia), "--sizes",
                                   str(ROOT / "examples/lm_eval/pythia_sizes.csv"),
                                   "--store", url], folder)
        print(f"scaletrack import lm-eval: wall {wall:.1f} s, CPU {cpu:.1f} s  "
              f"[{out.strip().splitlines()[-1]}]; load {load()}", flush=True)
        answers(url, "before `scaletrack emergence` (the dashboard classifies)")
        wall, cpu, out, err = timed([exe, "emergence", "--store", url], folder)
        curves = sum(1 for line in out.splitlines() if line.startswith("│"))
        saved = [line for line in err.splitlines() if line.startswith("saved")]
        print(f"scaletrack emergence (every curve): wall {wall:.1f} s, CPU {cpu:.1f} s, "
              f"{curves} curves in the table; load {load()}")
        print(f"  progress lines on stderr: {err.count('classifying:')}; "
              f"{saved[0] if saved else 'nothing saved to the fit cache'}", flush=True)
        answers(url, "after `scaletrack emergence` (from the store's cache)")
        wall, cpu, _, _ = timed([exe, "emergence", "--store", url, "--task", "lambada_openai",
                                 "--plot", str(folder / "lambada.png")], folder)
        print(f"scaletrack emergence --task lambada_openai --plot: wall {wall:.1f} s, "
              f"CPU {cpu:.1f} s -> {folder / 'lambada.png'}")
        print(f"load average after: {load()}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
