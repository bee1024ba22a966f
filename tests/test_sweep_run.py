"""`sweep run` end to end on CPU: a 2x2 grid finishes, a second run trains nothing, a worker
killed with SIGKILL (or a Ctrl-C) is resumed with no lost and no duplicated metric rows."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_sweep_spec import VALID, to_toml
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.store import Store
from scaletrack.sweeps.runner import default_checkpoint_root
from scaletrack.workflows import load_grid, run_sweep

REPO = Path(__file__).resolve().parents[1]


def write_grid(path: Path, **changes) -> Path:
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        section, field = key.split("__")
        data[section][field] = value
    path.write_text(to_toml(data))
    return path


def metric_keys(url: str) -> pd.DataFrame:
    with Store.open(url) as store:
        df = store.metrics()
    return df[["run_key", "name", "step", "value"]].sort_values(["run_key", "name", "step"])


def test_two_by_two_grid_finishes_then_rerun_trains_nothing(tmp_path: Path) -> None:
    grid_file = write_grid(tmp_path / "grid.toml", eval__tasks=["val_loss"])
    url = f"sqlite:///{tmp_path / 'store.db'}"
    grid = load_grid(grid_file)
    report = run_sweep(grid, url, workers=2)
    assert report.ok, report
    assert report.count("finished") == 4 and report.lost_workers == 0
    assert all(not r.eval_errors for r in report.results)

    with Store.open(url) as store:
        runs = store.runs(sweep="spec-test")
        assert sorted(runs["status"]) == ["finished"] * 4
        assert runs["final_loss"].between(0.5, 6.0).all()
        n_metrics = store.count_metrics()
        assert n_metrics > 0
        for key in runs["run_key"]:
            assert store.latest_checkpoints(key), f"no checkpoint for {key}"
        evals = store.evals(task="val_loss")  # the grid's eval task ran on each final checkpoint
        assert sorted(evals["run_key"]) == sorted(runs["run_key"])
    root = default_checkpoint_root(url)
    assert root == tmp_path / "scaletrack-checkpoints"
    assert {p.name for p in (root / "spec-test").iterdir()} == set(runs["run_key"])

    # the same grid again: nothing to train, no new metric rows, quick (no workers started)
    t0 = time.monotonic()
    result = CliRunner().invoke(app, ["sweep", "run", str(grid_file), "--store", url])
    assert result.exit_code == 0, result.output
    assert "nothing to train" in result.output
    assert time.monotonic() - t0 < 20
    again = run_sweep(grid, url, workers=2)
    assert again.trained == 0 and again.already_done == 4 and again.results == ()
    with Store.open(url) as store:
        assert store.count_metrics() == n_metrics
        assert (store.runs(sweep="spec-test")["attempts"] == 1).all()

    status = CliRunner().invoke(app, ["sweep", "status", "spec-test", "--store", url])
    assert status.exit_code == 0, status.output
    assert "4 finished" in status.output
    key = runs["run_key"].iloc[0]
    plot = tmp_path / "curve.png"
    show = CliRunner().invoke(app, ["show", key[:8], "--store", url, "--plot", str(plot)])
    assert show.exit_code == 0, show.output
    assert "val/loss" in show.output and '"tokens"' in show.output
    assert plot.stat().st_size > 1000
    missing = CliRunner().invoke(app, ["sweep", "status", "nope", "--store", url])
    assert missing.exit_code == 1 and "no sweep named 'nope'" in missing.output


def test_cell_held_by_a_live_worker_is_left_alone_until_stale(tmp_path: Path) -> None:
    grid = load_grid(write_grid(tmp_path / "grid.toml", axes__tokens=[640]))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    held = grid.cells[0]
    with Store.open(url) as store:
        store.ensure_run(held.record())
        assert store.claim_run(held.run_key, "elsewhere:1:0")
    report = run_sweep(grid, url, workers=1)
    outcome = {r.run_key: r for r in report.results}
    assert outcome[held.run_key].status == "skipped"
    assert "held by live worker elsewhere:1:0" in (outcome[held.run_key].message or "")
    assert outcome[grid.cells[1].run_key].status == "finished"
    assert not report.ok
    time.sleep(1.5)  # the other worker's heartbeat is now older than stale_after_s
    again = run_sweep(grid, url, workers=1, stale_after_s=1.0)
    assert [(r.run_key, r.status) for r in again.results] == [(held.run_key, "finished")]
    assert again.ok


# ------------------------------------------------------------------------ interruptions

LONG = {"axes__tokens": [3200, 6400], "eval__every": 10, "checkpoint__every": 10}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Metric rows of the long grid run without interruption (one worker)."""
    tmp = tmp_path_factory.mktemp("reference")
    grid = load_grid(write_grid(tmp / "grid.toml", **LONG))
    url = f"sqlite:///{tmp / 'ref.db'}"
    report = run_sweep(grid, url, workers=1)
    assert report.ok
    return metric_keys(url)


def start_sweep(grid_file: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scaletrack.cli.main", "sweep", "run", str(grid_file),
         "--store", url, "--workers", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_checkpointed_cell(url: str, proc: subprocess.Popen, timeout: float = 240.0):
    """The first running cell that has a checkpoint before its last step: (run_key, worker)."""
    deadline = time.monotonic() + timeout
    with Store.open(url) as store:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            try:
                running = store.runs(status="running")
            except Exception:  # noqa: BLE001 - schema being created by the sweep process
                running = pd.DataFrame()
            for row in running.itertuples():
                steps = -(-int(row.D) // (4 * 16))
                ckpts = store.latest_checkpoints(row.run_key)
                if ckpts and 0 < ckpts[0].step < steps - 20:
                    return row.run_key, row.worker
            time.sleep(0.1)
    raise AssertionError("no cell reached a checkpoint in time")


def assert_same_rows(url: str, reference: pd.DataFrame) -> None:
    got = metric_keys(url)
    keys = ["run_key", "name", "step"]
    assert not got.duplicated(keys).any()
    assert len(got) == len(reference)
    merged = reference.merge(got, on=keys, how="outer", suffixes=("_ref", "_got"),
                             indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    losses = merged[merged["name"].isin(["train/loss", "val/loss"])]
    assert (losses["value_ref"] - losses["value_got"]).abs().max() < 1e-4


@pytest.mark.slow
def test_sigkilled_worker_is_resumed_without_lost_or_duplicated_rows(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    grid_file = write_grid(tmp_path / "grid.toml", **LONG)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    proc = start_sweep(grid_file, url)
    try:
        key, worker = wait_for_checkpointed_cell(url, proc)
        os.kill(int(worker.split(":")[1]), signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err  # one cell crashed; the rest finished
    assert "died" in out and "Traceback" not in out + err
    with Store.open(url) as store:
        runs = store.runs().set_index("run_key")
    assert runs.loc[key, "status"] == "failed"  # released at once, not left "running"
    assert (runs.drop(index=key)["status"] == "finished").all()  # a new worker took the rest

    report = run_sweep(load_grid(grid_file), url, workers=1)
    assert report.ok and report.trained == 1
    (resumed,) = report.results
    assert resumed.run_key == key and resumed.resumed_from_step is not None
    assert resumed.resumed_from_step > 0
    assert_same_rows(url, reference)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    grid_file = write_grid(tmp_path / "grid.toml", **LONG)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    proc = start_sweep(grid_file, url)
    try:
        key, worker = wait_for_checkpointed_cell(url, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "interrupted" in out and "Traceback" not in out + err
    worker_pid = int(worker.split(":")[1])
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)  # the worker is gone
    with Store.open(url) as store:
        run = store.get_run(key)
    assert run is not None and run.status == "failed" and run.worker is not None

    report = run_sweep(load_grid(grid_file), url, workers=1)
    assert report.ok
    resumed = {r.run_key: r for r in report.results}
    assert resumed[key].resumed_from_step and resumed[key].resumed_from_step > 0
    assert_same_rows(url, reference)


@pytest.mark.slow
def test_demo_steps_run_end_to_end_on_a_small_grid(tmp_path: Path) -> None:
    from rich.console import Console

    from scaletrack.demo import run_demo

    data = copy.deepcopy(VALID)
    data["name"] = "demo"
    data["model"]["sizes"].append({"n_layer": 2, "n_head": 2, "d_model": 32})
    data["axes"]["tokens"] = [640, 1280]
    console = Console(record=True, width=120)
    outcome = run_demo(tmp_path / "demo", workers=2, console=console, grid_toml=to_toml(data))
    assert outcome.report.ok and outcome.report.trained == 6
    assert len(outcome.points) == 6
    assert "compute" in outcome.fits
    # a 6-point Chinchilla fit may fail; then the demo says why and goes on
    assert "chinchilla" in outcome.fits or any("fit chinchilla" in s for s in outcome.skipped)
    assert (tmp_path / "demo" / "scaletrack.db").exists()
    assert (tmp_path / "demo" / "loss_vs_compute.png").exists()
    assert outcome.idea is not None and "not-yet" in outcome.idea
    # the sweep re-checked the "not yet" idea each time a larger checkpoint appeared
    assert outcome.attempts is not None and len(outcome.attempts) >= 2
    assert outcome.attempts["flops"].is_monotonic_increasing
    assert not outcome.attempts["passed"].any()
    with Store.open(outcome.store_url) as store:
        assert len(store.fits()) == len(outcome.fits)
    text = console.export_text()
    assert "demo done" in text and "fit compute" in text
