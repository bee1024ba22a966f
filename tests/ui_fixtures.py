"""A store for the dashboard's tests: a small real sweep, the Epoch Chinchilla points imported
through `scaletrack import-csv`, an idea re-checked on the sweep's checkpoints, and a run,
sweep, tag and idea whose names are `<script>alert(1)</script>` (for the escaping test)."""

from __future__ import annotations

import copy
from pathlib import Path

from test_sweep_spec import VALID, to_toml
from typer.testing import CliRunner

SCRIPT = "<script>alert(1)</script>"
SWEEP = "ui-sweep"
EPOCH = "epoch-chinchilla"


def build_ui_store(root: Path, shared_data: Path) -> str:
    """Fill a SQLite store under `root`; returns its URL (takes ~10-20 s of CPU)."""
    from scaletrack.analysis import load_epoch_chinchilla
    from scaletrack.cli.main import app
    from scaletrack.evals.ideas import add_idea, rerun_due
    from scaletrack.store import RunRecord, Store, make_run_key
    from scaletrack.sweeps.grid import load_grid
    from scaletrack.sweeps.runner import run_sweep

    url = f"sqlite:///{root / 'ui.db'}"
    grid = copy.deepcopy(VALID)
    grid["name"] = SWEEP
    grid["axes"]["tokens"] = [640, 1280, 2560]
    grid["eval"]["tasks"] = ["val_loss"]
    grid_file = root / "grid.toml"
    grid_file.write_text(to_toml(grid))
    report = run_sweep(load_grid(grid_file), url, workers=2)
    assert report.ok, report

    epoch = load_epoch_chinchilla(shared_data / "epoch_chinchilla_svg_extracted_data.csv")
    csv = root / "epoch.csv"
    epoch.to_csv(csv, index=False)
    runner = CliRunner()
    done = runner.invoke(app, ["import-csv", str(csv), "--sweep", EPOCH, "--task-cols", "",
                               "--store", url])
    assert done.exit_code == 0, done.output
    with Store.open(url) as store:
        add_idea(store, "val loss below 5 nats", "val_loss", "loss", 5.0, direction="below")
        add_idea(store, SCRIPT, "val_loss", "loss", 0.5, direction="below")
        rerun_due(store)
        config = {"name": SCRIPT, "tags": [SCRIPT, "baseline"], "lr": 0.001}
        store.ensure_run(RunRecord(
            run_key=make_run_key(config), sweep=SCRIPT, family="imported", config=config,
            N=1000, N_total=1200, D=20000, C=1.2e8, seed=0, lr=1e-3, status="finished",
            final_loss=3.0,
        ))
    return url
