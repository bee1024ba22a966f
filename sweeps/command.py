"""Command cells: a grid cell that runs the user's own training program.

```toml
[train]
command = "python train.py --n_layer {n_layer} --d_model {d_model} --tokens {tokens} --lr {lr}"
```

Placeholders are filled per cell from its configuration (`PLACEHOLDERS`); the filled line is
part of the cell's run key. The program runs in the grid file's folder (with this Python's
folder first on PATH, so `python` is the interpreter running scaletrack), in a session of its
own, with the cell's identity in its environment:

- SCALETRACK_RUN (run key), SCALETRACK_STORE (store URL), SCALETRACK_WORKER (the claim's
  holder), SCALETRACK_CHECKPOINT_DIR (<checkpoint root>/<sweep>/<run key>), and on resume
  SCALETRACK_RESUME_FROM (the newest registered checkpoint file),

so `scaletrack.init()` inside it attaches to the cell. stdout and stderr are appended to
`<checkpoint root>/<run key>/logs/command.log` (`scaletrack logs RUN`). While the program runs
the worker keeps the run's heartbeat; a non-zero exit marks the run failed with the last lines
of stderr; a stop request (Ctrl-C on the sweep) sends SIGTERM, which `scaletrack.init` records
as a resumable failure; if the worker itself dies, the program is killed with it (Linux
parent-death signal) and the executor releases the cell as for any lost worker.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import shlex
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.errors import ConfigError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

PLACEHOLDERS = (
    "n_layer", "n_head", "d_model", "mlp_ratio", "d_hidden", "params", "tokens", "lr", "seed",
    "batch_size", "context", "sweep", "steps", "N", "C", "weight_decay", "schedule",
    "warmup_frac",
)
LOG_DIRNAME = "logs"
LOG_FILENAME = "command.log"
HEARTBEAT_INTERVAL_S = 10.0
POLL_S = 0.2
STOP_GRACE_S = 120.0  # after SIGTERM, how long the program gets before SIGKILL
STDERR_TAIL_LINES = 3


def check_template(template: str) -> None:
    """Raise ValueError (for the grid validator) on a malformed line or unknown placeholder."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"malformed command template: {exc}") from None
    for name in fields:
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{name}}} in command (expected one of "
                f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)})"
            )
    try:
        shlex.split(template)
    except ValueError as exc:
        raise ValueError(f"command is not a valid shell-like line: {exc}") from None


def fill_template(template: str, cfg: Any, sweep: str, plan: Any) -> str:
    """The cell's program line: placeholders from its TrainConfig `cfg` and RunPlan `plan`."""
    values: dict[str, Any] = {
        "tokens": cfg.tokens, "lr": cfg.lr, "seed": cfg.seed, "batch_size": cfg.batch_size,
        "context": cfg.context, "sweep": sweep, "steps": plan.steps, "N": plan.N,
        "params": plan.N, "C": plan.C, "weight_decay": cfg.weight_decay,
        "schedule": cfg.schedule, "warmup_frac": cfg.warmup_frac,
    }
    values.update(plan.model_config.to_dict())
    missing = [f for _, f, _, _ in string.Formatter().parse(template)
               if f is not None and f not in values]
    if missing:
        raise ConfigError(f"train.command: placeholder {{{missing[0]}}} has no value for a "
                          f"{cfg.family} cell")
    return template.format(**{k: shlex.quote(str(v)) for k, v in values.items()})


def log_dir(checkpoint_root: str | Path, run_key: str) -> Path:
    """The per-run log folder: <checkpoint root>/<run key>/logs."""
    return Path(checkpoint_root) / run_key / LOG_DIRNAME


def newest_checkpoint_file(store: StoreLike, run_key: str) -> str | None:
    """The newest registered checkpoint of the run whose file exists, or None."""
    for ckpt in store.latest_checkpoints(run_key):
        if not (ckpt.meta or {}).get("fileless") and Path(ckpt.path).is_file():
            return str(ckpt.path)
    return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _signal_name(code: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(code).name
    return f"signal {code}"


def run_command_cell(job: Any, cell: Any, store: StoreLike, worker: str, *,
                     make_done: Callable[..., Any], stop_event: Any = None) -> Any:
    """Run a claimed command cell to its end; return `make_done(run_key, worker, status, ...)`
    (the executors' CellDone; passed in so this module does not import them back), status
    finished, diverged, failed or interrupted. Never raises for a problem of the program."""
    t0 = time.monotonic()
    ckpt_dir = Path(job.checkpoint_root) / job.sweep / cell.run_key
    logs = log_dir(job.checkpoint_root, cell.run_key)
    resume_from = newest_checkpoint_file(store, cell.run_key)
    env = dict(os.environ)
    env.pop("SCALETRACK_RESUME_FROM", None)
    env.update({
        "SCALETRACK_RUN": cell.run_key, "SCALETRACK_STORE": job.store_url,
        "SCALETRACK_WORKER": worker, "SCALETRACK_CHECKPOINT_DIR": str(ckpt_dir),
        "SCALETRACK_SWEEP": job.sweep, "PYTHONUNBUFFERED": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
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

    log_path = logs / LOG_FILENAME
    tail: collections.deque[str] = collections.deque(maxlen=50)
    with log_path.open("a", encoding="utf-8", errors="replace") as log:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        log.write(f"=== scaletrack {stamp}: run {cell.run_key} by {worker}: {cell.command}"
                  + (f" (resume from {resume_from})" if resume_from else "") + "\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                argv, cwd=cell.workdir or None, env=env, stdout=log, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            message = f"cannot start command {argv[0]!r}: {exc.strerror or exc}"
            log.write(f"=== scaletrack: {message}\n")
            store.finish_run(cell.run_key, "failed", error=message)
            return make_done(cell.run_key, worker, "failed", message=message,
                            wall_s=time.monotonic() - t0)

        def copy_stderr() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.decode("utf-8", errors="replace")
                log.write(line)
                log.flush()
                if line.strip():
                    tail.append(line.rstrip())

        reader = threading.Thread(target=copy_stderr, daemon=True)
        reader.start()
        stopped = _supervise(proc, store, cell.run_key, worker, stop_event)
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
        how = (f"killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}")
        last = " | ".join(list(tail)[-STDERR_TAIL_LINES:])
        message = f"command {how}" + (f": {last}" if last else "")
        store.finish_run(cell.run_key, "failed", error=message)
        return make_done(cell.run_key, worker, "failed", wall_s=wall, message=message)
    if run is not None and run.status == "running":  # the program did not close its run
        store.finish_run(cell.run_key, "finished")
        run = store.get_run(cell.run_key)
    status = run.status if run is not None else "finished"
    return make_done(cell.run_key, worker, status if status != "pending" else "finished",
                    final_loss=run.final_loss if run is not None else None, wall_s=wall,
                    message=run.error if run is not None and status != "finished" else None)


def _supervise(proc: subprocess.Popen, store: StoreLike, run_key: str, worker: str,
               stop_event: Any) -> bool:
    """Wait for the program, beating the run's heartbeat; on a stop request send SIGTERM
    (then SIGKILL after STOP_GRACE_S). Returns whether it was stopped."""
    last_beat = time.monotonic()
    stopped_at: float | None = None
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
                os.killpg(proc.pid, signal.SIGTERM)
        elif stopped_at is not None and now - stopped_at > STOP_GRACE_S:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return stopped_at is not None
