"""The Slurm executor on a real one-node Slurm (slurmctld + slurmd started by the test set-up).

One 4-cell grid of tiny GPTs is trained once by the local executor (the reference), then as
sbatch job arrays: plainly (SQLite, same_node); while one running task gets the time-limit
warning (SIGUSR2), one is requeued with `scontrol requeue`, one is killed with
`scancel --signal=KILL` and one's process is SIGKILLed (PostgreSQL); and
cancelled mid-sweep with `sweep cancel` then resumed. Each time the run keys, final losses and
every (run, name, step) metric row with its value must match the reference.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from services import SlurmCluster, free_port

from scaletrack.store import Store
from scaletrack.sweeps.executors.local import LocalExecutor
from scaletrack.sweeps.grid import Grid, load_grid
from scaletrack.sweeps.runner import SweepReport, run_sweep

pytest.importorskip("submitit")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CHECKPOINT_EVERY = 20
LOSS_TOL = 1e-6  # nats/token
WAIT_S = 300.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One word corpus for every grid here (its path is part of each cell's run key)."""
    rng = random.Random(0)
    words = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
             "scaling", "laws", "predict", "loss")
    path = tmp_path_factory.mktemp("slurm-corpus") / "corpus.txt"
    path.write_text(" ".join(rng.choice(words) for _ in range(30_000)))
    return path


def write_grid(directory: Path, corpus: Path, name: str, same_node: bool) -> Path:
    """4 cells (2 sizes x 640 and 1,280 steps of 4 x 32 tokens), long enough that all four
    are mid-cell at once before the shortest ends."""
    grid = directory / f"{name}.toml"
    grid.write_text(f"""
name = "{name}"
[data]
path = "{corpus}"
context = 32
[model]
family = "gpt"
sizes = [{{ n_layer = 1, n_head = 1, d_model = 16 }}, {{ n_layer = 1, n_head = 2, d_model = 32 }}]
[axes]
tokens = [81920, 163840]
[train]
batch_size = 4
[eval]
every = 10
batches = 2
[checkpoint]
every = {CHECKPOINT_EVERY}
[executor]
kind = "slurm"
time = 30
cpus_per_task = 1
array_parallelism = 4
same_node = {"true" if same_node else "false"}
sbatch = {{ comment = "scaletrack test" }}
""")
    return grid


@dataclass(frozen=True)
class Outcome:
    report: SweepReport
    runs: pd.DataFrame  # indexed by run_key
    metrics: pd.DataFrame
    tasks: pd.DataFrame


def read_outcome(report: SweepReport, url: str, sweep: str) -> Outcome:
    with Store.open(url) as store:
        runs = store.runs(sweep=sweep).set_index("run_key").sort_index()
        metrics = store.metrics(list(runs.index))
        tasks = store.slurm_tasks(sweep)
    assert not metrics.duplicated(["run_key", "name", "step"]).any()
    return Outcome(report, runs, metrics, tasks)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Outcome:
    """The grid trained by one local worker pinned to one core (torch threads 1, as a
    1-CPU Slurm task), so float results compare bit for bit."""
    root = tmp_path_factory.mktemp("slurm-reference")
    grid = load_grid(write_grid(root, corpus, "slurm-ref", same_node=True))
    url = f"sqlite:///{root / 'local.db'}"
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        report = run_sweep(grid, url, executor=LocalExecutor(workers=1),
                           checkpoint_dir=root / "ckpt")
    finally:
        os.sched_setaffinity(0, cores)
    outcome = read_outcome(report, url, "slurm-ref")
    assert set(outcome.runs["status"]) == {"finished"}
    return outcome


def assert_same_as_reference(outcome: Outcome, reference: Outcome) -> None:
    assert list(outcome.runs.index) == list(reference.runs.index)
    assert set(outcome.runs["status"]) == {"finished"}, outcome.runs[["status", "error"]]
    diff = (outcome.runs["final_loss"] - reference.runs["final_loss"]).abs()
    assert diff.max() <= LOSS_TOL, diff
    keys = ["run_key", "name", "step"]
    merged = outcome.metrics.merge(reference.metrics, on=keys, how="outer", indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    assert unmatched.empty, unmatched[keys + ["_merge"]].head()
    assert (merged["value_x"] - merged["value_y"]).abs().max() <= LOSS_TOL


def wait_for(what: str, check: Callable[[], bool], thread: threading.Thread) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        ended = getattr(thread, "error", None) or getattr(thread, "report", None)
        assert thread.is_alive(), f"the sweep ended before {what}: {ended!r}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


class SweepThread(threading.Thread):
    """run_sweep in the background, so the test can act on the cluster meanwhile."""

    def __init__(self, grid: Grid, url: str, ckpt: Path) -> None:
        super().__init__(daemon=True)
        self.grid, self.url, self.ckpt = grid, url, ckpt
        self.report: SweepReport | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.report = run_sweep(self.grid, self.url, checkpoint_dir=self.ckpt)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            self.error = exc

    def result(self) -> SweepReport:
        self.join(timeout=WAIT_S * 2)
        assert not self.is_alive(), "the sweep did not end"
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


def task_of(url: str, sweep: str, run_key: str) -> str | None:
    """The newest Slurm job id recorded for a cell."""
    with Store.open(url) as store:
        tasks = store.slurm_tasks(sweep)
    rows = tasks[tasks["run_key"] == run_key]
    return None if rows.empty else str(rows["job_id"].iloc[-1])


def has_checkpoint_while_running(url: str, *run_keys: str) -> bool:
    """Every one of `run_keys` is running and has a checkpoint (one snapshot of the store)."""
    with Store.open(url) as store:
        for run_key in run_keys:
            run = store.get_run(run_key)
            if run is None or run.status != "running" or not store.latest_checkpoints(run_key):
                return False
    return True


def kill_task_process(cluster: SlurmCluster, job_id: str) -> int:
    """SIGKILL the task's Python process (as the out-of-memory killer would); returns its pid."""
    import psutil

    raw = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%A"], capture_output=True,
                         text=True, timeout=30).stdout.strip()  # "1_2" -> its own job id
    listed = cluster.scontrol("listpids", raw).splitlines()[1:]
    pids = [int(line.split()[0]) for line in listed if line.split() and line.split()[0].isdigit()]
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)  # the Python under srun, not srun itself
            if proc.name() != "srun" and "submitit.core._submit" in " ".join(proc.cmdline()):
                os.kill(pid, signal.SIGKILL)
                return pid
    raise AssertionError(f"no task process among {pids} of job {job_id}")


def release_requeued(cluster: SlurmCluster, job_id: str, thread: threading.Thread) -> None:
    """Let a requeued task start now rather than after Slurm's ~2 minute hold (BeginTime).

    Only once its previous run has left the node: a task restarted while its old processes
    are still being killed fails to launch, which the hold is there to prevent.
    """
    wait_for(f"task {job_id} to be pending", lambda: squeue_state(job_id) == "PENDING", thread)

    def old_run_gone() -> bool:
        raw = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%A"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
        done = subprocess.run(["scontrol", "listpids", raw], capture_output=True, text=True,
                              timeout=30)
        return done.returncode != 0 or len(done.stdout.strip().splitlines()) <= 1

    wait_for(f"the old run of task {job_id} to leave the node", old_run_gone, thread)
    time.sleep(1.0)  # slurmd reports the job's end to the controller
    cluster.scontrol("update", f"JobId={job_id}", "StartTime=now")


def squeue_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-j", job_id, "-o", "%T"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


# ----------------------------------------------------------------------------------- tests


def test_grid_runs_as_one_job_array_and_matches_local(
    slurm_cluster: SlurmCluster, reference: Outcome, corpus: Path, tmp_path: Path
) -> None:
    grid = load_grid(write_grid(tmp_path, corpus, "slurm-ref", same_node=True))
    url = f"sqlite:///{tmp_path / 'slurm.db'}"
    report = run_sweep(grid, url, checkpoint_dir=tmp_path / "ckpt")
    assert report.ok and sorted(r.status for r in report.results) == ["finished"] * 4
    outcome = read_outcome(report, url, "slurm-ref")
    assert_same_as_reference(outcome, reference)
    # one array, one task per cell, each claimed under its Slurm id, all completed on this node
    tasks = outcome.tasks.set_index("run_key").sort_index()
    arrays = {j.split("_")[0] for j in tasks["job_id"]}
    assert len(arrays) == 1
    assert sorted(int(j.split("_")[1]) for j in tasks["job_id"]) == [0, 1, 2, 3]
    assert set(tasks["state"]) == {"COMPLETED"}
    assert set(tasks["node"]) == {slurm_cluster.node}
    assert list(outcome.runs["worker"]) == [f"slurm:{j}" for j in tasks["job_id"]]
    assert set(outcome.runs["attempts"]) == {1}
    # each cell's logs folder links the task's stdout/stderr written by submitit
    for run_key, job_id in tasks["job_id"].items():
        logs = tmp_path / "ckpt" / "slurm-ref" / run_key / "logs"
        out = logs / f"slurm-{job_id}.out"
        assert out.is_symlink() and out.resolve() == Path(tasks.at[run_key, "stdout"])
        assert f"job_id={job_id}" in out.read_text()  # submitit's own first line
        assert (logs / f"slurm-{job_id}.err").resolve().exists()


def test_requeued_and_killed_tasks_finish_like_a_local_run(
    slurm_cluster: SlurmCluster, reference: Outcome, corpus: Path, postgres_db_url: str,
    tmp_path: Path,
) -> None:
    grid = load_grid(write_grid(tmp_path, corpus, "slurm-ref", same_node=False))
    url = postgres_db_url
    longest = sorted((c for c in grid.cells), key=lambda c: -c.steps)
    requeued, killed, preempted, crashed = (c.run_key for c in longest)
    sweep = SweepThread(grid, url, tmp_path / "ckpt")
    sweep.start()

    # all four tasks mid-cell (each past its first checkpoint), then one action on each
    cells = (requeued, killed, preempted, crashed)
    wait_for("every cell running with a checkpoint",
             lambda: has_checkpoint_while_running(url, *cells), sweep)
    job, victim, warned, dead = (task_of(url, "slurm-ref", k) for k in cells)
    assert None not in (job, victim, warned, dead)
    # the task's process dies outright: its cell stays `running` until the driver releases it
    kill_task_process(slurm_cluster, dead)
    subprocess.run(["scancel", "--signal=KILL", victim], check=True, timeout=30)
    # the time-limit / preemption warning (submitit's SIGUSR2): the task checkpoints and
    # requeues itself
    subprocess.run(["scancel", "--signal=USR2", warned], check=True, timeout=30)
    slurm_cluster.scontrol("requeue", job)
    release_requeued(slurm_cluster, warned, sweep)
    release_requeued(slurm_cluster, job, sweep)

    report = sweep.result()
    assert report.ok, report
    outcome = read_outcome(report, url, "slurm-ref")
    assert_same_as_reference(outcome, reference)
    tasks = outcome.tasks
    # the requeued task came back under the same id and resumed its cell from a checkpoint
    mine = tasks[tasks["run_key"] == requeued]
    assert list(mine["job_id"]) == [job], report.notes
    assert int(mine["restarts"].iloc[0]) >= 1
    assert outcome.runs.loc[requeued, "attempts"] >= 2
    warned_rows = tasks[tasks["run_key"] == preempted]
    assert list(warned_rows["job_id"]) == [warned] and int(warned_rows["restarts"].iloc[0]) >= 1
    # the killed task was resubmitted as a new job, which resumed the cell
    theirs = tasks[tasks["run_key"] == killed]
    assert len(theirs) == 2 and theirs["job_id"].iloc[0] == victim
    assert outcome.runs.loc[killed, "attempts"] == 2
    crashed_rows = tasks[tasks["run_key"] == crashed]
    assert len(crashed_rows) == 2 and crashed_rows["job_id"].iloc[0] == dead
    assert outcome.runs.loc[crashed, "attempts"] == 2
    resumed = {r.run_key: r.resumed_from_step for r in report.results if r.status == "finished"}
    assert all(resumed[k] for k in (requeued, killed, preempted, crashed)), resumed
    assert any("requeued" in n and requeued in n for n in report.notes), report.notes
    assert any("resubmitted" in n and killed in n for n in report.notes), report.notes
    assert report.lost_workers == 2  # the killed and the crashed task


def test_sweep_cancel_stops_tasks_and_run_resumes(
    slurm_cluster: SlurmCluster, reference: Outcome, corpus: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from scaletrack.cli.main import app

    grid = load_grid(write_grid(tmp_path, corpus, "slurm-ref", same_node=True))
    url = f"sqlite:///{tmp_path / 'slurm.db'}"
    cell = max(grid.cells, key=lambda c: c.steps).run_key
    sweep = SweepThread(grid, url, tmp_path / "ckpt")
    sweep.start()
    wait_for("a checkpoint", lambda: has_checkpoint_while_running(url, cell), sweep)
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "cancel", "slurm-ref", "--store", url])
    assert result.exit_code == 0, result.output
    assert "cancelled" in result.output
    report = sweep.result()
    assert not report.ok
    assert "interrupted" in {r.status for r in report.results}
    with Store.open(url) as store:
        run = store.get_run(cell)
        assert run is not None and run.status == "failed" and run.error == "interrupted"
        assert store.latest_checkpoints(cell)  # it checkpointed on SIGTERM
    status = runner.invoke(app, ["sweep", "status", "slurm-ref", "--store", url])
    assert status.exit_code == 0, status.output
    assert "slurm tasks of slurm-ref" in status.output and "cancelled" in status.output.lower()
    # the next run resumes what was stopped and ends where a local run ends
    report = run_sweep(grid, url, checkpoint_dir=tmp_path / "ckpt")
    assert report.ok
    assert any(r.resumed_from_step for r in report.results if r.run_key == cell)
    assert_same_as_reference(read_outcome(report, url, "slurm-ref"), reference)


def test_unreachable_controller_is_one_line_and_stores_nothing(
    slurm_cluster: SlurmCluster, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scaletrack.errors import ConfigError

    grid = load_grid(write_grid(tmp_path, corpus, "slurm-ref", same_node=True))
    # the test cluster's config with a controller port nothing listens on (and a short
    # timeout: a missing slurm.conf would make sinfo hunt for a controller for a minute)
    lines = [ln for ln in slurm_cluster.conf.read_text().splitlines()
             if not ln.startswith(("SlurmctldPort=", "MessageTimeout="))]
    bad = tmp_path / "unreachable.conf"
    bad.write_text("\n".join([*lines, f"SlurmctldPort={free_port()}", "MessageTimeout=1", ""]))
    monkeypatch.setenv("SLURM_CONF", str(bad))
    db = tmp_path / "s.db"
    with pytest.raises(ConfigError, match="cannot reach the Slurm controller") as info:
        run_sweep(grid, f"sqlite:///{db}", checkpoint_dir=tmp_path / "ckpt")
    assert "\n" not in str(info.value)
    assert not db.exists() and not (tmp_path / "ckpt").exists()
