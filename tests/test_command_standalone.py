"""A standalone command grid end to end: an N ladder and custom axes fill the program's line,
the run's config holds only what the grid gave it, N comes from the grid unless the program
reports its own (`scaletrack.init(params=...)`), and the program is fenced by the cell's claim
(SCALETRACK_CLAIM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaletrack.store import Store
from scaletrack.sweeps.command import log_dir
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import default_checkpoint_root, run_sweep

PROGRAM = '''
import argparse, os
import scaletrack

p = argparse.ArgumentParser()
p.add_argument("--params", type=int)
p.add_argument("--tokens", type=int)
p.add_argument("--dropout", type=float)
p.add_argument("--own", choices=["true", "false"])
args = p.parse_args()
print("claim", os.environ["SCALETRACK_CLAIM"], "run", os.environ["SCALETRACK_RUN"])
own = 10 * args.params + 7 if args.own == "true" else None  # the program counts its own N
with scaletrack.init(params=own) as run:
    for step in range(1, 4):
        run.log({"train/loss": 2.0 / step + args.dropout}, step=step, tokens=step * 100)
'''

GRID = """
name = "own-model"
[model]
params = [1000, 3000]            # an N ladder: non-embedding parameters
[axes]
tokens = [300]
dropout = [0.1]
own = [false, true]              # does the program report its own N?
[train]
command = "python prog.py --params {params} --tokens {tokens} --dropout {dropout} --own {own}"
"""


@pytest.mark.slow
def test_standalone_grid_runs_with_its_own_settings_and_N(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "grid.toml").write_text(GRID)
    grid = load_grid(tmp_path / "grid.toml")
    url = f"sqlite:///{tmp_path / 's.db'}"
    report = run_sweep(grid, url)
    assert report.ok and report.count("finished") == 4, report
    with Store.open(url) as store:
        runs = {r.run_key: r for r in (store.get_run(c.run_key) for c in grid.cells) if r}
        metrics = store.metrics()
    assert len(runs) == 4 and len(metrics) == 4 * 3
    for cell in grid.cells:
        run = runs[cell.run_key]
        values = dict(cell.axes)
        n = int(cell.config.values["params"])
        line = (f"python prog.py --params {n} --tokens 300 --dropout 0.1 "
                f"--own {'true' if values['own'] else 'false'}")
        assert run.status == "finished" and run.family == "custom"
        # only the settings the run had: no n_head, weight_decay, batch_size, lr, seed, device
        assert run.config == {"params": n, "tokens": 300, "dropout": 0.1,
                              "own": values["own"], "command": line}
        assert run.D == 300
        if not values["own"]:
            got = (run.N, run.C)
            assert got == (n, 6.0 * n * 300)  # N from the grid's ladder
        log = (log_dir(default_checkpoint_root(url), cell.run_key) / "command.log").read_text()
        assert f"run {cell.run_key}" in log and "claim " in log
        claim = log.split("claim ", 1)[1].split()[0]
        assert claim.isdigit()


@pytest.mark.slow
def test_the_programs_own_N_wins_and_stays(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "grid.toml").write_text(GRID.replace("own = [false, true]", "own = [true]"))
    grid = load_grid(tmp_path / "grid.toml")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert run_sweep(grid, url).ok
    with Store.open(url) as store:
        for cell in grid.cells:
            run = store.get_run(cell.run_key)
            own = 10 * int(cell.config.values["params"]) + 7
            # reported by scaletrack.init(params=...) in the program; the worker finishing the
            # cell afterwards does not put the grid's N back
            got = (run.N, run.C)
            assert got == (own, 6.0 * own * 300)
    # running the grid again changes nothing: the finished runs keep the program's N
    assert run_sweep(grid, url).already_done == 2
    with Store.open(url) as store:
        assert {store.get_run(c.run_key).N for c in grid.cells} == {10_007, 30_007}
