"""The local executor: a pool of spawned worker processes on this machine.

The parent hands out one cell at a time to whichever worker says it is ready, so it always
knows which cell each worker holds. It hands out the first cell, in schedule order, that can
start: a cooldown branch only once its trunk has saved the branch point (or the trunk can make
no more progress in this call), so an idle worker waits in the parent's queue, not on a trunk.
Workers open their own Store from the URL, split the CPU
cores between them (torch threads = cores / workers, at least 1) and, on a machine with
several GPUs, see one GPU each (CUDA_VISIBLE_DEVICES). Workers ignore SIGINT: on Ctrl-C the
parent raises a stop flag, each worker checkpoints, releases its claim and exits, and the next
`sweep run` resumes. A worker that dies (SIGKILL, out of memory) is noticed at once: its cell
is marked failed so the next run resumes it from its last checkpoint, and a fresh worker takes
the remaining cells.

Workers share no lock with each other or with the parent. Each has its own pipe to the parent,
and the stop flag is a lock-free shared byte. A worker killed while it held a shared lock (an
`mp.Queue`'s writer lock, an `mp.Event`'s condition) would leave it taken for good, and every
other process would hang on it; a worker killed in the middle of a message only cuts its own
pipe, which the parent then reads as the end of that worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from scaletrack.errors import ScaletrackError
from scaletrack.store import Store
from scaletrack.sweeps.executors import (
    CellDone,
    CellTask,
    EventSink,
    ExecutorNote,
    ExecutorOutcome,
    SweepJob,
    WorkerLost,
    branch_ready,
    run_cell,
    task_keys,
    worker_name,
)

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

POLL_S = 0.5  # how often the parent checks worker liveness while no event arrives
STOP_GRACE_S = 300.0  # after Ctrl-C, how long workers get to checkpoint before termination


@dataclass(frozen=True)
class _Ready:
    """A worker asks for its next cell (sent once at start and after every cell)."""

    index: int
    worker: str


@dataclass(frozen=True)
class _Fatal:
    """A worker could not start (e.g. the store cannot be opened) or its store failed while it
    worked (`started`); it exits after this."""

    index: int
    message: str
    started: bool = False


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch intra-op threads for each of `workers` processes: cores / workers, at least 1."""
    return max(1, (cores if cores is not None else usable_cores()) // max(1, workers))


def gpu_for_worker(index: int, configured: str, visible: Sequence[str]) -> str | None:
    """The GPU worker `index` may see (a CUDA_VISIBLE_DEVICES entry), or None for all.

    Only cells configured for plain "cuda" on a machine with several visible GPUs are spread,
    one GPU per worker round robin; the cell's config (and so its run key and its checkpoints'
    resume check) stays "cuda" whichever GPU it lands on.
    """
    if configured != "cuda" or len(visible) < 2:
        return None
    return visible[index % len(visible)]


def visible_gpus() -> list[str]:
    """GPU ids this process may use (from CUDA_VISIBLE_DEVICES, else all torch sees)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    with contextlib.suppress(Exception):
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    return []


class _StopFlag:
    """Set by the parent (Ctrl-C), read by the workers at every step: one shared byte, read
    and written without a lock, so a worker killed while reading it leaves nothing held."""

    def __init__(self, ctx: Any) -> None:
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


class _StopSignal:
    """`is_set()` is true when the parent asked to stop, this worker got SIGTERM (`scancel`,
    `docker stop` and a closed terminal signal the whole process group) or the parent is gone."""

    def __init__(self, stop: _StopFlag) -> None:
        self._stop = stop
        self._parent = mp.parent_process()
        self.terminated = False

    def on_sigterm(self, _signum: int, _frame: Any) -> None:
        self.terminated = True

    def is_set(self) -> bool:
        return (self.terminated or self._stop.is_set()
                or (self._parent is not None and not self._parent.is_alive()))


class _Sender:
    """A worker's side of its pipe: one message at a time (the training loop and the command
    cells' reader threads may both emit), and silent once the parent is gone (the worker then
    stops through `_StopSignal`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._conn.send(msg)


def _worker_main(
    index: int,
    job: SweepJob,
    conn: Connection,
    stop: _StopFlag,
    threads: int,
    gpu: str | None,
) -> None:
    """Worker process: ask for a cell, run it, repeat until told to exit (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C for everyone
    if gpu is not None:  # before torch initialises CUDA: this worker sees one GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    torch.set_num_threads(threads)

    name = worker_name(index)
    send = _Sender(conn)
    stop_signal = _StopSignal(stop)
    signal.signal(signal.SIGTERM, stop_signal.on_sigterm)  # checkpoint and release, then exit
    try:
        store = Store.open(job.store_url)
    except ScaletrackError as exc:
        send(_Fatal(index, str(exc)))
        return
    try:
        send(_Ready(index, name))
        while True:
            try:
                if not conn.poll(1.0):
                    parent = mp.parent_process()
                    if parent is not None and not parent.is_alive() or stop_signal.terminated:
                        return  # orphaned or terminated: take no more cells
                    continue
                cell = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if cell is None:
                return
            try:
                run_cell(job, cell, store, name, send, stop_event=stop_signal)
            except ScaletrackError as exc:  # the store is failing: stop, take no more cells
                send(_Fatal(index, str(exc), started=True))
                return
            if stop_signal.terminated:
                return
            send(_Ready(index, name))
    finally:
        store.close()


def read_waiting(conn: Connection) -> tuple[list[Any], bool]:
    """Every whole message waiting on a worker's pipe, without blocking on a live worker, and
    whether the pipe has ended (the worker is gone, perhaps in the middle of a message)."""
    messages: list[Any] = []
    try:
        while conn.poll(0):
            messages.append(conn.recv())
    except (EOFError, OSError):
        return messages, True
    return messages, False


@dataclass
class _Slot:
    """The parent's view of one worker process."""

    index: int
    process: Any
    conn: Connection | None  # the parent's end of this worker's pipe; None once it is closed
    name: str | None = None
    cell: CellTask | None = None
    exited: bool = False
    idle: bool = False  # asked for a cell, none could start yet


class LocalExecutor:
    """Runs cells in `workers` spawned processes on this machine."""

    name = "local"

    def __init__(self, workers: int = 1, *, max_respawns: int | None = None) -> None:
        self.workers = max(1, int(workers))
        self.max_respawns = max_respawns

    def run(self, job: SweepJob, on_event: EventSink) -> ExecutorOutcome:
        if not job.cells:
            return ExecutorOutcome()
        ctx = mp.get_context("spawn")
        n = min(self.workers, len(job.cells))
        # Threads follow the configured worker count, not the cells left, so a resumed cell
        # runs with the thread count it started with and its losses match bit for bit.
        threads = threads_per_worker(self.workers)
        configured = str(job.cells[0].config.get("device", "cpu"))
        gpus = visible_gpus() if configured == "cuda" else []
        stop = _StopFlag(ctx)
        todo: deque[CellTask] = deque(job.cells)
        slots: dict[int, _Slot] = {}
        next_index = 0
        respawns_left = self.max_respawns if self.max_respawns is not None else len(job.cells)
        parent_store: StoreLike | None = None
        interrupted = False
        stop_deadline: float | None = None

        def spawn() -> None:
            nonlocal next_index
            index = next_index
            next_index += 1
            conn, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=_worker_main,
                args=(index, job, child_end, stop, threads,
                      gpu_for_worker(index, configured, gpus)),
                name=f"scaletrack-worker-{index}",
                daemon=True,
            )
            proc.start()
            child_end.close()  # only the worker holds it now: its death reads as end of file
            slots[index] = _Slot(index, proc, conn)

        def close(slot: _Slot) -> None:
            if slot.conn is not None:
                slot.conn.close()
                slot.conn = None

        def receive(slot: _Slot) -> None:
            """Handle every message waiting on `slot`'s pipe; close it at its end."""
            if slot.conn is None:
                return
            messages, ended = read_waiting(slot.conn)
            if ended:
                close(slot)
            for msg in messages:
                handle(msg)

        def release(slot: _Slot) -> None:
            """Mark a dead worker's cell failed (resumable) in the store."""
            nonlocal parent_store
            if slot.cell is None or slot.name is None:
                return

            if parent_store is None:
                parent_store = Store.open(job.store_url)
            for key in task_keys(slot.cell):
                parent_store.release_run(key, slot.name)

        def store_for_gate() -> Any:
            nonlocal parent_store

            if parent_store is None:
                parent_store = Store.open(job.store_url)
            return parent_store

        def startable(cell: CellTask) -> bool:
            if cell.after is None:
                return True
            trunk = cell.after[0]
            if any(trunk in task_keys(c) for c in todo) or any(
                s.cell is not None and trunk in task_keys(s.cell) for s in slots.values()
            ):
                return branch_ready(cell, store_for_gate())
            return True  # the trunk will not move in this call: the trainer says what is missing

        def dispatch() -> None:
            for slot in list(slots.values()):
                if not slot.idle or slot.exited or slot.conn is None:
                    continue
                if not todo or stop.is_set():
                    slot.idle = False
                    if slot.conn is not None:
                        with contextlib.suppress(OSError):
                            slot.conn.send(None)
                    continue
                pick = next((c for c in todo if startable(c)), None)
                if pick is None:
                    return  # nothing can start yet; retried on the next event or poll
                todo.remove(pick)
                slot.idle, slot.cell = False, pick
                assert slot.conn is not None
                try:
                    slot.conn.send(pick)
                except OSError:  # it died meanwhile: the cell goes back, the death is handled
                    todo.appendleft(pick)
                    slot.cell = None

        def handle(msg: Any) -> None:
            nonlocal respawns_left
            if isinstance(msg, _Ready):
                slot = slots.get(msg.index)
                if slot is None or slot.exited:
                    return
                slot.name = msg.worker
                slot.cell = None
                slot.idle = True
                dispatch()
            elif isinstance(msg, _Fatal):
                if msg.started:
                    slot = slots.get(msg.index)
                    if slot is not None:
                        slot.cell = None  # its cell was released (or the store refused that)
                    on_event(ExecutorNote(f"worker {msg.index} stopped: the store failed"))
                else:
                    on_event(ExecutorNote(f"worker {msg.index} could not start: {msg.message}",
                                          store_error=True))
                todo.clear()
                respawns_left = 0
            else:
                if isinstance(msg, CellDone):
                    for slot in slots.values():  # a packed group is done at its _Ready
                        if (slot.cell is not None and not slot.cell.members
                                and slot.cell.run_key == msg.run_key):
                            slot.cell = None
                on_event(msg)

        def check_workers() -> None:
            nonlocal respawns_left
            for slot in list(slots.values()):
                if slot.exited or slot.process.is_alive():
                    continue
                receive(slot)  # what it said before it exited
                close(slot)
                slot.exited = True
                slot.process.join(timeout=1.0)
                code = slot.process.exitcode
                if code == 0 and slot.cell is None:
                    continue
                lost_key = slot.cell.run_key if slot.cell is not None else None
                try:
                    release(slot)
                except ScaletrackError as exc:
                    on_event(ExecutorNote(f"could not release {lost_key}: {exc}"))
                on_event(WorkerLost(slot.name or f"worker {slot.index}", code, lost_key))
                for key in task_keys(slot.cell) if slot.cell is not None else ():
                    on_event(
                        CellDone(key, slot.name or "?", "crashed",
                                 message=f"worker died (exit code {code}); resumes on next run")
                    )
                slot.cell = None
                if todo and not stop.is_set() and respawns_left > 0:
                    respawns_left -= 1
                    on_event(ExecutorNote("starting a replacement worker"))
                    spawn()

        try:
            for _ in range(n):
                spawn()
            last_check = time.monotonic()
            while any(not s.exited for s in slots.values()):
                try:
                    live = [s for s in slots.values() if not s.exited]
                    conns = [s.conn for s in live if s.conn is not None]
                    ready = wait([*conns, *(s.process.sentinel for s in live)], timeout=POLL_S)
                    for slot in live:
                        if slot.conn is not None and slot.conn in ready:
                            receive(slot)
                    died = any(s.process.sentinel in ready for s in live)
                    if died or not ready or time.monotonic() - last_check >= POLL_S:
                        last_check = time.monotonic()
                        check_workers()
                        dispatch()
                        if stop_deadline is not None and time.monotonic() > stop_deadline:
                            on_event(ExecutorNote("workers did not stop in time; terminating"))
                            _terminate(slots.values())
                except KeyboardInterrupt:
                    if stop.is_set():  # second Ctrl-C: do not wait any longer
                        on_event(ExecutorNote("second interrupt: terminating workers"))
                        _terminate(slots.values())
                        check_workers()
                        break
                    interrupted = True
                    stop.set()
                    todo.clear()
                    stop_deadline = time.monotonic() + STOP_GRACE_S
                    on_event(ExecutorNote("stopping: workers checkpoint and release their cells"))
            for slot in slots.values():  # what the last workers said before exiting
                receive(slot)
        finally:
            _terminate(slots.values())
            for slot in slots.values():
                close(slot)
            if parent_store is not None:
                parent_store.close()
        return ExecutorOutcome(interrupted=interrupted)


def _terminate(slots: Any) -> None:
    for slot in slots:
        if slot.process.is_alive():
            slot.process.terminate()
    for slot in slots:
        slot.process.join(timeout=5.0)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=5.0)
