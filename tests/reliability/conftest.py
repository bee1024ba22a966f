"""Marks every test in tests/reliability with `reliability`; collects the suite's figures
(kills survived, rows compared, bad inputs tried, lock errors seen, rows lost) and prints them
as one line at the end of the pytest run (and to $SCALETRACK_RELIABILITY_SUMMARY if set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIGURES = pytest.StashKey[dict]()
ORDER = ("kills survived", "rows compared", "bad inputs tried", "lock errors seen", "rows lost")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


def _figures(config: pytest.Config) -> dict:
    if FIGURES not in config.stash:
        config.stash[FIGURES] = {}
    return config.stash[FIGURES]


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict:
    """Add counts to the suite summary: figures["rows lost"] = figures.get(...) + n."""
    return _figures(request.config)


def summary_line(figs: dict) -> str:
    keys = [k for k in ORDER if k in figs] + sorted(k for k in figs if k not in ORDER)
    return "reliability: " + ", ".join(f"{k} {figs[k]}" for k in keys)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    figs = config.stash.get(FIGURES, None)
    if not figs:
        return
    line = summary_line(figs)
    terminalreporter.write_line(line)
    target = os.environ.get("SCALETRACK_RELIABILITY_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
