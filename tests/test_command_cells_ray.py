"""Command cells on a real local Ray cluster (head + worker node): each cell's program attaches
to its run through the environment, and its log lands in the per-run log folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from test_command_cells import write_grid

from scaletrack.store import Store
from scaletrack.sweeps.command import log_dir
from scaletrack.sweeps.executors.ray import RayExecutor, use_token_if_available
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PROGRAM = """
import sys
import scaletrack
d_model = int(sys.argv[1])
with scaletrack.init() as run:  # the cell's run, from SCALETRACK_RUN
    for step in range(1, 6):
        run.log({"train/loss": d_model / step}, step=step, tokens=step * 128)
print("logged", run.run_key)
"""


@pytest.fixture
def ray_driver(ray_cluster) -> Iterator[object]:
    assert use_token_if_available()
    ray.init(address=ray_cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray_cluster
    finally:
        ray.shutdown()


def test_command_cells_run_on_ray(ray_driver, tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    grid = load_grid(write_grid(tmp_path / "grid.toml", "python prog.py {d_model}"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    report = run_sweep(grid, url, executor=RayExecutor(address=ray_driver.address),
                       checkpoint_dir=tmp_path / "ckpt")
    assert sorted(r.status for r in report.results) == ["finished"] * 4, report
    with Store.open(url) as store:
        runs = store.runs()
        metrics = store.metrics()
    assert set(runs["status"]) == {"finished"}
    for cell in grid.cells:
        rows = metrics[metrics["run_key"] == cell.run_key]
        d_model = cell.config.model["d_model"]
        assert rows["value"].tolist() == [d_model / s for s in range(1, 6)]
        assert runs.set_index("run_key").loc[cell.run_key, "final_loss"] == d_model / 5
        log = (log_dir(tmp_path / "ckpt", cell.run_key) / "command.log").read_text()
        assert f"logged {cell.run_key}" in log
