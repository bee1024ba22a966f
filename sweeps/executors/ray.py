"""The Ray executor: every cell is one Ray task, scheduled anywhere on a Ray cluster.

`RayExecutor(address=...)` connects to a running cluster (`ray start --head` on one machine,
`ray start --address=HEAD:PORT` on the others; `address=None` uses $RAY_ADDRESS or starts a
private single-machine Ray). Each cell runs `sweeps.executors.run_cell` inside a task that asks
for `cpus_per_cell` CPUs (and one GPU when the cell trains on CUDA), so Ray packs cells onto
the cluster's free cores.

Where metrics go depends on the store:

- a database server (PostgreSQL): every task opens the Store from the URL and writes directly;
- SQLite: ONE hub actor on the driver's node owns the Store; tasks get a `HubStore`, a
  stand-in that forwards the `WorkerStore` protocol (claims, metric batches, checkpoints and
  evals, heartbeats, finish) to that actor. A SQLite file is never opened from another
  machine.

The hub actor (on the driver's node, no CPU reserved) also relays progress events to the
driver and carries the Ctrl-C stop flag.

Fault tolerance: a task whose node dies is retried by Ray on another node (`max_retries`); the
retry claims the cell under the same worker name, so the store lets it take the cell over at
once, and `train_run` resumes from the cell's last checkpoint. Checkpoints must therefore lie on
a path every node sees (`--checkpoint-dir` on a shared filesystem; any local directory when the
whole cluster is one machine). Metrics are flushed before every checkpoint is registered, and
re-logged steps after it overwrite (never duplicate) the rows a dead attempt wrote.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from scaletrack.errors import ConfigError, one_line
from scaletrack.store.protocol import StoreLike, WorkerStore
from scaletrack.sweeps.executors import (
    CellDone,
    CellTask,
    EventSink,
    ExecutorNote,
    ExecutorOutcome,
    SweepJob,
    WorkerLost,
    run_cell,
    task_keys,
)
from scaletrack.sweeps.executors.ray_store import FORWARDED_METHODS, HubStore

POLL_S = 0.25  # how often the driver collects events and finished cells
STOP_GRACE_S = 300.0  # after Ctrl-C, how long running cells get to checkpoint
STOP_CHECK_S = 1.0  # how often a running cell asks the hub whether to stop
MAX_RETRIES = 3  # Ray re-runs a cell this many times after its node or worker died


def _retryable_exceptions() -> list[type[BaseException]]:
    """Errors raised out of a cell worth a retry: the store or the network failing for a moment.

    (`run_cell` records failures inside training itself; what escapes it is the claim failing,
    i.e. the store being unreachable.)
    """
    from scaletrack.store import TRANSIENT_DB_ERRORS, StoreError

    return [StoreError, ConnectionError, TimeoutError, *TRANSIENT_DB_ERRORS]


def absolute_sqlite_url(url: str) -> str:
    """`url` with a relative SQLite path made absolute (Ray actors run in another directory)."""
    from scaletrack.store import StoreError, with_absolute_sqlite_path

    try:
        return with_absolute_sqlite_path(url)
    except StoreError as exc:
        raise ConfigError(f"the ray executor needs a file or server store: {exc}") from None


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Raise ConfigError when a `host:port` Ray address has nothing listening.

    `ray.init` itself retries an unreachable GCS for many minutes; this fails in seconds.
    Other forms ("auto", "local", "ray://...") are left to Ray.
    """
    if not address or "://" in address or address in ("auto", "local"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not of the form HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot connect to Ray at {address}: {exc.strerror or exc} "
            "(start the head with `ray start --head --port=PORT`)"
        ) from None


def use_token_if_available() -> bool:
    """Join token-authenticated clusters: turn on RAY_AUTH_MODE=token when a token is at hand.

    `ray start --head` (Ray >= 2.5x) enables token authentication when ~/.ray/auth_token
    exists, but a driver only sends the token when RAY_AUTH_MODE=token. A driver sending a
    token also joins a cluster without authentication, so this is safe. An explicit
    RAY_AUTH_MODE is left alone. Returns whether token mode is on.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    try:  # Ray's own helper also refreshes its cached config
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # an older Ray without token authentication
        return False
    return bool(maybe_enable_token_auth_if_token_available(warn_if_disabled=False))


# ----------------------------------------------------------------------------- the hub actor


@dataclass(frozen=True)
class _Placement:
    """A task started a cell on a node (sent to the hub; attempt counts from 1)."""

    run_key: str
    node_id: str
    pid: int
    attempt: int


class SweepHub:
    """Actor on the driver's node: relays events, holds the stop flag, owns the SQLite Store.

    Single-threaded, so Store calls run one at a time, in the order each caller sent them.
    """

    def __init__(self, store_url: str, own_store: bool) -> None:
        self._url = store_url
        self._store: StoreLike | None = None
        self._events: list[Any] = []
        self._stop = False
        self._attempts: dict[str, int] = {}
        if own_store:
            self._open()

    def _open(self) -> Any:
        if self._store is None:
            from scaletrack.store import Store

            self._store = Store.open(self._url)
        return self._store

    def ready(self) -> bool:
        return True

    def call(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if method not in FORWARDED_METHODS:
            raise AttributeError(f"Store method {method!r} is not forwarded by the ray hub")
        return getattr(self._open(), method)(*args, **kwargs)

    def start_attempt(self, run_key: str, node_id: str, pid: int) -> tuple[int, bool]:
        """Count an attempt at `run_key`; return (attempt number, stop requested)."""
        attempt = self._attempts.get(run_key, 0) + 1
        self._attempts[run_key] = attempt
        self._events.append(_Placement(run_key, node_id, pid, attempt))
        return attempt, self._stop

    def emit(self, event: Any) -> None:
        self._events.append(event)

    def drain(self) -> list[Any]:
        events, self._events = self._events, []
        return events

    def request_stop(self) -> None:
        self._stop = True

    def stop_requested(self) -> bool:
        return self._stop

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


_SweepHubActor = ray.remote(SweepHub)


class _HubStopSignal:
    """`is_set()` is true once the driver asked the hub to stop (checked every STOP_CHECK_S)."""

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        self._set = False
        self._checked = time.monotonic()

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self._set and now - self._checked >= STOP_CHECK_S:
            self._checked = now
            with contextlib.suppress(ray.exceptions.RayError):
                self._set = bool(ray.get(self._hub.stop_requested.remote(), timeout=10))
        return self._set


def _cell_task(job: SweepJob, cell: CellTask, worker: str, hub: Any, direct: bool,
               threads: int) -> CellDone:
    """One cell on some node: claim, train or resume, evaluate. Runs as a Ray task."""
    import torch

    torch.set_num_threads(max(1, threads))
    node_id = ray.get_runtime_context().get_node_id()
    _, stop = ray.get(hub.start_attempt.remote(cell.run_key, node_id, os.getpid()))
    if stop:
        return CellDone(cell.run_key, worker, "skipped", message="sweep stopped before it started")

    def emit(event: Any) -> None:
        if not isinstance(event, CellDone):  # the driver gets CellDone as the task's result
            hub.emit.remote(event)

    if direct:
        from scaletrack.store import Store

        store: WorkerStore = Store.open(job.store_url)
    else:
        # its WorkerStore methods are generated from the protocol (invisible to the checker)
        store = cast(WorkerStore, HubStore(hub, job.store_url))
    try:
        done = run_cell(job, cell, store, worker, emit, stop_event=_HubStopSignal(hub))
    finally:
        store.close()
    ray.get(hub.ready.remote())  # every event this task sent is now at the hub
    return done


_remote_cell_task = ray.remote(max_retries=MAX_RETRIES)(_cell_task)


# ----------------------------------------------------------------------------- the driver


@dataclass
class _InFlight:
    cell: CellTask
    worker: str
    ref: Any


class RayExecutor:
    """Runs cells as Ray tasks on the cluster at `address` (see the module docstring).

    `workers` > 1 caps how many cells are in flight at once; 1 (the grid default) leaves it to
    the cluster's free resources. `cpus_per_cell` CPUs (and `gpus_per_cell` GPUs, default 1 for
    CUDA cells, else 0) are reserved per cell; torch uses that many threads.
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 1,
        address: str | None = None,
        *,
        cpus_per_cell: float = 1.0,
        gpus_per_cell: float | None = None,
        max_retries: int = MAX_RETRIES,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        self.workers = max(1, int(workers))
        self.address = address
        self.cpus_per_cell = float(cpus_per_cell)
        self.gpus_per_cell = gpus_per_cell
        self.max_retries = int(max_retries)
        self.runtime_env = runtime_env
        self.placements: dict[str, list[str]] = {}  # run_key -> node ids, one per attempt
        # run_key -> when its task was submitted (wall clock, seconds since the epoch): a
        # cooldown branch only once its trunk's checkpoint at the branch step exists
        self.submitted: dict[str, float] = {}

    # ------------------------------------------------------------------ connection
    def _connect(self) -> bool:
        """Connect to the cluster; True if this call started the connection (we shut it down)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {
            "logging_level": "ERROR", "log_to_driver": False, "configure_logging": True,
        }
        if self.runtime_env is not None:
            kwargs["runtime_env"] = self.runtime_env
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs["include_dashboard"] = False  # a private one-machine Ray
        check_reachable(self.address or os.environ.get("RAY_ADDRESS"))
        if self.address is not None or os.environ.get("RAY_ADDRESS"):
            use_token_if_available()
        try:
            ray.init(address=self.address, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any connection failure becomes one line
            where = self.address or os.environ.get("RAY_ADDRESS") or "a new local instance"
            raise ConfigError(f"cannot connect to Ray at {where}: {exc}") from None
        return True

    def _options(self, cell: CellTask) -> dict[str, Any]:
        device = str(cell.config.get("device", "cpu"))
        gpus = self.gpus_per_cell
        if gpus is None:
            gpus = 1.0 if device.startswith("cuda") else 0.0
        return {
            "num_cpus": self.cpus_per_cell,
            "num_gpus": gpus,
            "max_retries": self.max_retries,
            "retry_exceptions": _retryable_exceptions(),
            "name": f"scaletrack:{cell.run_key}",
        }

    # ------------------------------------------------------------------ run
    def run(self, job: SweepJob, on_event: EventSink) -> ExecutorOutcome:
        from scaletrack.store import sqlite_file

        if not job.cells:
            return ExecutorOutcome()
        url = absolute_sqlite_url(job.store_url)
        job = replace(job, store_url=url,
                      checkpoint_root=str(Path(job.checkpoint_root).expanduser().resolve()))
        direct = sqlite_file(url) is None  # a server database: tasks write directly
        started = self._connect()
        hub: Any = None
        try:
            here = ray.get_runtime_context().get_node_id()
            hub = _SweepHubActor.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
            ).remote(url, not direct)
            try:
                ray.get(hub.ready.remote())
            except ray.exceptions.RayActorError as exc:
                cause = getattr(exc, "cause", None) or exc
                raise ConfigError(f"the ray hub could not open the store: {cause}") from None
            return self._drive(job, hub, direct, on_event)
        finally:
            if hub is not None:
                with contextlib.suppress(Exception):
                    ray.get(hub.close.remote(), timeout=30)
                with contextlib.suppress(Exception):
                    ray.kill(hub)
            if started:
                ray.shutdown()

    def _drive(self, job: SweepJob, hub: Any, direct: bool, on_event: EventSink) -> ExecutorOutcome:
        host = socket.gethostname()
        cap = self.workers if self.workers > 1 else len(job.cells)
        threads = max(1, int(self.cpus_per_cell))
        cpus = ray.cluster_resources().get("CPU", 0.0)  # type: ignore[no-untyped-call]
        listed: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        nodes = sum(1 for node in listed if node.get("Alive"))
        on_event(ExecutorNote(
            f"ray: {len(job.cells)} cells on {nodes} node(s), {cpus:g} CPUs; "
            f"metrics {'written by each task' if direct else 'through one writer on this node'}"
        ))
        todo = list(enumerate(job.cells))
        todo.reverse()  # pop() takes them in schedule order
        in_flight: dict[Any, _InFlight] = {}
        interrupted = False
        stop_deadline: float | None = None

        def startable(cell: CellTask) -> bool:
            """A cooldown branch waits in this queue, not on a CPU, for its branch point."""
            if cell.after is None:
                return True
            trunk = cell.after[0]
            if not any(trunk in task_keys(c) for _, c in todo) and not any(
                trunk in task_keys(item.cell) for item in in_flight.values()
            ):
                return True  # the trunk will not move in this call: the trainer says why
            recs = ray.get(hub.call.remote("latest_checkpoints", (trunk,), {}))
            return any(rec.step == cell.after[1] for rec in recs)

        def submit() -> None:
            while todo and len(in_flight) < cap and not interrupted:
                pick = next((k for k in range(len(todo) - 1, -1, -1) if startable(todo[k][1])),
                            None)
                if pick is None:
                    return
                index, cell = todo.pop(pick)
                # one name per cell and sweep run: a retry on another node reclaims it at once
                worker = f"ray:{host}:{os.getpid()}:{index}"
                self.submitted[cell.run_key] = time.time()
                ref = _remote_cell_task.options(**self._options(cell)).remote(
                    job, cell, worker, hub, direct, threads
                )
                in_flight[ref] = _InFlight(cell, worker, ref)

        def relay() -> None:
            for event in ray.get(hub.drain.remote()):
                if isinstance(event, _Placement):
                    self.placements.setdefault(event.run_key, []).append(event.node_id)
                    if event.attempt > 1:
                        on_event(ExecutorNote(
                            f"cell {event.run_key} restarted on node {event.node_id[:8]} "
                            f"(attempt {event.attempt}); it resumes from its last checkpoint"
                        ))
                else:
                    on_event(event)

        def collect(ref: Any) -> None:
            item = in_flight.pop(ref)
            try:
                done = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # an error raised by the cell itself
                done = self._failed(hub, item, exc.cause if exc.cause is not None else exc)
            except ray.exceptions.RayError as exc:  # its node or worker died, retries spent
                on_event(WorkerLost(item.worker, None, item.cell.run_key))
                done = self._lost(hub, item, exc)
            on_event(done)

        submit()
        while in_flight:
            try:
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                relay()
                for ref in ready:
                    collect(ref)
                if ready:  # collect everything else that is done, then refill
                    more, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
                    for ref in more:
                        collect(ref)
                submit()
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    on_event(ExecutorNote("cells did not stop in time; cancelling them"))
                    self._cancel(in_flight.values(), hub, on_event)
                    break
            except KeyboardInterrupt:
                if interrupted:  # second Ctrl-C: stop waiting
                    on_event(ExecutorNote("second interrupt: cancelling running cells"))
                    self._cancel(in_flight.values(), hub, on_event)
                    break
                interrupted = True
                todo.clear()
                ray.get(hub.request_stop.remote())
                stop_deadline = time.monotonic() + STOP_GRACE_S
                on_event(ExecutorNote("stopping: running cells checkpoint and release their claim"))
        with contextlib.suppress(Exception):
            relay()
        return ExecutorOutcome(interrupted=interrupted)

    # ------------------------------------------------------------------ failures
    @staticmethod
    def _release(hub: Any, item: _InFlight, error: str) -> None:
        """Mark the cell failed (resumable) if this sweep run still holds it."""
        with contextlib.suppress(Exception):
            run = ray.get(hub.call.remote("get_run", (item.cell.run_key,), {}))
            if run is not None and run.status == "running" and run.worker == item.worker:
                ray.get(hub.call.remote("finish_run", (item.cell.run_key, "failed"),
                                        {"error": error}))

    def _failed(self, hub: Any, item: _InFlight, exc: BaseException) -> CellDone:
        message = one_line(exc)
        self._release(hub, item, message)
        return CellDone(item.cell.run_key, item.worker, "failed", message=message)

    def _lost(self, hub: Any, item: _InFlight, exc: BaseException) -> CellDone:
        attempts = len(self.placements.get(item.cell.run_key, []))
        message = (f"ray task lost after {attempts} attempt(s) ({type(exc).__name__}); "
                   "resumes on next run")
        self._release(hub, item, message)
        return CellDone(item.cell.run_key, item.worker, "crashed", message=message)

    def _cancel(self, items: Iterable[_InFlight], hub: Any, on_event: EventSink) -> None:
        for item in list(items):
            with contextlib.suppress(Exception):
                ray.cancel(item.ref, force=True, recursive=True)
            self._release(hub, item, "interrupted")
            on_event(CellDone(item.cell.run_key, item.worker, "interrupted",
                              message="cancelled after Ctrl-C; resumes on next run"))

