"""A checkpoint folder whose files come and go while it is hashed (a database's -shm and
-journal files, a save in progress) is one line naming the folder, never a traceback; a folder
left alone hashes the same every time."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import DataError
from scaletrack.models.checkpoint import file_sha256
from scaletrack.store import Store

runner = CliRunner()
ATTEMPTS = 40


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ckpt"
    (folder / "shards").mkdir(parents=True)
    for i in range(300):
        (folder / "shards" / f"part{i:04d}.bin").write_bytes(os.urandom(1000) + bytes([i % 256]))
    return folder


@contextmanager
def _churning(folder: Path) -> Iterator[None]:
    """Another program's scratch files appear and vanish in `folder` until the block ends."""
    stop = threading.Event()

    def churn() -> None:
        k = 0
        while not stop.is_set():
            scratch = folder / f"store.db-shm{k % 40}"
            scratch.write_bytes(b"x" * 100)
            scratch.unlink()
            k += 1

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_hashing_a_changing_folder_is_one_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    stable = file_sha256(folder)
    refused: list[str] = []
    with _churning(folder):
        for _ in range(ATTEMPTS):
            try:
                digest = file_sha256(folder)
            except DataError as exc:
                refused.append(str(exc))
            else:  # the scratch files were absent both times: the folder's own bytes
                assert digest == stable
    assert refused, "the folder never changed while it was hashed"
    for text in refused:
        assert text.startswith(f"checkpoint {folder} changed while it was hashed")
        assert "\n" not in text
    assert file_sha256(folder) == stable


def test_checkpoints_add_of_a_changing_folder_is_one_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    failed = None
    with _churning(folder):
        for _ in range(ATTEMPTS):
            res = runner.invoke(app, ["checkpoints", "add", str(folder), "--params", "1e9",
                                      "--tokens", "1e9", "--store", url])
            assert res.exit_code in (0, 1) and "Traceback" not in res.output, res.output
            if res.exit_code == 1:
                failed = res.output
                break
    assert failed is not None, "the folder never changed while it was hashed"
    assert failed.startswith("error: checkpoint ") and "changed while it was hashed" in failed
    assert len(failed.strip().splitlines()) == 1
    with Store.open(url) as store:
        assert len(store.checkpoints()) <= 1  # only an earlier attempt that saw no change
