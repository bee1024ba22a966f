"""A failing command cell's stored error is small: the last lines of its stderr, `\\r` progress
bars collapsed and control characters dropped, from at most the last 64 KB; the full output
stays in logs/command.log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.store import Store
from scaletrack.sweeps.command import MESSAGE_LINE_CHARS, STDERR_KEEP_BYTES, StderrTail, log_dir
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import default_checkpoint_root, run_sweep


def collapsed(*chunks: bytes) -> StderrTail:
    tail = StderrTail()
    for chunk in chunks:
        tail.feed_bytes(chunk)
    tail.feed_bytes(b"", final=True)
    return tail


def test_carriage_returns_keep_the_last_state_of_each_line() -> None:
    tail = collapsed(b"epoch 1\n", b" 10%|#   |\r 50%|#####", b"|\r100%|##########|\n",
                     b"done\r\n", b"Traceback (most recent call last):\nValueError: bad\n")
    assert tail.lines() == ["epoch 1", "100%|##########|", "done",
                            "Traceback (most recent call last):", "ValueError: bad"]


def test_chunk_boundaries_do_not_matter() -> None:
    data = "a\r\nb\rc\n  ü 42%\r\x1b[31mRuntimeError: ü\x1b[0m\x07\tx\r".encode()
    whole = collapsed(data).lines()
    bytewise = collapsed(*(data[i:i + 1] for i in range(len(data)))).lines()
    # a \r at the very end rewrites nothing: the line keeps its last text
    assert whole == bytewise == ["a", "c", "RuntimeError: ü\tx"]


def test_a_two_megabyte_progress_bar_is_one_short_line() -> None:
    bar = b"".join(b"\rstep %7d/100000 loss 1.234" % i for i in range(100_000))
    assert len(bar) > 2_000_000
    tail = collapsed(bar[:1_000_001], bar[1_000_001:], b"\nOOM\n")
    assert tail.lines() == ["step   99999/100000 loss 1.234", "OOM"]


def test_memory_and_text_stay_bounded() -> None:
    tail = StderrTail()
    for i in range(20_000):
        tail.feed(f"line {i} " + "x" * 100 + "\n")
    tail.feed("y" * 1_000_000)  # an endless last line without any line break
    assert len(tail.text().encode()) <= STDERR_KEEP_BYTES
    assert sum(len(x) for x in tail._lines) <= STDERR_KEEP_BYTES
    last = tail.last(3)
    assert len(last) == 3 and all(len(x) <= MESSAGE_LINE_CHARS for x in last)
    assert last[-1].endswith("…") and last[0].startswith("line 19998")


GRID = """
name = "noisy"
[axes]
tokens = [1000]
[train]
command = "python noisy.py"
"""

NOISY = r'''
import sys
for i in range(100_000):  # a 2.9 MB tqdm-like bar, no newline until the end
    sys.stderr.write(f"\r{i * 100 // 99_999:3d}%|{'#' * (i // 10_000):<10}| {i}/99999")
sys.stderr.write("\n\x1b[31mRuntimeError: the real reason\x1b[0m\x07\n")
sys.exit(1)
'''


@pytest.mark.slow
def test_stored_error_of_a_progress_bar_is_small(tmp_path: Path) -> None:
    (tmp_path / "noisy.py").write_text(NOISY)
    (tmp_path / "grid.toml").write_text(GRID)
    url = f"sqlite:///{tmp_path / 's.db'}"
    report = run_sweep(load_grid(tmp_path / "grid.toml"), url)
    assert report.count("failed") == 1
    with Store.open(url) as store:
        run = store.runs().iloc[0]
    error = run["error"]
    assert error == ("command exited with code 1: 100%|######### | 99999/99999 | "
                     "RuntimeError: the real reason")
    log = log_dir(default_checkpoint_root(url), run["run_key"]) / "command.log"
    assert log.stat().st_size > 2_000_000  # the whole output stays in the log
    runner = CliRunner()
    shown = runner.invoke(app, ["show", run["run_key"], "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "the real reason" in shown.output and len(shown.output) < 4000
    listed = runner.invoke(app, ["runs", "--json", "--store", url])
    assert listed.exit_code == 0 and len(listed.output) < 4000
    assert json.loads(listed.output)[0]["error"] == error
