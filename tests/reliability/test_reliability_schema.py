"""Schema upgrade: a store written by the oldest schema revision opens with the current code and
keeps every row; stores the code cannot adopt are refused in one line without being touched.

With a single revision (0001) so far, "oldest" is also "head": the test then proves that a store
created by `store.migrate.upgrade(engine, <oldest>)` and filled by plain SQL in that revision's
layout (not by today's Store code) is opened and read back exactly. It starts proving the
upgrade path itself the day a second revision is added, with no change needed here.
"""

from __future__ import annotations

import math
import sqlite3
import struct
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from reliability.harness import store_fingerprint
from scaletrack.store import Store, StoreError
from scaletrack.store.engine import create_store_engine, parse_store_url
from scaletrack.store.migrate import alembic_config, head_revision, upgrade

N_RUNS, N_STEPS = 3, 200


def oldest_revision() -> str:
    (base,) = ScriptDirectory.from_config(alembic_config()).get_bases()
    return base


def _f64(x: float) -> bytes:
    return struct.pack("<d", x)


def fill_revision_0001(db: Path) -> dict[str, int]:
    """Rows in revision 0001's layout written with sqlite3 directly; returns row counts."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO sweeps (id, name, spec, created_at, updated_at) VALUES "
                     "(1, 'old', '{\"grid\": 1}', '2025-01-01 00:00:00', '2025-01-01 00:00:00')")
        for i in range(1, N_RUNS + 1):
            conn.execute(
                "INSERT INTO runs (id, run_key, sweep, family, status, attempts, worker, N, "
                "N_total, D, C, seed, lr, final_loss, config, created_at, updated_at) VALUES "
                "(?, ?, 'old', 'gpt', 'finished', 1, NULL, ?, ?, 1000, ?, 0, 0.001, ?, ?, "
                "'2025-01-01 00:00:00', '2025-01-01 00:00:00')",
                (i, f"old-{i}", 100 * i, 200 * i, 6e5 * i, 3.0 - i / 10, f'{{"i": {i}}}'),
            )
            rows = [(i, "train/loss", s, _f64(5.0 / (s + 1)), 64 * s, _f64(0.01 * s))
                    for s in range(N_STEPS)]
            rows.append((i, "spike", 3, _f64(math.nan), None, None))
            rows.append((i, "grad_norm", 4, _f64(math.inf), None, None))
            conn.executemany("INSERT INTO metrics (run_id, name, step, value, tokens, wall_time)"
                             " VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("INSERT INTO checkpoints (id, run_id, kind, N, tokens, flops, step, path, "
                     "sha256, loader, meta, created_at) VALUES (1, 1, 'own', 100, 6400, 1e9, 100,"
                     " '/old/ck.safetensors', 'ab', 'gpt', '{}', '2025-01-01 00:00:00')")
        conn.execute("INSERT INTO evals (checkpoint_id, task, metric, value, created_at) VALUES "
                     "(1, 'val_loss', 'loss', 4.25, '2025-01-01 00:00:00')")
        conn.execute("INSERT INTO ideas (id, title, task, metric, threshold, direction, status,"
                     " created_at, updated_at) VALUES (1, 'old idea', 'val_loss', 'loss', 1.0, "
                     "'below', 'not-yet', '2025-01-01 00:00:00', '2025-01-01 00:00:00')")
        conn.execute("INSERT INTO fits (id, form, sweep, label, payload, created_at) VALUES "
                     "(1, 'chinchilla', 'old', NULL, '{\"E\": 1.7}', '2025-01-01 00:00:00')")
    conn.close()
    return {"runs": N_RUNS, "metrics": N_RUNS * (N_STEPS + 2), "checkpoints": 1, "evals": 1,
            "ideas": 1, "fits": 1, "sweeps": 1}


FILLERS = {"0001": fill_revision_0001}


def create_old_store(db: Path) -> tuple[str, dict[str, int]]:
    rev = oldest_revision()
    assert rev in FILLERS, f"write a frozen filler for the oldest revision {rev}"
    engine = create_store_engine(parse_store_url(f"sqlite:///{db}"))
    try:
        assert upgrade(engine, rev) == rev
    finally:
        engine.dispose()
    return rev, FILLERS[rev](db)


def test_store_from_oldest_revision_opens_and_keeps_every_row(tmp_path: Path,
                                                               figures: dict) -> None:
    db = tmp_path / "old.db"
    rev, counts = create_old_store(db)
    with Store.open(f"sqlite:///{db}") as store:
        assert store.schema_version() == head_revision()
        runs = store.runs()
        assert sorted(runs["run_key"]) == [f"old-{i}" for i in range(1, N_RUNS + 1)]
        assert runs.set_index("run_key").loc["old-2", "final_loss"] == pytest.approx(2.8)
        assert runs.set_index("run_key").loc["old-3", "config"] == {"i": 3}
        metrics = store.metrics()
        assert len(metrics) == counts["metrics"] == store.count_metrics()
        loss = metrics[metrics["name"] == "train/loss"]
        assert (loss["value"].to_numpy() == [5.0 / (s + 1) for s in loss["step"]]).all()
        spike = metrics[metrics["name"] == "spike"]["value"]
        assert len(spike) == N_RUNS and spike.isna().all()
        assert (metrics[metrics["name"] == "grad_norm"]["value"] == math.inf).all()
        assert len(store.checkpoints()) == 1 and store.evals()["value"].tolist() == [4.25]
        assert store.ideas()["title"].tolist() == ["old idea"]
        assert store.fits()["payload"].tolist() == [{"E": 1.7}]
        # and it is writable with today's code
        store.write_metrics(loss.assign(step=loss["step"] + N_STEPS)[
            ["run_key", "name", "step", "value"]])
        assert store.count_metrics() == counts["metrics"] + len(loss)
    after = store_fingerprint(db)
    assert {t: after[t][0] for t in counts} == {**counts,
                                                "metrics": counts["metrics"] + N_RUNS * N_STEPS}
    figures["rows compared"] = figures.get("rows compared", 0) + counts["metrics"]
    print(f"schema: store at revision {rev} -> {head_revision()}, "
          f"{sum(counts.values())} rows kept")


def test_reopening_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    create_old_store(db)
    Store.open(f"sqlite:///{db}").close()
    before = store_fingerprint(db)
    for _ in range(3):
        Store.open(f"sqlite:///{db}").close()
    assert store_fingerprint(db) == before


def _one_line_refusal(db: Path) -> str:
    before = store_fingerprint(db)
    with pytest.raises(StoreError) as info:
        Store.open(f"sqlite:///{db}")
    message = str(info.value)
    assert "\n" not in message.strip() and str(db) in message, message
    assert store_fingerprint(db) == before, "a refused store was modified"
    return message


def test_tables_without_a_version_table(tmp_path: Path) -> None:
    """A store whose alembic_version table is gone (e.g. made by hand or by a pre-release):
    not adopted automatically (the store has no such feature); refused in one line and left
    exactly as it was, rows included."""
    db = tmp_path / "unversioned.db"
    create_old_store(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DROP TABLE alembic_version")
    conn.close()
    try:
        with Store.open(f"sqlite:///{db}") as store:  # adopting it would be fine too
            assert store.count_metrics() == N_RUNS * (N_STEPS + 2)
            assert len(store.runs()) == N_RUNS
    except StoreError:
        message = _one_line_refusal(db)
        assert "already exists" in message or "version" in message


def test_store_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    create_old_store(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    conn.close()
    message = _one_line_refusal(db)
    assert "9999_future" in message
