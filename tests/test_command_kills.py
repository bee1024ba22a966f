"""A `bash -c` command cell survives SIGKILLs of the whole sweep: after each kill no process of
the cell is left (psutil), re-running finishes the grid, and its metric rows equal those of an
uninterrupted run of the same grid in another store, row for row; no row came from a writer
whose claim was gone (the program adopts the cell's claim; a stale one is refused)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from scaletrack.store import Store
from scaletrack.sweeps.command import log_dir
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import default_checkpoint_root

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux guardian")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "byo_trainer" / "train.py"
KILLS = 5

GRID = r'''
name = "kills"
[model]
sizes = [ {{ n_layer = 1, n_head = 2, d_model = 16 }},
          {{ n_layer = 1, n_head = 2, d_model = 32 }} ]
[axes]
tokens = [1280, 2560]
[train]
command = """bash -c 'python {example} --sweep {{sweep}} \
  --n_layer {{n_layer}} --n_head {{n_head}} --d_model {{d_model}} --context 16 --batch_size 8 \
  --tokens {{tokens}} --lr 0.001 --seed 0 --eval_every 4 --ckpt_every 4 --sleep 0.1'"""
'''


def _sweep(grid: Path, url: str) -> subprocess.Popen:
    """`sweep run` in a process group of its own (the one each kill hits)."""
    return subprocess.Popen(
        [sys.executable, "-m", "scaletrack.cli.main", "sweep", "run", str(grid), "--store", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def _cell_processes(url: str, group: int | None = None) -> list[psutil.Process]:
    """Live processes of the cells of store `url` (the guardian, bash, the trainer and
    anything they started carry SCALETRACK_STORE) and of process group `group`."""
    out = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("SCALETRACK_STORE") == url or (
                group is not None and os.getpgid(proc.pid) == group
            ):
                out.append(proc)
        except (psutil.Error, OSError):
            continue
    return out


def _progress(store: Store) -> tuple[int, int]:
    """(metric rows, checkpoints) in the store now."""
    return store.count_metrics(), len(store.checkpoints())


def _metrics(url: str) -> pd.DataFrame:
    with Store.open(url) as store:
        df = store.metrics()
    cols = ["run_key", "name", "step", "value", "tokens"]
    return df[cols].sort_values(cols[:3]).reset_index(drop=True)


@pytest.mark.slow
def test_sigkill_of_the_sweep_group_leaves_no_cell_process_and_rows_equal(
    tmp_path: Path,
) -> None:
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(GRID.format(example=EXAMPLE))
    keys = [c.run_key for c in load_grid(grid_file).cells]
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    killed_dir.mkdir()
    clean_dir.mkdir()
    url = f"sqlite:///{killed_dir / 's.db'}"
    clean_url = f"sqlite:///{clean_dir / 's.db'}"

    kills = 0
    moments: list[str] = []
    while kills < KILLS:
        with Store.open(url) as store:
            before = _progress(store)
        sweep = _sweep(grid_file, url)
        # a random moment of a cell's life: while its program starts, while it trains (rows
        # written in this attempt) or just after it saved a checkpoint; then up to 1 s more
        phase = rng.choice(["start", "training", "training", "checkpoint"])
        deadline = time.monotonic() + 300
        while sweep.poll() is None and time.monotonic() < deadline:
            if phase == "start" and _cell_processes(url):
                break
            if phase != "start" and (killed_dir / "s.db").exists():
                with Store.open(url) as store:
                    rows, ckpts = _progress(store)
                if (rows > before[0]) if phase == "training" else (ckpts > before[1]):
                    break
            time.sleep(0.05)
        if sweep.poll() is not None:  # finished before the moment came: nothing left to kill
            break
        delay = rng.uniform(0.0, 1.0)
        time.sleep(delay)
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.communicate(timeout=60)
        kills += 1
        with Store.open(url) as store:
            moments.append(f"{phase}+{delay:.2f}s: rows {_progress(store)[0]}, " + ", ".join(
                f"{r.status}" for r in (store.get_run(k) for k in keys) if r is not None))
        deadline = time.monotonic() + 10
        left = _cell_processes(url, group=sweep.pid)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = _cell_processes(url, group=sweep.pid)
        assert left == [], (seed, moments, [(p.pid, p.cmdline()) for p in left])
    assert kills == KILLS, (seed, moments)

    final = _sweep(grid_file, url)
    output = final.communicate(timeout=600)[0]
    assert final.returncode == 0, (seed, moments, output)
    assert _cell_processes(url) == []
    clean = _sweep(grid_file, clean_url)
    output = clean.communicate(timeout=600)[0]
    assert clean.returncode == 0, output

    with Store.open(url) as store:
        runs = store.runs()
        assert set(runs["status"]) == {"finished"} and len(runs) == 4, runs
    a, b = _metrics(url), _metrics(clean_url)
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # no program ever wrote with a claim that was gone, nor was one refused
    root = default_checkpoint_root(url)
    for key in keys:
        log = (log_dir(root, key) / "command.log").read_text()
        for sign in ("ClaimLost", "no longer stands", "lost its claim", "RunBusyError"):
            assert sign not in log, (seed, key, sign)
    print(f"seed {seed}; kills at {moments}")
