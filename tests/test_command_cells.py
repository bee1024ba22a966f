"""Command cells: a grid runs the user's own program per cell (examples/byo_trainer/train.py).

The slow test runs a 4-cell command grid, SIGKILLs one cell's program after its first
checkpoint, resumes it with a second `sweep run` and compares every metric row with an
uninterrupted run of the same grid in another store.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.store import Store
from scaletrack.sweeps.command import log_dir
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import default_checkpoint_root, run_sweep

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "byo_trainer" / "train.py"

GRID = """
name = "{name}"
[data]
corpus = "stdlib"
context = 16
[model]
family = "gpt"
sizes = [ {{ n_layer = 1, n_head = 2, d_model = 16 }}, {{ n_layer = 1, n_head = 2, d_model = 32 }} ]
[axes]
tokens = [1280, 2560]
[train]
batch_size = 8
command = '''{command}'''
[executor]
workers = 1
"""


def write_grid(path: Path, command: str, name: str = "cmd") -> Path:
    path.write_text(GRID.format(name=name, command=command))
    return path


def example_command(sleep: float) -> str:
    return (f"python {EXAMPLE} --sweep {{sweep}} --n_layer {{n_layer}} --n_head {{n_head}} "
            f"--d_model {{d_model}} --context {{context}} --batch_size {{batch_size}} "
            f"--tokens {{tokens}} --lr {{lr}} --seed {{seed}} --eval_every 4 --ckpt_every 4 "
            f"--sleep {sleep}")


def test_unknown_placeholder_is_one_line_naming_the_field(tmp_path: Path) -> None:
    grid = write_grid(tmp_path / "g.toml", "python train.py --width {width}")
    with pytest.raises(ConfigError) as err:
        load_grid(grid)
    message = str(err.value)
    assert "train.command" in message and "{width}" in message and "\n" not in message


def test_command_line_is_filled_per_cell_and_part_of_the_key(tmp_path: Path) -> None:
    a = load_grid(write_grid(tmp_path / "a.toml", "python t.py --d {d_model} --D {tokens}"))
    b = load_grid(write_grid(tmp_path / "b.toml", "python u.py --d {d_model} --D {tokens}"))
    commands = sorted(c.command for c in a.cells)
    assert commands[0] == "python t.py --d 16 --D 1280"
    assert {c.workdir for c in a.cells} == {str(tmp_path.resolve())}
    assert not {c.run_key for c in a.cells} & {c.run_key for c in b.cells}


def test_failing_command_marks_the_cell_failed_with_its_stderr(tmp_path: Path) -> None:
    program = tmp_path / "boom.py"
    program.write_text(
        "import os, sys\n"
        "print('run', os.environ['SCALETRACK_RUN'], os.environ['SCALETRACK_CHECKPOINT_DIR'])\n"
        "print('first problem', file=sys.stderr)\n"
        "print('ValueError: the real reason', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    grid = load_grid(write_grid(tmp_path / "g.toml", "python boom.py {d_model}"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    report = run_sweep(grid, url)
    assert report.count("failed") == 4 and not report.ok
    with Store.open(url) as store:
        runs = store.runs()
    assert set(runs["status"]) == {"failed"}
    error = runs["error"].iloc[0]
    assert error.startswith("command exited with code 3")
    assert "ValueError: the real reason" in error and "first problem" in error
    key = runs["run_key"].iloc[0]
    log = (log_dir(default_checkpoint_root(url), key) / "command.log").read_text()
    assert f"run {key}" in log and "the real reason" in log and "exit code 3" in log
    result = CliRunner().invoke(app, ["logs", key[:8], "--store", url, "--tail", "2"])
    assert result.exit_code == 0, result.output
    assert "exit code 3" in result.output and "first problem" not in result.output


def _metrics(url: str) -> pd.DataFrame:
    with Store.open(url) as store:
        df = store.metrics()
    cols = ["run_key", "name", "step", "value", "tokens"]
    return df[cols].sort_values(cols[:3]).reset_index(drop=True)


def _sweep_run(grid: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scaletrack.cli.main", "sweep", "run", str(grid), "--store", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _program_of(parent: psutil.Process, run_key: str) -> psutil.Process | None:
    for proc in parent.children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
            if (proc.environ().get("SCALETRACK_RUN") == run_key and "train.py" in cmdline
                    and "cell_guard.py" not in cmdline):  # the program, not its guardian
                return proc
        except psutil.Error:
            continue
    return None


@pytest.mark.slow
def test_killed_command_cell_resumes_with_equal_metric_rows(tmp_path: Path) -> None:
    grid_file = write_grid(tmp_path / "grid.toml", example_command(sleep=0.15))
    cells = load_grid(grid_file).cells
    target = cells[-1]  # the largest cell runs last: 20 steps, checkpoints every 4
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    killed_dir.mkdir()
    clean_dir.mkdir()
    killed_url = f"sqlite:///{killed_dir / 's.db'}"
    clean_url = f"sqlite:///{clean_dir / 's.db'}"

    sweep = _sweep_run(grid_file, killed_url)
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.1)
        if not (killed_dir / "s.db").exists():
            continue
        with Store.open(killed_url) as store:
            run = store.get_run(target.run_key)
            ckpts = store.latest_checkpoints(target.run_key)
        if run is not None and run.status == "running" and ckpts and ckpts[0].step >= 4:
            victim = _program_of(psutil.Process(sweep.pid), target.run_key)
            if victim is not None:
                victim.send_signal(signal.SIGKILL)
    output = sweep.communicate(timeout=600)[0]
    assert victim is not None, output
    with Store.open(killed_url) as store:
        run = store.get_run(target.run_key)
        assert run.status == "failed", output
        assert "killed by SIGKILL" in run.error
        kept = store.latest_checkpoints(target.run_key)[0].step
        assert 4 <= kept < target.steps
        assert set(store.runs()["status"]) == {"finished", "failed"}

    resumed = _sweep_run(grid_file, killed_url)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "1 finished" in output, output
    log = (log_dir(default_checkpoint_root(killed_url), target.run_key) / "command.log")
    text = log.read_text()
    assert f"resumed from {killed_dir}" in text and f"at step {kept}" in text

    clean = _sweep_run(grid_file, clean_url)
    output = clean.communicate(timeout=600)[0]
    assert clean.returncode == 0, output

    with Store.open(killed_url) as store:
        runs = store.runs()
        assert set(runs["status"]) == {"finished"}
        assert int(runs.set_index("run_key").loc[target.run_key, "attempts"]) == 2
    a, b = _metrics(killed_url), _metrics(clean_url)
    assert len(a) == len(b) > 0
    assert len(a[a["run_key"] == target.run_key]) == len(b[b["run_key"] == target.run_key])
    pd.testing.assert_frame_equal(a, b, check_exact=True)
