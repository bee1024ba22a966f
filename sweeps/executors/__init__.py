"""Executors run the cells of a sweep somewhere: a local process pool, a Ray cluster or Slurm.

An executor gets a `SweepJob` (what to run and where the store is) and reports what happens
through `on_event` with the event dataclasses below; the runner turns them into progress bars
and the final report. Every executor trains a cell the same way, with `run_cell`: claim it in
the store (`claim_cell`: a cell held by a live worker or already done is skipped, one held by
a dead worker on this host is taken over at once), call `sweeps.train.train_run`, release the
claim if stopped (`release_stopped`), and hand the new checkpoint to the job's
`after_checkpoint` hook (the grid's evaluation tasks, supplied by the layer above). A packed
group (`run_group`) does the same for each of its members.
To add an executor, implement the `Executor` protocol and register its constructor in
`sweeps.executors.registry.make_executor` (kept out of this module, which every executor
imports, so there is no import cycle): it is called as `cls(workers=..., address=...)`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from scaletrack.errors import ScaletrackError, one_line
from scaletrack.store import ClaimLost, StoreError
from scaletrack.sweeps.liveness import holder_is_dead

if TYPE_CHECKING:
    from scaletrack.store.protocol import WorkerStore
    from scaletrack.store.records import RunRecord

# ----------------------------------------------------------------------------- what to run

CheckpointHook = Callable[["WorkerStore", int, tuple[str, ...], str], Mapping[str, str]]


@dataclass(frozen=True)
class CellTask:
    """One cell, in a form that pickles to any worker (config as a plain dict)."""

    run_key: str
    label: str  # e.g. "L2-H2-D64 D=40000 seed=0 lr=0.003"
    config: dict[str, Any]  # TrainConfig.to_dict()
    N: int | None  # None: a command cell whose program's model is not known
    D: int
    C: float | None
    steps: int | None
    command: str | None = None  # a command cell: the user's program line (sweeps.command)
    workdir: str | None = None  # and the folder it runs in
    # a cooldown branch waits for its trunk's checkpoint at this (trunk run key, step)
    after: tuple[str, int] | None = None
    # a packed group: same-shape cells trained together by sweeps.multi.train_group; the
    # group's own run_key/config are its first member's
    members: tuple[CellTask, ...] = ()


def task_keys(task: CellTask) -> tuple[str, ...]:
    """The run keys a task trains: its members' for a packed group, else its own."""
    return tuple(m.run_key for m in task.members) if task.members else (task.run_key,)


@dataclass(frozen=True)
class SweepJob:
    """Everything an executor needs: the cells in schedule order and where results go."""

    sweep: str
    store_url: str
    checkpoint_root: str  # a cell's checkpoints go to <root>/<sweep>/<run_key>
    cells: tuple[CellTask, ...]
    workers: int = 1
    stale_after_s: float = 60.0  # a running cell whose heartbeat is older may be taken over
    eval_tasks: tuple[str, ...] = ()
    eval_on: str = "final"  # "final" | "checkpoints"
    # after_checkpoint(store, checkpoint_id, eval_tasks, device) -> {task: error}; a top-level
    # function (it pickles by reference to workers), supplied by the layer that knows evals
    after_checkpoint: CheckpointHook | None = None

    def checkpoint_dir(self) -> Path:
        """What train_run gets: it writes a cell's files under <this>/<run_key>/."""
        return Path(self.checkpoint_root) / self.sweep


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class CellStarted:
    """A worker claimed a cell and starts it; `at` is when (wall clock, seconds since the
    epoch, on the worker's machine)."""

    run_key: str
    worker: str
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class CellProgress:
    run_key: str
    step: int
    total: int


@dataclass(frozen=True)
class CellDone:
    """A cell left a worker.

    status: finished | diverged | failed | interrupted | skipped | crashed.
    """

    run_key: str
    worker: str
    status: str
    final_loss: float | None = None
    wall_s: float = 0.0
    steps: int = 0
    tokens: int = 0
    resumed_from_step: int | None = None
    message: str | None = None
    eval_errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerLost:
    """A worker process died without saying goodbye (killed, out of memory, segfault)."""

    worker: str
    exitcode: int | None
    run_key: str | None  # the cell it was training, now marked failed and resumable


@dataclass(frozen=True)
class ExecutorNote:
    """A one-line message for the user (e.g. a worker was replaced); `store_error` when the
    store itself failed (a full disk...): the sweep stops and reports it as its error."""

    message: str
    store_error: bool = False


SweepEvent = CellStarted | CellProgress | CellDone | WorkerLost | ExecutorNote
EventSink = Callable[[SweepEvent], None]


@dataclass(frozen=True)
class ExecutorOutcome:
    """How `Executor.run` ended: interrupted is True after Ctrl-C (cells stopped cleanly)."""

    interrupted: bool = False


@runtime_checkable
class Executor(Protocol):
    """Runs every cell of a job, reporting through `on_event`; handles Ctrl-C itself.

    On KeyboardInterrupt an executor stops its workers (they checkpoint and release their claim)
    and returns ExecutorOutcome(interrupted=True) instead of raising.
    """

    name: str

    def run(self, job: SweepJob, on_event: EventSink) -> ExecutorOutcome: ...


# ----------------------------------------------------------------------------- branches


def branch_ready(cell: CellTask, store: WorkerStore) -> bool:
    """Whether `cell` can start now: it is no branch, or its trunk saved the branch point."""
    if cell.after is None:
        return True
    trunk, step = cell.after
    return any(rec.step == step for rec in store.latest_checkpoints(trunk))


def wait_for_branch_point(
    cell: CellTask, store: WorkerStore, stop_event: Any = None, poll_s: float = 0.5
) -> bool:
    """Block until `cell`'s trunk has saved its branch point or will not any more (True),
    or until stopped (False); the trainer then says what is missing.

    Executors that schedule only ready branches (the local one) never wait here.
    """
    if cell.after is None:
        return True
    while True:
        if branch_ready(cell, store):
            return True
        run = store.get_run(cell.after[0])
        if run is None or run.status not in ("pending", "running"):
            return True  # done, or crashed and not being trained: no use waiting
        if stop_event is not None and stop_event.is_set():
            return False
        time.sleep(poll_s)


# ----------------------------------------------------------------------------- one cell


def worker_name(index: int | str) -> str:
    """A worker id that says where it runs: host:pid:index."""
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


class _Throttle:
    """Forward progress at most every `interval_s` seconds (and always the last step)."""

    def __init__(self, run_key: str, emit: EventSink, interval_s: float = 0.25) -> None:
        self.run_key, self.emit, self.interval_s = run_key, emit, interval_s
        self._last = 0.0

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if step >= total or now - self._last >= self.interval_s:
            self._last = now
            self.emit(CellProgress(self.run_key, int(step), int(total)))


def _skip_reason(run: RunRecord | None) -> str:
    """Why a cell that could not be claimed is skipped (the run as the store has it now)."""
    if run is None:
        return "not in the store"
    if run.status == "running":
        return f"held by live worker {run.worker}"
    return f"already {run.status}"


def claim_cell(
    store: WorkerStore, run_key: str, worker: str, emit: EventSink, stale_after_s: float = 60.0
) -> str | None:
    """Claim `run_key` for `worker`, taking it over at once from a holder on this host whose
    process is gone (no wait for its heartbeat to go stale). None when claimed (the store then
    fences this worker's writes by the claim's generation), else why it is skipped."""
    if store.claim_run(run_key, worker, stale_after_s=stale_after_s):
        return None
    run = store.get_run(run_key)
    if (run is not None and run.status == "running"
            and holder_is_dead(run.worker, run.heartbeat_at)
            and store.take_over_run(run_key, run.worker, worker)):
        emit(ExecutorNote(f"{run_key}: its worker {run.worker} is gone; taken over"))
        return None
    return _skip_reason(run)


def release_stopped(store: WorkerStore, run_key: str, worker: str) -> None:
    """Release a stopped (interrupted) cell's claim so the next run resumes it; a claim taken
    over meanwhile is no error: the new holder has the cell."""
    with contextlib.suppress(ClaimLost):
        store.release_run(run_key, worker)


def _stop_for_store_failure(
    store: WorkerStore, run_keys: tuple[str, ...], worker: str, emit: EventSink, exc: Exception,
    wall_s: float,
) -> None:
    """The store failed (a full disk, an I/O error): release the cells where the store still
    takes that small write, emit the StoreError note and a failed CellDone per cell. The caller
    re-raises, so its worker stops."""
    for key in run_keys:
        store.release_after_failure(key, worker)
    emit(ExecutorNote(str(exc), store_error=True))
    for key in run_keys:
        emit(CellDone(key, worker, "failed", wall_s=wall_s, message=str(exc)))


def run_cell(
    job: SweepJob,
    cell: CellTask,
    store: WorkerStore,
    worker: str,
    emit: EventSink,
    stop_event: Any = None,
    device: str | None = None,
) -> CellDone:
    """Claim `cell`, train (or resume) it, run its eval tasks; return (and emit) a CellDone.

    Never raises for a problem inside the cell: a failure marks the run failed with a one-line
    error so the sweep keeps going. A failing store (a full disk, an I/O error) is not the
    cell's problem: the cell is released if the store still takes that write, a StoreError
    note is emitted and the StoreError raised, so the worker stops. `device` overrides the
    config's device (e.g. "cuda:1"). A packed group goes to `run_group`, which claims, fences,
    releases and stops in the same way for each member.
    """
    from scaletrack.sweeps.train import TrainConfig, train_run

    if cell.members:
        return run_group(job, cell, store, worker, emit, stop_event, device)
    reason = claim_cell(store, cell.run_key, worker, emit, job.stale_after_s)
    if reason is not None:
        done = CellDone(cell.run_key, worker, "skipped", message=reason)
        emit(done)
        return done

    emit(CellStarted(cell.run_key, worker))
    t0 = time.monotonic()
    if not wait_for_branch_point(cell, store, stop_event):
        release_stopped(store, cell.run_key, worker)
        done = CellDone(cell.run_key, worker, "interrupted", message="waiting for its trunk")
        emit(done)
        return done
    if cell.command is not None:
        from scaletrack.sweeps.command import run_command_cell

        # the program logs its own evals (run.log_eval); its checkpoints are in its own format
        done = run_command_cell(job, cell, store, worker, make_done=CellDone,
                                stop_event=stop_event)
        emit(done)
        return cast(CellDone, done)  # make_done's result
    try:
        cfg = TrainConfig.from_dict(cell.config)
        if device is not None and cfg.device != device:
            cfg = replace(cfg, device=device)
        result = train_run(
            cfg,
            store,
            cell.run_key,
            job.checkpoint_dir(),
            worker=worker,
            stop_event=stop_event,
            on_step=_Throttle(cell.run_key, emit),
        )
    except ClaimLost as exc:  # another worker holds the cell now: write nothing more
        done = CellDone(cell.run_key, worker, "skipped", wall_s=time.monotonic() - t0,
                        message=str(exc))
        emit(done)
        return done
    except StoreError as exc:
        _stop_for_store_failure(store, (cell.run_key,), worker, emit, exc,
                                time.monotonic() - t0)
        raise
    except Exception as exc:  # noqa: BLE001 - any failure in a cell is recorded, not raised
        message = one_line(exc)
        # if the store itself is failing, the message below still reaches the user
        with contextlib.suppress(ScaletrackError):
            store.finish_run(cell.run_key, "failed", error=message)
        done = CellDone(cell.run_key, worker, "failed", wall_s=time.monotonic() - t0,
                        message=message)
        emit(done)
        return done
    done = _finished_cell(job, cell, store, worker, result, time.monotonic() - t0, device)
    emit(done)
    return done


def _finished_cell(
    job: SweepJob, cell: CellTask, store: WorkerStore, worker: str, result: Any, wall_s: float,
    device: str | None,
) -> CellDone:
    """The CellDone of a cell (or packed member) whose training returned `result` (a
    TrainResult): release it if stopped, evaluate it if finished."""
    if result.status == "lost":  # a packed member whose claim another worker took over
        return CellDone(cell.run_key, worker, "skipped", wall_s=wall_s,
                        message=f"claim lost, {_skip_reason(store.get_run(cell.run_key))}; "
                        "it stopped without writing")
    if result.status == "interrupted":
        release_stopped(store, cell.run_key, worker)
    eval_errors: dict[str, str] = {}
    hook = job.after_checkpoint
    if result.status == "finished" and job.eval_tasks and hook is not None:
        eval_errors = _evaluate(job, cell, store, device or cell.config.get("device", "cpu"), hook)
    return CellDone(
        cell.run_key,
        worker,
        result.status,
        final_loss=result.final_loss,
        wall_s=wall_s,
        steps=int(result.steps),
        tokens=int(result.tokens),
        resumed_from_step=result.resumed_from_step,
        eval_errors=eval_errors,
    )


def run_group(
    job: SweepJob,
    group: CellTask,
    store: WorkerStore,
    worker: str,
    emit: EventSink,
    stop_event: Any = None,
    device: str | None = None,
) -> CellDone:
    """Claim a packed group's members and train those claimed together (sweeps.multi); one
    CellDone per member (the last is returned).

    Each member is claimed, fenced, released and stopped as `run_cell` does a single cell: a
    dead holder on this host is taken over at once; a member whose claim another worker takes
    over stops writing (CellDone "skipped") while the others go on; a stopped member is
    released (a lost claim tolerated); a failing store releases every member where it still
    can, emits the StoreError note and raises. Any other failure marks only the members still
    running failed; one diverged member does not stop the others.
    """
    from scaletrack.sweeps.multi import train_group
    from scaletrack.sweeps.train import TrainConfig

    claimed: list[CellTask] = []
    last: CellDone | None = None
    for member in group.members:
        reason = claim_cell(store, member.run_key, worker, emit, job.stale_after_s)
        if reason is None:
            claimed.append(member)
            emit(CellStarted(member.run_key, worker))
            continue
        last = CellDone(member.run_key, worker, "skipped", message=reason)
        emit(last)
    if not claimed:
        assert last is not None
        return last
    t0 = time.monotonic()
    keys = tuple(m.run_key for m in claimed)
    try:
        configs = [TrainConfig.from_dict(m.config) for m in claimed]
        if device is not None:
            configs = [replace(c, device=device) for c in configs]
        results = train_group(
            configs, store, list(keys), job.checkpoint_dir(), worker=worker,
            stop_event=stop_event, on_step=_Throttle(claimed[0].run_key, emit),
        )
    except ClaimLost as exc:  # not one member's loss (those are results): stop them all
        for member in claimed:
            last = CellDone(member.run_key, worker, "skipped", wall_s=time.monotonic() - t0,
                            message=str(exc))
            emit(last)
        assert last is not None
        return last
    except StoreError as exc:
        _stop_for_store_failure(store, keys, worker, emit, exc, time.monotonic() - t0)
        raise
    except Exception as exc:  # noqa: BLE001 - recorded per member, the sweep goes on
        message = one_line(exc)
        for member in claimed:
            with contextlib.suppress(ScaletrackError):  # ClaimLost: not ours to mark any more
                run = store.get_run(member.run_key)
                if run is not None and run.status == "running" and run.worker == worker:
                    store.finish_run(member.run_key, "failed", error=message)
            last = CellDone(member.run_key, worker, "failed", wall_s=time.monotonic() - t0,
                            message=message)
            emit(last)
        assert last is not None
        return last
    for member, result in zip(claimed, results, strict=True):
        last = _finished_cell(job, member, store, worker, result, time.monotonic() - t0, device)
        emit(last)
    assert last is not None
    return last


def _evaluate(
    job: SweepJob, cell: CellTask, store: WorkerStore, device: str, hook: CheckpointHook
) -> dict[str, str]:
    """Run `hook` (the job's after-checkpoint hook) on the cell's final (or every) checkpoint."""
    ckpts = store.latest_checkpoints(cell.run_key)  # newest first
    if not ckpts:
        return {"*": "no checkpoint registered for this run"}
    chosen = ckpts if job.eval_on == "checkpoints" else ckpts[:1]
    errors: dict[str, str] = {}
    for ckpt in reversed(chosen):  # oldest first
        if ckpt.id is None:
            continue
        errors.update(hook(store, ckpt.id, job.eval_tasks, device))
    return errors
