"""Packed groups claim like single cells: a member taken over by another worker stops writing
while the others go on (and its rows are never duplicated); a dead holder's members are taken
over at once; a stopped member's release tolerates a lost claim; a failing store stops the
group with the StoreError note."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from scaletrack.store import ClaimLost, RunRecord, Store, StoreError
from scaletrack.sweeps.executors import (
    CellDone,
    CellProgress,
    CellStarted,
    CellTask,
    ExecutorNote,
    SweepEvent,
    SweepJob,
    run_cell,
    worker_name,
)
from scaletrack.sweeps.train import TrainConfig, plan_run

STEPS = 60
CKPT_EVERY = 10


def config(seed: int) -> TrainConfig:
    return TrainConfig(family="gpt", model={"n_layer": 1, "n_head": 2, "d_model": 16},
                       data={"corpus": "stdlib", "max_bytes": 200_000}, context=16,
                       batch_size=4, tokens=4 * 16 * STEPS, seed=seed, eval_every=10,
                       eval_batches=2, checkpoint_every=CKPT_EVERY, log_every=1)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 's.db'}"


def group(store: Store, tmp_path: Path, seeds: tuple[int, ...] = (0, 1)) -> tuple[SweepJob,
                                                                                 CellTask]:
    """A packed group task of one member per seed (run rows created) and its job."""
    members = []
    for seed in seeds:
        cfg = config(seed)
        plan = plan_run(cfg)
        key = f"m{seed}"
        store.ensure_run(RunRecord(run_key=key, sweep=None, family="gpt", config=cfg.to_dict(),
                                   N=plan.N, N_total=plan.N_total, D=cfg.tokens, C=plan.C,
                                   seed=seed, lr=cfg.lr))
        members.append(CellTask(run_key=key, label=key, config=cfg.to_dict(), N=plan.N,
                                D=cfg.tokens, C=plan.C, steps=plan.steps))
    task = replace(members[0], members=tuple(members))
    job = SweepJob(sweep="g", store_url=store.url, checkpoint_root=str(tmp_path / "ck"),
                   cells=(task,))
    return job, task


def done_of(events: list[SweepEvent]) -> dict[str, CellDone]:
    out = {e.run_key: e for e in events if isinstance(e, CellDone)}
    assert len(out) == sum(isinstance(e, CellDone) for e in events), "a member reported twice"
    return out


def test_a_member_taken_over_stops_writing_and_the_others_go_on(url: str,
                                                                tmp_path: Path) -> None:
    me, thief = worker_name(0), "otherhost:4242:0"
    with Store.open(url) as store, Store.open(url) as other:
        job, task = group(store, tmp_path)
        events: list[SweepEvent] = []
        taken: dict[str, int] = {}

        def emit(event: SweepEvent) -> None:
            events.append(event)
            if isinstance(event, CellProgress) and not taken:  # as if paused past the limit
                assert other.claim_run("m1", thief, stale_after_s=0)
                taken["step"] = event.step

        run_cell(job, task, store, me, emit)
        done = done_of(events)
        assert done["m0"].status == "finished" and done["m0"].final_loss is not None
        assert done["m1"].status == "skipped", done["m1"]
        assert "claim lost" in done["m1"].message and thief in done["m1"].message
        assert taken["step"] < STEPS
        # nothing of m1 was written after the takeover, and the thief still holds it
        rows = other.metrics(["m1"])
        assert rows.empty or rows["step"].max() < taken["step"], (rows["step"].max(), taken)
        assert all(c.step <= taken["step"] for c in other.latest_checkpoints("m1"))
        run = other.get_run("m1")
        assert (run.status, run.worker, run.error) == ("running", thief, None)
        assert len(other.metrics(["m0"]).query("name == 'train/loss'")) == STEPS

        # the thief gives up; the group runs again: m0 is skipped, m1 resumes and finishes
        other.release_run("m1", thief)
        events.clear()
        run_cell(job, task, store, me, events.append)
        done = done_of(events)
        assert done["m0"].status == "skipped" and "already finished" in done["m0"].message
        assert done["m1"].status == "finished"
        rows = other.metrics(["m1"])
        assert not rows.duplicated(["name", "step"]).any()
        assert sorted(rows.loc[rows.name == "train/loss", "step"]) == list(range(STEPS))


def test_a_dead_holders_group_is_taken_over_at_once(url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    proc.kill()
    proc.wait()
    dead = f"{socket.gethostname()}:{proc.pid}:0"  # this host, its process gone
    with Store.open(url) as store:
        job, task = group(store, tmp_path, seeds=(0, 1, 2))
        assert store.claim_run("m0", dead) and store.claim_run("m1", dead)  # fresh heartbeats
        assert store.claim_run("m2", "otherhost:1:0")  # alive elsewhere: left alone
        events: list[SweepEvent] = []
        run_cell(job, task, store, worker_name(0), events.append)
        notes = [e.message for e in events if isinstance(e, ExecutorNote)]
        assert sum("is gone; taken over" in n for n in notes) == 2, notes
        assert {e.run_key for e in events if isinstance(e, CellStarted)} == {"m0", "m1"}
        done = done_of(events)
        assert done["m0"].status == done["m1"].status == "finished"
        assert done["m2"].status == "skipped" and "held by live worker" in done["m2"].message
        runs = store.runs().set_index("run_key")
        assert list(runs.loc[["m0", "m1"], "status"]) == ["finished", "finished"]
        assert list(runs.loc[["m0", "m1"], "attempts"]) == [2, 2]
        assert runs.loc["m2", "worker"] == "otherhost:1:0"


class _StopAtFirstProgress:
    def __init__(self) -> None:
        self.set_now = False

    def is_set(self) -> bool:
        return self.set_now


def test_a_stopped_group_is_released_and_a_lost_claim_is_tolerated(url: str,
                                                                   tmp_path: Path) -> None:
    with Store.open(url) as store:
        job, task = group(store, tmp_path)
        stop = _StopAtFirstProgress()
        releases: list[str] = []
        real_release = store.release_run

        def release(run_key: str, worker: str) -> None:
            real_release(run_key, worker)
            releases.append(run_key)
            if run_key == "m1":  # as a hub store does when a fenced batch is flushed first
                raise ClaimLost(f"worker {worker} lost its claim on run {run_key}")

        store.release_run = release  # type: ignore[method-assign]
        events: list[SweepEvent] = []

        def emit(event: SweepEvent) -> None:
            events.append(event)
            if isinstance(event, CellProgress):
                stop.set_now = True  # SIGTERM / Ctrl-C as seen by a worker

        run_cell(job, task, store, worker_name(0), emit, stop_event=stop)
        done = done_of(events)
        assert done["m0"].status == done["m1"].status == "interrupted"
        assert {"m0", "m1"} <= set(releases)
        for key in ("m0", "m1"):
            run = store.get_run(key)
            assert (run.status, run.error) == ("failed", "interrupted")
            assert store.latest_checkpoints(key)[0].step == done[key].steps  # saved on stop


def test_a_failing_store_stops_the_group_with_its_note(url: str, tmp_path: Path) -> None:
    with Store.open(url) as store:
        job, task = group(store, tmp_path)

        def full(*_: object, **__: object) -> None:
            raise StoreError(f"store {url!r}: the disk is full")

        store.add_checkpoint = full  # type: ignore[method-assign]
        events: list[SweepEvent] = []
        with pytest.raises(StoreError, match="disk is full"):
            run_cell(job, task, store, worker_name(0), events.append)
        assert [e.store_error for e in events if isinstance(e, ExecutorNote)] == [True]
        done = done_of(events)
        assert {d.status for d in done.values()} == {"failed"} and set(done) == {"m0", "m1"}
        assert {store.get_run(k).status for k in ("m0", "m1")} == {"failed"}  # released
