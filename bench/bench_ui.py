"""Dashboard benchmark: a store of N runs (1,000 with 2M metric rows by default; 200,000 with
`--runs 200000 --curves 200`); each view's server answer, cold (first ask after a fresh
`scaletrack ui`: nothing cached in the process; the scaling view's fits read from the store's
fit cache, written first as at the end of a sweep unless `--no-fit-cache`) and warm (median of
the next five), the Host-header guard, the stop after SIGTERM with an answer in flight, and
the draw time of each view in headless Chromium. Prints figures; asserts nothing.

Targets: < 300 ms warm and < 1 s cold at 1,000 runs; runs page and grouping
< 1 s at 200,000 runs; `scaletrack ui` gone within 2 s of SIGTERM.
Needs Debian's `chromium` (/usr/bin/chromium) and `pip install playwright` for the draw
times (`--no-browser` skips them). `--shots DIR --store URL` instead writes a screenshot of
every view of an existing store (`--shots-only` skips the timings).

Each view's answer is one table row: view, runs in the store, cold ms (and the server's CPU
ms for it), warm ms (and CPU ms per answer), size, and the 1-minute load average then.

Run: .venv/bin/python bench/bench_ui.py [--runs 1000] [--steps 2000] [--curves N] [--keep DIR]
     [--runs-page-only]
e.g. .venv/bin/python bench/bench_ui.py --no-browser --keep /tmp/bench-ui-1k
     .venv/bin/python bench/bench_ui.py --runs 200000 --curves 200 --no-browser --keep DIR
(a kept store is reused by the next run with the same --keep)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.store import RunRecord, Store, make_run_key

CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage")


def build_store(path: Path, runs: int, steps: int,
                curves: int | None = None) -> tuple[str, float, int]:
    """`runs` finished runs on a grid of N x D x seed with Chinchilla-like final losses (a few
    failed), written in batches with Store.ensure_runs; the first `curves` (default all) get a
    `train/loss` curve of `steps` rows each, written with Store.write_metrics."""
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(0)
    n_sizes = max(1, round(runs ** (1 / 3)))
    sizes = np.geomspace(1e6, 1e9, n_sizes)
    budgets = np.geomspace(1e8, 1e11, n_sizes)
    t0 = time.perf_counter()
    with Store.open(url) as store:
        store.upsert_sweep("bench", {"runs": runs})
        keys, records = [], []
        for i in range(runs):
            n = float(sizes[i % n_sizes])
            d = float(budgets[(i // n_sizes) % n_sizes])
            seed = i // (n_sizes * n_sizes)
            loss = 1.8 + 480 / n**0.34 + 2100 / d**0.37
            config = {"i": i, "N": n, "D": d, "seed": seed, "lr": 3e-4,
                      "model": {"n_layer": 2 + i % 6, "d_model": 64 * (1 + i % 4)},
                      "train": {"batch_size": 8 * (1 + i % 3)}}
            key = make_run_key(config)
            records.append(RunRecord(
                run_key=key, sweep="bench", family="gpt", config=config, N=int(n),
                N_total=int(n * 1.1), D=int(d), C=6 * n * d, seed=seed, lr=3e-4,
                status="failed" if i % 97 == 5 else "finished", name=f"bench-{i}",
                final_loss=float(loss * np.exp(rng.normal(0, 0.01))),
            ))
            keys.append(key)
        store.ensure_runs(records)
        keys = keys[:curves] if curves is not None else keys
        step = np.arange(steps)
        frames = []
        for key in keys:
            curve = 2.0 + 4.0 / np.sqrt(1 + step / 10) + rng.normal(0, 0.02, steps)
            curve[rng.integers(0, steps, 2)] += 2.0  # a couple of spikes
            frames.append(pd.DataFrame({
                "run_key": key, "name": "train/loss", "step": step, "value": curve,
                "tokens": step * 4096, "wall_time": 1.7e9 + step * 0.05,
            }))
            if len(frames) == 50:
                store.write_metrics(pd.concat(frames, ignore_index=True))
                frames = []
        if frames:
            store.write_metrics(pd.concat(frames, ignore_index=True))
        rows = store.count_metrics()
    return url, time.perf_counter() - t0, rows


def cache_fits(url: str) -> None:
    """Save the scaling view's fits of every sweep in the store's fit cache, as `run_sweep`
    does when a sweep finishes (the cold scaling view then answers from the store)."""
    from scaletrack.scaling_fits import cache_scaling_fits

    t0 = time.perf_counter()
    with Store.open(url) as store:
        sweeps = [s for s in store.status_counts_by_sweep() if s is not None]
        saved = sum(cache_scaling_fits(store, str(s)) for s in sweeps)
    print(f"fit cache: {saved} fits saved for {len(sweeps)} sweep(s) in "
          f"{time.perf_counter() - t0:.1f} s (as at the end of a sweep)", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[float, int]:
    """(seconds, bytes) of one GET."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        body = response.read()
    return time.perf_counter() - t0, len(body)


def timed(url: str, repeat: int = 5) -> str:
    first, size = get(url)
    warm = [get(url)[0] for _ in range(repeat)]
    return (f"first {first * 1000:7.0f} ms, then median {statistics.median(warm) * 1000:6.0f} "
            f"ms ({size / 1e3:,.0f} kB)")


def draw_times(
    base: str, views: dict[str, tuple[str, str]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds from navigation to the view's table/chart being drawn, in headless Chromium:
    loading the page afresh (Plotly parsed again), and moving to it from another view."""
    from playwright.sync_api import sync_playwright

    out, inapp = {}, {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or
                                     "/usr/bin/chromium", headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/#/ideas")  # load the page and Plotly once (cached afterwards)
        page.wait_for_selector("#view[data-ready='1']", timeout=600_000)
        for name, (hash_, ready) in views.items():
            times = []
            for _ in range(3):
                page.goto("about:blank")
                t0 = time.perf_counter()
                page.goto(base + "/" + hash_)
                page.wait_for_selector("#view[data-ready='1']", timeout=600_000)
                page.wait_for_selector(ready, timeout=600_000)
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times)
            times = []
            for _ in range(3):
                page.goto(base + "/#/ideas")
                page.wait_for_selector("#view[data-ready='1'][data-view='ideas']")
                t0 = time.perf_counter()
                page.evaluate(f"location.hash = {json.dumps(hash_)}")
                page.wait_for_selector(ready, timeout=600_000)
                times.append(time.perf_counter() - t0)
            inapp[name] = statistics.median(times)
        browser.close()
    return out, inapp


def start_ui(url: str, port: int, host: str = "127.0.0.1") -> tuple[subprocess.Popen, float]:
    """`scaletrack ui` on `port`; (process, seconds from the command to its first answer)."""
    exe = Path(sys.executable).with_name("scaletrack")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), "ui", "--store", url, "--port", str(port), "--host", host],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.stdout.readline()
    get(f"http://127.0.0.1:{port}/api/info")
    return proc, time.perf_counter() - t0


def stop_ui(proc: subprocess.Popen) -> float:
    """SIGTERM, then seconds until the process is gone."""
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return math.inf
    return time.perf_counter() - t0


def status_of(url: str, host: str) -> int:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, quiet_s: float = 0.3, limit_s: float = 30.0) -> None:
    """Until process `pid` has used under 5 ms of CPU in `quiet_s` (its start-up work, such as
    the fitting code it imports in the background, done), at most `limit_s`."""
    end = time.perf_counter() + limit_s
    before = cpu_seconds(pid)
    while time.perf_counter() < end:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if not now - before >= 0.005:  # NaN (no /proc): do not wait
            return
        before = now


def answer_times(url: str, runs: int, views: list[tuple[str, str]]) -> None:
    """Each view cold in a fresh server (nothing computed or cached in the process; asked once
    its start-up work is done), then warm (median of five more), with the server's CPU time
    and the machine's 1-minute load average when the view was measured; one row per view."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"  {'view':46s} {'runs':>8s} {'cold ms':>8s} {'(cpu ms)':>9s} {'warm ms':>8s} "
          f"{'(cpu ms)':>9s} {'kB':>7s} {'load avg':>8s}", flush=True)
    for label, path in views:
        proc, _ = start_ui(url, port)
        try:
            wait_idle(proc.pid)
            cpu0 = cpu_seconds(proc.pid)
            cold, size = get(base + path)
            cpu1 = cpu_seconds(proc.pid)
            warm = statistics.median(get(base + path)[0] for _ in range(5))
            warm_cpu = (cpu_seconds(proc.pid) - cpu1) / 5
        finally:
            stop_ui(proc)
        print(f"  {label:46s} {runs:8,d} {cold * 1000:8.0f} {(cpu1 - cpu0) * 1000:9.0f} "
              f"{warm * 1000:8.0f} {warm_cpu * 1000:9.0f} {size / 1e3:7,.0f} "
              f"{os.getloadavg()[0]:8.2f}", flush=True)


SORT_COLUMNS = ("run_key", "name", "sweep", "family", "status", "role", "N", "D", "C", "seed",
                "lr", "final_loss", "attempts", "updated_at", "created_at")


def runs_page_views(runs: int) -> list[tuple[str, str]]:
    """The runs page's answers: default page, each sort column (ascending; final loss and
    update time also descending), text search, config filters (common and one-run), groups
    (by N, status, sweep; with a config filter), and the last page (default and sorted)."""
    last = max(0, runs - 50)
    page = "/api/runs?limit=50"
    return [
        ("runs page of 50", page),
        *((f"runs sorted by {c}", f"{page}&sort={c}") for c in SORT_COLUMNS),
        ("runs sorted by final_loss, descending", f"{page}&sort=final_loss&desc=1"),
        ("runs sorted by updated_at, descending", f"{page}&sort=updated_at&desc=1"),
        ("runs text search", f"{page}&q=bench-99"),
        ("runs config filter model.n_layer=3", f"{page}&where=model.n_layer%3D3"),
        ("runs config filter i=12345 (one run)", f"{page}&where=i%3D12345"),
        ("runs config filter + sort by final_loss",
         f"{page}&where=train.batch_size%3D16&sort=final_loss"),
        ("runs grouped by N", f"{page}&sort=final_loss&group=N"),
        ("runs grouped by status", f"{page}&group=status"),
        ("runs grouped by sweep", f"{page}&group=sweep"),
        ("runs grouped by N, config filter", f"{page}&group=N&where=model.n_layer%3D3"),
        ("runs last page", f"{page}&offset={last}"),
        ("runs last page sorted by final_loss", f"{page}&offset={last}&sort=final_loss"),
    ]


def screenshots(url: str, folder: Path, hashes: dict[str, str]) -> None:
    """A full-page PNG of each view (name -> hash) of a running `scaletrack ui`."""
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc, _ = start_ui(url, port)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or
                                         "/usr/bin/chromium", headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for name, hash_ in hashes.items():
                page.goto(f"http://127.0.0.1:{port}/{hash_}")
                page.wait_for_selector("#view[data-ready='1']", timeout=600_000)
                page.wait_for_timeout(2500)  # late charts (compute-optimal) and Plotly's draw
                page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
                print(f"  wrote {folder / name}.png", flush=True)
            browser.close()
    finally:
        stop_ui(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000, help="metric rows per curve")
    parser.add_argument("--curves", type=int, default=None,
                        help="runs that get a train/loss curve (default: all)")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store in this folder")
    parser.add_argument("--store", help="use this store instead of building one")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium draw times")
    parser.add_argument("--no-fit-cache", action="store_true",
                        help="leave the store's fit cache as it is (cold views fit themselves)")
    parser.add_argument("--shots", type=Path, help="write screenshots of every view here")
    parser.add_argument("--shots-only", action="store_true", help="only the screenshots")
    parser.add_argument("--runs-page-only", action="store_true",
                        help="only the runs page's answers (no fits, browser or SIGTERM)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-ui-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench-ui.db"
    if args.store:
        url = args.store
    elif db.exists():
        url = f"sqlite:///{db}"
        with Store.open(url) as store:
            rows = store.count_metrics()
        print(f"store: reusing {db} ({rows:,} metric rows)")
    else:
        url, seconds, rows = build_store(db, args.runs, args.steps, args.curves)
        print(f"store: {args.runs:,} runs, {rows:,} metric rows written in {seconds:.1f} s "
              f"({db.stat().st_size / 1e6:.0f} MB)", flush=True)
    with Store.open(url) as store:
        runs = store.count_runs()
    again = " ".join([sys.executable, *sys.argv])
    print(f"runs in the store: {runs:,}; load average now {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} CPUs; to run again: {again}", flush=True)
    try:
        if args.runs_page_only:
            answer_times(url, runs, runs_page_views(runs))
            return
        if not args.no_fit_cache:
            cache_fits(url)
        port = free_port()
        proc, started = start_ui(url, port)
        base = f"http://127.0.0.1:{port}"
        print(f"scaletrack ui start-up (command to first answer): {started:.2f} s")
        with urllib.request.urlopen(base + "/api/runs?limit=1&sort=final_loss") as r:
            found = json.loads(r.read())["rows"]
        key = found[0]["run_key"] if found else "none"
        with urllib.request.urlopen(base + "/api/sweeps") as r:
            sweeps = [s["name"] for s in json.loads(r.read())["sweeps"] if s["name"]]
        sweep = "bench" if "bench" in sweeps else (sweeps[0] if sweeps else "")
        hosts = {h: status_of(base + "/api/sweeps", h) for h in (
            "attacker.example", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}")}
        print("Host header -> status: " + ", ".join(f"{h} {c}" for h, c in hosts.items()))
        stop_ui(proc)
        if args.shots:
            print("screenshots:")
            screenshots(url, args.shots, {
                "runs": "#/runs", "runs_grouped": "#/runs?group=N&sort=final_loss",
                "run": f"#/run/{key}", "compare": "#/compare",
                "scaling": f"#/scaling?sweep={sweep}", "emergence": "#/emergence",
                "emergence_lambada": "#/emergence?q=lambada", "ideas": "#/ideas"})
            if args.shots_only:
                return
        print("server answer times (wall, one HTTP client on the same machine):", flush=True)
        answer_times(url, runs, [
            ("sweeps", "/api/sweeps"),
            *runs_page_views(runs),
            ("run detail", f"/api/runs/{key}"),
            ("curve, downsampled to 1000 pts", f"/api/metrics?run={key}&name=train/loss"),
            ("scaling view (power laws, back-test)", f"/api/scaling?sweep={sweep}"),
            ("compute-optimal (Chinchilla fit)", f"/api/optimal?sweep={sweep}"),
            ("emergence, first page", "/api/emergence"),
            ("ideas", "/api/ideas"),
        ])
        proc, _ = start_ui(url, port)
        # a slow answer in flight (a cold Chinchilla fit), then SIGTERM
        fetch = subprocess.Popen(["curl", "-s", "-o", "/dev/null", f"{base}/api/optimal?"
                                  f"sweep={sweep}&fresh=1"])
        time.sleep(0.5)
        print(f"SIGTERM with an answer in flight: gone after {stop_ui(proc):.2f} s")
        fetch.wait()
        if not args.no_browser:
            views = {
                "runs view": ("#/runs", "#runs tr[data-key]"),
                "run view (curve)": (f"#/run/{key}", "#chart-main[data-drawn]"),
                "scaling view (points, fit, bands)": (f"#/scaling?sweep={sweep}",
                                                      "#chart-scaling[data-drawn]"),
                "scaling view, all three charts": (f"#/scaling?sweep={sweep}",
                                                   "#chart-optimal[data-drawn]"),
            }
            proc, _ = start_ui(url, port)
            try:
                loads, inapp = draw_times(base, views)
            finally:
                stop_ui(proc)
            print("headless Chromium, median of 3 (server warm):")
            print(f"  {'view':40s} {'page load':>10s} {'in-app':>8s}")
            for name in views:
                print(f"  {name:40s} {loads[name]:8.2f} s {inapp[name]:6.2f} s")
    finally:
        if args.keep is None and not args.store:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
