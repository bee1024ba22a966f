"""Slurm settings in a grid's [executor] table, and the checks made before anything is stored:
a SQLite store is refused for Slurm unless every task runs on this node (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.sweeps.executors.registry import make_executor
from scaletrack.sweeps.spec import parse_spec_text

pytest.importorskip("submitit")
from scaletrack.sweeps.executors.slurm import (  # noqa: E402
    SlurmExecutor,
    SlurmSettings,
    check_store_for_slurm,
    log_dir,
)

BASE = """
name = "slurm-spec"
[data]
corpus = "stdlib"
options = { max_bytes = 20000 }
context = 16
[model]
family = "gpt"
sizes = [{ n_layer = 1, n_head = 1, d_model = 16 }]
[axes]
tokens = [640]
[train]
batch_size = 4
"""


def spec_with(executor: str):
    return parse_spec_text(BASE + "[executor]\n" + executor, "grid.toml")


def test_slurm_block_becomes_settings() -> None:
    spec = spec_with('kind = "slurm"\npartition = "gpu"\ntime = 240\ncpus_per_task = 8\n'
                     'gpus_per_task = 1\nmem = "32G"\narray_parallelism = 16\n'
                     'sbatch = { qos = "high", account = "lab", exclusive = true }\n'
                     'max_retries = 5\n')
    settings = SlurmSettings.from_spec(spec.executor)
    assert settings == SlurmSettings(
        partition="gpu", time_min=240, cpus_per_task=8, gpus_per_task=1, mem="32G",
        array_parallelism=16, sbatch={"qos": "high", "account": "lab", "exclusive": True},
        same_node=False, max_retries=5,
    )
    executor = make_executor("slurm", workers=1, spec=spec.executor)
    assert isinstance(executor, SlurmExecutor) and executor.settings == settings
    # defaults: 1 CPU, an hour, two resubmissions of a task that died
    assert SlurmSettings.from_spec(spec_with('kind = "slurm"\n').executor) == SlurmSettings()


@pytest.mark.parametrize(("block", "field", "words"), [
    ('kind = "local"\npartition = "gpu"\n', "executor.partition", 'only for kind = "slurm"'),
    ('kind = "ray"\nsame_node = true\n', "executor.same_node", 'only for kind = "slurm"'),
    ('kind = "slurm"\nsbatch = { "--qos" = "high" }\n', "executor.sbatch", "'--qos'"),
    ('kind = "slurm"\nmem = "lots"\n', "executor.mem", "pattern"),
    ('kind = "slurm"\ntime = 0\n', "executor.time", "greater than 0"),
])
def test_bad_slurm_settings_name_the_field(block: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        spec_with(block)
    message = str(info.value)
    assert message.startswith(f"grid.toml: {field}:") and words in message, message


def test_sqlite_needs_same_node(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ConfigError, match="same_node = true"):
        check_store_for_slurm(url, same_node=False)
    check_store_for_slurm(url, same_node=True)
    check_store_for_slurm("postgresql+psycopg://u:secret@db.example/x", same_node=False)


def test_cli_refuses_sqlite_for_slurm_before_touching_the_store(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(BASE)
    db = tmp_path / "s.db"
    result = CliRunner().invoke(
        app, ["sweep", "run", str(grid), "--executor", "slurm", "--store", f"sqlite:///{db}"]
    )
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --executor slurm with a SQLite store")
    assert "Traceback" not in result.output
    assert not db.exists()  # nothing stored


def test_log_dir_is_inside_the_cells_checkpoint_folder(tmp_path: Path) -> None:
    from scaletrack.sweeps.executors import SweepJob

    job = SweepJob(sweep="s", store_url="sqlite:///x.db", checkpoint_root=str(tmp_path), cells=())
    assert log_dir(job, "abc") == tmp_path / "s" / "abc" / "logs"
