"""Shared fixtures: shared_data (the published data folder), store_url and store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Real services (a private PostgreSQL server, a local Ray cluster, a one-node Slurm, a headless
# Chromium) as session fixtures: postgres_server, postgres_url, postgres_db_url, ray_cluster,
# slurm_cluster, chromium. They skip with the reason when the service cannot be started.
from services import (  # noqa: F401  (fixtures are found by name)
    chromium,
    postgres_db_url,
    postgres_server,
    postgres_url,
    ray_cluster,
    slurm_cluster,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The published data folder beside the checkout, or skip with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"published data folder {SHARED_DATA} is absent (it lies beside the checkout)")
    return SHARED_DATA


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty store: a SQLite file in tmp_path, then a new PostgreSQL database.

    Every store test takes its URL from here, so it runs against both backends (the
    "postgres" case is marked `postgres`; deselect it with `-m "not postgres"`). The PostgreSQL
    server is started once per session (tests/services.py) and each test gets its own database,
    dropped afterwards. A SQLite-only test checks `store.engine.dialect.name` and skips.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    yield url
    server.drop_database(name)


@pytest.fixture
def store(store_url: str):
    """An opened Store at `store_url`, closed after the test."""
    from scaletrack.store import Store

    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
