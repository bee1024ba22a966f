"""Train several GPTs of one shape at once: parameters stacked on a leading member axis.

Grids of tiny models waste a CPU (or GPU) on per-op overhead when trained one at a time.
Here M members' parameters are stacked into tensors of shape (M, *shape) and one forward
runs all of them with batched matmuls (``torch.baddbmm``), with attention for all members
and sequences in one ``scaled_dot_product_attention`` call. (``torch.func.vmap`` over
``functional_call`` was the alternative; PyTorch has no batching rule for the CPU attention
kernel, so it falls back to a per-member loop and was slower.)

Members may differ in ``seed`` (initialisation and data order), ``lr``, ``weight_decay`` and
``grad_clip``; everything else in their TrainConfigs must match. The loop is ``train_run``'s
(:class:`scaletrack.sweeps.train_loop.TrainingLoop`) with M members and a
:class:`StackedStepper`: each member starts from its run's initial weights, draws its batches
from its own data generator, is logged under its own run key with the same metrics at the same
cadence, and saves checkpoints in the same format, so a branch (or ``train_run``) can start
from any of them. AdamW and clipping are applied per member. On CUDA the forward runs under
bf16 autocast.

Resume is per member and exact: the group restarts from the newest step at which every
unfinished member has a usable checkpoint, each member from its own state; a member that
diverged stays diverged and the others go on.

Claims are per member: every write is fenced by the member's claim, and the claims are checked
at every heartbeat and before every checkpoint. A member whose claim another worker took over
(this process was paused past the stale limit) stops writing at once and comes back with
status "lost"; the other members go on. A failing store (ClaimLost of the whole group,
StoreError) is raised to the caller, which decides.
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from scaletrack.errors import ConfigError
from scaletrack.models.checkpoint import TrainingState
from scaletrack.models.data import eval_batches, load_tokens
from scaletrack.models.gpt import GPT, GPTConfig
from scaletrack.store import ClaimLost, StoreError
from scaletrack.sweeps.train import (
    RunBusyError,
    RunPlan,
    TrainConfig,
    _ensure_claimed,
    autocast_for,
    init_model,
    make_optimizer,
    plan_run,
)
from scaletrack.sweeps.train_loop import Batch, Member, TrainingLoop, TrainResult, usable_state

if TYPE_CHECKING:
    from scaletrack.store.protocol import WorkerStore

log = logging.getLogger(__name__)

_MEMBER_FIELDS = ("seed", "lr", "weight_decay", "grad_clip")
BETAS, EPS = (0.9, 0.95), 1e-8  # as sweeps.train.make_optimizer


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # x (M, N, d); w, b (M, d)
    return F.layer_norm(x, x.shape[-1:]) * w[:, None, :] + b[:, None, :]


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # x (M, N, in); w (M, out, in); b (M, out) -> (M, N, out)
    return torch.baddbmm(b[:, None, :], x, w.transpose(1, 2))


def stacked_gpt_forward(
    params: dict[str, torch.Tensor], cfg: GPTConfig, idx: torch.Tensor
) -> torch.Tensor:
    """Logits (M, B, T, vocab) of M stacked GPTs (params named as in ``GPT.state_dict``)."""
    M, B, T = idx.shape
    d, H, V = cfg.d_model, cfg.n_head, cfg.vocab_size
    wte = params["wte.weight"]  # (M, V, d)
    offsets = torch.arange(M, device=idx.device)[:, None, None] * V
    x = F.embedding(idx + offsets, wte.reshape(M * V, d))  # (M, B, T, d)
    x = (x + params["wpe.weight"][:, None, :T]).reshape(M, B * T, d)  # (M, B*T, d)
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        h = _layer_norm(x, params[p + "ln1.weight"], params[p + "ln1.bias"])
        qkv = _linear(h, params[p + "attn.qkv.weight"], params[p + "attn.qkv.bias"])  # (M,BT,3d)
        q, k, v = qkv.view(M * B, T, 3, H, d // H).permute(2, 0, 3, 1, 4)  # 3x (MB, H, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (MB, H, T, hd)
        y = y.transpose(1, 2).reshape(M, B * T, d)
        x = x + _linear(y, params[p + "attn.proj.weight"], params[p + "attn.proj.bias"])
        h = _layer_norm(x, params[p + "ln2.weight"], params[p + "ln2.bias"])
        h = F.gelu(_linear(h, params[p + "mlp.fc.weight"], params[p + "mlp.fc.bias"]))
        x = x + _linear(h, params[p + "mlp.proj.weight"], params[p + "mlp.proj.bias"])
    x = _layer_norm(x, params["ln_f.weight"], params["ln_f.bias"])
    return torch.bmm(x, wte.transpose(1, 2)).view(M, B, T, V)  # tied output head


def _check_group(configs: Sequence[TrainConfig]) -> None:
    if not configs:
        raise ConfigError("train_group needs at least one TrainConfig")
    base = replace(configs[0], **{f: getattr(TrainConfig, f) for f in _MEMBER_FIELDS})
    for cfg in configs:
        if cfg.family != "gpt":
            raise ConfigError(f"train_group trains GPTs only, got family {cfg.family!r}")
        if replace(cfg, **{f: getattr(TrainConfig, f) for f in _MEMBER_FIELDS}) != base:
            raise ConfigError(
                f"train_group members may differ only in {_MEMBER_FIELDS}; {cfg} differs from "
                f"{configs[0]}"
            )


def _member_view(t: torch.Tensor, dims: int) -> torch.Tensor:
    """(M,) -> (M, 1, ..., 1) to broadcast against a stacked parameter with ``dims`` dims."""
    return t.view(-1, *([1] * (dims - 1)))


def train_group(
    configs: Sequence[TrainConfig],
    store: WorkerStore,
    run_keys: Sequence[str],
    checkpoint_dir: Path,
    *,
    worker: str = "local",
    stop_event: threading.Event | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> list[TrainResult]:
    """Train the members together; one TrainResult per member, in order (see module docstring):
    status finished, diverged, interrupted (stopped, released) or lost (its claim was taken
    over; it wrote nothing after that)."""
    if len(configs) != len(run_keys):
        raise ConfigError("train_group needs one run key per config")
    _check_group(configs)
    if any(c.branch_from is not None for c in configs):
        raise ConfigError("train_group does not train cooldown branches; use train_run")
    results: dict[int, TrainResult] = {}
    active: list[int] = []
    plan = plan_run(configs[0])
    for i, (cfg, key) in enumerate(zip(configs, run_keys, strict=True)):
        try:
            done = _ensure_claimed(cfg, plan_run(cfg), store, key, worker)
        except RunBusyError:  # another worker took it since the caller claimed it
            results[i] = TrainResult("lost", None, 0, 0, 0.0, None)
            continue
        if done is not None:
            results[i] = TrainResult(done.status, done.final_loss, 0, 0, 0.0, None)
        else:
            active.append(i)
    if active:
        group = [configs[i] for i in active]
        keys = [run_keys[i] for i in active]
        try:
            states = _common_resume_point(group, keys, store)
            out = _train_stacked(group, keys, plan, store, Path(checkpoint_dir), worker,
                                 stop_event, on_step, states)
        except (ClaimLost, StoreError):  # taken over, or the store failing: the caller decides
            raise
        except KeyboardInterrupt:
            for key in keys:
                with contextlib.suppress(ClaimLost):
                    store.release_run(key, worker)
            raise
        except Exception as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClaimLost):
                raise cause from None
            for key in keys:  # members that diverged (or were lost) before the failure stay so
                with contextlib.suppress(ClaimLost):
                    run = store.get_run(key)
                    if run is not None and run.status == "running" and run.worker == worker:
                        store.finish_run(key, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        results.update(zip(active, out, strict=True))
    return [results[i] for i in range(len(configs))]


def _common_resume_point(
    configs: list[TrainConfig], run_keys: list[str], store: WorkerStore
) -> list[TrainingState] | None:
    """Each member's state at the newest step where every member has a usable checkpoint."""
    records = [{rec.step: rec for rec in store.latest_checkpoints(k)} for k in run_keys]
    common = {s for s in set(records[0]).intersection(*records[1:]) if s is not None}
    for step in sorted(common, reverse=True):
        states = []
        for cfg, recs in zip(configs, records, strict=True):
            state = usable_state(recs[step], cfg)
            if state is None:  # corrupt, missing or another config: try an older common step
                break
            states.append(state)
        else:
            return states
    if any(records):
        log.warning("group %s: no step has a usable checkpoint of every member; restarting "
                    "from step 0", ", ".join(run_keys))
    return None


class StackedStepper:
    """M GPTs of one shape, parameters stacked on a leading member axis, each under its own
    AdamW (the arithmetic of ``torch.optim.AdamW``, per member lr, decay and clipping)."""

    def __init__(self, configs: list[TrainConfig], mcfg: GPTConfig, device: torch.device,
                 val_sets: list[Batch], states: list[TrainingState] | None) -> None:
        self.configs, self.mcfg, self.device, self.val_sets = configs, mcfg, device, val_sets
        self.M = len(configs)
        models = [init_model(c, mcfg) for c in configs]
        names = [n for n, _ in models[0].named_parameters()]
        moments: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
        for model, cfg, state in zip(models, configs, states or [], strict=False):
            assert state.optimizer is not None  # usable_state checked it
            model.load_state_dict(state.model)
            opt = make_optimizer(model, cfg)
            opt.load_state_dict(state.optimizer)
            moments.append({n: (opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"])
                            for n, p in model.named_parameters()})
        self.params = {
            n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).to(device)
            .requires_grad_(True)
            for n in names
        }
        if moments:
            self.exp_avg = {n: torch.stack([mo[n][0] for mo in moments]).to(device)
                            for n in names}
            self.exp_avg_sq = {n: torch.stack([mo[n][1] for mo in moments]).to(device)
                               for n in names}
        else:
            self.exp_avg = {n: torch.zeros_like(p) for n, p in self.params.items()}
            self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.wd = torch.tensor([c.weight_decay for c in configs], device=device)
        self.clip = torch.tensor([c.grad_clip if c.grad_clip > 0 else math.inf for c in configs],
                                 device=device)

    def step(self, step: int, lrs: Sequence[float], batches: Sequence[Batch]
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One AdamW update of every member on its own batch; losses and grad norms (M,)."""
        M, params = self.M, self.params
        x = torch.stack([b[0] for b in batches]).to(self.device)  # (M, B, T)
        y = torch.stack([b[1] for b in batches]).to(self.device)
        with autocast_for(self.device):
            logits = stacked_gpt_forward(params, self.mcfg, x)
        ce = F.cross_entropy(logits.float().flatten(0, 2), y.flatten(), reduction="none")
        losses = ce.view(M, -1).mean(1)  # (M,)
        for p in params.values():
            p.grad = None
        torch.autograd.backward(losses.sum())  # members are independent: each gets its own gradient
        with torch.no_grad():
            grads = {n: p.grad for n, p in params.items() if p.grad is not None}
            sq = torch.zeros(M, device=self.device)
            for g in grads.values():
                sq = sq + g.pow(2).flatten(1).sum(1)
            gnorm = sq.sqrt()  # (M,)
            scale = (self.clip / (gnorm + 1e-6)).clamp(max=1.0)
            lr_t = torch.tensor(list(lrs), device=self.device)
            bc1, bc2 = 1 - BETAS[0] ** (step + 1), 1 - BETAS[1] ** (step + 1)
            for n, p in params.items():
                g = grads[n] * _member_view(scale, p.dim())
                self.exp_avg[n].lerp_(g, 1 - BETAS[0])
                self.exp_avg_sq[n].mul_(BETAS[1]).addcmul_(g, g, value=1 - BETAS[1])
                lr_p = _member_view(lr_t, p.dim())
                if p.dim() >= 3:  # matrices (stacked): decoupled weight decay
                    p.mul_(1 - lr_p * _member_view(self.wd, p.dim()))
                denom = (self.exp_avg_sq[n].sqrt() / math.sqrt(bc2)).add_(EPS)
                p.addcdiv_(self.exp_avg[n] * (lr_p / bc1), denom, value=-1.0)
        return losses.detach(), gnorm

    @torch.no_grad()
    def evaluate(self) -> list[float]:
        M = self.M
        total_loss = torch.zeros(M, device=self.device)
        for x, y in self.val_sets:
            xs = x.expand(M, *x.shape)
            with autocast_for(self.device):
                logits = stacked_gpt_forward(self.params, self.mcfg, xs)
            ce = F.cross_entropy(logits.float().flatten(0, 2), y.expand(M, *y.shape).flatten(),
                                 reduction="none")
            total_loss += ce.view(M, -1).mean(1)
        result: list[float] = (total_loss / len(self.val_sets)).tolist()
        return result

    def member_state(self, m: int, step_done: int, lr: float
                     ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Member ``m`` as a ``GPT`` with a ``torch.optim.AdamW`` holding its moments."""
        model = GPT(self.mcfg)
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(self.params[n][m].detach().cpu())
        opt = make_optimizer(model, self.configs[m])
        for n, p in model.named_parameters():  # hand the member's AdamW state over
            opt.state[p] = {"step": torch.tensor(float(step_done)),
                            "exp_avg": self.exp_avg[n][m].detach().cpu().clone(),
                            "exp_avg_sq": self.exp_avg_sq[n][m].detach().cpu().clone()}
        for group in opt.param_groups:
            group["lr"] = lr
        return model, opt


def _train_stacked(
    configs: list[TrainConfig],
    run_keys: list[str],
    plan: RunPlan,
    store: WorkerStore,
    checkpoint_dir: Path,
    worker: str,
    stop_event: threading.Event | None,
    on_step: Callable[[int, int], None] | None,
    states: list[TrainingState] | None = None,
) -> list[TrainResult]:
    cfg0 = configs[0]
    mcfg = plan.model_config
    if not isinstance(mcfg, GPTConfig):
        raise ConfigError(f"train_group trains GPTs only, got a {type(mcfg).__name__}")
    device = torch.device(cfg0.device)
    data = load_tokens(cfg0.data)
    start = 0 if states is None else int(states[0].meta["step"])
    val_sets = [
        (x.to(device), y.to(device))
        for x, y in eval_batches(data.val, cfg0.eval_batches, cfg0.batch_size, cfg0.context)
    ]
    members = [Member.start(cfg, key, None if states is None else states[m])
               for m, (cfg, key) in enumerate(zip(configs, run_keys, strict=True))]
    loop = TrainingLoop(
        StackedStepper(configs, mcfg, device, val_sets, states), members, plan, store,
        checkpoint_dir, worker, start=start, train_tokens=data.train, on_lost="drop",
        stop_event=stop_event, on_step=on_step,
    )
    return loop.run(clear_after=None if states is None else start)
