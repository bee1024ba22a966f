"""`scaletrack import wandb`: real offline runs written by the wandb SDK, read back with the
SDK's own reader, every value compared; re-import after the source grew; running -> finished;
a torn log; bad input one line, store untouched; the PostgreSQL variant via `store_url`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner
from wandb_runs import log_records, sdk_history, write_runs

from scaletrack.cli.main import app
from scaletrack.store import Store

pytest.importorskip("wandb.sdk.internal.datastore")
pytestmark = pytest.mark.slow  # the SDK writes the source runs once: about 9 s
runner = CliRunner()

GRID = [  # 3 sizes x 2 budgets (N parameters, D tokens)
    {"name": f"n{n // 1000}k-d{d // 1_000_000}M", "N": n, "D": d, "d_model": dm,
     "steps": 12, "seed": i}
    for i, (n, dm, d) in enumerate((n, dm, d) for n, dm in ((50_000, 32), (200_000, 64),
                                                            (800_000, 128))
                                   for d in (2_000_000, 8_000_000))
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Real offline runs, written once by one SDK process: the ladder (3 sizes x 2 budgets,
    one NaN gradient norm in the first) under ladder/, and single runs under their own
    folders: "solo" (20 steps), "failed" (exit code 3), "small" (3 steps)."""
    folder = tmp_path_factory.mktemp("wb")
    grid = [dict(cell, dir=str(folder / "ladder")) for cell in GRID]
    grid[0]["nan_at"] = 3
    single = {"N": 1000, "D": 20_000, "d_model": 8, "seed": 0, "project": "solo"}
    grid += [dict(single, name="solo", key=key, steps=steps, dir=str(folder / key), **extra)
             for key, steps, extra in (("solo", 20, {}), ("failed", 4, {"exit_code": 3}),
                                       ("small", 3, {}))]
    for cell in grid:
        Path(cell["dir"]).mkdir(parents=True, exist_ok=True)
    return folder, write_runs(folder, grid)


@pytest.fixture
def ladder(sources: tuple[Path, dict]) -> tuple[Path, dict]:
    return sources[0] / "ladder", sources[1]


def _single(sources: tuple[Path, dict], key: str) -> tuple[Path, dict]:
    logged = sources[1][key]
    return Path(logged["dir"]).parent, logged


def _store_snapshot(url: str) -> tuple:
    with Store.open(url) as st:
        return (st.runs().drop(columns=["created_at", "updated_at"]).to_json(date_format="iso"),
                st.metrics().to_json(date_format="iso"), len(st.sweeps()))


def _import(url: str, *paths: str | Path, extra: tuple[str, ...] = ()) -> object:
    return runner.invoke(app, ["import", "wandb", *map(str, paths), "--params-key", "n_params",
                               "--tokens-key", "tokens", *extra, "--store", url])


def test_ladder_imported_value_for_value(ladder: tuple[Path, dict], store_url: str) -> None:
    folder, logged = ladder
    res = _import(store_url, folder / "wandb")
    assert res.exit_code == 0, res.output
    assert "imported 6 W&B runs (6 new, 0 updated) from 6 run logs" in res.output
    assert "skipped 1 NaN or infinite values (first: n50k-d2M 'grad_norm@30')" in res.output
    assert "skipped non-numeric keys: phase" in res.output
    with Store.open(store_url) as st:
        runs = st.runs(sweep="ladder").set_index("name")
        metrics = st.metrics()
        assert len(runs) == 6
        for cell in GRID:
            got, src = runs.loc[cell["name"]], logged[cell["name"]]
            assert (got["N"], got["D"], got["C"]) == (cell["N"], cell["D"],
                                                      6.0 * cell["N"] * cell["D"])
            assert got["status"] == "finished" and got["final_loss"] == src["val"]
            assert list(got["tags"]) == ["ladder"] and got["note"] == cell["name"] + " baseline"
            config = got["config"]
            assert config["run_id"] == src["id"] and config["config"]["model"]["d_model"] == \
                cell["d_model"]
            assert config["summary"]["best_val"] == src["val"]
            mine = metrics[metrics["run_key"] == got["run_key"]]
            loss = mine[mine["name"] == "train/loss"]
            assert loss["step"].tolist() == [10 * i for i in range(cell["steps"])]
            np.testing.assert_array_equal(loss["value"].to_numpy(), src["losses"])  # bit for bit
            assert (loss["wall_time"] >= 0).all()
            # and row for row against the SDK's own read of the log
            log = next(Path(src["dir"]).parent.glob("*.wandb"))
            for row in sdk_history(log):
                for key, value in row.items():
                    if key.startswith("_") or not isinstance(value, (int, float)) or \
                            not np.isfinite(value):
                        continue
                    hit = mine[(mine["name"] == key) & (mine["step"] == row["_step"])]
                    assert hit["value"].tolist() == [float(value)], (key, row["_step"])
    again = _import(store_url, folder / "wandb")
    assert "(0 new, 0 updated)" in again.output and "(0 new)" in again.output
    with Store.open(store_url) as st:
        assert len(st.metrics()) == len(metrics)


def test_reimport_after_the_source_grew(sources: tuple[Path, dict], tmp_path: Path) -> None:
    """The log at an earlier moment of the run (an exact prefix, no exit record) imports as
    running; the whole log then adds the new rows, refreshes status and final loss, and
    duplicates nothing."""
    run_dir, logged = _single(sources, "solo")
    log = next(run_dir.glob("*.wandb"))
    full = log.read_bytes()
    records = log_records(log)
    histories = [end for end, kind in records if kind == "history"]
    live = tmp_path / "live" / run_dir.name
    live.mkdir(parents=True)
    (live / log.name).write_bytes(full[:histories[9]])  # 10 of 21 history rows logged so far
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = _import(url, live)
    assert first.exit_code == 0, first.output
    assert "still running: solo" in first.output
    with Store.open(url) as st:
        run = st.runs().iloc[0]
        before = st.count_metrics()
        assert run["status"] == "running" and run["final_loss"] == logged["losses"][9]
    (live / log.name).write_bytes(full)
    second = _import(url, live)
    assert second.exit_code == 0, second.output
    with Store.open(url) as st:
        run = st.runs().iloc[0]
        after = st.count_metrics()
        assert run["status"] == "finished" and run["final_loss"] == logged["val"]
        metrics = st.metrics()
    assert (before, after) == (20, 41)  # train/loss + tokens_seen at 10 steps; 20 + 20 + val
    assert not metrics.duplicated(["run_key", "name", "step"]).any()
    assert "(0 new, 1 updated)" in second.output and "(21 new)" in second.output
    # a log cut inside a record (still being written) reads up to that record
    (live / log.name).write_bytes(full[:histories[4] + 5])
    torn = _import(url, live)
    assert torn.exit_code == 0 and "still running: solo" in torn.output


def test_failed_run_and_sizes_table(sources: tuple[Path, dict], tmp_path: Path) -> None:
    run_dir, _ = _single(sources, "failed")
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("run,params,tokens\nsolo,1234,56789\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = runner.invoke(app, ["import", "wandb", str(run_dir), "--sizes", str(sizes),
                              "--sweep", "mine", "--store", url])
    assert res.exit_code == 0, res.output
    with Store.open(url) as st:
        run = st.runs(sweep="mine").iloc[0]
        assert (run["status"], run["N"], run["D"]) == ("failed", 1234, 56789)
        assert run["error"] == "W&B exit code 3"
    unsized = runner.invoke(app, ["import", "wandb", str(run_dir), "--store",
                                  f"sqlite:///{tmp_path / 't.db'}"])
    assert "N or D unknown (name --params-key/--tokens-key or --sizes): solo" in unsized.output


def test_bad_input_is_one_line_and_touches_nothing(sources: tuple[Path, dict],
                                                   tmp_path: Path) -> None:
    run_dir, _ = _single(sources, "small")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _import(url, run_dir).exit_code == 0
    snapshot = _store_snapshot(url)
    log = next(run_dir.glob("*.wandb"))
    bad = tmp_path / "bad" / "offline-run-1-x"
    bad.mkdir(parents=True)
    (bad / "run-x.wandb").write_bytes(b"not a wandb log at all" * 3)
    middle = tmp_path / "middle" / "offline-run-2-y"
    middle.mkdir(parents=True)
    raw = bytearray(log.read_bytes() + b"\0" * 70_000)  # pad so the damage is not the tail
    raw[200] ^= 0xFF
    (middle / "run-y.wandb").write_bytes(bytes(raw))
    (tmp_path / "nothing").mkdir()
    cases = {
        str(bad): "not a W&B transaction log (bad header)",
        str(middle): "damaged record at byte",
        str(tmp_path / "missing"): "does not exist",
        str(tmp_path / "bad" / "offline-run-1-x" / "run-x.wandb.bak"): "does not exist",
        str(tmp_path / "nothing"): "no W&B runs",
    }
    for path, message in cases.items():
        res = _import(url, path, run_dir)
        assert res.exit_code == 1, (path, res.output)
        assert res.output.count("\n") == 1 and "Traceback" not in res.output, res.output
        assert message in res.output
        assert _store_snapshot(url) == snapshot
    sizes = tmp_path / "sizes.csv"
    for text, message in (("run,params\nsolo,abc\n", "params: expected a whole number"),
                          ("run,params\nsolo,1e30\n", "beyond the store's 64-bit integers"),
                          ("run,params\nsolo,0.5\n", "is not a whole number")):
        sizes.write_text(text)
        res = runner.invoke(app, ["import", "wandb", str(run_dir), "--sizes", str(sizes),
                                  "--store", url])
        assert res.exit_code == 1 and message in res.output, res.output
        assert _store_snapshot(url) == snapshot


def test_history_export_of_the_same_runs_matches(ladder: tuple[Path, dict],
                                                 tmp_path: Path) -> None:
    """The runs' metrics exported as a long table import through `import history` with the
    same values (W&B's other way out: a history CSV)."""
    folder, logged = ladder
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _import(url, folder / "wandb").exit_code == 0
    out = tmp_path / "m.jsonl"
    assert runner.invoke(app, ["export", "metrics", "-o", str(out), "--store", url]).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    frame = pd.DataFrame(rows)
    assert len(frame) > 0 and frame["value"].notna().all()
