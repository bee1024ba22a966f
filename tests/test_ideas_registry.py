"""The "not yet" registry: due-ness from the data, re-runs, status flips, errors, the CLI."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.evals.evaluate import register_external_checkpoint
from scaletrack.evals.ideas import (
    add_idea,
    check_idea,
    checkpoint_scale,
    due_ideas,
    refresh_idea_statuses,
    rerun_due,
    retire_idea,
)
from scaletrack.evals.ideas_table import ideas_table
from scaletrack.models.build import build_model
from scaletrack.models.checkpoint import save_checkpoint
from scaletrack.store import Store

SHAPE = {"n_layer": 1, "n_head": 2, "d_model": 16, "context": 32}
USER_MODULE = "scaletrack_f_idea_tasks"
USER_TASKS = '''
def kparams(ckpt):
    """Parameters in thousands: lets a test choose which checkpoint clears a bar."""
    return ckpt.record.N / 1000.0

def boom(ckpt):
    raise RuntimeError("evaluation server unreachable")
'''


@pytest.fixture()
def tasks_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "user_pkg"
    folder.mkdir()
    (folder / f"{USER_MODULE}.py").write_text(textwrap.dedent(USER_TASKS))
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(USER_MODULE, None)
    return USER_MODULE


@pytest.fixture()
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ideas.db'}"


@pytest.fixture()
def store(store_url: str):
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture()
def weights(tmp_path: Path) -> Path:
    """One tiny GPT's weights; registered under different (N, D) to stand for several scales."""
    import torch

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, build_model("gpt", SHAPE), meta={"model": SHAPE})
    return path


def copy_of(path: Path) -> Path:
    """A fresh copy: the store keys checkpoints by path (re-adding a path updates it)."""
    new = path.with_name(f"{path.stem}_{uuid.uuid4().hex[:8]}{path.suffix}")
    shutil.copyfile(path, new)
    return new


def register(store, path: Path, n: int, d: int, flops: float | None = None) -> int:
    return register_external_checkpoint(
        store, copy_of(path), params=n, tokens=d, flops=flops, loader="gpt",
        meta={"model": SHAPE, "data": {"task": "addition", "n_examples": 400}},
    )


def test_scale_prefers_compute_then_params():
    assert checkpoint_scale(10, 100, None).compute == 6000.0
    assert checkpoint_scale(10, 100, 1e9).compute == 1e9
    assert checkpoint_scale(10, 0, None) < checkpoint_scale(20, 0, None)


def test_add_idea_validates(store, tasks_module):
    with pytest.raises(ConfigError, match="unknown task 'telepathy'"):
        add_idea(store, "x", "telepathy", "value", 1.0)
    with pytest.raises(ConfigError, match="no metric 'accuracy'"):
        add_idea(store, "x", "addition", "accuracy", 0.5)
    with pytest.raises(ConfigError, match="direction 'sideways'"):
        add_idea(store, "x", f"{tasks_module}:kparams", "value", 1.0, direction="sideways")
    assert store.ideas().empty


def test_never_tried_idea_is_due_once_any_checkpoint_exists(store, weights, tasks_module):
    idea = add_idea(store, "bigger is better", f"{tasks_module}:kparams", "value", 50.0)
    assert due_ideas(store) == []
    assert store.get_idea(idea).status == "not-yet"
    register(store, weights, n=10_000, d=1_000)
    assert [i.id for i in due_ideas(store)] == [idea]
    assert refresh_idea_statuses(store) == [idea]
    assert store.get_idea(idea).status == "due"


def test_not_yet_then_larger_checkpoint_makes_it_due_and_rerun_flips_it(
    store, weights, tasks_module
):
    idea = add_idea(store, "needs 50k params", f"{tasks_module}:kparams", "value", 50.0,
                    hypothesis="capacity")
    small = register(store, weights, n=10_000, d=1_000)
    medium = register(store, weights, n=20_000, d=1_000)

    report = rerun_due(store)
    assert [a.checkpoint_id for a in report.attempts] == [medium]  # the largest one
    assert report.attempts[0].value == pytest.approx(20.0) and not report.attempts[0].passed
    rec = store.get_idea(idea)
    assert rec.status == "not-yet"
    assert rec.max_N_tried == 20_000 and rec.max_flops_tried == pytest.approx(6 * 20_000 * 1_000)
    assert rec.best_value == pytest.approx(20.0)
    # nothing larger: not due, rerun does nothing
    assert due_ideas(store) == [] and rerun_due(store).attempts == ()
    # a smaller checkpoint never makes it due
    register(store, weights, n=15_000, d=1_000)
    assert due_ideas(store) == []

    # same N but more compute: due again, still fails
    more_data = register(store, weights, n=20_000, d=5_000)
    assert [i.id for i in due_ideas(store)] == [idea]
    assert rerun_due(store).attempts[0].checkpoint_id == more_data
    assert store.get_idea(idea).status == "not-yet"

    big = register(store, weights, n=80_000, d=5_000)
    refresh_idea_statuses(store)
    assert store.get_idea(idea).status == "due"
    report = rerun_due(store)
    assert report.attempts[0].checkpoint_id == big and report.attempts[0].passed
    rec = store.get_idea(idea)
    assert rec.status == "works" and rec.best_value == pytest.approx(80.0)
    attempts = store.idea_attempts(idea)
    assert list(attempts["checkpoint_id"]) == [medium, more_data, big]
    assert list(attempts["passed"]) == [False, False, True]
    assert small not in set(attempts["checkpoint_id"])
    # works ideas are closed: a still larger checkpoint does not make them due
    register(store, weights, n=200_000, d=5_000)
    assert due_ideas(store) == []


def test_below_direction_and_explicit_flops(store, weights, tasks_module):
    idea = add_idea(store, "small is enough", f"{tasks_module}:kparams", "value", 15.0,
                    direction="below")
    register(store, weights, n=30_000, d=10, flops=1e3)
    big_n_small_c = register(store, weights, n=10_000, d=10, flops=1e9)
    # compute decides "largest": the 10k-param checkpoint with 1e9 FLOPs
    attempt = rerun_due(store).attempts[0]
    assert attempt.checkpoint_id == big_n_small_c and attempt.passed
    assert store.get_idea(idea).status == "works"


def test_failing_task_keeps_idea_state_and_others_run(store, weights, tasks_module):
    bad = add_idea(store, "flaky", f"{tasks_module}:boom", "value", 1.0)
    good = add_idea(store, "fine", f"{tasks_module}:kparams", "value", 1.0)
    register(store, weights, n=10_000, d=100)
    report = rerun_due(store)
    assert [a.idea_id for a in report.attempts] == [good]
    assert set(report.errors) == {bad}
    assert "boom" in report.errors[bad] and "RuntimeError" in report.errors[bad]
    assert "evaluation server unreachable" in report.errors[bad]
    assert store.get_idea(bad).status == "due" and store.get_idea(bad).max_N_tried is None
    assert store.idea_attempts(bad).empty


def test_retire_closes_an_idea(store, weights, tasks_module):
    idea = add_idea(store, "old", f"{tasks_module}:kparams", "value", 1e9)
    register(store, weights, n=10_000, d=100)
    retire_idea(store, idea)
    assert store.get_idea(idea).status == "retired" and due_ideas(store) == []
    with pytest.raises(ConfigError, match="no idea with id 999"):
        retire_idea(store, 999)
    with pytest.raises(ConfigError, match="retired"):
        check_idea(store, idea, 1)


def test_table_classifies_with_enough_points(store, weights, tasks_module):
    idea = add_idea(store, "emerges", f"{tasks_module}:kparams", "value", 1e6)
    ckpts = [register(store, weights, n=n, d=1_000) for n in (1_000, 3_000, 10_000)]
    for c in ckpts:
        check_idea(store, idea, c)
    table = ideas_table(store)
    row = table.set_index("id").loc[idea]
    assert row["attempts"] == 3 and row["status"] == "not-yet"
    assert row["class"] == "-"  # 3 points of an unknown-chance metric: too few to fit
    ckpt = register(store, weights, n=30_000, d=1_000)
    check_idea(store, idea, ckpt)
    row = ideas_table(store).set_index("id").loc[idea]
    assert row["class"] in ("past", "near", "far")


def test_the_table_reads_and_only_the_refresh_writes(store, store_url, weights, tasks_module):
    idea = add_idea(store, "bigger is better", f"{tasks_module}:kparams", "value", 50.0)
    store.update_idea(idea, status="due")  # stale: no checkpoint exists, so it is not due
    before = store.ideas()
    assert ideas_table(store).set_index("id").loc[idea, "status"] == "due"  # as stored
    assert store.ideas().equals(before)  # reading wrote nothing
    assert refresh_idea_statuses(store) == []  # the explicit write
    assert ideas_table(store).set_index("id").loc[idea, "status"] == "not-yet"
    store.update_idea(idea, status="due")
    res = cli("ideas", "list", "--json", "--store", store_url)  # the CLI refreshes first
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["status"] == "not-yet"


# ---------------------------------------------------------------- CLI round trips

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


def test_cli_round_trip(store_url, weights, tasks_module, tmp_path):
    res = cli("ideas", "add", "needs 50k params", "--task", f"{tasks_module}:kparams",
              "--metric", "value", "--threshold", "50", "--hypothesis", "capacity",
              "--store", store_url)
    assert res.exit_code == 0, res.output
    assert "idea 1" in res.output

    meta = json.dumps({"model": SHAPE})
    res = cli("checkpoints", "add", str(weights), "--params", "20000", "--tokens", "1000",
              "--loader", "gpt", "--meta", meta, "--store", store_url)
    assert res.exit_code == 0, res.output
    assert "registered checkpoint 1" in res.output and "ideas now due: 1" in res.output

    res = cli("checkpoints", "list", "--json", "--store", store_url)
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert len(listed) == 1 and listed[0]["kind"] == "external" and listed[0]["N"] == 20000
    assert len(listed[0]["sha256"]) == 64

    res = cli("ideas", "list", "--json", "--store", store_url)
    ideas = json.loads(res.output)
    assert ideas[0]["status"] == "due" and ideas[0]["attempts"] == 0

    res = cli("ideas", "rerun", "--store", store_url)
    assert res.exit_code == 0, res.output
    assert "not yet" in res.output

    res = cli("ideas", "list", "--json", "--store", store_url)
    ideas = json.loads(res.output)
    assert ideas[0]["status"] == "not-yet" and ideas[0]["max_N_tried"] == 20000
    assert ideas[0]["best_value"] == pytest.approx(20.0) and ideas[0]["class"] == "-"
    assert ideas[0]["attempts_list"][0]["passed"] is False

    res = cli("checkpoints", "add", str(copy_of(weights)), "--params", "90000", "--tokens", "1000",
              "--flops", "1e12", "--loader", "gpt", "--meta", meta, "--store", store_url)
    assert res.exit_code == 0 and "ideas now due: 1" in res.output
    res = cli("ideas", "rerun", "--store", store_url)
    assert res.exit_code == 0 and "works" in res.output

    res = cli("ideas", "list", "--store", store_url)
    assert res.exit_code == 0 and "works" in res.output

    res = cli("ideas", "plot", "-o", str(tmp_path / "timeline.png"), "--store", store_url)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "timeline.png").stat().st_size > 1000

    res = cli("ideas", "retire", "1", "--store", store_url)
    assert res.exit_code == 0
    ideas = json.loads(cli("ideas", "list", "--json", "--store", store_url).output)
    assert ideas[0]["status"] == "retired"


def test_cli_errors_are_one_line(store_url, weights, tasks_module):
    res = cli("ideas", "add", "x", "--task", "telepathy", "--metric", "value",
              "--threshold", "1", "--store", store_url)
    assert res.exit_code == 1
    assert "unknown task 'telepathy'" in res.output and "Traceback" not in res.output

    res = cli("checkpoints", "add", str(weights), "--params", "10", "--tokens", "10",
              "--meta", "{not json", "--store", store_url)
    assert res.exit_code == 1 and "--meta is not valid JSON" in res.output

    Store.open(store_url).close()  # the failed commands above created no store
    res = cli("ideas", "retire", "42", "--store", store_url)
    assert res.exit_code == 1 and "no idea with id 42" in res.output

    cli("ideas", "add", "flaky", "--task", f"{tasks_module}:boom", "--metric", "value",
        "--threshold", "1", "--store", store_url)
    cli("checkpoints", "add", str(weights), "--params", "10", "--tokens", "10",
        "--store", store_url)
    res = cli("ideas", "rerun", "--store", store_url)
    assert res.exit_code == 1
    assert f"{tasks_module}:boom" in res.output and "RuntimeError" in res.output
    assert "Traceback" not in res.output
