"""A full disk under the store: `sweep run` prints one line naming the store and the cause
(no traceback, no "cannot rollback" mask) and its workers stop. A cell is released where the
store still takes that one small write; on a disk with no byte left it stays marked running
by a worker that is gone, and the next run takes it over at once (no stale wait). Once space
is freed the same command finishes the sweep. The disk is a small tmpfs (needs root to
mount; skipped elsewhere)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.harness import REPO, grid_toml, scaletrack_cmd
from scaletrack.store import Store, StoreError
from scaletrack.sweeps.liveness import holder_is_dead

# SQLite's write-ahead log grows to about 1000 pages (4 MiB) before it is checkpointed, and
# the rerun after space is freed writes every cell's rows: a 2 MiB disk filled up again.
SIZE_KB = 8192


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_KB}k", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_kb: int) -> Path:
    """A filler file leaving about `leave_kb` KiB free on `disk`."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_kb * 1024))
    return filler


def _sweep(grid: Path, url: str, ckpt: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        scaletrack_cmd("sweep", "run", str(grid), "--store", url, "--workers", "2",
                       "--checkpoint-dir", str(ckpt)),
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.slow
def test_full_disk_under_the_store(small_disk: Path, tmp_path: Path, figures: dict) -> None:
    url = f"sqlite:///{small_disk / 'store.db'}"
    grid = tmp_path / "g.toml"
    grid.write_text(grid_toml("full-disk", tokens=(25_600,), checkpoint_every=50,
                              eval_every=20))
    with Store.open(url):
        pass  # the schema fits; the metrics will not
    filler = _fill(small_disk, leave_kb=96)

    proc = _sweep(grid, url, tmp_path / "ckpt")
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in out + err and "cannot rollback" not in out + err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: store {url!r}: ") and "disk is full" in lines[0], lines
    with Store.open(url) as store:
        runs = store.runs()
    for status, worker, hb in zip(runs["status"], runs["worker"], runs["heartbeat_at"],
                                  strict=True):
        assert status != "running" or holder_is_dead(worker, hb.to_pydatetime()), runs
    # the disk fills while the cells train, or already while their run rows are created
    assert runs.empty or (runs["status"] != "finished").any()

    # any other command on the full store: one line too
    with pytest.raises(StoreError, match="disk is full"), Store.open(url) as store:
        store.upsert_sweep("x" * 50, {"big": "y" * 200_000})

    filler.unlink()
    again = _sweep(grid, url, tmp_path / "ckpt")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert "held by live worker" not in again.stdout
    with Store.open(url) as store:
        assert (store.runs()["status"] == "finished").all()
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 2
