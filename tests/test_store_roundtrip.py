"""Store round-trips: every table, idempotent metric upserts, NaN/inf, run claiming."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from scaletrack.store import (
    RUN_STATUSES,
    CheckpointRecord,
    IdeaAttemptRecord,
    IdeaRecord,
    MetricRow,
    RunRecord,
    Store,
    StoreError,
    make_run_key,
)
from scaletrack.store import schema as store_schema
from scaletrack.store.migrate import head_revision


def _run(key: str = "r1", sweep: str | None = "grid", **kw) -> RunRecord:
    config = {"family": "gpt", "d_model": 64, "key": key}
    fields = dict(run_key=key, sweep=sweep, family="gpt", config=config, N=1000, N_total=1500,
                  D=20_000, C=1.2e8, seed=1, lr=3e-4)
    fields.update(kw)
    return RunRecord(**fields)


def test_make_run_key_is_order_independent_and_short():
    a = make_run_key({"b": 1, "a": [1, 2], "c": {"y": 1, "x": 2}})
    b = make_run_key({"c": {"x": 2, "y": 1}, "a": [1, 2], "b": 1})
    assert a == b and len(a) == 16 and int(a, 16) >= 0
    assert make_run_key({"b": 2}) != make_run_key({"b": 1})


def test_schema_version_recorded(store: Store):
    assert store.schema_version() == head_revision()
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"sweeps", "runs", "metrics", "checkpoints", "evals", "ideas", "idea_attempts",
            "fits", "alembic_version"} <= tables


def test_reopen_keeps_data(store_url: str):
    with Store.open(store_url) as s:
        s.ensure_run(_run("keep"))
    with Store.open(store_url) as s:
        assert s.get_run("keep") is not None


def test_sweeps_roundtrip_and_upsert(store: Store):
    store.upsert_sweep("grid", {"sizes": [1, 2], "lr": 1e-3})
    store.upsert_sweep("grid", {"sizes": [1, 2, 3]})
    store.upsert_sweep("other", {})
    frame = store.sweeps()
    assert list(frame.columns) == ["name", "spec", "created_at", "note", "tags"]
    assert frame["name"].tolist() == ["grid", "other"]
    assert frame.loc[0, "spec"] == {"sizes": [1, 2, 3]}


def test_runs_roundtrip(store: Store):
    given = _run("r1")
    stored = store.ensure_run(given)
    assert stored.run_key == "r1" and stored.config == given.config
    assert (stored.N, stored.N_total, stored.D, stored.C, stored.seed, stored.lr) == (
        1000, 1500, 20_000, 1.2e8, 1, 3e-4)
    assert stored.status == "pending" and stored.attempts == 0
    assert stored.created_at is not None and stored.created_at.tzinfo is not None
    # ensure_run never overwrites an existing row
    again = store.ensure_run(_run("r1", N=5))
    assert again.N == 1000
    store.ensure_run(_run("r2", sweep="other", N=None, seed=None, lr=None))
    frame = store.runs()
    assert list(frame.columns) == [
        "run_key", "sweep", "family", "status", "N", "N_total", "D", "C", "seed", "lr",
        "final_loss", "attempts", "worker", "heartbeat_at", "error", "created_at", "updated_at",
        "config", "name", "tags", "note", "role", "parent_run_key", "branch_step"]
    assert frame["run_key"].tolist() == ["r1", "r2"]
    assert frame["role"].tolist() == ["cell", "cell"] and frame["branch_step"].isna().all()
    store.ensure_run(_run("b1", role="branch", parent_run_key="r1", branch_step=40))
    branch = store.get_run("b1")
    assert (branch.role, branch.parent_run_key, branch.branch_step) == ("branch", "r1", 40)
    assert store.runs(role="branch")["run_key"].tolist() == ["b1"]
    with pytest.raises(StoreError, match="role"):
        store.runs(role="stem")
    assert frame["N"].dtype == "Int64" and pd.isna(frame.loc[1, "N"])
    assert isinstance(frame.loc[0, "config"], dict)
    assert store.runs(sweep="other")["run_key"].tolist() == ["r2"]
    store.finish_run("r1", "finished", final_loss=2.5)
    assert store.runs(status="finished")["run_key"].tolist() == ["r1"]
    assert store.get_run("r1").final_loss == 2.5
    assert store.get_run("missing") is None
    with pytest.raises(StoreError):
        store.finish_run("r1", "exploded")
    with pytest.raises(StoreError):
        store.finish_run("missing", "finished")
    assert set(RUN_STATUSES) == {"pending", "running", "finished", "failed", "diverged"}


def test_claim_run_semantics(store: Store):
    store.ensure_run(_run("c"))
    assert store.claim_run("c", "w1")
    rec = store.get_run("c")
    assert (rec.status, rec.worker, rec.attempts) == ("running", "w1", 1)
    assert rec.heartbeat_at is not None
    # live heartbeat held by someone else: refused; the same worker may re-claim
    assert not store.claim_run("c", "w2", stale_after_s=60)
    assert store.heartbeat("c", "w1")
    assert not store.heartbeat("c", "w2")
    assert store.claim_run("c", "w1")
    assert store.get_run("c").attempts == 2
    # stale heartbeat: another worker takes over
    old = datetime.now(UTC) - timedelta(seconds=120)
    with store.engine.begin() as conn:
        conn.execute(sa.update(store_schema.runs).where(store_schema.runs.c.run_key == "c")
                     .values(heartbeat_at=old))
    assert not store.claim_run("c", "w2", stale_after_s=300)
    assert store.claim_run("c", "w2", stale_after_s=60)
    rec = store.get_run("c")
    assert (rec.worker, rec.attempts) == ("w2", 3)
    # release only by the holder
    store.release_run("c", "w1")
    assert store.get_run("c").status == "running"
    store.release_run("c", "w2")
    rec = store.get_run("c")
    assert (rec.status, rec.error) == ("failed", "interrupted")
    # failed runs are claimable again; finished and diverged are not
    assert store.claim_run("c", "w3")
    store.finish_run("c", "finished", final_loss=1.0)
    assert not store.claim_run("c", "w3")
    store.ensure_run(_run("d"))
    store.finish_run("d", "diverged", error="loss is nan")
    assert not store.claim_run("d", "w1")
    assert not store.claim_run("nope", "w1")


def test_metrics_roundtrip_nan_inf_and_dtypes(store: Store):
    store.ensure_run(_run("m1"))
    store.ensure_run(_run("m2"))
    values = [0.0, -0.0, 1.0 / 3.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]
    rows = [MetricRow("m1", "val/loss", i, v, tokens=i * 128, wall_time=0.25 * i)
            for i, v in enumerate(values)]
    rows.append(MetricRow("m2", "train/loss", 3, 2.0))
    assert store.write_metrics(rows) == len(values) + 1
    frame = store.metrics()
    assert list(frame.columns) == ["run_key", "name", "step", "value", "tokens", "wall_time"]
    assert frame["step"].dtype == np.int64 and frame["value"].dtype == np.float64
    assert frame["tokens"].dtype == "Int64" and frame["wall_time"].dtype == np.float64
    got = frame[frame["run_key"] == "m1"]["value"].to_numpy()
    expect = np.array(values)
    assert np.array_equal(got, expect, equal_nan=True)
    assert np.signbit(got[1])  # -0.0 keeps its sign: values are stored bit-exactly
    other = frame[frame["run_key"] == "m2"].iloc[0]
    assert pd.isna(other["tokens"]) and math.isnan(other["wall_time"])
    assert frame[frame["run_key"] == "m1"]["tokens"].tolist() == [i * 128 for i in range(8)]
    assert store.metrics(run_keys=["m2"])["run_key"].tolist() == ["m2"]
    assert len(store.metrics(names=["val/loss"])) == len(values)
    assert store.metrics(run_keys=["unknown"]).empty
    assert list(store.metrics(run_keys=[]).columns) == list(frame.columns)


def test_metric_upsert_is_idempotent(store: Store):
    store.ensure_run(_run("u"))
    frame = pd.DataFrame({"run_key": "u", "name": "train/loss", "step": range(50),
                          "value": np.linspace(3, 2, 50), "tokens": np.arange(50) * 10})
    assert store.write_metrics(frame) == 50
    assert store.write_metrics(frame) == 50
    assert store.count_metrics() == 50 == store.count_metrics("u")
    changed = frame.assign(value=frame["value"] + 1)
    store.write_metrics(changed.iloc[:10])
    got = store.metrics(["u"])
    assert len(got) == 50
    assert np.allclose(got["value"].to_numpy()[:10], changed["value"].to_numpy()[:10])
    assert np.allclose(got["value"].to_numpy()[10:], frame["value"].to_numpy()[10:])
    assert store.delete_metrics_after("u", 39) == 10
    assert store.count_metrics("u") == 40
    assert store.count_metrics("nobody") == 0
    store.write_metrics(frame.assign(name="val/loss").iloc[:7])
    assert store.metric_counts("u") == {"train/loss": 40, "val/loss": 7}
    assert store.metric_counts("nobody") == {}


def test_write_metrics_unknown_run_is_an_error(store: Store):
    with pytest.raises(StoreError, match="unknown run"):
        store.write_metrics([MetricRow("ghost", "x", 0, 1.0)])
    with pytest.raises(StoreError, match="unknown run"):
        store.metric_writer("ghost")


def test_metric_writer_flush_close_and_order(store: Store):
    store.ensure_run(_run("w"))
    writer = store.metric_writer("w", batch_size=7, flush_interval_s=10.0)
    for step in range(20):
        writer.log_many(step, {"train/loss": 1.0 / (step + 1), "lr": 1e-3},
                        tokens=step * 64, wall_time=step * 0.5)
    writer.log("val/loss", 19, float("nan"))
    writer.flush()
    assert store.count_metrics("w") == 41
    writer.log("val/loss", 20, 1.5)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(StoreError):
        writer.log("val/loss", 21, 1.0)
    frame = store.metrics(["w"], names=["train/loss"])
    assert frame["step"].tolist() == list(range(20))
    assert frame["tokens"].tolist() == [s * 64 for s in range(20)]
    val = store.metrics(["w"], names=["val/loss"])["value"].tolist()
    assert math.isnan(val[0]) and val[1] == 1.5


def test_metric_writer_flushes_on_interval(store: Store):
    store.ensure_run(_run("iv"))
    with store.metric_writer("iv", batch_size=1000, flush_interval_s=0.05) as writer:
        writer.log("x", 0, 1.0)
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while store.count_metrics("iv") == 0 and datetime.now(UTC) < deadline:
            pass
        assert store.count_metrics("iv") == 1


def test_store_close_flushes_open_writers(store_url: str):
    with Store.open(store_url) as s:
        s.ensure_run(_run("sc"))
        writer = s.metric_writer("sc", flush_interval_s=60.0)
        writer.log("x", 0, 1.0)
    with Store.open(store_url) as s:
        assert s.count_metrics("sc") == 1


def test_checkpoints_roundtrip(store: Store):
    store.ensure_run(_run("ck"))
    own = [CheckpointRecord(id=None, run_key="ck", kind="own", N=1000, tokens=t, flops=6e3 * t,
                            step=s, path=f"/ck/{s}.safetensors", sha256="ab" * 32, loader="gpt",
                            meta={"d_model": 64}) for s, t in ((100, 1000), (200, 2000))]
    ids = [store.add_checkpoint(c) for c in own]
    ext = CheckpointRecord(id=None, run_key=None, kind="external", N=10**9, tokens=10**12,
                           flops=None, step=None, path="/ext/model.pt", sha256=None,
                           loader="mypkg.models:load", meta={})
    ext_id = store.add_checkpoint(ext)
    assert len({*ids, ext_id}) == 3
    # re-registering the same path updates the row, keeps the id
    assert store.add_checkpoint(own[1]) == ids[1]
    got = store.get_checkpoint(ids[0])
    assert got == CheckpointRecord(**{**own[0].__dict__, "id": ids[0],
                                      "created_at": got.created_at})
    assert store.get_checkpoint(ext_id).run_key is None
    assert store.get_checkpoint(999) is None
    assert [c.step for c in store.latest_checkpoints("ck")] == [200, 100]
    frame = store.checkpoints()
    assert list(frame.columns) == ["id", "run_key", "kind", "N", "tokens", "flops", "step", "path",
                                   "sha256", "loader", "meta", "created_at"]
    assert len(frame) == 3
    assert store.checkpoints(run_key="ck")["step"].tolist() == [100, 200]
    assert store.checkpoints(kind="external")["N"].tolist() == [10**9]
    with pytest.raises(StoreError):
        store.add_checkpoint(CheckpointRecord(id=None, run_key=None, kind="bogus", N=1, tokens=1,
                                              flops=None, step=None, path="/x", sha256=None,
                                              loader=None))


def test_evals_roundtrip_and_upsert(store: Store):
    store.ensure_run(_run("ev"))
    cid = store.add_checkpoint(CheckpointRecord(id=None, run_key="ev", kind="own", N=10,
                                                tokens=100, flops=6e3, step=1, path="/e",
                                                sha256=None, loader="gpt"))
    store.add_eval(cid, "addition", "exact_match", 0.25)
    store.add_eval(cid, "addition", "exact_match", 0.5)
    store.add_eval(cid, "addition", "logprob", float("nan"))
    store.add_eval(cid, "copy", "exact_match", 1.0)
    frame = store.evals()
    assert list(frame.columns) == ["checkpoint_id", "run_key", "task", "metric", "value", "N",
                                   "tokens", "flops", "created_at", "stderr", "n_shot"]
    assert len(frame) == 3
    add = store.evals(task="addition").set_index("metric")
    assert add.loc["exact_match", "value"] == 0.5 and math.isnan(add.loc["logprob", "value"])
    assert add.loc["exact_match", "run_key"] == "ev" and add.loc["exact_match", "N"] == 10
    with pytest.raises(StoreError):
        store.add_eval(12345, "copy", "exact_match", 1.0)


def test_ideas_and_attempts_roundtrip(store: Store):
    idea = IdeaRecord(id=None, title="chain of thought", task="addition", metric="exact_match",
                      threshold=0.9, hypothesis="needs scale")
    iid = store.add_idea(idea)
    got = store.get_idea(iid)
    assert (got.title, got.status, got.direction, got.threshold) == (
        "chain of thought", "not-yet", "above", 0.9)
    store.update_idea(iid, status="due", best_value=0.3, max_flops_tried=1e12, max_N_tried=10**6)
    got = store.get_idea(iid)
    assert (got.status, got.best_value, got.max_N_tried) == ("due", 0.3, 10**6)
    assert got.updated_at >= got.created_at
    with pytest.raises(StoreError):
        store.update_idea(iid, colour="red")
    with pytest.raises(StoreError):
        store.update_idea(iid, status="maybe")
    with pytest.raises(StoreError):
        store.update_idea(999, status="due")
    assert store.get_idea(999) is None
    frame = store.ideas()
    assert frame["id"].tolist() == [iid] and "max_flops_tried" in frame.columns

    cid = store.add_checkpoint(CheckpointRecord(id=None, run_key=None, kind="external", N=10**6,
                                                tokens=10**8, flops=6e14, step=None, path="/i",
                                                sha256=None, loader=None))
    aid = store.add_idea_attempt(IdeaAttemptRecord(id=None, idea_id=iid, checkpoint_id=cid,
                                                   N=10**6, tokens=10**8, flops=6e14, value=0.3,
                                                   passed=False))
    attempts = store.idea_attempts(iid)
    assert attempts["id"].tolist() == [aid]
    assert attempts["passed"].tolist() == [False] and attempts["value"].tolist() == [0.3]
    assert store.idea_attempts(idea_id=iid + 1).empty
    assert len(store.idea_attempts()) == 1


def test_fits_roundtrip(store: Store):
    payload = {"form": "chinchilla", "params": {"E": 1.7, "A": 406.4},
               "ci95": {"E": [1.6, float("inf")]}, "residuals": [0.1, float("nan")]}
    fid = store.save_fit("chinchilla", payload, sweep="grid", label="first")
    store.save_fit("powerlaw", {"params": {}})
    frame = store.fits()
    assert list(frame.columns) == ["id", "form", "sweep", "label", "payload", "created_at"]
    row = store.fits(form="chinchilla").iloc[0]
    assert row["id"] == fid and row["sweep"] == "grid" and row["label"] == "first"
    assert row["payload"]["params"] == {"E": 1.7, "A": 406.4}
    assert row["payload"]["ci95"]["E"][1] == float("inf")
    assert math.isnan(row["payload"]["residuals"][1])
    assert len(frame) == 2


def test_metric_writer_drops_an_unreadable_value_alone(store: Store):
    """A value the writer cannot read costs only itself: one warning, the batch is written."""
    from scaletrack.store.writer import MetricValueWarning

    store.ensure_run(_run("bad"))
    with store.metric_writer("bad", batch_size=10, flush_interval_s=10.0) as writer:
        writer.log("x", 0, "not a number")  # type: ignore[arg-type]
        writer.log("x", 1, 2.0)
        writer.log("y", 1, 3.0)
        with pytest.warns(MetricValueWarning, match="'x' at step 0 could not be read"):
            writer.flush()
    assert store.metrics(["bad"])[["name", "step"]].values.tolist() == [["x", 1], ["y", 1]]


def test_open_store_with_unknown_newer_revision_is_a_store_error(store_url: str):
    with Store.open(store_url) as s, s.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError) as info:
        Store.open(store_url)
    assert "9999" in str(info.value) and "\n" not in str(info.value)


def test_a_page_of_runs_reads_only_its_own_tags(store: Store):
    for i in range(6):
        store.ensure_run(_run(f"r{i}", C=1e8 * (i + 1)))
        store.tag(run_key=f"r{i}", add=[f"t{i}", "all"])
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        statements.append((statement, parameters))

    sa.event.listen(store._engine, "before_cursor_execute", record)
    try:
        page = store.runs(order="compute", limit=2, offset=2)
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", record)
    assert page["run_key"].tolist() == ["r2", "r3"]
    assert page["tags"].tolist() == [["all", "t2"], ["all", "t3"]]
    tag_reads = [(s, p) for s, p in statements if "run_tags" in s and "tag" in s.lower()]
    assert tag_reads and all(" IN " in s.upper() for s, _ in tag_reads)
    # an unpaged read still carries every run's tags
    assert store.runs()["tags"].map(len).tolist() == [2] * 6
