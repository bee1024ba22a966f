"""The Ray executor on a real local Ray cluster (head + worker nodes on 127.0.0.1).

One small grid of tiny GPTs is trained once by the local executor (the reference) and then by
the Ray executor: plainly, while a worker node is SIGKILLed mid-cell, and against PostgreSQL.
Each time the runs (run keys), final losses and the set of (run, name, step) metric rows must
match the reference.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from services import RayCluster, free_port

from scaletrack.errors import ConfigError
from scaletrack.store import Store
from scaletrack.sweeps.executors import CellDone, CellProgress, SweepEvent, SweepJob
from scaletrack.sweeps.executors.local import LocalExecutor
from scaletrack.sweeps.grid import Grid
from scaletrack.sweeps.runner import SweepReport, cell_task
from scaletrack.workflows import load_grid, run_sweep

ray = pytest.importorskip("ray")
from scaletrack.sweeps.executors.ray import (  # noqa: E402
    RayExecutor,
    absolute_sqlite_url,
    use_token_if_available,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CHECKPOINT_EVERY = 20
LOSS_TOL = 1e-6  # nats/token


def write_grid(directory: Path) -> Path:
    """A 4-cell grid (2 sizes x 2 budgets of 320 and 640 steps) on a small word corpus.

    Cells are long enough (several seconds) that a node killed mid-cell dies mid-cell,
    although progress events reach the driver a second or two late.
    """
    rng = random.Random(0)
    words = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
             "scaling", "laws", "predict", "loss")
    corpus = directory / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(words) for _ in range(30_000)))
    grid = directory / "grid.toml"
    grid.write_text(
        f"""
name = "ray-test"
[data]
path = "{corpus}"
context = 32
[model]
family = "gpt"
sizes = [{{ n_layer = 1, n_head = 1, d_model = 16 }}, {{ n_layer = 1, n_head = 2, d_model = 32 }}]
[axes]
tokens = [40960, 81920]   # 320 and 640 steps of 4 x 32 tokens
[train]
batch_size = 4
[eval]
every = 10
batches = 2
[checkpoint]
every = {CHECKPOINT_EVERY}
"""
    )
    return grid


@dataclass(frozen=True)
class Outcome:
    """What a grid run left in its store."""

    report: SweepReport
    runs: pd.DataFrame  # indexed by run_key
    metric_keys: frozenset[tuple[str, str, int]]
    metrics: pd.DataFrame


def read_outcome(report: SweepReport, url: str) -> Outcome:
    with Store.open(url) as store:
        runs = store.runs().set_index("run_key").sort_index()
        metrics = store.metrics()
    keys = frozenset(
        (str(r), str(n), int(s))
        for r, n, s in zip(metrics["run_key"], metrics["name"], metrics["step"], strict=True)
    )
    assert len(keys) == len(metrics), "duplicate (run, name, step) rows"
    return Outcome(report, runs, keys, metrics)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Grid:
    return load_grid(write_grid(tmp_path_factory.mktemp("ray-grid")))


@pytest.fixture(scope="module")
def reference(grid: Grid, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """The grid trained by the local executor, one worker pinned to one core (torch threads 1,
    as in a 1-CPU Ray task, so float results are comparable bit for bit)."""
    root = tmp_path_factory.mktemp("local-run")
    url = f"sqlite:///{root / 'local.db'}"
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        report = run_sweep(grid, url, executor=LocalExecutor(workers=1),
                           checkpoint_dir=root / "ckpt")
    finally:
        os.sched_setaffinity(0, cores)
    outcome = read_outcome(report, url)
    assert set(outcome.runs["status"]) == {"finished"}
    yield outcome


def assert_same_as_reference(outcome: Outcome, reference: Outcome, grid: Grid) -> None:
    expected_keys = sorted(c.run_key for c in grid.cells)
    assert list(outcome.runs.index) == expected_keys == list(reference.runs.index)
    assert set(outcome.runs["status"]) == {"finished"}, outcome.runs[["status", "error"]]
    diff = (outcome.runs["final_loss"] - reference.runs["final_loss"]).abs()
    assert diff.max() <= LOSS_TOL, diff
    missing = reference.metric_keys - outcome.metric_keys
    extra = outcome.metric_keys - reference.metric_keys
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])


def ray_node_ids(cluster: RayCluster) -> dict[str, str]:
    """Our node names (head, w1, ...) -> Ray node ids, read from each node's custom resource."""
    out: dict[str, str] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for name in cluster.nodes:
            if name in node.get("Resources", {}):
                out[name] = node["NodeID"]
    return out


@pytest.fixture
def ray_driver(ray_cluster: RayCluster) -> Iterator[RayCluster]:
    """This process connected to the session cluster as a driver (disconnected afterwards)."""
    assert use_token_if_available()  # the cluster requires its token
    ray.init(address=ray_cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray_cluster
    finally:
        ray.shutdown()


def test_cluster_has_head_and_worker(ray_driver: RayCluster) -> None:
    ids = ray_node_ids(ray_driver)
    assert {"head", "w1"} <= set(ids), ids
    assert ray.get_runtime_context().get_node_id() == ids["head"]  # the driver sits on the head


def test_ray_matches_local_executor(
    grid: Grid, reference: Outcome, ray_driver: RayCluster, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    executor = RayExecutor(address=ray_driver.address)
    report = run_sweep(grid, url, executor=executor, checkpoint_dir=tmp_path / "ckpt")
    outcome = read_outcome(report, url)
    assert_same_as_reference(outcome, reference, grid)
    assert sorted(r.status for r in report.results) == ["finished"] * len(grid.cells)
    # cells ran on both nodes, each exactly once
    ids = ray_node_ids(ray_driver)
    used = {nodes[0] for nodes in executor.placements.values()}
    assert all(len(nodes) == 1 for nodes in executor.placements.values())
    assert used == {ids["head"], ids["w1"]}
    # the worker name a cell was claimed under is the same for every attempt
    assert set(outcome.runs["attempts"]) == {1}
    # values agree too, not just keys
    merged = outcome.metrics.merge(reference.metrics, on=["run_key", "name", "step"])
    assert (merged["value_x"] - merged["value_y"]).abs().max() <= LOSS_TOL


def test_ray_survives_a_worker_node_killed_mid_cell(
    grid: Grid, reference: Outcome, ray_driver: RayCluster, tmp_path: Path
) -> None:
    cluster = ray_driver
    victim = cluster.add_worker("victim", num_cpus=1)
    deadline = time.monotonic() + 120
    while "victim" not in ray_node_ids(cluster):
        assert time.monotonic() < deadline, "victim node did not join"
        time.sleep(0.5)
    victim_id = ray_node_ids(cluster)["victim"]
    executor = RayExecutor(address=cluster.address)
    killed: dict[str, object] = {}
    totals = {c.run_key: c.steps for c in grid.cells}

    def on_step(event: SweepEvent) -> None:
        if killed or not isinstance(event, CellProgress):
            return
        nodes = executor.placements.get(event.run_key, [])
        past_checkpoint = event.step > CHECKPOINT_EVERY
        if nodes and nodes[-1] == victim_id and past_checkpoint and (
            event.step <= totals[event.run_key] // 2
        ):
            t0 = time.monotonic()
            victim.kill()
            killed.update(run_key=event.run_key, step=event.step, kill_s=time.monotonic() - t0,
                          at=time.monotonic())

    events: list[SweepEvent] = []

    class Sink:
        """The runner's display slot: a context manager that is an event sink."""

        def __init__(self, *_: object) -> None:
            pass

        def __enter__(self) -> Sink:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def __call__(self, event: SweepEvent) -> None:
            events.append(event)
            on_step(event)

    url = f"sqlite:///{tmp_path / 'ray.db'}"
    t0 = time.monotonic()
    report = run_sweep(grid, url, executor=executor, checkpoint_dir=tmp_path / "ckpt",
                       display=Sink)
    wall = time.monotonic() - t0
    assert killed, f"no cell ran on the victim node past a checkpoint: {executor.placements}"
    assert not victim.alive
    run_key = str(killed["run_key"])
    # the killed cell ran again on a surviving node and resumed from its checkpoint
    nodes = executor.placements[run_key]
    assert nodes[0] == victim_id and len(nodes) >= 2 and nodes[-1] != victim_id, nodes
    done = [e for e in events if isinstance(e, CellDone) and e.run_key == run_key]
    assert len(done) == 1 and done[0].status == "finished", done
    assert done[0].resumed_from_step is not None
    # it resumed from the newest checkpoint it had when killed (progress events lag, so the
    # cell may have saved one more before the kill landed), not from scratch
    resumed, seen = int(done[0].resumed_from_step), int(killed["step"])  # type: ignore[call-overload]
    assert resumed % CHECKPOINT_EVERY == 0
    assert seen - seen % CHECKPOINT_EVERY <= resumed < totals[run_key], (resumed, seen)
    outcome = read_outcome(report, url)
    assert int(outcome.runs.loc[run_key, "attempts"]) == len(nodes)
    # no metric row lost or duplicated, and exact resume gives the very same losses
    assert_same_as_reference(outcome, reference, grid)
    print(
        f"\nkilled node 'victim' at step {killed['step']} of {run_key} "
        f"(kill took {killed['kill_s']:.2f} s); grid done {wall:.1f} s after start, "
        f"resumed from step {done[0].resumed_from_step} on attempt {len(nodes)}"
    )


@pytest.mark.postgres
def test_ray_with_postgres_writes_directly(
    grid: Grid, reference: Outcome, ray_driver: RayCluster, postgres_db_url: str,
    tmp_path: Path,
) -> None:
    executor = RayExecutor(address=ray_driver.address)
    notes: list[str] = []
    report = run_sweep(grid, postgres_db_url, executor=executor, checkpoint_dir=tmp_path / "ckpt")
    notes.extend(report.notes)
    assert any("written by each task" in n for n in notes), notes
    outcome = read_outcome(report, postgres_db_url)
    assert_same_as_reference(outcome, reference, grid)


def test_relative_sqlite_url_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_sqlite_url("sqlite:///runs.db") == f"sqlite:///{tmp_path / 'runs.db'}"
    assert absolute_sqlite_url("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    url = "postgresql+psycopg://u:pw@h/db"
    assert absolute_sqlite_url(url) == url
    for memory in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ConfigError, match="in-memory SQLite"):
            absolute_sqlite_url(memory)


def test_unreachable_cluster_is_a_one_line_error(grid: Grid, tmp_path: Path) -> None:
    assert not ray.is_initialized()
    executor = RayExecutor(address=f"127.0.0.1:{free_port()}")
    job = SweepJob(sweep=grid.name, store_url=f"sqlite:///{tmp_path / 'x.db'}",
                   checkpoint_root=str(tmp_path), cells=(cell_task(grid.cells[0]),))
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="cannot connect to Ray at 127.0.0.1:"):
        executor.run(job, lambda event: None)
    print(f"\nunreachable cluster reported after {time.monotonic() - t0:.1f} s")
    assert not ray.is_initialized()


def test_hub_store_flushes_metrics_before_a_checkpoint_is_registered(
    ray_driver: RayCluster, tmp_path: Path
) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from scaletrack.store import CheckpointRecord, RunRecord
    from scaletrack.sweeps.executors.ray import HubStore, SweepHub

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    # on this node, as the executor places it (an earlier test may have killed a worker node
    # that the cluster has not yet noticed is gone)
    here = ray.get_runtime_context().get_node_id()
    hub = ray.remote(SweepHub).options(
        num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    ).remote(url, True)
    try:
        proxy = HubStore(hub, url)
        proxy.ensure_run(RunRecord(run_key="r", sweep=None, family="gpt", config={}, N=1,
                                   N_total=1, D=1, C=6.0))
        assert proxy.claim_run("r", "w") and not proxy.claim_run("r", "other")
        writer = proxy.metric_writer("r", batch_size=10_000, flush_interval_s=3600)
        for step in range(250):
            writer.log_many(step, {"train/loss": 1.0 / (step + 1), "lr": 1e-3}, tokens=step)
        assert writer.pending == 500
        with Store.open(url) as direct:
            assert direct.count_metrics("r") == 0  # still buffered in this process
        proxy.add_checkpoint(CheckpointRecord(
            id=None, run_key="r", kind="own", N=1, tokens=250, flops=1.0, step=250,
            path=str(tmp_path / "c.safetensors"), sha256=None, loader="gpt", meta={}))
        assert writer.pending == 0
        with Store.open(url) as direct:
            assert direct.count_metrics("r") == 500  # committed before the checkpoint row
            assert [c.step for c in direct.latest_checkpoints("r")] == [250]
        with pytest.raises(AttributeError):
            proxy.engine  # noqa: B018 - only Store methods are forwarded, not internals
        proxy.finish_run("r", "finished", final_loss=0.5)
        proxy.close()
        assert ray.get(hub.call.remote("get_run", ("r",), {})).status == "finished"
    finally:
        ray.get(hub.close.remote())
        ray.kill(hub)
