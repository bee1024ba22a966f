"""`init`: find, create or resume the run a script logs to, and hold it by a claim."""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.counts import whole_count
from scaletrack.errors import ConfigError, RunBusyError, ScaletrackError
from scaletrack.store import RunRecord, Store, make_run_key
from scaletrack.store.engine import redact_url
from scaletrack.store.metric_values import unsafe_text
from scaletrack.sweeps.command import newest_checkpoint_file
from scaletrack.sweeps.liveness import holder_is_dead
from scaletrack.tracking.run import (
    ENV_CHECKPOINT_DIR,
    ENV_CLAIM,
    ENV_RESUME_FROM,
    ENV_RUN,
    ENV_STORE,
    ENV_WORKER,
    HEARTBEAT_INTERVAL_S,
    OPEN_RUNS,
    RESUME_MODES,
    Run,
)

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike
    from scaletrack.store.records import RunRecord

def run_key_for(sweep: str | None, config: Mapping[str, Any], repeat: int = 0) -> str:
    """The run key of a tracked run: the sweep-cell rule (sweep + config, device left out).
    `repeat` k >= 1 names the k-th fresh run of the same config (`resume="new"`)."""
    train = {k: v for k, v in dict(config).items() if k != "device"}
    identity: dict[str, Any] = {"sweep": sweep, "train": train}
    if repeat:
        identity["repeat"] = int(repeat)
    return make_run_key(identity)


def flops_per_token(
    params: int, *, n_layer: int | None = None, d_model: int | None = None,
    context: int | None = None,
) -> float:
    """Training FLOPs per token: 6 N, plus 6·n_layer·context·d_model when all three are given."""
    flops = 6.0 * params
    if n_layer is not None and d_model is not None and context is not None:
        flops += 6.0 * n_layer * context * d_model
    return flops


def count_params(model: Any) -> Any:
    """Total and non-embedding parameter counts (`ParamCount`) of any `torch.nn.Module` (or a
    built-in family's config); see `models.accounting.count_module_params`."""
    from scaletrack.models.accounting import count_params as count

    return count(model)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun/accelerate's RANK and WORLD_SIZE; (0, 1) outside."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1
    return (rank, world) if world > 1 and 0 <= rank < world else (0, 1)


@dataclass(frozen=True)
class AttachSettings:
    """Everything `init` takes from its environment, read once before the store is opened or
    written: a command cell's run key ($SCALETRACK_RUN) and claim generation
    ($SCALETRACK_CLAIM), the worker name ($SCALETRACK_WORKER, else host:pid:track), the
    checkpoint to resume from ($SCALETRACK_RESUME_FROM) and the checkpoint folder
    ($SCALETRACK_CHECKPOINT_DIR), the store URL ($SCALETRACK_STORE when none is passed) and
    the torchrun rank and world size."""

    cell_run: str | None
    claim: str | None
    worker: str
    resume_from: str | None
    checkpoint_dir: Path | None
    store_url: str | None
    rank: int
    world: int

    @classmethod
    def from_environment(cls, store: Any = None) -> AttachSettings:
        """The settings of this process now; `store` is init's argument (a URL, a path, an
        open store or None)."""
        env = os.environ
        rank, world = distributed_rank()
        checkpoint_dir = env.get(ENV_CHECKPOINT_DIR)
        store_url: str | None = None  # an open store passed in has its own
        if store is None:
            store_url = env.get(ENV_STORE) or None
        elif isinstance(store, str | os.PathLike):
            store_url = os.fspath(store)
        return cls(
            cell_run=env.get(ENV_RUN) or None, claim=env.get(ENV_CLAIM) or None,
            worker=env.get(ENV_WORKER) or f"{socket.gethostname()}:{os.getpid()}:track",
            resume_from=env.get(ENV_RESUME_FROM) or None,
            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
            store_url=store_url, rank=rank, world=world)


def _positive_int(value: Any, what: str) -> int | None:
    """N or D given to `init`: None, or a whole number from 1 to 2**63 - 1."""
    return None if value is None else whole_count(value, what, minimum=1)


def _newest_repeat(store: StoreLike, sweep: str | None, cfg: Mapping[str, Any]
                   ) -> tuple[int, RunRecord | None]:
    """The newest run of this config (k, record): k = 0 for the first, k for the k-th fresh
    run made with resume="new"; (0, None) when there is none."""
    found: tuple[int, RunRecord | None] = (0, None)
    k = 0
    while (record := store.get_run(run_key_for(sweep, cfg, k))) is not None:
        found = (k, record)
        k += 1
    return found


def init(
    sweep: str | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    params: int | None = None,
    tokens: int | None = None,
    model: Any = None,
    name: str | None = None,
    n_layer: int | None = None,
    d_model: int | None = None,
    context: int | None = None,
    flops_per_token: float | None = None,
    family: str = "custom",
    store: Any = None,
    resume: str = "allow",
    per_rank: bool = False,
    tags: Sequence[str] = (),
    note: str | None = None,
    heartbeat_s: float = HEARTBEAT_INTERVAL_S,
    stale_after_s: float = 60.0,
) -> Run:
    """Start (or resume) a tracked run; see the module docstring.

    `params` N (non-embedding parameters) or `model` (a torch module whose parameters are
    counted: N non-embedding, N_total all; `params` wins when both are given), `tokens` D (the
    planned token budget); C is computed from them. `name` is a human name, shown with the
    run, never part of its key. `store` is a URL or an open Store (default $SCALETRACK_STORE).
    `resume`: "allow" (resume a failed or interrupted run of this config), "never" (refuse an
    existing run), "must" (refuse a new one), "new" (a fresh run even if this config ran
    before). Inside a command cell ($SCALETRACK_RUN) the run is the cell's and sweep/config may
    be left out. `per_rank`: under torchrun, every rank logs a run of its own.
    """
    if resume not in RESUME_MODES:
        raise ConfigError(f"resume must be one of {', '.join(RESUME_MODES)}, got {resume!r}")
    N, N_total, D = _sizes(params, tokens, model)
    name, sweep = _checked_text(name, "name"), _checked_text(sweep, "sweep")
    cfg = _checked_config(config)
    fpt = _checked_fpt(flops_per_token, N, n_layer, d_model, context)
    for value, what, zero_ok in ((heartbeat_s, "heartbeat_s", False),
                                 (stale_after_s, "stale_after_s", True)):
        number_ok = isinstance(value, int | float) and math.isfinite(value)
        if not number_ok or value < 0 or (value == 0 and not zero_ok):
            kind = "non-negative" if zero_ok else "positive"
            raise ConfigError(f"{what} must be a {kind} number of seconds, got {value!r:.40}")
    settings = AttachSettings.from_environment(store)
    rank = settings.rank
    if settings.world > 1 and per_rank:
        cfg["rank"] = rank
        name = f"{name} rank {rank}" if name else None
    elif rank != 0:
        return _follower(sweep, cfg, N, D, store, resume, settings)

    owns = store is None or isinstance(store, (str, os.PathLike))
    st = _open_store(settings.store_url) if owns else store
    try:
        record = _find_or_create(st, sweep, cfg, N=N, N_total=N_total, D=D, fpt=fpt,
                                 family=family, name=name, note=note, resume=resume,
                                 cell_run=settings.cell_run)
        if record.status in ("finished", "diverged"):
            raise ConfigError(f"run {record.run_key} is already {record.status}; pass "
                              "resume='new' to start a fresh run of this config")
        worker = settings.worker
        earlier = OPEN_RUNS.get(record.run_key)
        if earlier is not None and earlier.worker == worker:  # opened here before (a notebook
            # cell run again): end it, so its buffered rows are written, not fenced out
            earlier.finish("failed", error="superseded by a new scaletrack.init in the same "
                                           "process")
            record = st.get_run(record.run_key) or record
        _claim(st, record, settings, stale_after_s)  # first: nothing is written for a busy run
        record, fpt = _fill_from_caller(st, record, N=N, N_total=N_total, D=D, fpt=fpt,
                                        name=name, in_cell=settings.cell_run is not None)
        if tags or note is not None:
            st.tag(run_key=record.run_key, add=list(tags), note=note)
        resume_from, resume_step = _resume_point(st, record.run_key, settings.resume_from)
        if resume_step is not None:
            # rows after the checkpoint are re-logged by the resumed script
            st.delete_metrics_after(record.run_key, int(resume_step))
        return Run(st, record, worker, run_key=record.run_key, fpt=fpt, heartbeat_s=heartbeat_s,
                   owns_store=owns, resume_from=resume_from, resume_step=resume_step,
                   checkpoint_dir=settings.checkpoint_dir, rank=rank)
    except BaseException:
        if owns:
            st.close()
        raise


def _open_store(url: str | None) -> StoreLike:
    return Store.open(url)


def _find_or_create(st: StoreLike, sweep: str | None, cfg: dict[str, Any], *, N: int | None,
                    N_total: int | None, D: int | None, fpt: float | None, family: str,
                    name: str | None, note: str | None, resume: str, cell_run: str | None
                    ) -> RunRecord:
    """The run this call attaches to: the command cell's (`cell_run`), the newest run of this
    config, or a new one (resume="new" after an earlier run makes the next repeat)."""
    if cell_run:
        record = st.get_run(cell_run)
        if record is None:
            raise ConfigError(f"{ENV_RUN}={cell_run!r} names no run in {redact_url(st.url)}")
        return record
    if not cfg and N is None:
        raise ConfigError("scaletrack.init needs a config (or at least params=N or model=) "
                          "to name the run")
    key_cfg = cfg or {"params": N, "tokens": D}
    repeat, record = _newest_repeat(st, sweep, key_cfg)
    if record is not None and resume == "never":
        raise ConfigError(f"run {record.run_key} already exists (status {record.status}) and "
                          "resume='never'")
    if record is None and resume == "must":
        raise ConfigError(f"run {run_key_for(sweep, key_cfg)} does not exist and "
                          "resume='must'")
    if record is not None and resume == "new":
        repeat, record = repeat + 1, None
    if record is not None:
        return record
    if sweep is not None and sweep not in set(st.sweeps()["name"]):
        st.upsert_sweep(sweep, {"tracked": True})
    C = None if fpt is None or D is None else fpt * D
    return st.ensure_run(RunRecord(
        run_key=run_key_for(sweep, key_cfg, repeat), sweep=sweep, family=family, config=cfg,
        N=N, N_total=N_total, D=D, C=C, seed=_maybe_int(cfg.get("seed")),
        lr=_maybe_float(cfg.get("lr")), name=name, note=note,
    ))


def _fill_from_caller(st: StoreLike, record: RunRecord, *, N: int | None, N_total: int | None,
                      D: int | None, fpt: float | None, name: str | None, in_cell: bool
                      ) -> tuple[RunRecord, float | None]:
    """Store what the caller knows and the row lacks; in a command cell the program's own N
    replaces the grid's. Returns the row and FLOPs per token."""
    fill: dict[str, Any] = {}
    if N is not None and (record.N is None or (in_cell and record.N != N)):
        fill.update(N=N, N_total=N_total or N)
    if record.D is None and D is not None:
        fill["D"] = D
    n_now, d_now = fill.get("N", record.N), fill.get("D", record.D)
    if fpt is None and n_now is not None:
        same_n = "N" not in fill and record.C and record.D
        fpt = (record.C / record.D) if same_n and record.C and record.D else 6.0 * n_now
    if fpt is not None and d_now is not None and (record.C is None or "N" in fill):
        fill["C"] = fpt * d_now
    if name is not None and record.name != name:
        fill["name"] = name
    if fill:
        st.update_run(record.run_key, **fill)
        found = st.get_run(record.run_key)
        assert found is not None
        record = found
    return record, fpt


def _claim(st: StoreLike, record: RunRecord, settings: AttachSettings,
           stale_after_s: float) -> None:
    """Hold the run for the settings' worker: adopt a command cell's claim, or claim it
    (taking it over at once from a dead holder on this host). Raises RunBusyError when a live
    worker holds it."""
    worker, claim = settings.worker, settings.claim
    if settings.cell_run and claim:
        if not claim.isdigit() or not st.adopt_claim(record.run_key, worker, int(claim)):
            now = st.get_run(record.run_key)
            holder: str | None = (f"now {now.status}, held by {now.worker!r}"
                                  if now is not None else "gone")
            raise RunBusyError(f"run {record.run_key}: the cell's claim {claim!r} for worker "
                               f"{worker!r} no longer stands ({holder}); this program stops "
                               "without writing")
        return
    if settings.cell_run and record.status == "running" and record.worker == worker:
        return  # a cell started by a worker that hands out no claim generation
    if st.claim_run(record.run_key, worker, stale_after_s=stale_after_s):
        return
    now = st.get_run(record.run_key)
    if (now is not None and now.status == "running"
            and holder_is_dead(now.worker, now.heartbeat_at)
            and st.take_over_run(record.run_key, str(now.worker), worker)):
        return
    holder = now.worker if now is not None else None
    raise RunBusyError(f"run {record.run_key} is held by live worker {holder!r}")


def _resume_point(st: StoreLike, run_key: str, resume_from: str | None
                  ) -> tuple[str | None, int | None]:
    """(checkpoint file to resume from, its step): the cell's `resume_from`
    (SCALETRACK_RESUME_FROM), else the newest registered checkpoint whose file exists."""
    newest = newest_checkpoint_file(st, run_key)
    if newest is None:
        return resume_from, None
    if resume_from is None:
        return newest.path, newest.step
    return resume_from, newest.step if Path(newest.path) == Path(resume_from) else None


def _follower(sweep: str | None, cfg: dict[str, Any], N: int | None, D: int | None,
              store: Any, resume: str, settings: AttachSettings) -> Run:
    """The Run of a rank other than 0: logs nothing, but knows the run's key and where to
    resume from (read from the store when the run exists; nothing is written)."""
    key = settings.cell_run or run_key_for(sweep, cfg or {"params": N, "tokens": D})
    resume_from, resume_step = settings.resume_from, None
    with contextlib.suppress(ScaletrackError):
        owns = store is None or isinstance(store, (str, os.PathLike))
        st = _open_store(settings.store_url) if owns else store
        try:
            if not settings.cell_run:
                repeat, record = _newest_repeat(st, sweep, cfg or {"params": N, "tokens": D})
                key = record.run_key if record is not None and resume != "new" else key
            if st.get_run(key) is not None:
                resume_from, resume_step = _resume_point(st, key, settings.resume_from)
        finally:
            if owns:
                st.close()
    return Run(None, None, worker="", run_key=key, fpt=None, heartbeat_s=0.0, owns_store=False,
               resume_from=resume_from, resume_step=resume_step,
               checkpoint_dir=settings.checkpoint_dir, rank=settings.rank)


def _sizes(params: Any, tokens: Any, model: Any) -> tuple[int | None, int | None, int | None]:
    """(N, N_total, D) from init's `params`, `tokens` and `model`."""
    N = _positive_int(params, "params")
    D = _positive_int(tokens, "tokens")
    N_total = N
    if model is not None:
        try:
            counted = count_params(model)
        except TypeError:
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}"
                              ) from None
        except (ValueError, RuntimeError) as exc:  # a lazy module has no sizes yet
            raise ConfigError(f"cannot count the parameters of {type(model).__name__} "
                              f"({str(exc).splitlines()[0][:120] if str(exc) else exc!r}); "
                              "pass params=N") from None
        N_total = counted.total
        N = counted.non_embedding if N is None else N
    return N, N_total, D


def _checked_text(value: Any, what: str) -> str | None:
    """A run name or sweep name: text of 1-200 characters with nothing a terminal or a
    database would misread (no control or formatting characters)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ConfigError(f"{what} must be non-empty text of at most 200 characters")
    why = unsafe_text(value)
    if why is not None:
        raise ConfigError(f"{what} {why}")
    return value


def _checked_config(config: Any) -> dict[str, Any]:
    """The config as a JSON-able dict (an argparse Namespace is taken as its attributes)."""
    if config is None:
        return {}
    if hasattr(config, "__dict__") and not isinstance(config, Mapping):
        config = vars(config)  # argparse.Namespace, a simple options object
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a dict, got {type(config).__name__}")
    cfg = dict(config)
    bad = next((k for k in cfg if not isinstance(k, str)), None)
    if bad is not None:
        raise ConfigError(f"config keys must be text, got {bad!r:.40}")
    try:
        json.dumps(cfg, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config must be JSON data (numbers, text, lists, dicts): "
                          f"{str(exc)[:160]}") from None
    return cfg


def _checked_fpt(flops_per_token: Any, N: int | None, n_layer: int | None,
                 d_model: int | None, context: int | None) -> float | None:
    """FLOPs per token: the caller's, else 6N (+ attention when the shape is given)."""
    if flops_per_token is None:
        return flops_per_token_of(N, n_layer, d_model, context) if N is not None else None
    if isinstance(flops_per_token, bool) or not isinstance(flops_per_token, int | float):
        raise ConfigError(f"flops_per_token must be a number, got "
                          f"{type(flops_per_token).__name__}")
    fpt = float(flops_per_token)
    if not math.isfinite(fpt) or fpt <= 0:
        raise ConfigError(f"flops_per_token must be positive, got {flops_per_token!r}")
    return fpt


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
