"""The Slurm executor: one job array per sweep launch, one array task per cell, via submitit.

Each task runs `run_cell`, the local executor's worker code, with its own Store opened from
the URL (PostgreSQL for sweeps across nodes; SQLite only with `same_node`, see
`check_store_for_slurm`). A task claims its cell under the name `slurm:<array>_<task>`,
which stays the same when Slurm requeues the task, so a requeued task takes its cell back at
once and resumes from the cell's last checkpoint.

Preemption, requeue and time limits: the task traps SIGTERM (sent by `scontrol requeue`,
preemption and `scancel`) and submitit's SIGUSR2 (sent `signal_delay_s` before the time
limit). Training stops after the current step, saves a checkpoint and releases the claim;
on SIGUSR2 the task requeues itself with `scontrol requeue`. Either way the process then
exits without writing a result, so Slurm's decision stands: a requeued task runs again and
resumes, a cancelled one stays cancelled. A task killed outright (SIGKILL, a node lost) leaves
its cell running in the store: the driver, seeing the task gone without a result, releases
the cell (marked failed, resumable) and resubmits it as a single job, up to `max_retries`
times; if the driver itself is gone, the cell's heartbeat goes stale and the next
`sweep run` takes it over.

The driver follows its tasks with `squeue` (a small cluster often keeps no accounting, so
`sacct` is not relied on) and reads each task's result file. Task rows (job ids, state,
requeues, node, log files) are kept in the store's `slurm_tasks` table for `sweep status`;
`cancel_sweep` (`scaletrack sweep cancel NAME`) flags them and scancels the live ones.
Each task's stdout/stderr (in submitit's folder `<checkpoint root>/.slurm/<sweep>/`) are
linked from the cell's log folder `<checkpoint root>/<sweep>/<run_key>/logs/`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.errors import ConfigError
from scaletrack.store import Store, sqlite_file, with_absolute_sqlite_path
from scaletrack.store.slurm_tasks import SlurmTaskRecord
from scaletrack.sweeps.executors import (
    CellDone,
    CellStarted,
    CellTask,
    EventSink,
    ExecutorNote,
    ExecutorOutcome,
    SweepJob,
    WorkerLost,
    run_cell,
)
from scaletrack.sweeps.executors.slurm_queue import (
    LIVE_STATES,
    TaskState,
    check_slurm_reachable,
    check_slurm_tools,
    scancel,
    squeue_states,
)
from scaletrack.sweeps.spec_sections import control_character

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

POLL_S = 1.0  # how often the driver asks squeue about its tasks
RESULT_GRACE_S = 10.0  # a task gone from squeue gets this long for its result file to appear
DEFAULT_TIME_MIN = 60
DEFAULT_MAX_RETRIES = 2


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SlurmSettings:
    """What each task asks Slurm for (the grid's [executor] table, slurm keys)."""

    partition: str | None = None
    time_min: int = DEFAULT_TIME_MIN  # time limit per task (minutes)
    cpus_per_task: int = 1
    gpus_per_task: int | None = None
    mem: str | None = None  # e.g. "8G"
    array_parallelism: int | None = None
    sbatch: Mapping[str, Any] = field(default_factory=dict)  # extra sbatch flags
    same_node: bool = False
    max_retries: int = DEFAULT_MAX_RETRIES
    signal_delay_s: int = 90  # SIGUSR2 this long before the time limit

    @classmethod
    def from_spec(cls, spec: Any) -> SlurmSettings:
        """From a grid's ExecutorSpec (unset keys keep their defaults)."""
        given = {
            "partition": spec.partition, "time_min": spec.time,
            "cpus_per_task": spec.cpus_per_task, "gpus_per_task": spec.gpus_per_task,
            "mem": spec.mem, "array_parallelism": spec.array_parallelism,
            "sbatch": dict(spec.sbatch) if spec.sbatch else None, "same_node": spec.same_node,
            "max_retries": spec.max_retries,
        }
        return cls(**{k: v for k, v in given.items() if v is not None})


def log_dir(job: SweepJob, run_key: str) -> Path:
    """A cell's log folder: <checkpoint root>/<sweep>/<run_key>/logs/."""
    return job.checkpoint_dir() / run_key / "logs"


def submitit_folder(job: SweepJob) -> Path:
    """Where submitit keeps a sweep's pickles and task logs (must be shared by all nodes)."""
    return Path(job.checkpoint_root) / ".slurm" / job.sweep


def check_store_for_slurm(store_url: str, same_node: bool) -> None:
    """Refuse a SQLite store unless every task runs on this node (one line, ConfigError)."""
    if sqlite_file(store_url) is not None and not same_node:
        raise ConfigError(
            "--executor slurm with a SQLite store: tasks on other nodes would corrupt it; use a "
            "PostgreSQL store URL, or set same_node = true in the grid's [executor] table to run "
            "every task on this node"
        )


def _shown(value: str) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def check_batch_values(values: Iterable[tuple[str, Any]]) -> None:
    """Refuse (one-line ConfigError) a value that would put a control character or a line
    break into the batch script: (name, value) pairs, each value as submitit will write it
    (`str(value)`), named as the grid or the command line names it.

    The grid's validation already refuses these in the [executor] table; this is the second
    guard, for whatever bypassed it (settings built in Python, a sweep name or checkpoint
    folder from elsewhere).
    """
    for name, value in values:
        text = str(value)
        reason = control_character(text)
        if reason:
            raise ConfigError(f"slurm batch script: {name}: {reason} (got {_shown(text)})")


def check_batch_script(text: str) -> None:
    """The rendered script itself: no control character but the line ends, and every line of
    its parameter block an `#SBATCH --option` line (so no value started a line of its own)."""
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        reason = control_character(line)
        if reason:
            raise ConfigError(f"slurm batch script, line {number}: {reason} (got {_shown(line)})")
    start = lines.index("# Parameters") + 1 if "# Parameters" in lines else len(lines)
    for line in lines[start:]:
        if not line:
            break
        if not line.startswith("#SBATCH --"):
            raise ConfigError(f"slurm batch script: a parameter line is not an #SBATCH option "
                              f"(got {_shown(line)})")


def batch_script(executor: Any, tasks: int = 1) -> str:
    """The batch file submitit writes for `tasks` cells (a job array when more than one),
    rendered by submitit's own code from the executor's parameters: what `sbatch` reads.
    Checked by `check_batch_values` and `check_batch_script` before it is returned."""
    from submitit.slurm.slurm import _make_sbatch_string

    params = dict(executor.parameters)
    if tasks > 1:
        params["map_count"] = tasks
    extra = params.get("additional_parameters") or {}
    check_batch_values([
        ("checkpoint folder", executor.folder), ("python interpreter", executor.python),
        *((f"slurm parameter {k}", v) for k, v in params.items()
          if k != "additional_parameters"),
        *(("sbatch options", k) for k in extra),
        *((f"sbatch option --{k}", v) for k, v in extra.items()),
    ])
    text = _make_sbatch_string(command=executor._submitit_command_str, folder=executor.folder,
                               **params)
    check_batch_script(text)
    return text




# ----------------------------------------------------------------------------- the task


class _SignalStop:
    """`is_set()` once SIGTERM or the preemption signal arrived; remembers which one."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"scaletrack: caught {signal.Signals(signum).name}; checkpointing",
                  file=sys.stderr, flush=True)

    def is_set(self) -> bool:
        return self.signum is not None


@dataclass(frozen=True)
class SlurmCellTask:
    """The function submitit runs in each task: train one cell (picklable)."""

    job: SweepJob
    threads: int = 1

    def __call__(self, cell: CellTask) -> CellDone:
        import submitit
        import torch

        env = submitit.JobEnvironment()
        worker = f"slurm:{env.job_id}"  # "<array>_<task>": the same after a requeue
        stop = _SignalStop()
        preempt_signal = env._usr_sig()
        for sig in (signal.SIGTERM, preempt_signal):  # replace submitit's handlers
            signal.signal(sig, stop)
        torch.set_num_threads(max(1, self.threads))
        root = Path(self.job.checkpoint_root)
        store = Store.open(self.job.store_url)
        try:
            if not root.is_dir():
                message = (f"checkpoint folder {root} does not exist on node "
                           f"{socket.gethostname()}: it must be on a filesystem all nodes share")
                store.finish_run(cell.run_key, "failed", error=message)
                return CellDone(cell.run_key, worker, "failed", message=message)
            done = run_cell(self.job, cell, store, worker, lambda event: None, stop_event=stop)
        finally:
            store.close()
        if stop.is_set() and done.status == "interrupted":
            if stop.signum == preempt_signal:  # time limit near or preempted: come back later
                # by "<array>_<task>": the raw id of one task can be the array's own id, which
                # scontrol would take for every task of the array
                subprocess.run(["scontrol", "requeue", env.job_id], check=False, timeout=60)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # no result file: Slurm requeues (or has cancelled) this task
        return done


# ----------------------------------------------------------------------------- the driver


@dataclass
class _Tracked:
    """The driver's view of one submitted task."""

    cell: CellTask
    job: Any  # a submitit Job
    attempt: int = 1
    state: str = "PENDING"
    restarts: int = 0
    node: str | None = None
    started: bool = False
    gone_since: float | None = None

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    @property
    def worker(self) -> str:
        return f"slurm:{self.job_id}"


class SlurmExecutor:
    """Runs cells as Slurm array tasks through submitit (see the module docstring)."""

    name = "slurm"

    def __init__(self, workers: int = 1, settings: SlurmSettings | None = None) -> None:
        self.workers = max(1, int(workers))
        self.settings = settings or SlurmSettings()
        self.job_ids: dict[str, list[str]] = {}  # run_key -> job ids, one per submission

    def preflight(self, store_url: str) -> None:
        """Checks made before the store is opened: the store kind and the Slurm commands."""
        check_store_for_slurm(store_url, self.settings.same_node)
        check_slurm_tools()
        check_slurm_reachable()

    # ------------------------------------------------------------------ submission
    def submitit_parameters(self, job: SweepJob) -> dict[str, Any]:
        """The parameters of submitit's SlurmExecutor for `job`; every string among them is
        checked by `check_batch_values` (named as the grid names it) before it is returned."""
        s = self.settings
        # requeue: `scontrol requeue` and preemption may put a task back in the queue;
        # open-mode append: a requeued task's log keeps what earlier attempts printed
        extra: dict[str, Any] = {"requeue": True, "open-mode": "append"}
        if s.same_node:
            extra["nodelist"] = socket.gethostname().split(".")[0]
        extra.update(s.sbatch)
        params: dict[str, Any] = {
            "job_name": f"scaletrack-{job.sweep}"[:64],
            "time": s.time_min,
            "cpus_per_task": s.cpus_per_task,
            "signal_delay_s": s.signal_delay_s,
            "additional_parameters": extra,
        }
        if s.partition:
            params["partition"] = s.partition
        if s.gpus_per_task:
            params["gpus_per_task"] = s.gpus_per_task
        if s.mem:
            params["mem"] = s.mem
        if s.gpus_per_task is None and any(
            str(c.config.get("device", "cpu")).startswith("cuda") for c in job.cells
        ):
            params["gpus_per_task"] = 1  # as Ray does: one GPU per CUDA cell unless told
        # array_parallelism: the grid's value, else --workers when > 1, else all at once
        parallel = s.array_parallelism or (self.workers if self.workers > 1 else len(job.cells))
        params["array_parallelism"] = max(1, parallel)
        named = {"job_name": "sweep name (the job name)", "partition": "executor.partition",
                 "mem": "executor.mem"}
        values: list[tuple[str, Any]] = [
            (named.get(k, f"slurm parameter {k}"), v) for k, v in params.items()
            if k != "additional_parameters"
        ]
        values.append(("checkpoint folder", submitit_folder(job)))
        for flag, value in extra.items():
            from_grid = flag in s.sbatch
            values += [("executor.sbatch" if from_grid else "sbatch options", flag),
                       (f"executor.sbatch.{flag}" if from_grid else f"sbatch option --{flag}",
                        value)]
        check_batch_values(values)
        return params

    def _executor(self, job: SweepJob) -> Any:
        import submitit

        params = self.submitit_parameters(job)
        folder = submitit_folder(job)
        folder.mkdir(parents=True, exist_ok=True)
        executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=1000)
        executor.update_parameters(**params)
        batch_script(executor, len(job.cells))  # the second guard, on what sbatch will read
        return executor

    def _submit(self, executor: Any, job: SweepJob, cells: list[CellTask],
                attempt: int) -> list[_Tracked]:
        fn = SlurmCellTask(job, threads=self.settings.cpus_per_task)
        try:
            if len(cells) == 1:
                jobs = [executor.submit(fn, cells[0])]
            else:
                jobs = executor.map_array(fn, cells)
        except Exception as exc:  # noqa: BLE001 - sbatch refusals become one line
            text = str(exc).strip().splitlines()
            raise ConfigError(f"sbatch refused the sweep's tasks: {text[-1] if text else exc}"
                              ) from None
        tracked = [_Tracked(cell, sj, attempt) for cell, sj in zip(cells, jobs, strict=True)]
        records = []
        for item in tracked:
            self.job_ids.setdefault(item.cell.run_key, []).append(item.job_id)
            out, err = self._link_logs(job, item)
            records.append(SlurmTaskRecord(job.sweep, item.cell.run_key, item.job_id,
                                           stdout=out, stderr=err))
        with Store.open(job.store_url) as store:
            store.add_slurm_tasks(records)
        return tracked

    @staticmethod
    def _link_logs(job: SweepJob, item: _Tracked) -> tuple[str, str]:
        """Link the task's stdout/stderr from the cell's log folder; return their paths."""
        folder = log_dir(job, item.cell.run_key)
        paths = (Path(item.job.paths.stdout), Path(item.job.paths.stderr))
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            for target, suffix in zip(paths, ("out", "err"), strict=True):
                link = folder / f"slurm-{item.job_id}.{suffix}"
                if not link.is_symlink():
                    link.symlink_to(target)
        return str(paths[0]), str(paths[1])

    # ------------------------------------------------------------------ run
    def run(self, job: SweepJob, on_event: EventSink) -> ExecutorOutcome:
        if not job.cells:
            return ExecutorOutcome()
        self.preflight(job.store_url)
        root = Path(job.checkpoint_root).expanduser().resolve()
        reason = control_character(str(root))
        if reason:  # it becomes the #SBATCH --output/--error paths
            raise ConfigError(f"--checkpoint-dir {_shown(str(root))}: {reason}")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--checkpoint-dir {root}: cannot create it ({exc.strerror})"
                              ) from None
        job = replace(job, store_url=with_absolute_sqlite_path(job.store_url),
                      checkpoint_root=str(root))
        executor = self._executor(job)
        tracked = self._submit(executor, job, list(job.cells), attempt=1)
        arrays = sorted({t.job_id.split("_")[0] for t in tracked})
        on_event(ExecutorNote(
            f"slurm: {len(tracked)} cells as job array {', '.join(arrays)}; logs under "
            f"{submitit_folder(job)}"
        ))
        return self._follow(job, executor, tracked, on_event)

    def _follow(self, job: SweepJob, executor: Any, tracked: list[_Tracked],
                on_event: EventSink) -> ExecutorOutcome:
        live = {t.job_id: t for t in tracked}
        interrupted = False
        with Store.open(job.store_url) as store:
            while live:
                try:
                    states = squeue_states({i.split("_")[0] for i in live})
                    cancelled = store.cancelled_job_ids(job.sweep)
                    retry: list[_Tracked] = []
                    for job_id, item in list(live.items()):
                        if states is None:  # squeue did not answer: only results count
                            if not Path(item.job.paths.result_pickle).exists():
                                continue
                            st: TaskState | None = TaskState(job_id, item.state, item.restarts,
                                                             item.node, None)
                        else:
                            st = states.get(job_id)
                        outcome = self._step(store, item, st, on_event,
                                             cancelled=interrupted or job_id in cancelled)
                        if outcome is None:
                            continue
                        del live[job_id]
                        if outcome == "retry":
                            retry.append(item)
                    for item in retry:
                        for new in self._submit(executor, job, [item.cell], item.attempt + 1):
                            live[new.job_id] = new
                            on_event(ExecutorNote(
                                f"cell {item.cell.run_key}: task {item.job_id} ended "
                                f"{item.state} without a result; resubmitted as job "
                                f"{new.job_id} (attempt {new.attempt}); it resumes from its "
                                "last checkpoint"))
                    if live:
                        time.sleep(POLL_S)
                except KeyboardInterrupt:
                    if interrupted:
                        on_event(ExecutorNote("second interrupt: leaving the tasks to Slurm"))
                        break
                    interrupted = True
                    scancel(live)
                    on_event(ExecutorNote("stopping: tasks cancelled; running cells checkpoint "
                                          "and release their claim"))
        return ExecutorOutcome(interrupted=interrupted)

    def _step(self, store: StoreLike, item: _Tracked, st: TaskState | None, on_event: EventSink,
              *, cancelled: bool) -> str | None:
        """Advance one task; None while it lives, else "done" or "retry"."""
        if st is not None and (st.state, st.restarts, st.node) != (item.state, item.restarts,
                                                                   item.node):
            if st.restarts > item.restarts:
                on_event(ExecutorNote(f"cell {item.cell.run_key}: task {item.job_id} requeued "
                                      f"({st.restarts}x); it resumes from its last checkpoint"))
            item.state, item.restarts, item.node = st.state, st.restarts, st.node
            store.update_slurm_task(item.job_id, state=st.state, restarts=st.restarts,
                              node=st.node)
        if st is not None and st.state == "RUNNING" and not item.started:
            item.started = True
            on_event(CellStarted(item.cell.run_key, item.worker))
        if Path(item.job.paths.result_pickle).exists():
            done = self._result(store, item)
            # the task has returned; its job ends a moment later in this state
            final = "FAILED" if done.status == "failed" and done.message and \
                "raised" in done.message else "COMPLETED"
            store.update_slurm_task(item.job_id, state=final, restarts=item.restarts,
                              node=item.node)
            on_event(done)
            return "done"
        if st is not None and st.state in LIVE_STATES:
            item.gone_since = None
            return None
        # gone from squeue, or ended without a result: give the result file a moment to appear
        now = time.monotonic()
        if item.gone_since is None:
            item.gone_since = now
            return None
        if now - item.gone_since < RESULT_GRACE_S:
            return None
        state = st.state if st is not None else "GONE"
        if item.state != state:
            item.state = state
            store.update_slurm_task(item.job_id, state=state, restarts=item.restarts,
                              node=item.node)
        if cancelled:
            self._release(store, item, "interrupted")
            on_event(CellDone(item.cell.run_key, item.worker, "interrupted",
                              message=f"task {item.job_id} cancelled; resumes on next run"))
            return "done"
        run = store.get_run(item.cell.run_key)
        if run is not None and run.status in ("finished", "diverged"):
            on_event(CellDone(item.cell.run_key, item.worker, run.status,
                              final_loss=run.final_loss))
            return "done"
        on_event(WorkerLost(item.worker, None, item.cell.run_key))
        self._release(store, item, f"slurm task {item.job_id} ended {state} without a result")
        if item.attempt <= self.settings.max_retries:
            return "retry"
        on_event(CellDone(item.cell.run_key, item.worker, "crashed",
                          message=f"slurm task {item.job_id} ended {state} after "
                                  f"{item.attempt} attempt(s); resumes on next run"))
        return "done"

    @staticmethod
    def _release(store: StoreLike, item: _Tracked, error: str) -> None:
        """Mark the cell failed (resumable) if this task still holds it."""
        run = store.get_run(item.cell.run_key)
        if run is not None and run.status == "running" and run.worker == item.worker:
            store.finish_run(item.cell.run_key, "failed", error=error)

    def _result(self, store: StoreLike, item: _Tracked) -> CellDone:
        """The CellDone a task returned, or a failed one for an error raised in it."""
        try:
            done = item.job.result()
        except Exception as exc:  # noqa: BLE001 - an error raised inside the task
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            message = f"slurm task {item.job_id} raised: {lines[-1] if lines else exc}"
            self._release(store, item, message)
            return CellDone(item.cell.run_key, item.worker, "failed", message=message)
        if not isinstance(done, CellDone):
            return CellDone(item.cell.run_key, item.worker, "failed",
                            message=f"slurm task {item.job_id} returned {type(done).__name__}")
        if done.status == "skipped":  # e.g. a requeued task whose cell had already finished
            run = store.get_run(item.cell.run_key)
            if run is not None and run.status in ("finished", "diverged"):
                return CellDone(item.cell.run_key, item.worker, run.status,
                                final_loss=run.final_loss)
        return done
