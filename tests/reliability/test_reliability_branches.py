"""Chaos on a grid of cooldown branches: SIGKILL trunks and branches at random moments 5 times
(the sweep process itself now and then), rerun until every run finishes; the metric rows must
equal those of an uninterrupted sweep of the same grid, and a further run trains nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.harness import KEYS, grid_toml, run_chaos, start_sweep
from scaletrack.store import Store

KILLS = 5
SEED = 20261201
SCHEDULE = """[schedule]
kind = "wsd"
branches = true
cooldown = "1-sqrt"
decay_frac = 0.25
"""


@pytest.mark.slow
def test_killed_branch_grid_resumes_to_the_uninterrupted_rows(tmp_path: Path,
                                                              figures: dict) -> None:
    result, got, reference = run_chaos(
        tmp_path, kills=KILLS, seed=SEED, tokens=(1600, 3200, 4800), corrupt=False,
        extra=SCHEDULE,
    )
    print(f"\nbranch chaos: {result.kills} kills ({result.kills_mid_cell} mid-run, "
          f"{result.parent_kills} of the sweep process), {result.sweep_runs} sweep runs, "
          f"{result.resumed_cells}/{result.cells} runs resumed, {result.rows_compared} rows "
          f"compared, max loss diff {result.max_loss_diff:.2e} nats")
    figures["kills survived"] = figures.get("kills survived", 0) + result.kills
    figures["rows compared"] = figures.get("rows compared", 0) + result.rows_compared
    assert result.kills >= KILLS
    assert result.kills_mid_cell >= 1
    url = f"sqlite:///{tmp_path / 'chaos.db'}"
    with Store.open(url) as store:
        runs = store.runs(sweep="chaos")
    assert sorted(runs["role"].value_counts().items()) == [("branch", 6), ("trunk", 2)]
    assert (runs["status"] == "finished").all(), runs[["run_key", "status", "error"]]
    assert runs["attempts"].max() > 1, "no run was ever resumed"
    # nothing lost, nothing duplicated, every value equal to the uninterrupted sweep's
    assert not got.duplicated(KEYS).any()
    assert len(got) == len(reference) == result.rows_compared
    assert set(map(tuple, got[KEYS].to_numpy())) == set(map(tuple, reference[KEYS].to_numpy()))
    assert result.max_loss_diff <= 1e-6 and result.max_value_diff <= 1e-6
    # a re-run trains nothing
    grid = tmp_path / "chaos.toml"
    assert grid.read_text() == grid_toml("chaos", tokens=(1600, 3200, 4800), extra=SCHEDULE)
    proc = start_sweep(grid, url)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "nothing to train" in out
