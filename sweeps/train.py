"""One run of one model on one data budget, tracked in the store: its config, plan and setup.

``train_run`` trains with AdamW (decay on matrices only), gradient clipping and the run's lr
schedule, logs every step's ``train/loss``, ``lr``, ``grad_norm`` (and ``spike`` where a loss
spike is flagged) and, every ``eval_every`` steps and at the end, ``val/loss``, ``tokens`` and
``flops`` (cumulative). The loop itself (batches, logging cadence, evaluation, checkpoints,
divergence, claims, stopping) is :class:`scaletrack.sweeps.train_loop.TrainingLoop`, shared
with the stacked groups of :mod:`scaletrack.sweeps.multi`; this module gives it a
:class:`ModuleStepper` (one ``nn.Module`` under torch's AdamW) and one member.

Exact resume: a checkpoint holds the model, the AdamW state, the data generator state, the
step and the spike detector's history; every random draw after initialisation comes from the
data generator, so a run resumed from a checkpoint takes the same steps as one never stopped.

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

import logging
import math
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from scaletrack.errors import ConfigError, DataError, RunBusyError
from scaletrack.models.accounting import count_params, flops_per_token
from scaletrack.models.build import build_model
from scaletrack.models.checkpoint import TrainingState, load_checkpoint
from scaletrack.models.data import eval_batches, load_tokens
from scaletrack.models.gpt import GPTConfig
from scaletrack.models.ladder import shape_for
from scaletrack.models.lstm import LSTMConfig
from scaletrack.store import CheckpointRecord, ClaimLost, RunRecord, StoreError
from scaletrack.sweeps.schedule import COOLDOWNS, SCHEDULES
from scaletrack.sweeps.train_loop import (
    DIVERGENCE_FACTOR,
    HEARTBEAT_INTERVAL_S,
    Batch,
    Member,
    TrainingLoop,
    TrainResult,
    usable_state,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from scaletrack.store.protocol import WorkerStore

__all__ = ["DIVERGENCE_FACTOR", "HEARTBEAT_INTERVAL_S", "ModuleStepper", "RunBusyError",
           "RunPlan", "TrainConfig", "TrainResult", "model_config", "plan_run", "train_run"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Token counts are tokens; lr is the peak lr."""

    family: str  # "gpt" | "lstm"
    # shape kwargs (n_layer, n_head, d_model | n_layer, d_hidden) or {"params": N}
    model: dict[str, Any]
    # {"corpus": "stdlib"} | {"path": ...} | {"tokens": "x.bin"} | {"task": ...}
    data: dict[str, Any]
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


def _vocab_size(data: dict[str, Any]) -> int:
    if "vocab_size" in data:
        return int(data["vocab_size"])
    if "tokens" in data:
        return load_tokens(data).vocab_size
    return 256


def model_config(cfg: TrainConfig) -> GPTConfig | LSTMConfig:
    """The model config of a run: its shape (or ladder target) with the run's context and vocab."""
    model = dict(cfg.model)
    size: int | dict[str, Any] = int(model.pop("params")) if "params" in model else model
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


def _ensure_claimed(
    cfg: TrainConfig, plan: RunPlan, store: WorkerStore, run_key: str, worker: str
) -> RunRecord | None:
    """Create the run row if absent and claim it; return the stored row if already done."""
    run: RunRecord | None = store.get_run(run_key)
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


def branch_point_checkpoint(store: WorkerStore, cfg: TrainConfig) -> CheckpointRecord | None:
    """The trunk's checkpoint record at ``cfg.branch_step``, or None if not saved yet."""
    if cfg.branch_from is None:
        return None
    for rec in store.latest_checkpoints(cfg.branch_from):
        if rec.step == cfg.branch_step:
            return rec
    return None


def load_branch_point(store: WorkerStore, cfg: TrainConfig) -> TrainingState:
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


class ModuleStepper:
    """One ``nn.Module`` under torch's AdamW: the numerics of a single run (M = 1)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                 device: torch.device, val_sets: list[Batch]) -> None:
        self.model, self.optimizer, self.device, self.val_sets = model, optimizer, device, val_sets
        self.params = list(model.parameters())
        self.clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf

    def step(self, step: int, lrs: Sequence[float], batches: Sequence[Batch]
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One AdamW update at ``lrs[0]`` on ``batches[0]``; loss and grad norm, shape (1,)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lrs[0]
        x, y = batches[0]
        if self.device.type == "cuda":
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with autocast_for(self.device):
            logits = self.model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        gnorm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        return loss.detach().reshape(1), gnorm.detach().float().reshape(1)

    def evaluate(self) -> list[float]:
        return [evaluate_loss(self.model, self.val_sets, self.device)]

    def member_state(self, m: int, step_done: int, lr: float
                     ) -> tuple[nn.Module, torch.optim.Optimizer]:
        return self.model, self.optimizer


def train_run(
    cfg: TrainConfig,
    store: WorkerStore,
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
    try:
        return _train(cfg, plan, store, run_key, Path(checkpoint_dir), worker, stop_event, on_step)
    except (ClaimLost, StoreError):  # taken over, or the store failing: the caller decides
        raise
    except KeyboardInterrupt:
        store.release_run(run_key, worker)
        raise
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClaimLost):
            raise cause from None
        store.finish_run(run_key, "failed", error=f"{type(exc).__name__}: {exc}")
        raise


def _train(
    cfg: TrainConfig,
    plan: RunPlan,
    store: WorkerStore,
    run_key: str,
    checkpoint_dir: Path,
    worker: str,
    stop_event: threading.Event | None,
    on_step: Callable[[int, int], None] | None,
) -> TrainResult:
    device = torch.device(cfg.device)
    mcfg = plan.model_config
    data = load_tokens(cfg.data)
    if data.vocab_size > mcfg.vocab_size:
        raise DataError(f"corpus vocab {data.vocab_size} exceeds the model's {mcfg.vocab_size}")
    model = init_model(cfg, mcfg).to(device)
    optimizer = make_optimizer(model, cfg)

    state, start, resumed_from = None, 0, None
    records = store.latest_checkpoints(run_key)
    for rec in records:
        state = usable_state(rec, cfg)
        if state is not None:
            start = resumed_from = int(state.meta["step"])
            break
    if records and resumed_from is None:
        log.warning("run %s: none of its %d checkpoints is usable; restarting from step 0",
                    run_key, len(records))
    if resumed_from is None and cfg.branch_from is not None:
        trunk = store.get_run(cfg.branch_from)
        if trunk is not None and trunk.status == "diverged" and (
            branch_point_checkpoint(store, cfg) is None
        ):
            msg = f"its trunk {cfg.branch_from} diverged before step {cfg.branch_step}"
            store.finish_run(run_key, "diverged", error=msg)
            return TrainResult("diverged", None, 0, 0, 0.0, None)
        state = load_branch_point(store, cfg)
        start = cfg.branch_step
    if state is not None:
        assert state.optimizer is not None  # usable_state and load_branch_point checked it
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)

    val_sets = [
        (x.to(device), y.to(device))
        for x, y in eval_batches(data.val, cfg.eval_batches, cfg.batch_size, cfg.context)
    ]
    loop = TrainingLoop(
        ModuleStepper(model, optimizer, cfg, device, val_sets),
        [Member.start(cfg, run_key, state, resumed_from)], plan, store, checkpoint_dir, worker,
        start=start, train_tokens=data.train.to(device) if device.type == "cuda" else data.train,
        on_lost="raise", stop_event=stop_event, on_step=on_step,
    )
    (result,) = loop.run(clear_after=None if state is None else start)
    return result
