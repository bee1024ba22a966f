"""Bad input: malformed grid files, bad CSVs, unknown tasks, a user task that raises. Each must
give a one-line error naming the problem (exit code 1, no traceback) and leave the store exactly
as it was (row counts and a hash of every table compared before and after)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reliability.harness import REPO, grid_toml, populate_store, store_fingerprint
from scaletrack.cli.main import app

USER_TASKS = '''
def boom(loaded):
    raise ValueError("kaboom from a user task")

def not_a_number(loaded):
    return "seven"

def nothing(loaded):
    return None

def boom_loader(record):
    raise RuntimeError("loader exploded")
'''


@pytest.fixture
def populated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A populated store, a module of misbehaving user tasks on sys.path, a CSV folder."""
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    info = populate_store(url, tmp_path / "ckpt")
    user = tmp_path / "userpkg"
    user.mkdir()
    (user / "h_user_tasks.py").write_text(USER_TASKS)
    monkeypatch.syspath_prepend(str(user))
    monkeypatch.delenv("SCALETRACK_STORE", raising=False)
    return {**info, "url": url, "db": db, "tmp": tmp_path, "user": user}


def reject(populated: dict[str, Any], args: list[str], *words: str) -> str:
    """Run the CLI in-process; assert a clean one-line rejection and an untouched store."""
    before = store_fingerprint(populated["db"])
    result = CliRunner().invoke(app, args)
    output = result.output
    stderr = (result.stderr or "").strip()
    assert result.exit_code == 1, (args, output)
    assert isinstance(result.exception, SystemExit), (
        f"{args}: crashed with {type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in output
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, stderr)
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert store_fingerprint(populated["db"]) == before, f"{args}: the store changed"
    return lines[0]


# ------------------------------------------------------------------------------- grid files

BASE_SIZES = "sizes = [{ n_layer = 1, n_head = 2, d_model = 16 }, { n_layer = 2, n_head = 2, " \
             "d_model = 16 }]"


def _grid(tmp: Path, name: str, edit: Callable[[str], str]) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(edit(grid_toml("bad-grid")))
    return path


def _no_options(text: str) -> str:
    return text.replace("options = { max_bytes = 200_000 }\n", "")


GRID_CASES: dict[str, tuple[Callable[[str, Path], str], tuple[str, ...]]] = {
    "corpus file missing": (
        lambda t, d: t.replace('corpus = "stdlib"', f'path = "{d}/no/such.txt"'),
        ("data.path", "does not exist")),
    "token file is a folder": (
        lambda t, d: _no_options(t.replace('corpus = "stdlib"', f'tokens = "{d}"')),
        ("data.tokens", "not a file")),
    "unknown synthetic task": (
        lambda t, d: _no_options(t.replace('corpus = "stdlib"', 'task = "telepathy"')),
        ("data.task", "telepathy")),
    "unknown eval task": (
        lambda t, d: t.replace("batches = 2", 'batches = 2\ntasks = ["telepathy"]'),
        ("eval.tasks[0]", "telepathy")),
    "eval task module missing": (
        lambda t, d: t.replace("batches = 2", 'batches = 2\ntasks = ["no_such_mod_h:fn"]'),
        ("eval.tasks[0]", "no_such_mod_h")),
    "eval task function missing": (
        lambda t, d: t.replace("batches = 2", 'batches = 2\ntasks = ["json:no_such_fn"]'),
        ("eval.tasks[0]", "no_such_fn")),
    "budget under one step": (
        lambda t, d: t.replace("tokens = [3200, 6400]", "tokens = [32]"),
        ("axes.tokens[0]", "less than one step")),
    "nan learning rate": (
        lambda t, d: t.replace("lrs = [0.003]", "lrs = [nan]"), ("axes.lrs[0]",)),
    "infinite learning rate": (
        lambda t, d: t.replace("lrs = [0.003]", "lrs = [inf]"), ("axes.lrs[0]",)),
    "targets resolving to one shape": (
        lambda t, d: t.replace(BASE_SIZES, "target_params = [1000, 1001]"),
        ("model.target_params", "same shape")),
    "target too small": (
        lambda t, d: t.replace(BASE_SIZES, "target_params = [1]"),
        ("model.target_params[0]", "too small")),
}


@pytest.mark.parametrize("case", sorted(GRID_CASES))
def test_malformed_grid_is_rejected(populated: dict[str, Any], case: str, figures: dict) -> None:
    edit, words = GRID_CASES[case]
    text = edit(grid_toml("bad-grid"), populated["tmp"])
    assert text != grid_toml("bad-grid"), "the edit did not apply"
    grid = populated["tmp"] / "grid.toml"
    grid.write_text(text)
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1
    reject(populated, ["sweep", "run", str(grid), "--store", populated["url"]], *words)


def test_grid_not_utf8_or_a_folder(populated: dict[str, Any], figures: dict) -> None:
    binary = populated["tmp"] / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00name = \x9f\n")
    reject(populated, ["sweep", "run", str(binary), "--store", populated["url"]], "not UTF-8")
    folder = populated["tmp"] / "folder.toml"
    folder.mkdir()
    reject(populated, ["sweep", "run", str(folder), "--store", populated["url"]], "directory")
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 2


DATA_GAPS = {
    "empty corpus file": lambda t, d: t.replace('corpus = "stdlib"', f'path = "{d}/empty.txt"'),
    "context longer than the corpus": lambda t, d: t.replace(
        'corpus = "stdlib"', f'path = "{d}/short.txt"'),
}


@pytest.mark.parametrize("case", sorted(DATA_GAPS))
def test_unusable_data_is_rejected_before_the_store_is_touched(
    populated: dict[str, Any], case: str, figures: dict
) -> None:
    """`load_grid` promises complete validation ("data present"); data that cannot feed one
    training window must be refused before any sweep or run row is written."""
    (populated["tmp"] / "empty.txt").write_text("")
    (populated["tmp"] / "short.txt").write_text("too short for a 16-token context\n")
    grid = populated["tmp"] / "grid.toml"
    grid.write_text(DATA_GAPS[case](grid_toml("bad-data"), populated["tmp"]))
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1
    reject(populated, ["sweep", "run", str(grid), "--store", populated["url"]], "data")


# ------------------------------------------------------------------------------- CSVs

GOOD_CSV = "N,D,loss\n" + "".join(
    f"{n:.0f},{d:.0f},{1.7 + 400 / n ** 0.34 + 410 / d ** 0.28:.5f}\n"
    for n in (1e6, 3e6, 1e7, 3e7) for d in (1e8, 3e8, 1e9)
)


def _set_cell(text: str, row: int, col: int, value: str) -> str:
    lines = text.splitlines()
    cells = lines[row + 1].split(",")
    cells[col] = value
    lines[row + 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


CSV_CASES: dict[str, tuple[str | bytes, tuple[str, ...]]] = {
    "missing loss column": (GOOD_CSV.replace("N,D,loss", "N,D,lossy"), ("'loss'",)),
    "missing N column": (GOOD_CSV.replace("N,D,loss", "params,D,loss"), ("N",)),
    "non-numeric N": (_set_cell(GOOD_CSV, 3, 0, "big"), ("'N'", "line 5")),
    "non-numeric loss": (_set_cell(GOOD_CSV, 7, 2, "abc"), ("'loss'", "line 9")),
    "negative N": (_set_cell(GOOD_CSV, 2, 0, "-1000000"), ("'N'", "line 4")),
    "zero D": (_set_cell(GOOD_CSV, 4, 1, "0"), ("'D'", "line 6")),
    "NaN loss": (_set_cell(GOOD_CSV, 5, 2, "nan"), ("'loss'", "line 7")),
    "empty loss cell": (_set_cell(GOOD_CSV, 6, 2, ""), ("'loss'", "line 8")),
    "infinite loss": (_set_cell(GOOD_CSV, 1, 2, "inf"), ("'loss'", "line 3")),
    "negative loss": (_set_cell(GOOD_CSV, 8, 2, "-1.5"), ("'loss'", "line 10")),
    "empty file": ("", ("cannot read CSV",)),
    "header only": ("N,D,loss\n", ("no data rows",)),
    "not text": (b"\xff\xfe\x00\x01\x9f\x00", ("cannot read CSV",)),
    "ragged row": (GOOD_CSV + "1,2,3,4,5\n", ("cannot read CSV",)),
    "more fields than the header": (GOOD_CSV.replace("\n", ",1\n").replace("loss,1", "loss"),
                                    ("line 2", "header has 3")),
}
# import-csv keeps the good rows of these (a row without a finite loss is no run): skipped,
# counted and named by line in the summary; `fit --csv` refuses them
SKIPPED_BY_IMPORT = ("NaN loss", "empty loss cell", "infinite loss")


def _write_csv(tmp: Path, content: str | bytes) -> Path:
    path = tmp / "runs.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("case", sorted(CSV_CASES))
@pytest.mark.parametrize("command", ["fit", "import-csv"])
def test_bad_csv_is_rejected(
    populated: dict[str, Any], case: str, command: str, figures: dict
) -> None:
    content, words = CSV_CASES[case]
    path = _write_csv(populated["tmp"], content)
    if command == "fit":
        args = ["fit", "--form", "chinchilla", "--bootstrap", "0", "--csv", str(path),
                "--store", populated["url"]]
    else:
        args = ["import-csv", str(path), "--sweep", "existing", "--store", populated["url"]]
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1
    if command == "import-csv" and case in SKIPPED_BY_IMPORT:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        line = words[1].removeprefix("line ")
        assert f"skipped 1 row with a missing, NaN or infinite N, D, C or loss (line {line})" \
            in result.output
        assert f"imported {GOOD_CSV.count(chr(10)) - 2} rows" in result.output
        return
    reject(populated, args, *words)


def test_import_csv_with_a_value_too_large_for_the_store(
    populated: dict[str, Any], figures: dict
) -> None:
    """N = 1e30 is a positive number but no 64-bit integer: refused as a whole, no row half
    imported (the bad row is in the middle of the file)."""
    path = _write_csv(populated["tmp"], _set_cell(GOOD_CSV, 6, 0, "1e30"))
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1
    reject(populated, ["import-csv", str(path), "--store", populated["url"]], "N")


def test_good_csv_control(populated: dict[str, Any]) -> None:
    """The good CSV the bad ones are made from is accepted (so the rejections mean something)."""
    path = _write_csv(populated["tmp"], GOOD_CSV)
    result = CliRunner().invoke(app, ["import-csv", str(path), "--store", populated["url"]])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["fit", "--form", "chinchilla", "--bootstrap", "0",
                                      "--csv", str(path)])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------- tasks


def test_unknown_and_failing_tasks(populated: dict[str, Any], figures: dict) -> None:
    url, ckpt = populated["url"], str(populated["checkpoint_id"])
    cases = [
        (["ideas", "add", "x", "--task", "telepathy", "--metric", "m", "--threshold", "1"],
         ("telepathy",)),
        (["ideas", "add", "x", "--task", "no_such_mod_h:fn", "--metric", "value",
          "--threshold", "1"], ("no_such_mod_h",)),
        (["ideas", "add", "x", "--task", "val_loss", "--metric", "accuracy",
          "--threshold", "1"], ("accuracy",)),
        (["checkpoints", "eval", ckpt, "--task", "telepathy"], ("telepathy",)),
        (["checkpoints", "eval", ckpt, "--task", "h_user_tasks:boom"],
         ("h_user_tasks:boom", "kaboom")),
        (["checkpoints", "eval", ckpt, "--task", "h_user_tasks:not_a_number"],
         ("h_user_tasks:not_a_number",)),
        (["checkpoints", "eval", ckpt, "--task", "h_user_tasks:nothing"],
         ("h_user_tasks:nothing",)),
        (["checkpoints", "eval", ckpt, "--task", "h_user_tasks:no_such_fn"],
         ("no_such_fn",)),
        (["checkpoints", "eval", ckpt, "--task", "val_loss", "--task", "h_user_tasks:boom"],
         ("kaboom",)),  # the good task's value is not written either
        (["checkpoints", "eval", "999", "--task", "val_loss"], ("999",)),
    ]
    for args, words in cases:
        reject(populated, [*args, "--store", url], *words)
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + len(cases)


def test_failing_user_loader(populated: dict[str, Any], figures: dict) -> None:
    """An external checkpoint whose `module:function` loader raises: eval fails in one line."""
    from scaletrack.store import CheckpointRecord, Store

    path = populated["tmp"] / "external.bin"
    path.write_bytes(b"weights")
    from scaletrack.models.checkpoint import file_sha256

    with Store.open(populated["url"]) as store:
        ckpt_id = store.add_checkpoint(CheckpointRecord(
            id=None, run_key=None, kind="external", N=10, tokens=10, flops=None, step=None,
            path=str(path), sha256=file_sha256(path), loader="h_user_tasks:boom_loader",
        ))
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1
    reject(populated, ["checkpoints", "eval", str(ckpt_id), "--task", "val_loss", "--store",
                       populated["url"]], "loader exploded")


@pytest.mark.slow
def test_real_process_prints_one_line_not_a_traceback(populated: dict[str, Any]) -> None:
    """The same rejections from a real `scaletrack` process (stderr as a user sees it)."""
    csv = _write_csv(populated["tmp"], CSV_CASES["non-numeric loss"][0])
    env_path = f"{populated['user']}"
    before = store_fingerprint(populated["db"])
    for args in (
        ["import-csv", str(csv), "--store", populated["url"]],
        ["checkpoints", "eval", str(populated["checkpoint_id"]), "--task", "h_user_tasks:boom",
         "--store", populated["url"]],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "scaletrack.cli.main", *args], cwd=REPO, timeout=300,
            capture_output=True, text=True, env={**_env(), "PYTHONPATH": env_path},
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert store_fingerprint(populated["db"]) == before


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("SCALETRACK_STORE", None)
    env["COLUMNS"] = "250"
    return env


