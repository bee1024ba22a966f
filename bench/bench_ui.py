"""Dashboard benchmark: a store of 1,000 runs and 2M metric rows; `scaletrack ui` start-up,
server answer times of the JSON API (runs view, a run's curve, the scaling view, cold and
warm) and the draw time of each view in headless Chromium. Prints figures; asserts nothing.

Targets (issue): runs view and a scaling view answer in < 300 ms and draw in < 2 s.
Needs Debian's `chromium` (/usr/bin/chromium) and `pip install playwright` for the draw times.

Run: .venv/bin/python bench/bench_ui.py [--runs 1000] [--steps 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.store import RunRecord, Store, make_run_key

CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage")


def build_store(path: Path, runs: int, steps: int) -> tuple[str, float]:
    """`runs` finished runs on a grid of N x D x seed with Chinchilla-like final losses and one
    `train/loss` curve of `steps` rows each, written with Store.write_metrics."""
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(0)
    n_sizes = max(1, round(runs ** (1 / 3)))
    sizes = np.geomspace(1e6, 1e9, n_sizes)
    budgets = np.geomspace(1e8, 1e11, n_sizes)
    t0 = time.perf_counter()
    with Store.open(url) as store:
        store.upsert_sweep("bench", {"runs": runs})
        keys = []
        for i in range(runs):
            n = float(sizes[i % n_sizes])
            d = float(budgets[(i // n_sizes) % n_sizes])
            seed = i // (n_sizes * n_sizes)
            loss = 1.8 + 480 / n**0.34 + 2100 / d**0.37
            config = {"i": i, "N": n, "D": d, "seed": seed, "lr": 3e-4}
            key = make_run_key(config)
            store.ensure_run(RunRecord(
                run_key=key, sweep="bench", family="gpt", config=config, N=int(n),
                N_total=int(n * 1.1), D=int(d), C=6 * n * d, seed=seed, lr=3e-4,
                status="finished", final_loss=float(loss * np.exp(rng.normal(0, 0.01))),
            ))
            keys.append(key)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000, help="metric rows per run")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-ui-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench-ui.db"
    if db.exists():
        url = f"sqlite:///{db}"
        with Store.open(url) as store:
            rows = store.count_metrics()
        print(f"store: reusing {db} ({rows:,} metric rows)")
    else:
        url, seconds, rows = build_store(db, args.runs, args.steps)
        print(f"store: {args.runs:,} runs, {rows:,} metric rows written in {seconds:.1f} s "
              f"({db.stat().st_size / 1e6:.0f} MB)")

    port = free_port()
    exe = Path(sys.executable).with_name("scaletrack")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), "ui", "--store", url, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        get(base + "/api/info")
        print(f"scaletrack ui start-up (command to first answer): "
              f"{time.perf_counter() - t0:.2f} s  [{line.strip()}]")
        with urllib.request.urlopen(base + "/api/runs?limit=1&sort=final_loss") as r:
            key = json.loads(r.read())["rows"][0]["run_key"]
        print("server answer times (wall, measured by an HTTP client on the same machine):")
        for label, path in (
            ("runs view, page of 50", "/api/runs?limit=50"),
            ("runs view, sorted + grouped by N", "/api/runs?limit=50&sort=final_loss&group=N"),
            ("runs view, config filter", "/api/runs?limit=50&where=seed%3D0"),
            ("run detail", f"/api/runs/{key}"),
            ("curve, downsampled to 1000 pts", f"/api/metrics?run={key}&name=train/loss"),
            ("scaling view (fits cold, then cached)", "/api/scaling?sweep=bench"),
            ("compute-optimal (Chinchilla fit, cold)", "/api/optimal?sweep=bench"),
        ):
            print(f"  {label:40s} {timed(base + path)}")
        views = {
            "runs view": ("#/runs", "#runs tr[data-key]"),
            "run view (curve)": (f"#/run/{key}", "#chart-main[data-drawn]"),
            "scaling view (1,000 points, fit, bands)": ("#/scaling?sweep=bench",
                                                        "#chart-scaling[data-drawn]"),
            "scaling view, all three charts": ("#/scaling?sweep=bench",
                                               "#chart-optimal[data-drawn]"),
        }
        loads, inapp = draw_times(base, views)
        print("headless Chromium, median of 3 (server warm):")
        print(f"  {'view':40s} {'page load':>10s} {'in-app':>8s}")
        for name in views:
            print(f"  {name:40s} {loads[name]:8.2f} s {inapp[name]:6.2f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
