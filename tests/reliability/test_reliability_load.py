"""Load: 8 writer processes log metrics through MetricWriter into one SQLite store for a
sustained period while readers query it; no lock errors, no row lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.harness import run_load

WRITERS, READERS, SECONDS = 8, 2, 20.0


@pytest.mark.slow
def test_concurrent_writers_and_readers_lose_nothing(tmp_path: Path, figures: dict) -> None:
    result = run_load(f"sqlite:///{tmp_path / 'load.db'}", writers=WRITERS, readers=READERS,
                      seconds=SECONDS)
    print(f"load: {result.writers} writers + {result.readers} readers for {result.seconds:.0f}s: "
          f"{result.rows_logged} rows logged, {result.rows_stored} stored, {result.rows_lost} "
          f"lost, {result.lock_errors} lock errors, {result.reads} reads")
    figures["lock errors seen"] = figures.get("lock errors seen", 0) + result.lock_errors
    figures["rows lost"] = figures.get("rows lost", 0) + result.rows_lost
    figures["rows written under load"] = result.rows_stored

    assert result.other_errors == []
    assert result.lock_errors == 0
    assert result.rows_lost == 0 and result.rows_extra == 0
    assert result.rows_logged == result.rows_stored
    assert result.rows_logged >= WRITERS * 3 * 100, "writers barely wrote anything"
    assert result.reads > 0
