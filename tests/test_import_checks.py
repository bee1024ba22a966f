"""The red-team cases of the history and lm-eval importers and of `export`: each bad input is
one line naming the file and field with nothing written; re-imports refresh what changed; one
transaction per import (a failure late in the write leaves the store as it was, on SQLite and
PostgreSQL); exports are atomic and refuse special files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import DataError
from scaletrack.store import Store
from scaletrack.store.importers import checks
from scaletrack.store.importers.apply import ImportPlan, PlannedCheckpoint, PlannedRun
from scaletrack.store.records import CheckpointRecord, RunRecord

runner = CliRunner()


def _cli(*args: str):
    res = runner.invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    return res


def _counts(url: str) -> tuple[int, int, int, int]:
    with Store.open(url) as st:
        return (st.count_runs(), st.count_metrics(), len(st.checkpoints()), len(st.evals()))


@pytest.mark.parametrize(("table", "extra", "message"), [
    ("run,step,loss\na,0,3\na,10000000000000000000,2.5\n", (),
     "h.csv line 3, column 'step': '10000000000000000000' is beyond the store's 64-bit"),
    ("run,step,loss\na,0,3\na,1.5,2\n", (), "line 3, column 'step': '1.5' is not a whole"),
    ("run,step,loss\na,0,3\n,10,2.5\n", (), "line 3, column 'run': empty run name"),
    ("run,step,loss,tok\na,0,3,x\n", ("--tokens-col", "tok"),
     "line 2, column 'tok': expected a whole number, got 'x'"),
    ("run,step,loss\na,0,3\na,1,abc\n", (), "line 3, column 'loss': 'abc' is not a number"),
])
def test_history_bad_cells_are_one_line(tmp_path: Path, table: str, extra: tuple,
                                        message: str) -> None:
    (tmp_path / "h.csv").write_text(table)
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = _cli("import", "history", str(tmp_path / "h.csv"), *extra, "--store", url)
    assert res.exit_code == 1 and message in res.output, res.output
    assert res.output.count("\n") == 1
    assert _counts(url) == (0, 0, 0, 0)


@pytest.mark.parametrize(("sizes", "message"), [
    ("run,params\na,abc\n", "sizes file sz.csv line 2: params: expected a whole number, got 'abc'"),
    ("run,params\na,NaN\n", "sizes file sz.csv line 2: params: missing"),
    ("run,params\na,0.5\n", "params: '0.5' is not a whole number"),
    ("run,params,tokens\na,10,1e30\n", "tokens: '1e30' is beyond the store's 64-bit integers"),
    ("run,params\na,1\na,2\n", "run 'a' is listed twice"),
])
def test_history_bad_sizes_are_one_line(tmp_path: Path, sizes: str, message: str) -> None:
    (tmp_path / "h.csv").write_text("run,step,loss\na,0,3\n")
    (tmp_path / "sz.csv").write_text(sizes)
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = _cli("import", "history", str(tmp_path / "h.csv"), "--sizes", str(tmp_path / "sz.csv"),
               "--store", url)
    assert res.exit_code == 1 and message in res.output, res.output


def test_history_reimport_refreshes_and_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    (tmp_path / "h.csv").write_text("run,_step,loss,note\na,0,3.0,x\na,10,2.5,y\n")
    first = _cli("import", "history", str(tmp_path / "h.csv"), "--store", url)
    assert "skipped columns without numbers: note" in first.output
    (tmp_path / "h.csv").write_text("run,_step,loss\na,0,3.0\na,10,2.5\na,20,2.0\na,30,inf\n")
    second = _cli("import", "history", str(tmp_path / "h.csv"), "--store", url)
    assert "1 runs (0 new, 1 updated), 3 metric values (1 new) of loss" in second.output
    assert "skipped 1 NaN or infinite values (first: line 5 'loss')" in second.output
    with Store.open(url) as st:
        assert st.runs().iloc[0]["final_loss"] == 2.0 and st.count_metrics() == 3


def _lm(tmp_path: Path, name: str, doc: dict | str) -> Path:
    folder = tmp_path / "res"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _doc(acc: object = 0.5, revision: str = "step100", **extra: object) -> dict:
    return {"results": {"arc": {"acc": acc, "acc_stderr": 0.01}},
            "config": {"model_args": f"pretrained=org/m1,revision={revision}",
                       "num_fewshot": 0}, **extra}


@pytest.mark.parametrize(("doc", "message"), [
    (json.dumps(_doc()).replace("0.5", "1" + "0" * 400), "r.json: integer 1000"),
    ('{"results": {"arc": {"acc": 0.5}}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "r.json: nested deeper than 64 levels"),
    (_doc(revision="step" + "9" * 25), "is beyond the store's 64-bit integers"),
    (_doc(revision="step4611686018427387904"), "tokens per step is beyond the store's 64-bit"),
    (_doc(**{"n-shot": {"arc": 1e300}}), "n-shot of arc: 1e+300 is more than 2,147,483,647"),
])
def test_lm_eval_bad_files_write_nothing(tmp_path: Path, doc: object, message: str) -> None:
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("model,params,tokens_per_step\nm1,1000000,2097152\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    _lm(tmp_path, "a_good.json", _doc(revision="step50"))  # read first, written never
    _lm(tmp_path, "r.json", doc)
    res = _cli("import", "lm-eval", str(tmp_path / "res"), "--sizes", str(sizes), "--store", url)
    assert res.exit_code == 1 and message in res.output, res.output
    assert res.output.count("\n") == 1
    assert _counts(url) == (0, 0, 0, 0)


def test_lm_eval_infinity_is_skipped_and_counted(tmp_path: Path) -> None:
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("model,params,tokens_per_step\nm1,1000000,2097152\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    _lm(tmp_path, "a.json", _doc(acc=float("inf")) | {"results": {"arc": {
        "acc": float("inf"), "acc_norm": 0.4, "acc_norm_stderr": float("nan")}}})
    _lm(tmp_path, "b.json", _doc(acc=float("nan"), revision="step200"))
    res = _cli("import", "lm-eval", str(tmp_path / "res"), "--sizes", str(sizes), "--store", url)
    assert res.exit_code == 0, res.output
    assert "skipped 2 NaN or infinite values (first: a.json 'arc/acc', b.json 'arc/acc')" \
        in res.output
    with Store.open(url) as st:
        evals = st.evals()
        assert evals[["metric", "value"]].values.tolist() == [["acc_norm", 0.4]]
        assert pd.isna(evals["stderr"].iloc[0])
        assert len(st.checkpoints()) == 1  # b.json had no finite result: no empty checkpoint


def test_lm_eval_fifo_is_named(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "r.json")
    (tmp_path / "sizes.csv").write_text("model,params,tokens_per_step\nm1,1,1\n")
    res = _cli("import", "lm-eval", str(tmp_path / "r.json"), "--sizes",
               str(tmp_path / "sizes.csv"), "--store", f"sqlite:///{tmp_path / 's.db'}")
    assert res.exit_code == 1 and "is a FIFO (named pipe), not a regular file" in res.output


def test_one_transaction_per_import(store_url: str) -> None:
    """A plan whose last write fails (a checkpoint path owned by another run) leaves the
    runs, metric rows and evals before it unwritten, on both backends."""
    with Store.open(store_url) as st:
        owner = RunRecord(run_key="owner", sweep=None, family="imported", config={}, N=1,
                          N_total=1, D=1, C=6.0, status="finished")
        st.apply_import(ImportPlan(runs=[PlannedRun(owner)], checkpoints=[PlannedCheckpoint(
            CheckpointRecord(None, "owner", "external", 1, 1, 6.0, None, "p", None, None),
            (("arc", "acc", 0.5, None, 0),))]))
        before = (st.count_runs(), st.count_metrics(), len(st.evals()), len(st.sweeps()))
        other = RunRecord(run_key="other", sweep="s", family="imported", config={}, N=2,
                          N_total=2, D=2, C=24.0, status="finished")
        plan = ImportPlan(sweeps={"s": {}}, runs=[PlannedRun(other, metrics=pd.DataFrame(
            {"name": ["loss"] * 3, "step": [0, 1, 2], "value": [3.0, 2.0, 1.0]}))],
            checkpoints=[PlannedCheckpoint(CheckpointRecord(
                None, "other", "external", 2, 2, 24.0, None, "p", None, None),
                (("arc", "acc", 0.9, None, 0),))])
        with pytest.raises(Exception, match="already registered to another run"):
            st.apply_import(plan)
        assert (st.count_runs(), st.count_metrics(), len(st.evals()), len(st.sweeps())) == before
        assert st.evals()["value"].tolist() == [0.5]


def test_whole_numbers_are_never_rounded() -> None:
    assert checks.whole("1e9", "x") == 10**9 and checks.whole(2.0**62, "x") == 2**62
    assert checks.whole(" 12 ", "x") == 12 and checks.whole("", "x") is None
    for bad in ("0.4", "1e30", "abc", "inf", True, 2**63, "1,000"):
        with pytest.raises(DataError, match="^x: "):
            checks.whole(bad, "x")


@pytest.mark.parametrize(("name", "fmt", "wanted"), [
    ("m.parquet", None, "parquet"), ("m.jsonl", None, "jsonl"), ("m.csv", None, "csv"),
    ("m.out", "csv", "csv"),
])
def test_export_format_from_the_extension(tmp_path: Path, name: str, fmt: str | None,
                                          wanted: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    (tmp_path / "h.csv").write_text("run,step,loss\na,0,3.0\n")
    _cli("import", "history", str(tmp_path / "h.csv"), "--store", url)
    out = tmp_path / name
    res = _cli("export", "metrics", "-o", str(out), *(["--format", fmt] if fmt else []),
               "--store", url)
    assert res.exit_code == 0 and f"({wanted})" in res.output, res.output
    read = {"parquet": pd.read_parquet, "csv": pd.read_csv,
            "jsonl": lambda p: pd.read_json(p, lines=True)}[wanted]
    assert read(out)["value"].tolist() == [3.0]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_refusals_keep_the_previous_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    (tmp_path / "h.csv").write_text("run,step,loss\na,0,3.0\n")
    _cli("import", "history", str(tmp_path / "h.csv"), "--store", url)
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "dir.csv").mkdir()
    for target, extra, message in (
            ("m.xlsx", (), "cannot tell the format of 'm.xlsx'"),
            ("x.parquet", ("--format", "csv"), "--format csv but 'x.parquet' names parquet"),
            ("fifo.csv", (), "it is a FIFO"), ("dir.csv", (), "it is a folder"),
            ("/dev/null", ("--format", "csv"), "it is a character device"),
            ("/proc/version", ("--format", "csv"), "cannot write '/proc/version'")):
        path = target if target.startswith("/") else str(tmp_path / target)
        res = _cli("export", "runs", "-o", path, *extra, "--store", url)
        assert res.exit_code in (1, 2) and message in res.output, res.output
    assert not (tmp_path / "m.xlsx").exists()


def test_wandb_without_the_sdk_reader_names_the_extra(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """wandb >= 0.30 (or none) has no wandb.sdk.internal.datastore: one line naming the extra."""
    import sys

    monkeypatch.setitem(sys.modules, "wandb.sdk.internal.datastore", None)
    run_dir = tmp_path / "wandb" / "offline-run-1-x"
    run_dir.mkdir(parents=True)
    (run_dir / "run-x.wandb").write_bytes(b":W&B\xe1\xbe\x00")
    res = _cli("import", "wandb", str(run_dir), "--store", f"sqlite:///{tmp_path / 's.db'}")
    assert res.exit_code == 1 and "pip install 'scaletrack[wandb]' (wandb < 0.30" in res.output
