"""Shared fixtures. Store fixtures live in tests/store_fixtures.py (imported below)."""

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
