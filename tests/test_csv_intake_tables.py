"""The other CSV intakes (history tables, lm-eval sizes) read through the shared reader: a
data row with more fields than the header is refused by file line, never read shifted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.csv_table import read_csv_table
from scaletrack.errors import DataError
from scaletrack.store.importers.history import read_table
from scaletrack.store.importers.lm_eval import read_sizes


def _shifted(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "".join(f"{r},9\n" for r in rows))
    return path


def test_a_history_table_with_an_extra_field_is_refused(tmp_path: Path) -> None:
    path = _shifted(tmp_path / "hist.csv", "run,_step,loss", ["a,1,3", "a,2,2", "a,3,1"])
    with pytest.raises(DataError, match="line 2 has 4 fields but the header has 3"):
        read_table(path)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    res = CliRunner().invoke(app, ["import", "history", str(path), "--run-col", "run",
                                   "--step-col", "_step", "--store", url])
    assert res.exit_code == 1 and "line 2" in res.output and "Traceback" not in res.output


def test_a_sizes_table_with_an_extra_field_is_refused(tmp_path: Path) -> None:
    path = _shifted(tmp_path / "sizes.csv", "model,params,tokens_per_step",
                    ["pythia-70m,70426624,2097152"])
    with pytest.raises(DataError, match="line 2 has 4 fields"):
        read_sizes(path)


def test_text_cells_are_kept_as_written(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("run,step,note\n007,1,\nb,2,NA\n")
    table = read_csv_table(path, text=True)
    assert table.to_dict(orient="list") == {"run": ["007", "b"], "step": ["1", "2"],
                                            "note": ["", "NA"]}


def test_a_fifo_given_as_a_csv_is_named_and_never_opened(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is not a regular file"):
        read_csv_table(fifo)
