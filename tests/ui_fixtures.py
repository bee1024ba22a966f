"""A store for the dashboard's tests: a small real sweep, the Epoch Chinchilla points imported
through `scaletrack import-csv`, an idea re-checked on the sweep's checkpoints, and a run,
sweep, tag and idea whose names are `<script>alert(1)</script>` (for the escaping test)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from test_sweep_spec import VALID, to_toml
from typer.testing import CliRunner

SCRIPT = "<script>alert(1)</script>"
SWEEP = "ui-sweep"
EPOCH = "epoch-chinchilla"


def build_ui_store(root: Path, shared_data: Path) -> str:
    """Fill a SQLite store under `root`; returns its URL (takes ~10-20 s of CPU)."""
    from scaletrack.analysis import load_epoch_chinchilla
    from scaletrack.cli.main import app
    from scaletrack.evals.ideas import add_idea, check_idea
    from scaletrack.store import RunRecord, Store, make_run_key
    from scaletrack.sweeps.grid import load_grid
    from scaletrack.sweeps.runner import run_sweep

    url = f"sqlite:///{root / 'ui.db'}"
    grid = copy.deepcopy(VALID)
    grid["name"] = SWEEP
    grid["axes"]["tokens"] = [640, 1280, 2560]
    grid["eval"]["tasks"] = ["val_loss"]
    grid_file = root / "grid.toml"
    grid_file.write_text(to_toml(grid))
    report = run_sweep(load_grid(grid_file), url, workers=2)
    assert report.ok, report

    # Epoch's 240-point procedure (their five highest-loss points left out), as published
    epoch = load_epoch_chinchilla(shared_data / "epoch_chinchilla_svg_extracted_data.csv",
                                  drop_highest_loss=5)
    csv = root / "epoch.csv"
    epoch.to_csv(csv, index=False)
    runner = CliRunner()
    done = runner.invoke(app, ["import-csv", str(csv), "--sweep", EPOCH, "--task-cols", "",
                               "--store", url])
    assert done.exit_code == 0, done.output
    with Store.open(url) as store:
        ideas = [
            add_idea(store, "val loss below 4.5 nats", "val_loss", "loss", 4.5, direction="below"),
            add_idea(store, SCRIPT, "val_loss", "loss", 0.5, direction="below"),
        ]
        # each idea re-checked on every run's last checkpoint, smallest compute first
        finals = store.checkpoints(kind="own").sort_values("step").groupby("run_key").tail(1)
        for ckpt_id in finals.sort_values("flops")["id"]:
            for idea_id in ideas:
                check_idea(store, idea_id, int(ckpt_id))
        config = {"name": SCRIPT, "lr": 0.001}
        store.ensure_run(RunRecord(
            run_key=make_run_key(config), sweep=SCRIPT, family="imported", config=config,
            N=1000, N_total=1200, D=20000, C=1.2e8, seed=0, lr=1e-3, status="finished",
            final_loss=3.0, name=SCRIPT,
        ))
        store.tag(run_key=make_run_key(config), add=[SCRIPT, "baseline"])
    return url


def shared_ui_store(tmp_path_factory, shared_data: Path) -> str:  # noqa: ANN001
    """The UI store, built once per test session (each test module asks for it)."""
    root = tmp_path_factory.getbasetemp() / "ui-store"
    done = root / "built"
    if not done.exists():
        root.mkdir(exist_ok=True)
        url = build_ui_store(root, shared_data)
        done.write_text(url)
    return done.read_text()


@contextmanager
def running_ui(store_url: str, *extra: str) -> Iterator[tuple[str, float]]:
    """`scaletrack ui` as a subprocess on a free port: (base URL, seconds until it served)."""
    import subprocess
    import sys
    import time

    from services import free_port, kill_process_tree

    port = free_port()
    exe = Path(sys.executable).with_name("scaletrack")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), "ui", "--store", store_url, "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = proc.stdout.readline()
        startup = time.perf_counter() - t0
        if "serving" not in line:
            rest = proc.stdout.read() if proc.poll() is not None else ""
            raise AssertionError(f"scaletrack ui did not start: {line}{rest}")
        yield f"http://127.0.0.1:{port}", startup
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_process_tree(proc.pid)
