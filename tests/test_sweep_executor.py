"""Executor pieces that need no training: thread and GPU split, the protocol, the display."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from test_sweep_spec import VALID, to_toml

from scaletrack.errors import ConfigError
from scaletrack.sweeps.executors import (
    CellDone,
    CellProgress,
    CellStarted,
    Executor,
    ExecutorNote,
    WorkerLost,
)
from scaletrack.sweeps.executors.local import LocalExecutor, gpu_for_worker, threads_per_worker
from scaletrack.sweeps.executors.registry import make_executor
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import SweepDisplay, cell_task, default_checkpoint_root


def test_threads_are_split_between_workers() -> None:
    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(16, cores=8) == 1


def test_one_gpu_per_worker_only_for_plain_cuda_on_several_gpus() -> None:
    assert [gpu_for_worker(i, "cuda", ["0", "1"]) for i in range(4)] == ["0", "1", "0", "1"]
    assert gpu_for_worker(0, "cuda", ["3"]) is None
    assert gpu_for_worker(1, "cpu", ["0", "1"]) is None
    assert gpu_for_worker(1, "cuda:1", ["0", "1"]) is None


def test_make_executor() -> None:
    local = make_executor("local", workers=3)
    assert isinstance(local, LocalExecutor) and isinstance(local, Executor)
    assert local.workers == 3
    with pytest.raises(ConfigError, match="unknown executor"):
        make_executor("pbs", workers=1)


def test_default_checkpoint_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_checkpoint_root(f"sqlite:///{tmp_path}/a/s.db") == (
        tmp_path / "a" / "scaletrack-checkpoints"
    )
    monkeypatch.chdir(tmp_path)
    assert default_checkpoint_root("postgresql+psycopg://u@h/db") == (
        tmp_path / "scaletrack-checkpoints"
    )


@pytest.mark.parametrize("terminal", [True, False])
def test_display_renders_every_event(tmp_path: Path, terminal: bool) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(to_toml(VALID))
    grid = load_grid(path)
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=120)
    cells = list(grid.cells)
    a, b = cells[0].run_key, cells[1].run_key
    assert cell_task(cells[0]).steps == cells[0].steps
    with SweepDisplay(grid, cells, already_done=0, console=console) as show:
        show(CellStarted(a, "w0"))
        show(CellProgress(a, 3, cells[0].steps))
        show(CellDone(a, "w0", "finished", final_loss=3.2146, wall_s=1.5))
        show(CellStarted(b, "w0"))
        show(WorkerLost("w0", -9, b))
        show(CellDone(b, "w0", "crashed", message="worker died"))
        show(ExecutorNote("starting a replacement worker"))
        show(CellDone(cells[2].run_key, "w1", "skipped", message="already finished"))
    text = out.getvalue()
    assert "3.215" in text  # the loss by the one number rule (four significant digits)
    assert "worker w0 died" in text and "crashed" in text
    assert "replacement worker" in text and "already finished" in text
