"""The training loop: one run of one model on one data budget, tracked in the store.

``train_run`` trains with AdamW (decay on matrices only), gradient clipping and the run's lr
schedule, logs every step's ``train/loss``, ``lr``, ``grad_norm`` (and ``spike`` where a loss
spike is flagged) and, every ``eval_every`` steps and at the end, ``val/loss``, ``tokens`` and
``flops`` (cumulative) through ``store.metric_writer``. The ``step`` of a metric is the number
of optimizer updates applied to the model that produced it; its ``tokens`` are the tokens
that model has trained on.

Exact resume: a checkpoint holds the model, the AdamW state, the data generator state, the
step and the spike detector's history; every random draw after initialisation comes from the
data generator, so a run resumed from a checkpoint takes the same steps as one never stopped.
Losses are moved to the host once every ``log_every`` steps (one sync), not every step.

Cooldown branches: a run whose config names ``branch_from`` (a trunk's run key) and
``branch_step`` starts, unless it has checkpoints of its own, from the trunk's checkpoint at
that step (weights, AdamW state, data generator, spike history) and trains the remaining steps
of its own schedule; it logs metrics from ``branch_step + 1`` on. A trunk saves a checkpoint
at every step in ``checkpoint_at`` (its branch points). Since the trunk's constant lr equals the
stable phase of every branch's wsd schedule, a branch takes the very steps a from-scratch wsd
run of its budget would take.

Divergence: a training loss that is not finite or exceeds ``DIVERGENCE_FACTOR * ln(vocab)``
(4x the loss of a uniform guess) marks the run ``diverged``; its metrics are kept.
On CUDA the forward runs under bf16 autocast.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from scaletrack.errors import ConfigError, DataError, ScaletrackError
from scaletrack.models.accounting import count_params, flops_per_token
from scaletrack.models.build import build_model
from scaletrack.models.checkpoint import load_checkpoint, save_checkpoint
from scaletrack.models.data import eval_batches, load_tokens, sample_batch
from scaletrack.models.gpt import GPTConfig
from scaletrack.models.ladder import shape_for
from scaletrack.models.lstm import LSTMConfig
from scaletrack.sweeps.schedule import COOLDOWNS, SCHEDULES, lr_at
from scaletrack.sweeps.spikes import SpikeDetector

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

DIVERGENCE_FACTOR = 4.0
HEARTBEAT_INTERVAL_S = 10.0


class RunBusyError(ScaletrackError):
    """The run is held by another live worker."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Token counts are tokens; lr is the peak lr."""

    family: str  # "gpt" | "lstm"
    model: dict  # shape kwargs (n_layer, n_head, d_model | n_layer, d_hidden) or {"params": N}
    data: dict  # {"corpus": "stdlib"} | {"path": ...} | {"tokens": "x.bin"} | {"task": ...}
    context: int = 128
    batch_size: int = 16  # sequences per step
    tokens: int = 1_000_000  # D, the training budget
    lr: float = 1e-3
    seed: int = 0
    schedule: str = "cosine"  # "cosine" | "wsd" | "constant"
    warmup_frac: float = 0.05
    decay_frac: float = 0.2  # wsd cooldown, fraction of steps
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # <= 0 disables clipping (grad_norm is still logged)
    eval_every: int = 50  # steps
    eval_batches: int = 8
    checkpoint_every: int = 200  # steps (and always at the end)
    device: str = "cpu"
    log_every: int = 10  # steps between host syncs of the logged losses
    # Fields below are left out of to_dict() at their defaults, so the run keys and checkpoint
    # checks of configs written before they existed do not change.
    cooldown: str = "linear"  # wsd cooldown shape: "linear" | "1-sqrt"
    warmup_steps: int | None = None  # replaces warmup_frac * steps (shared by a trunk's runs)
    checkpoint_at: tuple[int, ...] = ()  # extra checkpoint steps (a trunk's branch points)
    branch_from: str | None = None  # run key of the trunk this run branches off
    branch_step: int = 0  # the trunk step this run starts from

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint_at", tuple(int(s) for s in self.checkpoint_at))
        if self.cooldown not in COOLDOWNS:
            raise ConfigError(
                f"TrainConfig.cooldown must be one of {COOLDOWNS}, got {self.cooldown!r}"
            )
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.branch_step < 0 or (self.branch_from is None) != (self.branch_step == 0):
            raise ConfigError("TrainConfig.branch_from and a positive branch_step go together")
        if self.family not in ("gpt", "lstm"):
            raise ConfigError(f"TrainConfig.family must be 'gpt' or 'lstm', got {self.family!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"TrainConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            )
        for name in ("context", "batch_size", "tokens", "eval_every", "eval_batches",
                     "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.model, dict) or not isinstance(self.data, dict):
            raise ConfigError("TrainConfig.model and TrainConfig.data must be dicts")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checkpoint_at"] = list(self.checkpoint_at)
        for f in fields(self):
            if f.name in _LATER_FIELDS and getattr(self, f.name) == f.default:
                del d[f.name]
        return d

    def schedule_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of schedule.lr_at for this run."""
        return {"warmup_frac": self.warmup_frac, "decay_frac": self.decay_frac,
                "min_lr_frac": self.min_lr_frac, "cooldown": self.cooldown,
                "warmup_steps": self.warmup_steps}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s) {unknown}")
        return cls(**d)


_LATER_FIELDS = ("cooldown", "warmup_steps", "checkpoint_at", "branch_from", "branch_step")


@dataclass(frozen=True)
class RunPlan:
    """What a run will cost, without training: parameters, FLOPs (training), steps."""

    N: int  # non-embedding parameters
    N_total: int
    flops_per_token: float
    C: float  # flops_per_token * D (planned budget)
    steps: int
    tokens_per_step: int
    model_config: GPTConfig | LSTMConfig


@dataclass(frozen=True)
class TrainResult:
    status: str  # "finished" | "diverged" | "interrupted" | "lost" (packed member, claim taken)
    final_loss: float | None  # final validation loss, nats/token
    steps: int
    tokens: int
    flops: float
    resumed_from_step: int | None


def _vocab_size(data: dict) -> int:
    if "vocab_size" in data:
        return int(data["vocab_size"])
    if "tokens" in data:
        return load_tokens(data).vocab_size
    return 256


def model_config(cfg: TrainConfig) -> GPTConfig | LSTMConfig:
    """The model config of a run: its shape (or ladder target) with the run's context and vocab."""
    model = dict(cfg.model)
    size: int | dict = int(model.pop("params")) if "params" in model else model
    return shape_for(cfg.family, size, context=cfg.context, vocab_size=_vocab_size(cfg.data))


def plan_run(cfg: TrainConfig) -> RunPlan:
    """Parameter counts, FLOPs and steps of a run (steps = ceil(tokens / tokens per step))."""
    mcfg = model_config(cfg)
    counts = count_params(mcfg)
    fpt = flops_per_token(mcfg)
    tps = cfg.batch_size * cfg.context
    return RunPlan(
        N=counts.non_embedding,
        N_total=counts.total,
        flops_per_token=fpt,
        C=fpt * cfg.tokens,
        steps=max(1, math.ceil(cfg.tokens / tps)),
        tokens_per_step=tps,
        model_config=mcfg,
    )


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (dim >= 2) but not on biases and LayerNorm gains."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # lr is set every step from the schedule; 0.0 here so a NaN lr diverges instead of raising
    return torch.optim.AdamW(groups, lr=0.0, betas=(0.9, 0.95), eps=1e-8)


def init_model(cfg: TrainConfig, mcfg: GPTConfig | LSTMConfig) -> nn.Module:
    """The run's initial model, seeded by ``cfg.seed`` without touching the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_model(cfg.family, mcfg.to_dict())


def autocast_for(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> float:
    """Mean cross-entropy over fixed batches, nats/token."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    with autocast_for(device):
        for x, y in batches:
            logits = model(x)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    model.train(was_training)
    return float(total) / len(batches)


def _checkpoint_meta(cfg: TrainConfig, mcfg: GPTConfig | LSTMConfig) -> dict[str, Any]:
    return {"family": cfg.family, "model": mcfg.to_dict(), "train": cfg.to_dict()}


def _same_training(saved: Any, cfg: TrainConfig) -> bool:
    """Whether a checkpoint's saved TrainConfig is this run's (the device may differ)."""
    if not isinstance(saved, dict):
        return False
    ours = {k: v for k, v in cfg.to_dict().items() if k != "device"}
    theirs = {k: v for k, v in saved.items() if k != "device"}
    return json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)


def _ensure_claimed(cfg: TrainConfig, plan: RunPlan, store: StoreLike, run_key: str, worker: str):
    """Create the run row if absent and claim it; return the stored row if already done."""
    from scaletrack.store import RunRecord

    run = store.get_run(run_key)
    if run is None:
        run = store.ensure_run(
            RunRecord(
                run_key=run_key, sweep=None, family=cfg.family, config=cfg.to_dict(),
                N=plan.N, N_total=plan.N_total, D=cfg.tokens, C=plan.C, seed=cfg.seed, lr=cfg.lr,
            )
        )
    if run.status in ("finished", "diverged"):
        return run
    if not (run.status == "running" and run.worker == worker) and not store.claim_run(
        run_key, worker
    ):
        raise RunBusyError(f"run {run_key} is held by live worker {run.worker!r}")
    return None


def branch_point_checkpoint(store: StoreLike, cfg: TrainConfig) -> Any:
    """The trunk's checkpoint record at ``cfg.branch_step``, or None if not saved yet."""
    if cfg.branch_from is None:
        return None
    for rec in store.latest_checkpoints(cfg.branch_from):
        if rec.step == cfg.branch_step:
            return rec
    return None


def load_branch_point(store: StoreLike, cfg: TrainConfig) -> Any:
    """The trunk's state at the branch point (models.checkpoint state); DataError if absent."""
    rec = branch_point_checkpoint(store, cfg)
    if rec is None:
        raise DataError(f"trunk {cfg.branch_from} has no checkpoint at step {cfg.branch_step} "
                        "yet; train the trunk first")
    state = load_checkpoint(rec.path, rec.sha256)
    if int(state.meta.get("step", -1)) != cfg.branch_step or state.optimizer is None:
        raise DataError(f"trunk {cfg.branch_from}: checkpoint {rec.path} is not a resumable "
                        f"state at step {cfg.branch_step}")
    return state


def train_run(
    cfg: TrainConfig,
    store: StoreLike,
    run_key: str,
    checkpoint_dir: Path,
    *,
    worker: str = "local",
    stop_event: threading.Event | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train (or resume, or skip if already done) the run ``run_key``; see the module docstring."""
    plan = plan_run(cfg)
    done_run = _ensure_claimed(cfg, plan, store, run_key, worker)
    if done_run is not None:
        return TrainResult(done_run.status, done_run.final_loss, 0, 0, 0.0, None)
    from scaletrack.store import ClaimLost, StoreError

    try:
        return _train(cfg, plan, store, run_key, Path(checkpoint_dir), worker, stop_event, on_step)
    except (ClaimLost, StoreError):  # taken over, or the store failing: the caller decides
        raise
    except KeyboardInterrupt:
        store.release_run(run_key, worker)
        raise
    except Exception as exc:
        if isinstance(exc.__cause__ or exc.__context__, ClaimLost):
            raise exc.__cause__ or exc.__context__ from None
        store.finish_run(run_key, "failed", error=f"{type(exc).__name__}: {exc}")
        raise


def _train(
    cfg: TrainConfig,
    plan: RunPlan,
    store: StoreLike,
    run_key: str,
    checkpoint_dir: Path,
    worker: str,
    stop_event: threading.Event | None,
    on_step: Callable[[int, int], None] | None,
) -> TrainResult:
    from scaletrack.store import CheckpointRecord

    device = torch.device(cfg.device)
    mcfg = plan.model_config
    data = load_tokens(cfg.data)
    if data.vocab_size > mcfg.vocab_size:
        raise DataError(f"corpus vocab {data.vocab_size} exceeds the model's {mcfg.vocab_size}")
    model = init_model(cfg, mcfg).to(device)
    optimizer = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    spikes = SpikeDetector()
    meta = _checkpoint_meta(cfg, mcfg)
    total, tps, fpt = plan.steps, plan.tokens_per_step, plan.flops_per_token
    diverge_at = DIVERGENCE_FACTOR * math.log(mcfg.vocab_size)

    start, resumed_from = 0, None
    records = store.latest_checkpoints(run_key)
    for rec in records:
        try:
            state = load_checkpoint(rec.path, rec.sha256)
        except DataError as exc:  # corrupt or missing: fall back to an older checkpoint
            log.warning("run %s: skipping checkpoint at step %s: %s", run_key, rec.step, exc)
            continue
        if not _same_training(state.meta.get("train"), cfg) or state.optimizer is None:
            log.warning("run %s: skipping checkpoint at step %s: it was written by another "
                        "training configuration", run_key, rec.step)
            continue
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        gen.set_state(state.rng["data"])
        spikes = SpikeDetector.from_state(state.meta["spikes"])
        start = resumed_from = int(state.meta["step"])
        break
    if records and resumed_from is None:
        log.warning("run %s: none of its %d checkpoints is usable; restarting from step 0",
                    run_key, len(records))
    if resumed_from is not None:
        store.delete_metrics_after(run_key, resumed_from)
    if resumed_from is None and cfg.branch_from is not None:
        trunk = store.get_run(cfg.branch_from)
        if trunk is not None and trunk.status == "diverged" and (
            branch_point_checkpoint(store, cfg) is None
        ):
            msg = f"its trunk {cfg.branch_from} diverged before step {cfg.branch_step}"
            store.finish_run(run_key, "diverged", error=msg)
            return TrainResult("diverged", None, 0, 0, 0.0, None)
        state = load_branch_point(store, cfg)
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        gen.set_state(state.rng["data"])
        spikes = SpikeDetector.from_state(state.meta["spikes"])
        start = cfg.branch_step
        if hasattr(store, "delete_metrics_after"):
            store.delete_metrics_after(run_key, start)

    val_sets = [
        (x.to(device), y.to(device))
        for x, y in eval_batches(data.val, cfg.eval_batches, cfg.batch_size, cfg.context)
    ]
    train_tokens = data.train.to(device) if device.type == "cuda" else data.train
    params = [p for p in model.parameters()]
    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    sched = cfg.schedule_kwargs()
    extra_ckpts = set(cfg.checkpoint_at)
    t0 = last_hb = time.perf_counter()
    last_saved = start if resumed_from is not None or cfg.branch_from is not None else -1
    # (step, lr, loss, grad norm, wall s): each step keeps its own clock reading, so rows
    # flushed together still have distinct wall times
    pending: list[tuple[int, float, torch.Tensor, torch.Tensor, float]] = []

    def still_ours() -> None:
        """Stop at once, writing nothing, when another worker took the run over (this one was
        paused longer than the stale limit: a suspended VM, SIGSTOP, swap storms)."""
        if not store.heartbeat(run_key, worker):
            from scaletrack.store import ClaimLost

            raise ClaimLost(f"worker {worker} lost its claim on run {run_key}; "
                            "it stopped without writing")

    def save(step_done: int) -> None:
        nonlocal last_saved
        still_ours()  # never overwrite the new holder's checkpoint files
        path = checkpoint_dir / run_key / f"step_{step_done:08d}.safetensors"
        file_meta = {**meta, "step": step_done, "spikes": spikes.state()}
        sha = save_checkpoint(path, model, optimizer=optimizer, rng={"data": gen.get_state()},
                              meta=file_meta)
        store.add_checkpoint(
            CheckpointRecord(
                id=None, run_key=run_key, kind="own", N=plan.N, tokens=step_done * tps,
                flops=step_done * tps * fpt, step=step_done, path=str(path), sha256=sha,
                loader=cfg.family, meta=meta,
            )
        )
        last_saved = step_done

    def flush_pending(writer: Any) -> int | None:
        """Log buffered steps; return the first diverged step, if any."""
        if not pending:
            return None
        values = torch.stack([torch.stack([lo.float(), gn.float()])
                              for _, _, lo, gn, _ in pending])
        rows = values.tolist()  # the one host sync
        bad = None
        for (step, lr, _, _, wall), (loss, gnorm) in zip(pending, rows, strict=True):
            vals = {"train/loss": loss, "lr": lr, "grad_norm": gnorm}
            if not math.isfinite(loss) or loss > diverge_at:
                bad = step if bad is None else bad
            elif spikes.update(loss):
                vals["spike"] = 1.0
            writer.log_many(step, vals, tokens=step * tps, wall_time=wall)
            if bad is not None:
                break
        pending.clear()
        return bad

    def diverged(writer: Any, bad: int) -> TrainResult:
        writer.flush()
        msg = f"training loss not finite or > {diverge_at:.1f} nats at step {bad}"
        store.finish_run(run_key, "diverged", error=msg)
        return TrainResult("diverged", None, bad, bad * tps, bad * tps * fpt, resumed_from)

    with store.metric_writer(run_key) as writer:
        model.train()
        for step in range(start, total):
            lr = lr_at(step, total, cfg.lr, cfg.schedule, **sched)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = sample_batch(train_tokens, cfg.batch_size, cfg.context, gen)
            if device.type == "cuda":
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast_for(device):
                logits = model(x)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            pending.append((step, lr, loss.detach(), gnorm.detach(),
                            time.perf_counter() - t0))
            done = step + 1
            at_eval = done % cfg.eval_every == 0 or done == total
            at_ckpt = done % cfg.checkpoint_every == 0 or done == total or done in extra_ckpts
            if len(pending) >= cfg.log_every or at_eval or at_ckpt:
                bad = flush_pending(writer)
                if bad is not None:
                    return diverged(writer, bad)
            if at_eval:
                val = evaluate_loss(model, val_sets, device)
                writer.log_many(
                    done, {"val/loss": val, "tokens": float(done * tps),
                           "flops": float(done * tps * fpt)},
                    tokens=done * tps, wall_time=time.perf_counter() - t0,
                )
            if at_ckpt:
                writer.flush()
                save(done)
            now = time.perf_counter()
            if now - last_hb >= HEARTBEAT_INTERVAL_S:
                still_ours()
                last_hb = now
            if on_step is not None:
                on_step(done, total)
            if stop_event is not None and stop_event.is_set() and done < total:
                bad = flush_pending(writer)
                if bad is not None:
                    return diverged(writer, bad)
                writer.flush()
                if last_saved != done:
                    save(done)
                store.release_run(run_key, worker)
                return TrainResult("interrupted", None, done, done * tps, done * tps * fpt,
                                   resumed_from)
        # resumed from the final checkpoint: only the final eval is left
        final = val if start < total else evaluate_loss(model, val_sets, device)
        writer.flush()
    store.finish_run(run_key, "finished", final_loss=final)
    return TrainResult("finished", final, total, total * tps, total * tps * fpt, resumed_from)
