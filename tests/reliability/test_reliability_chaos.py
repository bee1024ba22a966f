"""Chaos: SIGKILL random worker processes of `scaletrack sweep run` at random moments (and
damage the newest checkpoint of a crashed cell between runs), rerun until every cell finishes;
the metric rows must equal an uninterrupted sweep's exactly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reliability.harness import KEYS, ChaosResult, run_chaos
from scaletrack.store import Store

KILLS = 6
SEED = 20261123

Chaos = tuple[ChaosResult, pd.DataFrame, pd.DataFrame, Path]


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Chaos:
    tmp = tmp_path_factory.mktemp("chaos")
    result, got, reference = run_chaos(tmp, kills=KILLS, seed=SEED)
    print(f"\nchaos: {result.kills} kills survived ({result.kills_mid_cell} of workers mid-cell, "
          f"{result.parent_kills} of the sweep process), "
          f"{result.sweep_runs} sweep runs, {result.resumed_cells}/{result.cells} cells resumed, "
          f"{result.rows_compared} rows compared, max loss diff {result.max_loss_diff:.2e} nats; "
          f"{result.corrupted} checkpoints of crashed cells damaged "
          f"({result.fallbacks_reported} named in a rerun's output)")
    return result, got, reference, tmp


@pytest.mark.slow
def test_sigkilled_workers_lose_nothing(chaos: Chaos, figures: dict) -> None:
    result, got, reference, tmp = chaos
    figures["kills survived"] = figures.get("kills survived", 0) + result.kills
    figures["rows compared"] = figures.get("rows compared", 0) + result.rows_compared
    figures["corrupt checkpoints survived"] = (
        figures.get("corrupt checkpoints survived", 0) + result.corrupted
    )
    assert result.kills >= KILLS
    assert result.kills_mid_cell >= 1, "no kill landed while a cell was training"
    assert result.parent_kills >= 1, "the sweep process itself was never killed"
    with Store.open(f"sqlite:///{tmp / 'chaos.db'}") as store:
        runs = store.runs(sweep="chaos")
    assert len(runs) == 4
    assert (runs["status"] == "finished").all(), runs[["run_key", "status", "error"]]
    assert runs["attempts"].max() > 1, "no cell was ever resumed"
    assert result.corrupted >= 1, "no checkpoint was damaged between runs"

    # same (run_key, name, step) keys: nothing lost, nothing duplicated, no gaps
    assert not got.duplicated(KEYS).any()
    assert len(got) == len(reference)
    assert set(map(tuple, got[KEYS].to_numpy())) == set(map(tuple, reference[KEYS].to_numpy()))
    assert result.rows_compared == len(reference)
    for _, steps in got[got["name"] == "train/loss"].groupby("run_key")["step"]:
        assert list(steps) == list(range(len(steps)))
    # resume is exact: losses (nats) to 1e-6, every other metric to 1e-6 relative
    assert result.max_loss_diff <= 1e-6
    assert result.max_value_diff <= 1e-6


@pytest.mark.slow
def test_sweep_output_names_each_skipped_checkpoint(chaos: Chaos) -> None:
    """A rerun that falls back past a damaged checkpoint says so (a warning naming the file)."""
    result = chaos[0]
    assert result.corrupted >= 1
    assert result.fallbacks_reported == result.corrupted, (
        f"{result.corrupted - result.fallbacks_reported} of {result.corrupted} damaged "
        "checkpoints were skipped silently"
    )
