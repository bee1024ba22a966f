"""Store additions for bring-your-own-trainer work, on SQLite and PostgreSQL: run names, tags
and notes, eval stderr and shot counts (bulk and single), run updates, and a tracked run."""

from __future__ import annotations

import math

import pytest

import scaletrack
from scaletrack.store import CheckpointRecord, RunRecord, StoreError


def _run(key: str, **kw) -> RunRecord:
    return RunRecord(run_key=key, sweep=kw.pop("sweep", "s"), family="imported", config={},
                     N=10, N_total=10, D=100, C=6e3, **kw)


def test_names_tags_notes_and_filters(store) -> None:
    store.upsert_sweep("s", {})
    store.ensure_run(_run("a", name="pythia-70m"))
    store.ensure_run(_run("b"))
    assert store.tag(run_key="a", add=["ladder", "v1", "ladder"], note="first") == ["ladder", "v1"]
    assert store.tag(run_key="b", add=["v1"]) == ["v1"]
    assert store.tag(run_key="a", remove=["v1"]) == ["ladder"]
    assert store.tag(sweep="s", add=["paper"]) == ["paper"]
    runs = store.runs().set_index("run_key")
    assert runs.loc["a", "name"] == "pythia-70m" and runs.loc["a", "note"] == "first"
    assert runs.loc["a", "tags"] == ["ladder"] and runs.loc["b", "tags"] == ["v1"]
    assert list(store.runs(tag="v1")["run_key"]) == ["b"]
    assert store.runs(tag="nothing").empty
    assert list(store.sweeps(tag="paper")["name"]) == ["s"]
    store.update_run("b", name="renamed", D=200, C=1.2e4)
    got = store.get_run("b")
    assert (got.name, got.D, got.C) == ("renamed", 200, 1.2e4)
    with pytest.raises(StoreError, match="unknown run"):
        store.tag(run_key="zzz", add=["x"])
    with pytest.raises(StoreError, match="unknown sweep"):
        store.tag(sweep="zzz", add=["x"])
    with pytest.raises(StoreError, match="cannot update run fields"):
        store.update_run("b", status="finished")


def test_eval_stderr_and_shots(store) -> None:
    store.ensure_run(_run("r"))
    cid = store.add_checkpoint(CheckpointRecord(
        id=None, run_key="r", kind="external", N=10, tokens=100, flops=6e3, step=5,
        path="lm-eval:x", sha256=None, loader=None))
    assert store.add_evals(cid, [("arc", "acc", 0.25, 0.01, 5), ("arc", "acc_norm", 0.3, None,
                                                                   5)]) == 2
    store.add_eval(cid, "lambada", "ppl", 12.5, stderr=0.5, n_shot=0)
    store.add_evals(cid, [("arc", "acc", 0.26, 0.02, 5)])  # upsert
    ev = store.evals().set_index(["task", "metric"])
    assert ev.loc[("arc", "acc"), "value"] == 0.26 and ev.loc[("arc", "acc"), "stderr"] == 0.02
    assert math.isnan(ev.loc[("arc", "acc_norm"), "stderr"])
    assert ev.loc[("lambada", "ppl"), "n_shot"] == 0 and ev.loc[("arc", "acc"), "n_shot"] == 5
    with pytest.raises(StoreError, match="unknown checkpoint"):
        store.add_evals(999, [("t", "m", 1.0, None, None)])


def test_tracked_run_on_this_backend(store) -> None:
    with scaletrack.init(sweep="t", config={"lr": 1.0}, params=100, tokens=1000,
                         store=store) as run:
        for step in range(1, 4):
            run.log({"loss": 1.0 / step}, step=step, tokens=step * 10)
        run.log_eval("copy", "exact_match", 0.5)
    rec = store.get_run(run.run_key)
    assert rec.status == "finished" and rec.final_loss == pytest.approx(1 / 3)
    assert rec.C == 6.0 * 100 * 1000
    assert store.count_metrics(run.run_key) == 3
    ev = store.evals(task="copy")
    assert ev["tokens"].tolist() == [30] and ev["flops"].tolist() == [6.0 * 100 * 30]
