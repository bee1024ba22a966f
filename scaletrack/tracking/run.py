"""One tracked run: logging, checkpoints, evals and how it ends (see `scaletrack.tracking`)."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from scaletrack.counts import whole_count
from scaletrack.errors import ConfigError, ScaletrackError
from scaletrack.evals.ideas import refresh_idea_statuses
from scaletrack.store import CheckpointRecord, ClaimLost
from scaletrack.store.metric_values import (
    check_metric_name,
    coerce_metric_values,
    scalar_value,
    to_float,
)
from scaletrack.store.protocol import StoreLike

if TYPE_CHECKING:
    from scaletrack.store.protocol import MetricLogger, WorkerStore
    from scaletrack.store.records import RunRecord

ENV_RUN = "SCALETRACK_RUN"
ENV_STORE = "SCALETRACK_STORE"
ENV_WORKER = "SCALETRACK_WORKER"
ENV_CLAIM = "SCALETRACK_CLAIM"
ENV_CHECKPOINT_DIR = "SCALETRACK_CHECKPOINT_DIR"
ENV_RESUME_FROM = "SCALETRACK_RESUME_FROM"
RESUME_MODES = ("allow", "never", "must", "new")
HEARTBEAT_INTERVAL_S = 10.0
FINAL_LOSS_METRICS = ("val/loss", "eval/loss", "loss", "train/loss")



def _count(value: Any, what: str) -> int:
    """A step or token count: a whole number from 0 to 2**63 - 1 (`scaletrack.counts`)."""
    return whole_count(value, what)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Run:
    """One tracked run; use as a context manager (or call `finish`). Made by `init`.

    `active` is False on a rank that does not log (see the module docstring): every call
    then does nothing.
    """

    def __init__(self, store: WorkerStore | None, record: RunRecord | None, worker: str, *,
                 run_key: str, fpt: float | None, heartbeat_s: float, owns_store: bool,
                 resume_from: str | None, resume_step: int | None,
                 checkpoint_dir: Path | None, rank: int = 0) -> None:
        self.active = store is not None and record is not None
        self._store = store
        self._owns_store = owns_store
        self.run_key: str = run_key
        self.sweep: str | None = record.sweep if record is not None else None
        self.name: str | None = record.name if record is not None else None
        self.worker = worker
        self.rank = rank
        self.N: int | None = record.N if record is not None else None
        self.D: int | None = record.D if record is not None else None
        self.flops_per_token = fpt
        self.resume_from = resume_from  # newest registered checkpoint path (str), or None
        self.resume_step = resume_step  # its step, or None
        self.checkpoint_dir = checkpoint_dir
        self.refused: dict[str, int] = {}  # metric name -> values refused by `log`
        self.ignored: dict[str, int] = {}  # "step" / "tokens" -> bad ones `log` ignored
        self._pid = os.getpid()  # a forked child is not the owner
        self._t0 = time.perf_counter()
        self._step = -1 if resume_step is None else int(resume_step)
        self._last: dict[str, Any] = {}
        self._tokens: int | None = None  # tokens seen, as last logged
        self._closed = not self.active
        self._stop_heartbeat = threading.Event()
        if store is None:
            return
        self._writer: MetricLogger = store.metric_writer(run_key)
        self._heartbeat = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True,
                                           name=f"scaletrack-heartbeat-{run_key}")
        self._heartbeat.start()
        self._restore_signal = _install_handlers()
        atexit.register(self._at_exit)
        OPEN_RUNS[run_key] = self

    @property
    def closed(self) -> bool:
        """True once the run is finished (or failed) here, and on a rank that does not log."""
        return self._closed

    # ------------------------------------------------------------------ logging
    def log(self, values: Mapping[str, Any], step: int | None = None,
            tokens: int | None = None) -> None:
        """Log metric values at `step` (default: the previous step + 1), tokens seen so far.

        Never waits for the database and never loses a good value to a bad one:

        - a value that is not a number is refused alone, with one warning per metric name
          (see the module docstring);
        - a `step` that is not a whole number from 0 to 2**63 - 1 (-1, NaN, "7", 2.5) is
          ignored: the values are logged at the step an omitted `step` would get, the
          previous step + 1;
        - `tokens` that are not such a number are ignored: the values are logged without
          tokens for this step.

        A bad `step` or `tokens` warns once (`MetricValueWarning`, naming the value and the
        step used); later ones are counted in `run.ignored["step"]` / `["tokens"]`.
        """
        if self._closed or os.getpid() != self._pid:
            if not self._closed:
                self._owner("log")  # a forked child: warn once, log nothing
            elif self.active and os.getpid() == self._pid:
                from scaletrack.store import StoreError

                raise StoreError(f"run {self.run_key} is finished; it logs nothing more")
            return
        auto = self._step + 1
        if step is None:
            step = auto
        else:
            try:
                step = _count(step, "step")
            except ConfigError as exc:
                self._ignore("step", str(exc), f"the values were logged at step {auto} (the "
                                                "previous step + 1, as when step is omitted)")
                step = auto
        seen: int | None = None
        if tokens is not None:
            try:
                seen = _count(tokens, "tokens")
            except ConfigError as exc:
                self._ignore("tokens", str(exc), f"the values at step {step} were logged "
                                                  "without tokens")
        coerced = coerce_metric_values(values)
        for refused in coerced.refused:
            self._refuse(refused.name, refused.reason, step)
        self._step = step
        if seen is not None:
            self._tokens = seen
        if coerced.values:
            kept = coerced.values
            self._last.update(kept)
            self._writer.log_many(step, kept, tokens=seen,
                                  wall_time=time.perf_counter() - self._t0)

    def _ignore(self, what: str, problem: str, kept: str) -> None:
        """One warning for the first bad `step` (or `tokens`) given to `log`; later ones are
        counted in `ignored`."""
        first = what not in self.ignored
        self.ignored[what] = self.ignored.get(what, 0) + 1
        if first:
            from scaletrack.store.writer import MetricValueWarning

            warnings.warn(f"scaletrack: run {self.run_key}: {problem}; {kept} (later bad "
                          f"{what} values are counted in run.ignored[{what!r}], not repeated)",
                          MetricValueWarning, stacklevel=3)

    def _refuse(self, name: str, reason: str, step: int) -> None:
        first = name not in self.refused
        self.refused[name] = self.refused.get(name, 0) + 1
        if first:
            from scaletrack.store.writer import MetricValueWarning

            warnings.warn(f"scaletrack: run {self.run_key}: {name!r} at step {step} not "
                          f"logged: {reason}; the other values were kept (later refusals of "
                          f"{name!r} are counted in run.refused, not repeated)",
                          MetricValueWarning, stacklevel=3)

    def _owner(self, what: str) -> bool:
        """False (with one warning) in a process forked from the run's owner."""
        if os.getpid() == self._pid:
            return self.active
        if not getattr(self, "_warned_fork", False):
            self._warned_fork = True
            warnings.warn(f"scaletrack: run {self.run_key} belongs to process {self._pid}; "
                          f"{what} from forked process {os.getpid()} is not recorded",
                          RuntimeWarning, stacklevel=3)
        return False

    def log_eval(self, task: str, metric: str, value: float, *, step: int | None = None,
                 tokens: int | None = None, stderr: float | None = None,
                 n_shot: int | None = None) -> int | None:
        """Record a task metric at this point of training; returns the checkpoint id it is
        filed under (the run's checkpoint at `step`, or a file-less one made for it); None on
        a rank or process that does not log."""
        if not self._owner("log_eval") or self._store is None:
            return None
        why = check_metric_name(task) or check_metric_name(metric)
        if why is None:
            kept, why = scalar_value(value)
            value = to_float(kept) if why is None else value
        if why is None and stderr is not None:
            kept, why = scalar_value(stderr)
            stderr = to_float(kept) if why is None else stderr
        if why is not None:  # a bad eval costs only itself, like a bad logged value
            self._refuse(f"eval {str(task)[:80]}/{str(metric)[:80]}", why,
                         self._step if step is None else _count(step, "step"))
            return None
        step = self._step if step is None else _count(step, "step")
        step = max(step, 0)
        found = [c for c in self._store.latest_checkpoints(self.run_key) if c.step == step]
        ckpt_id = found[0].id if found and found[0].id is not None else self._register(
            f"scaletrack-run:{self.run_key}/step_{step}", step, tokens, sha256=None,
            meta={"fileless": True})
        self._store.add_eval(int(ckpt_id), str(task), str(metric), value,
                             stderr=stderr, n_shot=n_shot)
        return int(ckpt_id)

    def checkpoint(self, path: str | os.PathLike[str], *, step: int | None = None,
                   tokens: int | None = None, meta: Mapping[str, Any] | None = None
                   ) -> int | None:
        """Register a saved checkpoint file (with its sha256); metrics logged so far are
        committed first. Open "not yet" ideas that it makes due are marked due. Returns its id
        (None on a rank or process that does not log)."""
        if not self._owner("checkpoint") or self._store is None:
            return None
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise ConfigError(f"checkpoint file {str(file)!r} does not exist")
        step = self._step if step is None else _count(step, "step")
        self._writer.flush()
        ckpt_id = self._register(str(file), step, tokens, sha256=_file_sha256(file),
                                 meta=dict(meta or {}))

        if isinstance(self._store, StoreLike):  # the registry lives in the full store
            refresh_idea_statuses(self._store)
        return ckpt_id

    def _register(self, path: str, step: int, tokens: int | None, *, sha256: str | None,
                  meta: dict[str, Any]) -> int:
        assert self._store is not None
        if self.N is None:
            raise ConfigError(
                f"run {self.run_key} has no parameter count: pass params=N (or model=) to "
                "scaletrack.init before registering checkpoints or evals"
            )
        seen = _count(tokens, "tokens") if tokens is not None else self._tokens
        fpt = self.flops_per_token
        flops = None if seen is None or fpt is None else seen * fpt
        return int(self._store.add_checkpoint(CheckpointRecord(
            id=None, run_key=self.run_key, kind="own", N=int(self.N), tokens=seen or 0,
            flops=flops, step=step, path=path, sha256=sha256, loader=None,
            meta={**meta, "tracked": True},
        )))

    # ------------------------------------------------------------------ ending
    def finish(self, status: str | None = None, *, final_loss: float | None = None,
               error: str | None = None) -> None:
        """Flush metrics, stop the heartbeat and record the final status. Idempotent; does
        nothing in a forked child or on a rank that does not log.

        `status` defaults to finished, or failed when called while an exception propagates
        (`try: ... finally: run.finish()`) or after SIGTERM.

        `final_loss` defaults to the last value logged of val/loss, eval/loss, loss or
        train/loss (nats/token). Raises ClaimLost when the run was taken over meanwhile and
        `status` is finished (nothing is then recorded); a failure is then left to the holder.
        """
        if self._closed or os.getpid() != self._pid or self._store is None:
            return

        if status is None:
            status, error = _status_now(error)

        self._closed = True
        self._stop_heartbeat.set()
        lost: ClaimLost | None = None
        try:
            try:
                self._writer.close()
            except ClaimLost as exc:
                lost = exc
            if lost is None:
                if final_loss is None and status == "finished":
                    final_loss = next((float(self._last[m]) for m in FINAL_LOSS_METRICS
                                       if m in self._last), None)
                try:
                    self._store.finish_run(self.run_key, status, final_loss=final_loss,
                                           error=error)
                except ClaimLost as exc:
                    lost = exc
                else:
                    self._record_tokens_seen(status)
        finally:
            OPEN_RUNS.pop(self.run_key, None)
            self._heartbeat.join(timeout=5)
            atexit.unregister(self._at_exit)
            self._restore_signal()
            if self._owns_store:
                self._store.close()
        if lost is not None and status == "finished":
            raise lost

    def _record_tokens_seen(self, status: str) -> None:
        """A finished run with no planned budget: D is the tokens it saw (and C follows)."""
        if status != "finished" or self.D is not None or not self._tokens or self._store is None:
            return
        fpt = self.flops_per_token
        fields: dict[str, Any] = {"D": int(self._tokens)}
        if fpt is not None:
            fields["C"] = fpt * self._tokens
        self._store.update_run(self.run_key, **fields)
        self.D = int(self._tokens)

    def _beat(self, interval_s: float) -> None:
        while not self._stop_heartbeat.wait(interval_s):
            with contextlib.suppress(Exception):  # a missed beat is not worth a crash
                if self._store is not None and not self._store.heartbeat(self.run_key,
                                                                         self.worker):
                    return  # taken over: the next write says so

    def _at_exit(self) -> None:
        """Interpreter exit without finish(): an uncaught exception, a non-zero sys.exit or
        SIGTERM means failed."""
        if self._closed or os.getpid() != self._pid:
            return
        why = _exit_failure()
        with contextlib.suppress(ScaletrackError):  # at exit there is no one left to tell
            self.finish("failed" if why else "finished", error=why)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            if _TERMINATED.is_set():  # the user's SIGTERM handler let the block end
                self.finish("failed", error="terminated (SIGTERM)")
            else:
                self.finish("finished")
        elif issubclass(exc_type, _Terminated):
            self.finish("failed", error="terminated (SIGTERM)")
        elif issubclass(exc_type, SystemExit):
            code = exc.code if isinstance(exc, SystemExit) else None
            if code is None or code == 0:
                self.finish("finished")
            else:
                self.finish("failed", error=f"exited with status {code!r:.200}")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("failed", error="interrupted")
        else:
            self.finish("failed", error=_describe(exc) if exc is not None
                        else exc_type.__name__)

    def __repr__(self) -> str:
        return f"Run({self.run_key!r}, sweep={self.sweep!r})"


def _status_now(error: str | None) -> tuple[str, str | None]:
    """The status `finish()` records when none is given, with its error text."""
    exc = sys.exc_info()[1]
    if _TERMINATED.is_set() or isinstance(exc, _Terminated):
        return "failed", error or "terminated (SIGTERM)"
    if isinstance(exc, SystemExit):
        if exc.code in (None, 0):
            return "finished", error
        return "failed", error or f"exited with status {exc.code!r:.200}"
    if isinstance(exc, KeyboardInterrupt):
        return "failed", error or "interrupted"
    if exc is not None:
        return "failed", error or _describe(exc)
    return "finished", error


def _describe(exc: BaseException) -> str:
    """'ValueError: its first line' (500 characters at most)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text:.500}" if text else type(exc).__name__


class _Terminated(SystemExit):
    """Raised in the main thread by SIGTERM while a run is open (exit status 143)."""

    def __init__(self) -> None:
        super().__init__(143)


_UNCAUGHT = threading.Event()  # an exception reached the interpreter's top level
_TERMINATED = threading.Event()  # SIGTERM arrived while a run was open
_EXIT_CODES: list[Any] = []  # codes passed to sys.exit while a run was open
_previous_excepthook = sys.excepthook
_real_exit = sys.exit


def _excepthook(*args: Any) -> None:
    _UNCAUGHT.set()
    _previous_excepthook(*args)


def _recording_exit(status: Any = None) -> NoReturn:
    """sys.exit, noting the status: a run left open ends `failed` on a non-zero exit (the
    interpreter tells exit handlers nothing about it)."""
    _EXIT_CODES.append(status)
    _real_exit(status)


def _exit_failure() -> str | None:
    """Why a run still open at interpreter exit failed (None: it finished)."""
    if _TERMINATED.is_set():
        return "terminated (SIGTERM)"
    if getattr(sys, "last_value", None) is not None or _UNCAUGHT.is_set():
        return "uncaught exception"
    if _EXIT_CODES and _EXIT_CODES[-1] not in (None, 0):
        return f"exited with status {_EXIT_CODES[-1]!r:.200}"
    return None


def _install_handlers() -> Callable[[], None]:
    """Make SIGTERM end the run as failed and note sys.exit's status; returns a function that
    restores the previous SIGTERM handler. Only possible in the main thread.

    A SIGTERM handler the user installed before `init` still runs (and decides whether the
    process stops); a process forked from this one (a multiprocessing worker) gets the
    behaviour it had before `init`."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    sys.excepthook = _excepthook
    sys.exit = _recording_exit
    owner = os.getpid()

    def on_term(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked child: as if scaletrack were not there
            _deliver(previous, signum, frame)
            return
        _TERMINATED.set()
        if callable(previous):
            previous(signum, frame)
            return
        if previous == signal.SIG_IGN:
            return
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    _HANDLERS[on_term] = previous

    def restore() -> None:
        with contextlib.suppress(ValueError):
            if signal.getsignal(signal.SIGTERM) is on_term:
                signal.signal(signal.SIGTERM, previous)

    return restore


# Our SIGTERM handlers -> the disposition each replaced. A forked child gets the disposition
# from before `init` at once, in the kernel: SIGTERM is held back across fork(), so one sent to
# a child that is still starting (a pool worker, terminated as soon as it exists) is neither
# lost nor left to a Python handler that cannot run in a process blocked on a lock.
_HANDLERS: dict[Any, Any] = {}
_FORK_MASKED: list[bool] = []


def _before_fork() -> None:
    if _HANDLERS:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        _FORK_MASKED.append(signal.SIGTERM not in held)


def _after_fork_in_parent() -> None:
    if _FORK_MASKED and _FORK_MASKED.pop():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _after_fork_in_child() -> None:
    if not _FORK_MASKED:
        return
    handler = signal.getsignal(signal.SIGTERM)
    while handler in _HANDLERS:
        handler = _HANDLERS[handler]
    with contextlib.suppress(ValueError, TypeError):
        signal.signal(signal.SIGTERM, handler)
    if _FORK_MASKED.pop():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


def _deliver(handler: Any, signum: int, frame: Any) -> None:
    """Act on a signal as `handler` (a previous disposition) would."""
    if callable(handler):
        handler(signum, frame)
    elif handler != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


# Runs open in this process, by key: a second `init` of the same run (a notebook cell run
# again) ends the first, so its buffered rows are written, not silently fenced out.
OPEN_RUNS: dict[str, Run] = {}
