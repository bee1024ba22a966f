"""Fuzzing every importer and `export` with hypothesis: whatever the input, the command ends
with status 0 or a one-line error (status 1), never a traceback, and a refused import leaves
the store exactly as it was.

Inputs: lm-eval result files (JSON trees with odd numbers, names, depths, and raw bytes),
sizes tables, history tables (CSV cells from a hostile pool), W&B transaction logs (written by
the wandb SDK's own DataStore writer with random records, then bit-flipped or cut), MLflow
file stores (a real store written by mlflow, then random meta.yaml / metric / param files),
and export targets (names, extensions, formats, FIFOs, folders). FUZZ_EXAMPLES sets the number
of examples per target (default 40; the closing note's run used 300).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scaletrack.cli.main import app

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
runner = CliRunner()
pytestmark = pytest.mark.slow  # a few hundred CLI runs: about 30 s

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1e300, -1e-300, 2**63, 2**63 - 1, 2**64, 10**400]),
)
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
CELLS = st.one_of(st.sampled_from(["", "nan", "NaN", "inf", "-inf", "Infinity", "1e20",
                                   "10000000000000000000", "-5", "0.5", "abc", "1,000", " 7 ",
                                   "\x1b[31m", "[red]x[/]", '"', "0x10", "1e-400", "1e400"]),
                  NUMBERS.map(repr), TEXT)


class Snapshot:
    """Row counts and last update times of a SQLite store's tables, read directly."""

    TABLES = ("runs", "metrics", "checkpoints", "evals", "sweeps", "run_tags")

    def __init__(self, db: Path) -> None:
        self.db = db

    def take(self) -> tuple:
        if not self.db.exists():
            return ()
        con = sqlite3.connect(self.db)
        try:
            counts = tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                           for t in self.TABLES)
            runs = tuple(con.execute("SELECT run_key, status, final_loss, N, D, updated_at "
                                     "FROM runs ORDER BY run_key").fetchall())
            return counts, runs
        finally:
            con.close()


def _check(res, snapshot: Snapshot, before: tuple) -> None:
    """0, or a one-line error with the store unchanged; never a traceback."""
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output
    assert res.exit_code in (0, 1), res.output
    if res.exit_code == 1:
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, res.output
        assert snapshot.take() == before


json_tree = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
                         lambda children: st.lists(children, max_size=4)
                         | st.dictionaries(TEXT, children, max_size=4), max_leaves=12)
lm_doc = st.fixed_dictionaries({
    "results": st.dictionaries(st.one_of(TEXT, st.sampled_from(["arc", "hellaswag"])),
                               st.one_of(st.dictionaries(st.sampled_from(
                                   ["acc", "acc,none", "acc_stderr", "acc_stderr,none",
                                    "ppl", "alias"]), st.one_of(NUMBERS, TEXT, json_tree)),
                                   json_tree), max_size=3),
    "config": st.fixed_dictionaries({
        "model_args": st.one_of(st.sampled_from([
            "pretrained=org/m1,revision=step100", "pretrained=org/m1,revision=step1e20",
            "pretrained=org/m1", "pretrained=m1,revision=main",
            "pretrained=org/m1,revision=step" + "9" * 30]), TEXT.map(lambda t: "pretrained=" + t)),
        "num_fewshot": st.one_of(st.none(), NUMBERS, TEXT)}),
    "n-shot": st.one_of(st.none(), st.dictionaries(st.sampled_from(["arc", "hellaswag"]),
                                                   st.one_of(NUMBERS, TEXT))),
})


def _dump(doc: object) -> str:
    return json.dumps(doc, allow_nan=True, default=str)


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, str, Snapshot]:
    from scaletrack.store import Store

    db = tmp_path / "s.db"
    Store.open(f"sqlite:///{db}").close()  # an existing store, as a researcher's would be
    return tmp_path, f"sqlite:///{db}", Snapshot(db)


def test_fuzz_lm_eval(workspace) -> None:
    tmp, url, snap = workspace
    sizes = tmp / "sizes.csv"
    sizes.write_text("model,params,tokens_per_step,tokens\nm1,1000000,2097152,1000\n")

    @SETTINGS
    @given(doc=st.one_of(lm_doc.map(_dump), st.binary(max_size=200).map(
        lambda b: b.decode("latin-1")), st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)))
    def run(doc: str) -> None:
        (tmp / "r.json").write_text(doc, encoding="utf-8", errors="surrogateescape")
        before = snap.take()
        res = runner.invoke(app, ["import", "lm-eval", str(tmp / "r.json"), "--sizes",
                                  str(sizes), "--store", url])
        _check(res, snap, before)

    run()


def test_fuzz_sizes_and_history(workspace) -> None:
    tmp, url, snap = workspace

    @SETTINGS
    @given(header=st.lists(st.sampled_from(["run", "step", "_step", "loss", "val/loss",
                                            "tokens", "x", ""]), min_size=1, max_size=5),
           rows=st.lists(st.lists(CELLS, min_size=0, max_size=6), max_size=6),
           sizes=st.lists(st.tuples(CELLS, CELLS, CELLS), max_size=3),
           tokens=st.booleans())
    def run(header, rows, sizes, tokens) -> None:
        def line(cells):
            return ",".join(json.dumps(str(c)) for c in cells)

        (tmp / "h.csv").write_text("\n".join([line(header), *map(line, rows)]) + "\n",
                                   encoding="utf-8", errors="surrogateescape")
        (tmp / "sz.csv").write_text("run,params,tokens\n" + "".join(
            line(r) + "\n" for r in sizes), encoding="utf-8", errors="surrogateescape")
        before = snap.take()
        args = ["import", "history", str(tmp / "h.csv"), "--sizes", str(tmp / "sz.csv"),
                "--store", url]
        res = runner.invoke(app, args + (["--tokens-col", "tokens"] if tokens else []))
        _check(res, snap, before)

    run()


def _wandb_log(path: Path, records: list) -> None:
    """A transaction log written by the SDK's own DataStore writer."""
    from wandb.sdk.internal import datastore

    store = datastore.DataStore()
    store.open_for_write(str(path))
    for record in records:
        store._write_data(record.SerializeToString())
    store._fp.close()


def test_fuzz_wandb(workspace) -> None:
    pytest.importorskip("wandb.sdk.internal.datastore")
    from wandb.proto import wandb_internal_pb2 as pb

    tmp, url, snap = workspace
    keys = st.sampled_from(["loss", "train/loss", "_step", "_runtime", "acc", "x" * 250, "a.b"])
    values = st.one_of(NUMBERS.map(_dump), TEXT.map(json.dumps), json_tree.map(_dump),
                       TEXT, st.sampled_from(["NaN", "Infinity", "1" + "0" * 400, "{"]))

    def history(items) -> pb.Record:
        record = pb.Record()
        for key, value in items:
            item = record.history.item.add()
            item.key, item.value_json = key, value
        return record

    def run_record(run_id, name, config) -> pb.Record:
        record = pb.Record()
        record.run.run_id, record.run.project, record.run.display_name = run_id, "p", name
        for key, value in config:
            item = record.run.config.update.add()
            item.key, item.value_json = key, value
        return record

    @SETTINGS
    @given(run_id=st.one_of(st.just("abc123"), TEXT), name=st.one_of(st.just("r"), TEXT),
           config=st.lists(st.tuples(st.sampled_from(["n_params", "tokens"]), values),
                           max_size=2),
           rows=st.lists(st.lists(st.tuples(keys, values), max_size=4), max_size=5),
           exit_code=st.one_of(st.none(), st.integers(-5, 5)),
           damage=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                            st.integers(0, 10**6).map(lambda n: -n - 1)))
    def run(run_id, name, config, rows, exit_code, damage) -> None:
        folder = tmp / "wandb" / "offline-run-x"
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "run-x.wandb"
        log.unlink(missing_ok=True)
        records = [run_record(run_id, name, config), *map(history, rows)]
        if exit_code is not None:
            end = pb.Record()
            end.exit.exit_code = exit_code
            records.append(end)
        _wandb_log(log, records)
        raw = bytearray(log.read_bytes())
        if isinstance(damage, tuple) and raw:
            raw[damage[0] % len(raw)] ^= damage[1]
        elif isinstance(damage, int):
            raw = raw[:(-damage - 1) % (len(raw) + 1)]
        log.write_bytes(bytes(raw))
        before = snap.take()
        res = runner.invoke(app, ["import", "wandb", str(folder), "--params-key", "n_params",
                                  "--tokens-key", "tokens", "--store", url])
        _check(res, snap, before)

    run()


def test_fuzz_mlflow_file_store(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    tmp, url, snap = workspace
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    root = tmp / "mlruns"
    client = mlflow.tracking.MlflowClient(tracking_uri=root.as_uri())
    exp = client.create_experiment("ladder")
    run_id = client.create_run(exp, run_name="r").info.run_id
    client.log_param(run_id, "params", "1000")
    client.log_metric(run_id, "loss", 3.0, step=1)
    run_dir = root / exp / run_id
    files = {"exp meta": root / exp / "meta.yaml", "run meta": run_dir / "meta.yaml",
             "metric": run_dir / "metrics" / "loss", "param": run_dir / "params" / "params",
             "tag": run_dir / "tags" / "team"}
    originals = {k: p.read_text() if p.exists() else None for k, p in files.items()}
    lines = st.one_of(st.tuples(NUMBERS, NUMBERS, NUMBERS).map(
        lambda t: " ".join(map(str, t))), TEXT, CELLS)

    @SETTINGS
    @given(which=st.sampled_from(sorted(files)), content=st.lists(lines, max_size=3).map(
        "\n".join), keep=st.booleans())
    def run(which, content, keep) -> None:
        for key, path in files.items():
            if originals[key] is not None:
                path.write_text(originals[key])
            else:
                path.unlink(missing_ok=True)
        target = files[which]
        text = (originals[which] or "") + content if keep else content
        target.write_text(text, encoding="utf-8", errors="surrogateescape")
        before = snap.take()
        res = runner.invoke(app, ["import", "mlflow", "--tracking-uri", root.as_uri(),
                                  "--store", url])
        _check(res, snap, before)

    run()


def test_fuzz_export_targets(workspace) -> None:
    tmp, url, snap = workspace
    (tmp / "h.csv").write_text("run,step,loss\na,0,3.0\na,1,2.5\n")
    assert runner.invoke(app, ["import", "history", str(tmp / "h.csv"), "--store",
                               url]).exit_code == 0
    out = tmp / "out"
    out.mkdir()

    @SETTINGS
    @given(name=st.one_of(TEXT, st.sampled_from(["a.csv", "a.parquet", "a.jsonl", "a.xlsx",
                                                 "a", ".csv", "x/y.csv", "a.PARQUET"])),
           fmt=st.one_of(st.none(), st.sampled_from(["csv", "parquet", "jsonl", "xlsx"])),
           table=st.sampled_from(["runs", "metrics", "evals", "fits", "nope"]),
           existing=st.sampled_from([None, "file", "dir", "fifo"]))
    def run(name, fmt, table, existing) -> None:
        name = name.replace("/", "_").replace("\0", "_") or "empty"
        target = out / name
        if existing and not target.exists() and len(name.encode()) < 200 and name not in (
                ".", ".."):
            if existing == "file":
                target.write_text("previous\n")
            elif existing == "dir":
                target.mkdir()
            else:
                os.mkfifo(target)
        before = target.read_bytes() if target.is_file() else None
        args = ["export", table, "-o", str(target), "--store", url]
        res = runner.invoke(app, args + (["--format", fmt] if fmt else []))
        assert res.exception is None or isinstance(res.exception, SystemExit), res.output
        assert "Traceback" not in res.output and res.exit_code in (0, 1, 2), res.output
        if res.exit_code != 0 and before is not None:
            assert target.read_bytes() == before  # a failed export keeps the previous file
        assert not list(out.glob(".*.tmp"))  # no temporary file left behind

    run()
