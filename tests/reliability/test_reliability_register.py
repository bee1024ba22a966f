"""`checkpoints add` never rewrites a checkpoint a run registered (by its path, a symlink to
it, or a path with `..` in it), is a no-op that says so when the same external checkpoint is
registered again, and refuses FIFOs and devices at once instead of hanging."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reliability.harness import REPO, populate_store, scaletrack_cmd, store_fingerprint
from scaletrack.cli.main import app


@pytest.fixture
def populated(tmp_path: Path) -> dict[str, Any]:
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    return {**populate_store(url, tmp_path / "ckpt"), "url": url, "db": db, "tmp": tmp_path}


def _add(url: str, path: Path | str, *extra: str) -> Any:
    return CliRunner().invoke(app, ["checkpoints", "add", str(path), "--params", "5000000",
                                    "--tokens", "1000000000", "--store", url, *extra])


def test_a_runs_checkpoint_cannot_be_reregistered(populated: dict, figures: dict) -> None:
    own: Path = populated["checkpoint_path"]
    link = populated["tmp"] / "link.safetensors"
    link.symlink_to(own)
    dotted = own.parent / ".." / own.parent.name / own.name
    before = store_fingerprint(populated["db"])
    for variant in (own, link, dotted):
        result = _add(populated["url"], variant)
        assert result.exit_code == 1, result.output
        line = result.output.strip()
        assert line.startswith("error: ") and "already registered as checkpoint" in line, line
        assert "run run-0 step 100" in line and len(line.splitlines()) == 1, line
        assert store_fingerprint(populated["db"]) == before
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 3


def test_registering_the_same_external_checkpoint_twice_is_a_noop(
    populated: dict, figures: dict
) -> None:
    ext = populated["tmp"] / "ext.bin"
    ext.write_bytes(b"weights" * 100)
    first = _add(populated["url"], ext)
    assert first.exit_code == 0 and "registered checkpoint" in first.output, first.output
    before = store_fingerprint(populated["db"])
    again = _add(populated["url"], ext)
    assert again.exit_code == 0 and "nothing changed" in again.output, again.output
    other_n = CliRunner().invoke(app, ["checkpoints", "add", str(ext), "--params", "7",
                                       "--tokens", "1", "--store", populated["url"]])
    assert other_n.exit_code == 1 and "refusing to replace" in other_n.output
    ext.write_bytes(b"other weights")
    changed = _add(populated["url"], ext)
    assert changed.exit_code == 1 and "different content" in changed.output, changed.output
    assert store_fingerprint(populated["db"]) == before
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 3


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dev-null"])
def test_fifo_and_devices_are_refused_at_once(populated: dict, kind: str,
                                              figures: dict) -> None:
    if kind == "fifo":
        target = populated["tmp"] / "pipe"
        os.mkfifo(target)
    else:
        target = Path("/dev/zero" if kind == "dev-zero" else "/dev/null")
    before = store_fingerprint(populated["db"])
    # a subprocess with a timeout: a regression would hang forever, not fail
    proc = subprocess.run(
        scaletrack_cmd("checkpoints", "add", str(target), "--params", "10", "--tokens", "10",
                       "--store", populated["url"]),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip() == f"error: checkpoint path {target} is not a regular file or " \
                                  "a folder", proc.stderr
    assert store_fingerprint(populated["db"]) == before
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1
