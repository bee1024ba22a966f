"""Command cells: a grid cell that runs the user's own training program.

```toml
[model]
params = [1e6, 3e6, 1e7]            # an N ladder (non-embedding parameters), optional
[axes]
tokens = [1e7, 3e7]
seeds = [0, 1]
dropout = [0.0, 0.1]                # a custom axis: any identifier, a list of scalars
[train]
command = "python train.py --params {params} --tokens {tokens} --seed {seed} --dropout {dropout}"
```

Placeholders are filled per cell (values shell-quoted; booleans as `true`/`false`); the filled
line is part of the cell's run key. A grid with a built-in model (`[model] family = "gpt"` and
`[data]`) offers the shape and training settings as placeholders (`PLACEHOLDERS`); a grid
whose model is the program's own offers only what it gives: `{tokens}`, `{sweep}`, `{seed}` and
`{lr}` when it lists seeds and lrs, `{params}`/`{N}`/`{C}` with a params ladder (or a `params`
key in its `[model] sizes`), every key of its sizes, and its custom axes.

The program runs in the grid file's folder (with this Python's folder first on PATH, so
`python` is the interpreter running scaletrack), with the cell's identity in its environment:

- SCALETRACK_RUN (run key), SCALETRACK_STORE (store URL), SCALETRACK_WORKER (the claim's
  holder), SCALETRACK_CLAIM (the claim's generation: `scaletrack.init()` fences every write of
  the program by it, so a stale program left over from an older claim is refused, never
  mixed in), SCALETRACK_CHECKPOINT_DIR (<checkpoint root>/<sweep>/<run key>), and on resume
  SCALETRACK_RESUME_FROM (the newest registered checkpoint file).

stdout and stderr are appended to `<checkpoint root>/<run key>/logs/command.log` (`scaletrack
logs RUN`). While the program runs the worker keeps the run's heartbeat; a non-zero exit marks
the run failed with the last lines of its stderr (`\\r` progress-bar rewrites collapsed, control
characters dropped, from at most the last 64 KB); a stop request (Ctrl-C on the sweep) sends
SIGTERM, which `scaletrack.init` records as a resumable failure.

On Linux the program runs under a guardian (`cell_guard.py`, standard library only): a
subreaper in a session of its own that kills the program's whole process tree — daemons and
setsid() children included — when the program exits, when the stop grace runs out, or when the
worker dies (parent-death signal), and exits only once none of it is left; so no cell leaves a
process behind and `sweep run` never returns while one lives. Its PID and start time are kept
in the log folder (`guard.json`); a worker that takes a cell over first kills a surviving
guardian tree of that cell (checking the start time, so a reused PID is never killed). Should
the guardian itself be killed, the worker — a child subreaper while the cell runs — receives
the orphaned tree and kills what carries the cell's environment or the guardian's session.
Elsewhere the program runs in a session of its own, as before.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.errors import ConfigError
from scaletrack.safe_text import LINE_BREAKS, is_unsafe

if TYPE_CHECKING:
    from scaletrack.store.protocol import WorkerStore
    from scaletrack.store.records import CheckpointRecord

# placeholders of a grid with a built-in model (gpt or lstm shapes and the built-in settings)
PLACEHOLDERS = (
    "n_layer", "n_head", "d_model", "mlp_ratio", "d_hidden", "params", "tokens", "lr", "seed",
    "batch_size", "context", "sweep", "steps", "N", "C", "weight_decay", "schedule",
    "warmup_frac",
)
SHAPE_PLACEHOLDERS = {"gpt": ("n_layer", "n_head", "d_model", "mlp_ratio"),
                      "lstm": ("n_layer", "d_hidden")}
ENV_CLAIM = "SCALETRACK_CLAIM"  # scaletrack.tracking imports it from here
LOG_DIRNAME = "logs"
LOG_FILENAME = "command.log"
GUARD_FILENAME = "guard.json"
GUARD_SCRIPT = Path(__file__).with_name("cell_guard.py")
HEARTBEAT_INTERVAL_S = 10.0
POLL_S = 0.2
STOP_GRACE_S = 120.0  # after SIGTERM, how long the program gets before SIGKILL
GUARD_BACKSTOP_S = 30.0  # then how long the worker waits for the guardian before forcing it
STDERR_TAIL_LINES = 3
STDERR_KEEP_BYTES = 64 * 1024  # the collapsed stderr tail an error message is made from
MESSAGE_LINE_CHARS = 300  # each stderr line in the stored message is cut to this
CANNOT_START = 125  # cell_guard's exit code when it could not start the program


# --------------------------------------------------------------------------- placeholders


def template_fields(template: str) -> list[str]:
    """The placeholder names of a command line, in order; ValueError (for the grid validator)
    on a malformed line, a format spec or conversion, or a line shlex cannot split."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed command template: {exc}") from None
    names: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name:
            raise ValueError("empty placeholder {} in command (name a value, e.g. {tokens})")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}} in command: format specs and "
                             "conversions are not supported (write {" + name + "})")
        names.append(name)
    try:
        shlex.split(template)
    except ValueError as exc:
        raise ValueError(f"command is not a valid shell-like line: {exc}") from None
    return names


def check_template(template: str) -> None:
    """Raise ValueError on a malformed line (which placeholders a grid offers is checked with
    the whole grid: `check_placeholders`)."""
    template_fields(template)


def check_placeholders(template: str, allowed: Iterable[str], known_empty: Iterable[str] = (),
                       hint: Mapping[str, str] | None = None) -> None:
    """ValueError naming the first placeholder of `template` not in `allowed`: "has no value
    in this grid" for one of `known_empty` (a built-in name this grid gives no value; `hint`
    may say how to give one), else "unknown placeholder"; both list the allowed ones."""
    allowed = list(dict.fromkeys(allowed))
    listed = ", ".join("{" + a + "}" for a in allowed) or "none"
    empty = set(known_empty)
    for name in template_fields(template):
        if name in allowed:
            continue
        if name in empty:
            extra = f" ({hint[name]})" if hint and name in hint else ""
            raise ValueError(f"placeholder {{{name}}} has no value in this grid{extra}; "
                             f"allowed here: {listed}")
        raise ValueError(f"unknown placeholder {{{name}}} in command; allowed here: {listed}")


def render_value(value: Any) -> str:
    """How a value appears in a command line (before quoting): booleans as TOML writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fill(template: str, values: Mapping[str, Any]) -> str:
    """`template` with every placeholder replaced by its shell-quoted value."""
    return template.format(**{k: shlex.quote(render_value(v)) for k, v in values.items()})


def fill_template(template: str, cfg: Any, sweep: str, plan: Any,
                  axes: Mapping[str, Any] | None = None) -> str:
    """A built-in-model cell's program line: placeholders from its TrainConfig `cfg`, RunPlan
    `plan` and custom `axes` values."""
    values: dict[str, Any] = {
        "tokens": cfg.tokens, "lr": cfg.lr, "seed": cfg.seed, "batch_size": cfg.batch_size,
        "context": cfg.context, "sweep": sweep, "steps": plan.steps, "N": plan.N,
        "params": plan.N, "C": plan.C, "weight_decay": cfg.weight_decay,
        "schedule": cfg.schedule, "warmup_frac": cfg.warmup_frac,
    }
    values.update(plan.model_config.to_dict())
    values.update(axes or {})
    missing = [f for _, f, _, _ in string.Formatter().parse(template)
               if f is not None and f not in values]
    if missing:
        raise ConfigError(f"train.command: placeholder {{{missing[0]}}} has no value for a "
                          f"{cfg.family} cell")
    return fill(template, values)


@dataclass(frozen=True)
class CommandConfig:
    """The settings of a command cell whose model is the program's own (no built-in trainer):
    exactly what the grid gives it — its size (`params` and/or the keys of a `[model] sizes`
    entry), `tokens`, `seed` and `lr` when the grid lists them, and its custom axes."""

    values: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"  # where the worker runs it (GPU assignment); not part of the run key

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.values)
        if self.device != "cpu":
            out["device"] = self.device
        return out


# --------------------------------------------------------------------------- stderr


_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def clean_line(text: str) -> str:
    """A line without terminal escape sequences and unsafe characters (`scaletrack.safe_text`:
    controls, invisible formatting; tab kept)."""
    text = _ANSI.sub("", text)
    if text.isprintable():
        return text
    return "".join(c for c in text if c in LINE_BREAKS or not is_unsafe(c))


class StderrTail:
    """The last `keep_bytes` of a program's stderr, collapsed as a terminal shows it: of each
    line only the text after its last carriage return (a progress bar's final state; "\\r\\n"
    is a plain line end), escape sequences and control characters other than tab dropped.
    Fed in chunks of any size; memory stays bounded whatever the program writes."""

    def __init__(self, keep_bytes: int = STDERR_KEEP_BYTES) -> None:
        self.keep_bytes = keep_bytes
        self._lines: collections.deque[str] = collections.deque()
        self._size = 0
        self._current: list[str] = []  # pieces of the line being written
        self._current_len = 0
        self._pending_cr = False  # a \r seen; it rewrites the line if more text follows
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed_bytes(self, data: bytes, final: bool = False) -> str:
        """Feed raw bytes; returns them decoded (for the log file)."""
        text = self._decoder.decode(data, final)
        self.feed(text)
        return text

    def feed(self, text: str) -> None:
        for piece in re.split(r"(\r|\n)", text):
            if piece == "\n":
                self._pending_cr = False
                self._end_line()
            elif piece == "\r":
                self._pending_cr = True
            elif piece:
                if self._pending_cr:
                    self._current, self._current_len = [], 0
                    self._pending_cr = False
                self._current.append(piece)
                self._current_len += len(piece)
                if self._current_len > 2 * self.keep_bytes:  # one endless line: keep its end
                    joined = "".join(self._current)[-self.keep_bytes:]
                    self._current, self._current_len = [joined], len(joined)

    def _end_line(self) -> None:
        line = clean_line("".join(self._current))[-self.keep_bytes:]
        self._current, self._current_len = [], 0
        self._lines.append(line)
        self._size += len(line.encode("utf-8", errors="replace")) + 1
        while self._size > self.keep_bytes and len(self._lines) > 1:
            self._size -= len(self._lines.popleft().encode("utf-8", errors="replace")) + 1

    def lines(self) -> list[str]:
        """The collapsed lines kept (the unfinished last line included)."""
        out = list(self._lines)
        if self._current:
            out.append(clean_line("".join(self._current))[-self.keep_bytes:])
        return out

    def text(self) -> str:
        """The collapsed tail as text, at most `keep_bytes` UTF-8 bytes."""
        data = "\n".join(self.lines()).encode("utf-8", errors="replace")
        return data[-self.keep_bytes:].decode("utf-8", errors="ignore")

    def last(self, n: int = STDERR_TAIL_LINES, width: int = MESSAGE_LINE_CHARS) -> list[str]:
        """The last `n` non-blank lines, each cut to `width` characters."""
        picked = [ln.strip() for ln in self.lines() if ln.strip()][-n:]
        return [ln if len(ln) <= width else ln[:width - 1] + "…" for ln in picked]


# --------------------------------------------------------------------------- the guardian


def log_dir(checkpoint_root: str | Path, run_key: str) -> Path:
    """The per-run log folder: <checkpoint root>/<run key>/logs."""
    return Path(checkpoint_root) / run_key / LOG_DIRNAME


def newest_checkpoint_file(store: WorkerStore, run_key: str) -> CheckpointRecord | None:
    """The newest registered checkpoint of the run whose file exists (records of evaluations
    without a file skipped), or None: where a command cell or a tracked script resumes."""
    for ckpt in store.latest_checkpoints(run_key):
        if not (ckpt.meta or {}).get("fileless") and Path(ckpt.path).is_file():
            return ckpt
    return None


def guarded() -> bool:
    """Whether command cells run under cell_guard here (Linux with /proc)."""
    return sys.platform.startswith("linux") and os.path.isdir("/proc/self")


def _signal_name(code: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(code).name
    return f"signal {code}"


def record_guard(logs: Path, pid: int, run_key: str, worker: str) -> None:
    """Write the guardian's PID and start time to <logs>/guard.json (atomically)."""
    import psutil

    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return  # already gone: nothing to find later
    info = {"pid": pid, "create_time": started, "host": socket.gethostname(),
            "run_key": run_key, "worker": worker}
    tmp = logs / f".{GUARD_FILENAME}.{os.getpid()}"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, logs / GUARD_FILENAME)


def set_child_subreaper(on: bool) -> bool:
    """Make this process a child subreaper (Linux), or stop being one; whether it worked."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1 if on else 0, 0, 0, 0) == 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def kill_cell_orphans(run_key: str, worker: str, guard_pid: int) -> list[int]:
    """Kill and reap what is left of a cell whose guardian is gone: processes that were
    reparented to this worker (a subreaper while the cell runs) and carry the cell's
    environment (SCALETRACK_RUN and SCALETRACK_WORKER) or the guardian's session. Only reached
    when the guardian itself was killed (SIGKILL) before it could clean up; returns the PIDs."""
    import psutil

    killed: list[int] = []
    me = psutil.Process()
    for _ in range(1000):
        found = []
        for child in me.children(recursive=True):
            try:
                env = child.environ()
                ours = (env.get("SCALETRACK_RUN") == run_key
                        and env.get("SCALETRACK_WORKER") == worker)
                if not ours:
                    with contextlib.suppress(OSError):
                        ours = os.getsid(child.pid) == guard_pid
            except psutil.Error:
                continue
            if ours:
                found.append(child)
        if not found:
            break
        for child in found:
            with contextlib.suppress(psutil.Error):
                child.kill()
            killed.append(child.pid)
        psutil.wait_procs(found, timeout=5.0)  # reaps those that are our children now
    return sorted(set(killed))


def kill_stale_guard(logs: Path, wait_s: float = 5.0) -> list[int]:
    """Kill the process tree of a guardian recorded in <logs>/guard.json that still lives on
    this host (an older claim's cell: its worker is gone or lost the claim); returns the PIDs
    killed. The PID counts only with the recorded start time and a cell_guard command line,
    so a reused PID is never touched."""
    import psutil

    try:
        info = json.loads((logs / GUARD_FILENAME).read_text())
        pid, started = int(info["pid"]), float(info["create_time"])
        host = str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if host != socket.gethostname() or pid == os.getpid():
        return []
    try:
        guard = psutil.Process(pid)
        if abs(guard.create_time() - started) > 0.05:
            return []  # the PID was reused
        if not any(GUARD_SCRIPT.name in part for part in guard.cmdline()):
            return []
        tree = guard.children(recursive=True)
    except psutil.Error:
        return []
    killed = [guard.pid, *(p.pid for p in tree)]
    with contextlib.suppress(psutil.Error):
        guard.send_signal(signal.SIGUSR1)  # its "kill everything now"
    _gone, alive = psutil.wait_procs([guard], timeout=wait_s)
    if alive:  # stopped or stuck: do it from here (the tree as seen before, and now)
        with contextlib.suppress(psutil.Error):
            tree = list({p.pid: p for p in [*tree, *guard.children(recursive=True)]}.values())
        for proc in [*tree, guard]:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs([*tree, guard], timeout=wait_s)
    return killed


# --------------------------------------------------------------------------- one cell


def run_command_cell(job: Any, cell: Any, store: WorkerStore, worker: str, *,
                     make_done: Callable[..., Any], stop_event: Any = None) -> Any:
    """Run a claimed command cell to its end; return `make_done(run_key, worker, status, ...)`
    (the executors' CellDone; passed in so this module does not import them back), status
    finished, diverged, failed, interrupted or skipped (the claim was lost meanwhile). Never
    raises for a problem of the program."""
    from scaletrack.store import ClaimLost

    t0 = time.monotonic()
    try:
        return _run(job, cell, store, worker, make_done, stop_event, t0)
    except ClaimLost as exc:  # another worker holds the cell now: write nothing more
        return make_done(cell.run_key, worker, "skipped", wall_s=time.monotonic() - t0,
                         message=str(exc))


def _run(job: Any, cell: Any, store: WorkerStore, worker: str, make_done: Callable[..., Any],
         stop_event: Any, t0: float) -> Any:
    ckpt_dir = Path(job.checkpoint_root) / job.sweep / cell.run_key
    logs = log_dir(job.checkpoint_root, cell.run_key)
    newest = newest_checkpoint_file(store, cell.run_key)
    resume_from = None if newest is None else str(newest.path)
    env = dict(os.environ)
    env.pop("SCALETRACK_RESUME_FROM", None)
    env.pop(ENV_CLAIM, None)
    env.update({
        "SCALETRACK_RUN": cell.run_key, "SCALETRACK_STORE": job.store_url,
        "SCALETRACK_WORKER": worker, "SCALETRACK_CHECKPOINT_DIR": str(ckpt_dir),
        "SCALETRACK_SWEEP": job.sweep, "PYTHONUNBUFFERED": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
    generation = getattr(store, "claim_generation", None)
    claim = generation(cell.run_key) if generation is not None else None
    if claim is not None:
        env[ENV_CLAIM] = str(claim)
    if resume_from is not None:
        env["SCALETRACK_RESUME_FROM"] = resume_from
    try:
        argv = shlex.split(cell.command)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        message = f"cannot start command: {exc}"
        store.finish_run(cell.run_key, "failed", error=message)
        return make_done(cell.run_key, worker, "failed", message=message)

    use_guard = guarded()
    log_path = logs / LOG_FILENAME
    tail = StderrTail()
    with log_path.open("a", encoding="utf-8", errors="replace") as log:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        log.write(f"=== scaletrack {stamp}: run {cell.run_key} by {worker}: {cell.command}"
                  + (f" (resume from {resume_from})" if resume_from else "") + "\n")
        log.flush()
        if use_guard:
            stale = kill_stale_guard(logs)
            if stale:
                log.write(f"=== scaletrack: killed a surviving process tree of this cell from "
                          f"an older claim: {' '.join(map(str, stale))}\n")
                log.flush()
        launch = ([sys.executable, "-I", str(GUARD_SCRIPT), "--parent", str(os.getpid()),
                   "--grace", f"{STOP_GRACE_S:g}", "--", *argv] if use_guard else argv)
        # should the guardian itself be killed, its orphans come to this worker, not to init
        subreaper = use_guard and set_child_subreaper(True)
        try:
            proc = subprocess.Popen(
                launch, cwd=cell.workdir or None, env=env, stdout=log, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as exc:
            if subreaper:
                set_child_subreaper(False)
            message = f"cannot start command {argv[0]!r}: {exc.strerror or exc}"
            log.write(f"=== scaletrack: {message}\n")
            store.finish_run(cell.run_key, "failed", error=message)
            return make_done(cell.run_key, worker, "failed", message=message,
                             wall_s=time.monotonic() - t0)
        if use_guard:
            with contextlib.suppress(OSError):
                record_guard(logs, proc.pid, cell.run_key, worker)

        def copy_stderr() -> None:
            assert proc.stderr is not None
            fd = proc.stderr.fileno()
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                text = tail.feed_bytes(data, final=not data)
                if text:
                    log.write(text)
                    log.flush()
                if not data:
                    break

        reader = threading.Thread(target=copy_stderr, daemon=True)
        reader.start()
        try:
            stopped = _supervise(proc, store, cell.run_key, worker, stop_event, use_guard)
        finally:
            if proc.poll() is None:  # the worker itself failed here: take the cell down
                _force_stop(proc, use_guard)
                proc.wait()
            if use_guard:  # the guardian was killed itself: its orphans came to us
                orphans = kill_cell_orphans(cell.run_key, worker, proc.pid)
                if subreaper:
                    set_child_subreaper(False)
                if orphans:
                    log.write(f"=== scaletrack: the guardian died before its program; killed "
                              f"what was left of the cell: {' '.join(map(str, orphans))}\n")
        reader.join(timeout=10)
        code = proc.returncode
        log.write(f"=== scaletrack: exit code {code}\n")

    run = store.get_run(cell.run_key)
    wall = time.monotonic() - t0
    if stopped:
        store.release_run(cell.run_key, worker)
        return make_done(cell.run_key, worker, "interrupted", wall_s=wall,
                         message="stopped; resumes on next run")
    if code != 0:
        last = tail.last()
        if use_guard and code == CANNOT_START and last and last[-1].startswith("cannot start"):
            message = last[-1]
        else:
            how = (f"killed by {_signal_name(-code)}" if code < 0
                   else f"exited with code {code}")
            message = f"command {how}" + (f": {' | '.join(last)}" if last else "")
        store.finish_run(cell.run_key, "failed", error=message)
        return make_done(cell.run_key, worker, "failed", wall_s=wall, message=message)
    if run is not None and run.status == "running":  # the program did not close its run
        store.finish_run(cell.run_key, "finished")
        run = store.get_run(cell.run_key)
    status = run.status if run is not None else "finished"
    return make_done(cell.run_key, worker, status if status != "pending" else "finished",
                     final_loss=run.final_loss if run is not None else None, wall_s=wall,
                     message=run.error if run is not None and status != "finished" else None)


def _force_stop(proc: subprocess.Popen[bytes], use_guard: bool) -> None:
    """Kill the cell now: the guardian's "kill everything" signal, or SIGKILL to the group."""
    with contextlib.suppress(ProcessLookupError):
        if use_guard:
            os.kill(proc.pid, signal.SIGUSR1)
        else:
            os.killpg(proc.pid, signal.SIGKILL)


def _supervise(proc: subprocess.Popen[bytes], store: WorkerStore, run_key: str, worker: str,
               stop_event: Any, use_guard: bool) -> bool:
    """Wait for the program (or its guardian), beating the run's heartbeat; on a stop request
    send SIGTERM (the guardian forwards it to the whole tree and kills it after the grace;
    unguarded, the worker sends SIGKILL to the group after STOP_GRACE_S). Returns whether it
    was stopped."""
    last_beat = time.monotonic()
    stopped_at: float | None = None
    forced = False
    while proc.poll() is None:
        time.sleep(POLL_S)
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_INTERVAL_S:
            with contextlib.suppress(Exception):
                store.heartbeat(run_key, worker)
            last_beat = now
        if stopped_at is None and stop_event is not None and stop_event.is_set():
            stopped_at = now
            with contextlib.suppress(ProcessLookupError):
                if use_guard:
                    os.kill(proc.pid, signal.SIGTERM)
                else:
                    os.killpg(proc.pid, signal.SIGTERM)
        elif (stopped_at is not None and not forced
              and now - stopped_at > STOP_GRACE_S + (GUARD_BACKSTOP_S if use_guard else 0)):
            forced = True
            _force_stop(proc, use_guard)
    return stopped_at is not None
