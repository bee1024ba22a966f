"""A packed group SIGKILLed mid-training with its sweep (a closed terminal, `docker kill`): the
rerun takes the dead worker's members over at once (no stale wait), resumes every member from
the group's last common checkpoint, and leaves the very metric rows of an uninterrupted sweep."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from reliability.harness import KEYS, grid_toml, metric_rows, start_sweep
from scaletrack.store import Store

TOKENS = 12_800  # 200 steps of 4 x 16 tokens
MEMBERS = 4  # 2 seeds x 2 learning rates of one shape: one packed group


def packed_grid(path: Path) -> Path:
    text = grid_toml("packed", tokens=(TOKENS,), sizes=((1, 2, 16),), checkpoint_every=10,
                     eval_every=20)
    text = text.replace('device = "cpu"\n', 'device = "cpu"\npack = "always"\n')
    text = text.replace("seeds = [0]\nlrs = [0.003]", "seeds = [0, 1]\nlrs = [0.003, 0.01]")
    assert 'pack = "always"' in text and "seeds = [0, 1]" in text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _checkpoints(url: str) -> int:
    try:
        with Store.open(url) as store:
            return len(store.checkpoints())
    except Exception:  # noqa: BLE001 - a store busy being written: ask again
        return 0


@pytest.mark.slow
def test_killed_packed_group_resumes_to_the_uninterrupted_rows(tmp_path: Path,
                                                               figures: dict) -> None:
    ref_url = f"sqlite:///{tmp_path / 'ref' / 'ref.db'}"
    ref = start_sweep(packed_grid(tmp_path / "ref" / "g.toml"), ref_url, workers=1)
    out, err = ref.communicate(timeout=900)
    assert ref.returncode == 0, out + err
    reference = metric_rows(ref_url)

    url = f"sqlite:///{tmp_path / 'kill' / 'kill.db'}"
    grid = packed_grid(tmp_path / "kill" / "g.toml")
    proc = start_sweep(grid, url, workers=1)
    deadline = time.monotonic() + 600
    while _checkpoints(url) < 2 * MEMBERS:  # every member saved twice: mid-training
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.2)
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in family:  # the sweep and its worker, at once
        p.send_signal(signal.SIGKILL)
    proc.communicate()
    with Store.open(url) as store:
        runs = store.runs()
        saved = {k: [c.step for c in store.latest_checkpoints(k)] for k in runs["run_key"]}
    assert len(runs) == MEMBERS and (runs["status"] == "running").all(), runs
    assert len({r.split(":")[1] for r in runs["worker"]}) == 1  # one worker held the group

    again = start_sweep(grid, url, workers=1)
    out, err = again.communicate(timeout=900)
    assert again.returncode == 0, out + err
    assert "Traceback" not in out + err
    assert out.count("is gone; taken over") == MEMBERS, out  # no wait for a stale heartbeat
    with Store.open(url) as store:
        runs = store.runs()
    assert (runs["status"] == "finished").all() and (runs["attempts"] == 2).all(), runs
    assert all(steps and max(steps) < TOKENS // 64 for steps in saved.values()), saved

    got = metric_rows(url)
    assert not got.duplicated(KEYS).any()
    assert got[KEYS].equals(reference[KEYS])
    diff = (got["value"] - reference["value"]).abs().max()
    print(f"\npacked group killed after {min(max(s) for s in saved.values())} steps of "
          f"{TOKENS // 64}; {len(got)} rows compared, max diff {diff:.2e}")
    assert diff <= 1e-6
    figures["kills survived"] = figures.get("kills survived", 0) + 1
    figures["rows compared"] = figures.get("rows compared", 0) + len(got)
