"""CSV intake through `scaletrack import-csv` and `scaletrack fit --csv`: a row with more
fields than the header is refused (never read with shifted columns), rows with a missing or
non-finite N, D, C or loss are skipped and counted by file line, D = C/(6·N) is derived the
same way by both commands, and an empty table or a folder is named as such."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from scaletrack.analysis.io import read_fit_csv
from scaletrack.cli.main import app
from scaletrack.csv_table import csv_line_numbers, read_csv_table
from scaletrack.errors import DataError
from scaletrack.store import Store

runner = CliRunner()
EPOCH = Path("/work/shared/data/epoch_chinchilla_svg_extracted_data.csv")


def _rows(n_rows: int = 8) -> list[tuple[float, float, float]]:
    """(N params, D tokens, loss nats) of a small Chinchilla-like grid."""
    out = []
    for i in range(n_rows):
        n, d = 1e6 * 2 ** (i % 4), 1e8 * 3 ** (i // 4)
        out.append((n, d, 1.7 + 400 / n ** 0.34 + 410 / d ** 0.28))
    return out


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _grid_file(path: Path, cells: dict[tuple[int, int], str], acc: bool = False) -> Path:
    """The grid as a CSV (columns N, D, loss, and acc = 0.5 with `acc`), with the cells at
    (data row, column) set to the given text."""
    table = [[f"{n:.0f}", f"{d:.0f}", f"{loss:.5f}"] + (["0.5"] if acc else [])
             for n, d, loss in _rows()]
    for (row, col), text in cells.items():
        table[row][col] = text
    header = "N,D,loss" + (",acc" if acc else "")
    return _write(path, header + "\n" + "".join(",".join(r) + "\n" for r in table))


def _nothing_stored(tmp_path: Path, url: str) -> bool:
    return not (tmp_path / "runs.db").exists() or _run_count(url) == 0


def _run_count(url: str) -> int:
    with Store.open(url) as st:
        return len(st.runs())


def _shifted_csv(tmp_path: Path) -> Path:
    """Header `Model Size,tokens,loss`; every data row carries one field more."""
    body = "".join(f"{n:.0f},{d:.0f},{loss:.4f},1\n" for n, d, loss in _rows())
    return _write(tmp_path / "shifted.csv", "Model Size,tokens,loss\n" + body)


def test_rows_with_more_fields_than_the_header_are_refused_naming_the_line(
    tmp_path: Path,
) -> None:
    path = _shifted_csv(tmp_path)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(path), "--sweep", "s", "--n-col",
                              "Model Size", "--d-col", "tokens", "--store", url])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "line 2" in lines[0] and "shifted.csv" in lines[0], res.output
    assert "4 fields" in lines[0] and "header has 3" in lines[0]
    assert _nothing_stored(tmp_path, url)
    res = runner.invoke(app, ["fit", "--csv", str(path), "--n-col", "Model Size", "--d-col",
                              "tokens", "--form", "chinchilla", "--bootstrap", "0"])
    assert res.exit_code == 1 and "line 2" in res.output and "Traceback" not in res.output


def test_an_extra_field_on_a_later_row_names_that_line(tmp_path: Path) -> None:
    rows = _rows()
    body = [f"{n:.0f},{d:.0f},{loss:.4f}" for n, d, loss in rows]
    body[4] += ",7"
    path = _write(tmp_path / "late.csv", "N,D,loss\n" + "\n".join(body) + "\n")
    with pytest.raises(DataError, match="line 6"):
        read_csv_table(path)


def test_the_file_line_of_a_data_row_counts_blank_and_multiline_rows(tmp_path: Path) -> None:
    path = _write(tmp_path / "gaps.csv",
                  'name,N\na,1\n\n"two\nlines",2\nc,3\n')
    frame = read_csv_table(path)
    assert list(frame["N"]) == [1, 2, 3]
    assert csv_line_numbers(path, [0, 1, 2]) == [2, 4, 6]


@pytest.mark.parametrize("bad", ["nan", "inf", "", "-inf"])
def test_import_skips_and_counts_rows_with_a_non_finite_loss(tmp_path: Path, bad: str) -> None:
    rows = _rows()
    body = [f"{n:.0f},{d:.0f},{loss:.5f},0.{i + 1}" for i, (n, d, loss) in enumerate(rows)]
    body[0] = body[0].split(",")[0] + "," + body[0].split(",")[1] + f",{bad},0.1"
    body[5] = body[5].split(",")[0] + "," + body[5].split(",")[1] + f",{bad},0.6"
    path = _write(tmp_path / "nan.csv", "N,D,loss,acc\n" + "\n".join(body) + "\n")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(path), "--sweep", "s", "--store", url])
    assert res.exit_code == 0, res.output
    assert f"imported {len(rows) - 2} rows" in res.output
    assert "skipped 2 rows with a missing, NaN or infinite N, D, C or loss (lines 2, 7)" \
        in res.output
    with Store.open(url) as st:
        losses = sorted(st.runs()["final_loss"].round(5))
    kept = [loss for i, (_, _, loss) in enumerate(rows) if i not in (0, 5)]
    assert losses == sorted(round(v, 5) for v in kept)


def test_a_file_whose_every_loss_is_missing_imports_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path / "none.csv", "N,D,loss\n1000000,100000000,nan\n2000000,1e8,\n")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(path), "--store", url])
    assert res.exit_code == 1 and "no row has finite" in res.output, res.output
    assert _nothing_stored(tmp_path, url)


def test_text_in_the_loss_column_still_refuses_the_file_by_line(tmp_path: Path) -> None:
    path = _grid_file(tmp_path / "text.csv", {(3, 2): "oops"})
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(path), "--store", url])
    assert res.exit_code == 1 and "line 5" in res.output and "'oops'" in res.output
    assert _nothing_stored(tmp_path, url)


def test_import_and_fit_derive_tokens_from_compute_alike(tmp_path: Path) -> None:
    """Epoch's table gives N and C only: both commands use D = C/(6·N) and say so."""
    cols = ["--n-col", "Model Size", "--c-col", "Training FLOP"]
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(EPOCH), "--sweep", "epoch", "--task-cols", "",
                              *cols, "--store", url])
    assert res.exit_code == 0, res.output
    assert "D = C/(6·N)" in res.output
    table = pd.read_csv(EPOCH)
    with Store.open(url) as st:
        runs = st.runs()
    assert len(runs) == len(table)
    expected = sorted(round(c / (6 * n)) for n, c in zip(table["Model Size"],
                                                          table["Training FLOP"], strict=True))
    assert sorted(int(d) for d in runs["D"]) == expected
    res = runner.invoke(app, ["fit", "--csv", str(EPOCH), *cols, "--form", "chinchilla",
                              "--bootstrap", "0"])
    assert res.exit_code == 0 and "D = C/(6·N)" in res.output
    frame = read_fit_csv(EPOCH, columns={"N": "Model Size", "C": "Training FLOP"})
    assert frame.attrs["derived"] and frame["D"].tolist() == pytest.approx(
        (table["Training FLOP"] / (6 * table["Model Size"])).tolist())


def test_a_named_tokens_column_that_is_missing_is_not_derived(tmp_path: Path) -> None:
    path = _write(tmp_path / "nc.csv", "N,C,loss\n1000000,6e14,3.2\n2000000,1.2e15,3.0\n")
    with pytest.raises(DataError, match="no column 'tokens'"):
        read_fit_csv(path, columns={"D": "tokens"})


def test_a_header_only_file_and_a_folder_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.csv", "N,D,loss\n")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(path), "--store", url])
    assert res.exit_code == 1 and "empty.csv" in res.output and "no data rows" in res.output
    assert "to fit" not in res.output
    res = runner.invoke(app, ["import-csv", str(tmp_path), "--store", url])
    assert res.exit_code == 1 and "is a folder" in res.output
    assert "does not exist" not in res.output


def test_store_side_refusals_name_the_file_line(tmp_path: Path) -> None:
    """A count beyond 64 bits and text in a named task column are refused by file line."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    path = _grid_file(tmp_path / "big.csv", {(4, 0): "1e30"}, acc=True)
    res = runner.invoke(app, ["import-csv", str(path), "--store", url])
    assert res.exit_code == 1 and "column 'N' line 6 of" in res.output, res.output
    path = _grid_file(tmp_path / "task.csv", {(2, 3): "high"}, acc=True)
    res = runner.invoke(app, ["import-csv", str(path), "--task-cols", "acc", "--store", url])
    assert res.exit_code == 1 and "'acc' is not numeric: line 4 of" in res.output, res.output
    assert _nothing_stored(tmp_path, url)


def test_skipped_task_values_are_named_by_file_line(tmp_path: Path) -> None:
    path = _grid_file(tmp_path / "task.csv", {(3, 3): "nan"}, acc=True)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(path), "--store", url])
    assert res.exit_code == 0, res.output
    assert "skipped 1 missing, NaN or infinite task values (first: line 5 column 'acc')" \
        in res.output


def test_a_zero_parameter_count_is_refused_even_when_d_is_derived(tmp_path: Path) -> None:
    """N = 0 would make D = C/(6·N) infinite: refused as N <= 0, not skipped as a missing D."""
    path = _write(tmp_path / "nc.csv", "N,C,loss\n1000000,6e14,3.2\n0,1.2e15,3.0\n"
                  "2000000,2e15,2.9\n")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(path), "--store", url])
    assert res.exit_code == 1 and "'N' must be > 0; line 3" in res.output, res.output
    assert _nothing_stored(tmp_path, url)


def test_one_row_kept_is_said_in_the_singular(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.csv", "N,D,loss\n1e7,1e9,nan\n1e7,2e9,3.0\n")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    res = runner.invoke(app, ["import-csv", str(path), "--store", url])
    assert res.exit_code == 0, res.output
    assert "imported 1 row (1 new run) from one.csv" in res.output
    assert "skipped 1 row with a missing, NaN or infinite N, D, C or loss (line 2)" \
        in res.output
