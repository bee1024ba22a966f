"""Shared fixtures: shared_data (the published data folder), store_url and store."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The published data folder beside the checkout, or skip with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"published data folder {SHARED_DATA} is absent (it lies beside the checkout)")
    return SHARED_DATA


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """URL of a fresh, empty store (a SQLite file in tmp_path).

    Every store test takes its URL from here, so the store tests can later be parametrized
    over PostgreSQL by overriding this one fixture.
    """
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(store_url: str):
    """An opened Store at `store_url`, closed after the test."""
    from store import Store

    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
