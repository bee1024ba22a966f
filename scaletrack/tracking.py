"""The tracking API: log a training script of your own into the store, as short as `wandb.log`.

```python
import scaletrack
with scaletrack.init(sweep="my-ladder", config=cfg, params=N, tokens=D) as run:
    for step in ...:
        run.log({"train/loss": loss, "lr": lr}, step=step, tokens=seen)
    run.log_eval("hellaswag", "acc", 0.41, step=step)
    run.checkpoint("ckpt/step_1000.pt", step=1000, tokens=seen)
```

A run behaves like a sweep cell: its key is `make_run_key({"sweep": sweep, "train": config})`
(the device left out), the same rule as grid cells, so running the same script again resumes
the same run. While it lives it is `running` with a heartbeat every few seconds; an exception,
SIGTERM or Ctrl-C marks it `failed` (resumable), a clean exit `finished`. C = FLOPs per token ×
D, with FLOPs per token = 6N, plus 6·n_layer·context·d_model when the shape is given, or the
user's `flops_per_token`.

Inside a grid's command cell the environment names the run (SCALETRACK_RUN), the store
(SCALETRACK_STORE), the worker holding the claim (SCALETRACK_WORKER), where checkpoints go
(SCALETRACK_CHECKPOINT_DIR) and, on resume, the newest registered checkpoint
(SCALETRACK_RESUME_FROM); `init()` attaches to that run.

Metric rows go to a background writer (`store.MetricWriter`): `log` only appends to a buffer,
so the training step never waits for the database.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.errors import ConfigError, ScaletrackError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

ENV_RUN = "SCALETRACK_RUN"
ENV_STORE = "SCALETRACK_STORE"
ENV_WORKER = "SCALETRACK_WORKER"
ENV_CHECKPOINT_DIR = "SCALETRACK_CHECKPOINT_DIR"
ENV_RESUME_FROM = "SCALETRACK_RESUME_FROM"
RESUME_MODES = ("allow", "never", "must")
HEARTBEAT_INTERVAL_S = 10.0
FINAL_LOSS_METRICS = ("val/loss", "eval/loss", "loss", "train/loss")


class RunBusyError(ScaletrackError):
    """The run is held by another live worker."""


def run_key_for(sweep: str | None, config: Mapping[str, Any]) -> str:
    """The run key of a tracked run: the sweep-cell rule (sweep + config, device left out)."""
    from scaletrack.store import make_run_key

    train = {k: v for k, v in dict(config).items() if k != "device"}
    return make_run_key({"sweep": sweep, "train": train})


def flops_per_token(
    params: int, *, n_layer: int | None = None, d_model: int | None = None,
    context: int | None = None,
) -> float:
    """Training FLOPs per token: 6 N, plus 6·n_layer·context·d_model when all three are given."""
    flops = 6.0 * params
    if n_layer is not None and d_model is not None and context is not None:
        flops += 6.0 * n_layer * context * d_model
    return flops


def _positive_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0 or number != int(number):
        raise ConfigError(f"{what} must be a positive whole number, got {value!r}")
    return int(number)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Run:
    """One tracked run; use as a context manager (or call `finish`). Made by `init`."""

    def __init__(self, store: StoreLike, record: Any, worker: str, *, fpt: float | None,
                 heartbeat_s: float, owns_store: bool, resume_from: str | None,
                 resume_step: int | None, checkpoint_dir: Path | None) -> None:
        self._store = store
        self._owns_store = owns_store
        self.run_key: str = record.run_key
        self.sweep: str | None = record.sweep
        self.worker = worker
        self.N: int | None = record.N
        self.D: int | None = record.D
        self.flops_per_token = fpt
        self.resume_from = resume_from  # newest registered checkpoint path (str), or None
        self.resume_step = resume_step  # its step, or None
        self.checkpoint_dir = checkpoint_dir
        self._writer = store.metric_writer(record.run_key)
        self._t0 = time.perf_counter()
        self._step = -1 if resume_step is None else int(resume_step)
        self._last: dict[str, Any] = {}
        self._tokens: int | None = None  # tokens seen, as last logged
        self._closed = False
        self._failed_by: str | None = None
        self._stop_heartbeat = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True,
                                           name=f"scaletrack-heartbeat-{self.run_key}")
        self._heartbeat.start()
        self._restore_signal = _install_sigterm()
        atexit.register(self._at_exit)

    # ------------------------------------------------------------------ logging
    def log(self, values: Mapping[str, float], step: int | None = None,
            tokens: int | None = None) -> None:
        """Log metric values at `step` (default: the previous step + 1), tokens seen so far.

        Never waits for the database: rows go to a background writer, which also converts the
        values to float (so a 0-d tensor is read off the device there, not in the step).
        """
        if step is None:
            step = self._step + 1
        self._step = step
        if tokens is not None:
            self._tokens = tokens
        self._last.update(values)
        self._writer.log_many(step, values, tokens=tokens,
                              wall_time=time.perf_counter() - self._t0)

    def log_eval(self, task: str, metric: str, value: float, *, step: int | None = None,
                 tokens: int | None = None, stderr: float | None = None,
                 n_shot: int | None = None) -> int:
        """Record a task metric at this point of training; returns the checkpoint id it is
        filed under (the run's checkpoint at `step`, or a file-less one made for it)."""
        step = self._step if step is None else int(step)
        step = max(step, 0)
        found = [c for c in self._store.latest_checkpoints(self.run_key) if c.step == step]
        ckpt_id = found[0].id if found else self._register(
            f"scaletrack-run:{self.run_key}/step_{step}", step, tokens, sha256=None,
            meta={"fileless": True})
        self._store.add_eval(int(ckpt_id), str(task), str(metric), float(value),
                             stderr=stderr, n_shot=n_shot)
        return int(ckpt_id)

    def checkpoint(self, path: str | os.PathLike[str], *, step: int | None = None,
                   tokens: int | None = None, meta: Mapping[str, Any] | None = None) -> int:
        """Register a saved checkpoint file (with its sha256); metrics logged so far are
        committed first. Open "not yet" ideas that it makes due are marked due. Returns its id."""
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise ConfigError(f"checkpoint file {str(file)!r} does not exist")
        step = self._step if step is None else int(step)
        self._writer.flush()
        ckpt_id = self._register(str(file), step, tokens, sha256=_file_sha256(file),
                                 meta=dict(meta or {}))
        from scaletrack.evals.ideas import refresh_idea_statuses

        refresh_idea_statuses(self._store)
        return ckpt_id

    def _register(self, path: str, step: int, tokens: int | None, *, sha256: str | None,
                  meta: dict[str, Any]) -> int:
        from scaletrack.store import CheckpointRecord

        if self.N is None:
            raise ConfigError(
                f"run {self.run_key} has no parameter count: pass params=N to scaletrack.init "
                "before registering checkpoints or evals"
            )
        seen = int(tokens) if tokens is not None else self._tokens
        fpt = self.flops_per_token
        flops = None if seen is None or fpt is None else seen * fpt
        return int(self._store.add_checkpoint(CheckpointRecord(
            id=None, run_key=self.run_key, kind="own", N=int(self.N), tokens=seen or 0,
            flops=flops, step=step, path=path, sha256=sha256, loader=None,
            meta={**meta, "tracked": True},
        )))

    # ------------------------------------------------------------------ ending
    def finish(self, status: str = "finished", *, final_loss: float | None = None,
               error: str | None = None) -> None:
        """Flush metrics, stop the heartbeat and record the final status. Idempotent.

        `final_loss` defaults to the last value logged of val/loss, eval/loss, loss or
        train/loss (nats/token).
        """
        if self._closed:
            return
        self._closed = True
        self._stop_heartbeat.set()
        try:
            self._writer.close()
        finally:
            if final_loss is None and status == "finished":
                final_loss = next((float(self._last[m]) for m in FINAL_LOSS_METRICS
                                   if m in self._last), None)
            self._store.finish_run(self.run_key, status, final_loss=final_loss, error=error)
            self._heartbeat.join(timeout=5)
            atexit.unregister(self._at_exit)
            self._restore_signal()
            if self._owns_store:
                self._store.close()

    def _beat(self, interval_s: float) -> None:
        while not self._stop_heartbeat.wait(interval_s):
            with contextlib.suppress(Exception):  # a missed beat is not worth a crash
                self._store.heartbeat(self.run_key, self.worker)

    def _at_exit(self) -> None:
        """Interpreter exit without finish(): an uncaught exception means failed."""
        if self._closed:
            return
        failed = getattr(sys, "last_value", None) is not None or _UNCAUGHT.is_set()
        self.finish("failed" if failed else "finished",
                    error="uncaught exception" if failed else None)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.finish("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("failed", error="interrupted")
        elif issubclass(exc_type, _Terminated):
            self.finish("failed", error="terminated (SIGTERM)")
        else:
            text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
            self.finish("failed", error=f"{exc_type.__name__}: {text}" if text
                        else exc_type.__name__)

    def __repr__(self) -> str:
        return f"Run({self.run_key!r}, sweep={self.sweep!r})"


class _Terminated(SystemExit):
    """Raised in the main thread by SIGTERM while a run is open (exit status 143)."""

    def __init__(self) -> None:
        super().__init__(143)


_UNCAUGHT = threading.Event()
_previous_excepthook = sys.excepthook


def _excepthook(*args: Any) -> None:
    _UNCAUGHT.set()
    _previous_excepthook(*args)


def _install_sigterm():
    """Turn SIGTERM into an exception so `with init(...)` marks the run failed; returns a
    function that restores the previous handler. Only possible in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    sys.excepthook = _excepthook

    def on_term(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)

    def restore() -> None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)

    return restore


def _newest_file_checkpoint(store: StoreLike, run_key: str) -> tuple[str | None, int | None]:
    for ckpt in store.latest_checkpoints(run_key):
        if not (ckpt.meta or {}).get("fileless") and Path(ckpt.path).is_file():
            return ckpt.path, ckpt.step
    return None, None


def init(
    sweep: str | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    params: int | None = None,
    tokens: int | None = None,
    name: str | None = None,
    n_layer: int | None = None,
    d_model: int | None = None,
    context: int | None = None,
    flops_per_token: float | None = None,
    family: str = "custom",
    store: Any = None,
    resume: str = "allow",
    tags: Sequence[str] = (),
    note: str | None = None,
    heartbeat_s: float = HEARTBEAT_INTERVAL_S,
    stale_after_s: float = 60.0,
) -> Run:
    """Start (or resume) a tracked run; see the module docstring.

    `params` N (non-embedding parameters), `tokens` D (the planned token budget); C is
    computed from them. `store` is a URL or an open Store (default $SCALETRACK_STORE).
    `resume`: "allow" (resume a failed or interrupted run with the same key), "never" (refuse
    an existing run), "must" (refuse a new one). Inside a command cell ($SCALETRACK_RUN) the
    run is the cell's and sweep/config may be left out.
    """
    from scaletrack.store import RunRecord, Store

    if resume not in RESUME_MODES:
        raise ConfigError(f"resume must be one of {', '.join(RESUME_MODES)}, got {resume!r}")
    N = _positive_int(params, "params")
    D = _positive_int(tokens, "tokens")
    cfg = dict(config or {})
    if flops_per_token is not None:
        fpt: float | None = float(flops_per_token)
        if not math.isfinite(fpt) or fpt <= 0:
            raise ConfigError(f"flops_per_token must be positive, got {flops_per_token!r}")
    else:
        fpt = (flops_per_token_of(N, n_layer, d_model, context) if N is not None else None)

    owns = store is None or isinstance(store, (str, os.PathLike))
    st = Store.open(None if store is None else os.fspath(store)) if owns else store
    try:
        cell_key = os.environ.get(ENV_RUN)
        if cell_key:
            record = st.get_run(cell_key)
            if record is None:
                raise ConfigError(f"{ENV_RUN}={cell_key} names no run in {st!r}")
        else:
            if not cfg and N is None:
                raise ConfigError("scaletrack.init needs a config (or at least params=N) to "
                                  "name the run")
            key_cfg = cfg or {"params": N, "tokens": D}
            key = run_key_for(sweep, key_cfg)
            record = st.get_run(key)
            if record is not None and resume == "never":
                raise ConfigError(f"run {key} already exists (status {record.status}) and "
                                  "resume='never'")
            if record is None and resume == "must":
                raise ConfigError(f"run {key} does not exist and resume='must'")
            if record is None:
                if sweep is not None and sweep not in set(st.sweeps()["name"]):
                    st.upsert_sweep(sweep, {"tracked": True})
                C = None if fpt is None or D is None else fpt * D
                record = st.ensure_run(RunRecord(
                    run_key=key, sweep=sweep, family=family, config=cfg, N=N, N_total=N, D=D,
                    C=C, seed=_maybe_int(cfg.get("seed")), lr=_maybe_float(cfg.get("lr")),
                    name=name, note=note,
                ))
        if record.status in ("finished", "diverged"):
            raise ConfigError(f"run {record.run_key} is already {record.status}; change the "
                              "config or the sweep to start a new run")
        # fill what the caller knows and the stored row lacks (a command cell's row has N, D, C)
        fill: dict[str, Any] = {}
        if record.N is None and N is not None:
            fill.update(N=N, N_total=N)
        if record.D is None and D is not None:
            fill["D"] = D
        n_now, d_now = record.N or N, record.D or D
        if record.C is None and fpt is not None and d_now is not None:
            fill["C"] = fpt * d_now
        if name is not None and record.name != name:
            fill["name"] = name
        if fill:
            st.update_run(record.run_key, **fill)
            record = st.get_run(record.run_key)
        if fpt is None and n_now is not None:
            fpt = (record.C / record.D) if record.C and record.D else 6.0 * n_now
        worker = os.environ.get(ENV_WORKER) or (
            f"{socket.gethostname()}:{os.getpid()}:track")
        if not (record.status == "running" and record.worker == worker) and not st.claim_run(
            record.run_key, worker, stale_after_s=stale_after_s
        ):
            raise RunBusyError(f"run {record.run_key} is held by live worker {record.worker!r}")
        if tags or note is not None:
            st.tag(run_key=record.run_key, add=list(tags), note=note)
        resume_from = os.environ.get(ENV_RESUME_FROM) or None
        resume_step: int | None = None
        newest, newest_step = _newest_file_checkpoint(st, record.run_key)
        if resume_from is None:
            resume_from, resume_step = newest, newest_step
        elif newest is not None and Path(newest) == Path(resume_from):
            resume_step = newest_step
        if resume_step is not None:
            # rows after the checkpoint are re-logged by the resumed script
            st.delete_metrics_after(record.run_key, int(resume_step))
        ckpt_env = os.environ.get(ENV_CHECKPOINT_DIR)
        return Run(st, record, worker, fpt=fpt, heartbeat_s=heartbeat_s, owns_store=owns,
                   resume_from=resume_from, resume_step=resume_step,
                   checkpoint_dir=Path(ckpt_env) if ckpt_env else None)
    except BaseException:
        if owns:
            st.close()
        raise


def flops_per_token_of(N: int, n_layer: int | None, d_model: int | None,
                       context: int | None) -> float:
    """`flops_per_token` for the keyword arguments of `init` (N params -> FLOPs per token)."""
    return flops_per_token(N, n_layer=n_layer, d_model=d_model, context=context)


def _maybe_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _maybe_float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
