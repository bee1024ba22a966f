"""Train several GPTs of one shape at once: parameters stacked on a leading member axis.

Grids of tiny models waste a CPU (or GPU) on per-op overhead when trained one at a time.
Here M members' parameters are stacked into tensors of shape (M, *shape) and one forward
runs all of them with batched matmuls (``torch.baddbmm``), with attention for all members
and sequences in one ``scaled_dot_product_attention`` call. (``torch.func.vmap`` over
``functional_call`` was the alternative; PyTorch has no batching rule for the CPU attention
kernel, so it falls back to a per-member loop and was slower.)

Members may differ in ``seed`` (initialisation and data order), ``lr``, ``weight_decay`` and
``grad_clip``; everything else in their TrainConfigs must match. Each member starts from the
same weights and draws the same batches as ``train_run`` would give it, and is logged under
its own run key with the same metrics; AdamW and clipping are applied per member. On CUDA
the forward runs under bf16 autocast, as in ``train_run``.

Checkpoints are ``train_run``'s, per member: at every ``checkpoint_every`` steps, at the
steps in ``checkpoint_at`` (a trunk's branch points), at the end and when stopped, each member
saves its weights, its AdamW state, its data generator and spike history in the same file
format, so a branch (or ``train_run``) can start from any of them. Resume is per member and
exact: the group restarts from the newest step at which every unfinished member has a usable
checkpoint, each member from its own state; a member that diverged stays diverged and the
others go on.

Claims are per member, as in ``train_run``: every write is fenced by the member's claim, and
the claims are checked at every heartbeat and before every checkpoint. A member whose claim
another worker took over (this process was paused past the stale limit) stops writing at once
and comes back with status "lost"; the other members go on. A failing store (ClaimLost of the
whole group, StoreError) is raised to the caller, which decides.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from scaletrack.errors import ConfigError, DataError
from scaletrack.models.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from scaletrack.models.data import eval_batches, load_tokens, sample_batch
from scaletrack.models.gpt import GPT, GPTConfig
from scaletrack.sweeps.schedule import lr_at
from scaletrack.sweeps.spikes import SpikeDetector
from scaletrack.sweeps.train import (
    DIVERGENCE_FACTOR,
    HEARTBEAT_INTERVAL_S,
    RunBusyError,
    TrainConfig,
    TrainResult,
    _checkpoint_meta,
    _ensure_claimed,
    _same_training,
    autocast_for,
    init_model,
    make_optimizer,
    plan_run,
)

if TYPE_CHECKING:
    from scaletrack.store import Store

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
    store: Store,
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
    from scaletrack.store import ClaimLost, StoreError

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
    configs: list[TrainConfig], run_keys: list[str], store: Store
) -> list[TrainingState] | None:
    """Each member's state at the newest step where every member has a usable checkpoint."""
    records = [{rec.step: rec for rec in store.latest_checkpoints(k)} for k in run_keys]
    common = set(records[0]).intersection(*records[1:]) - {None}
    for step in sorted(common, reverse=True):
        states = []
        for cfg, key, recs in zip(configs, run_keys, records, strict=True):
            rec = recs[step]
            try:
                state = load_checkpoint(rec.path, rec.sha256)
            except DataError as exc:  # corrupt or missing: try an older common step
                log.warning("run %s: skipping checkpoint at step %s: %s", key, step, exc)
                break
            if not _same_training(state.meta.get("train"), cfg) or state.optimizer is None:
                log.warning("run %s: skipping checkpoint at step %s: written by another "
                            "training configuration", key, step)
                break
            states.append(state)
        else:
            return states
    if any(records):
        log.warning("group %s: no step has a usable checkpoint of every member; restarting "
                    "from step 0", ", ".join(run_keys))
    return None


def _train_stacked(
    configs: list[TrainConfig],
    run_keys: list[str],
    plan: Any,
    store: Store,
    checkpoint_dir: Path,
    worker: str,
    stop_event: threading.Event | None,
    on_step: Callable[[int, int], None] | None,
    states: list[TrainingState] | None = None,
) -> list[TrainResult]:
    from scaletrack.store import CheckpointRecord, ClaimLost

    cfg0 = configs[0]
    M = len(configs)
    mcfg: GPTConfig = plan.model_config
    device = torch.device(cfg0.device)
    data = load_tokens(cfg0.data)
    total, tps, fpt = plan.steps, plan.tokens_per_step, plan.flops_per_token
    diverge_at = DIVERGENCE_FACTOR * math.log(mcfg.vocab_size)

    models = [init_model(c, mcfg) for c in configs]
    names = [n for n, _ in models[0].named_parameters()]
    start = 0
    moments: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
    if states is not None:
        start = int(states[0].meta["step"])
        for model, cfg, state in zip(models, configs, states, strict=True):
            model.load_state_dict(state.model)
            opt = make_optimizer(model, cfg)
            opt.load_state_dict(state.optimizer)
            moments.append({n: (opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"])
                            for n, p in model.named_parameters()})
    params = {
        n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).to(device)
        .requires_grad_(True)
        for n in names
    }
    if moments:
        exp_avg = {n: torch.stack([mo[n][0] for mo in moments]).to(device) for n in names}
        exp_avg_sq = {n: torch.stack([mo[n][1] for mo in moments]).to(device) for n in names}
    else:
        exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
    wd = torch.tensor([c.weight_decay for c in configs], device=device)
    clip = torch.tensor([c.grad_clip if c.grad_clip > 0 else math.inf for c in configs],
                        device=device)
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    spikes = [SpikeDetector() for _ in configs]
    alive = [True] * M
    results: list[TrainResult | None] = [None] * M
    writers: list[Any] = []

    def drop(m: int, step_done: int) -> None:
        """Member `m` lost its claim to another worker: it writes nothing more."""
        alive[m] = False
        results[m] = TrainResult("lost", None, step_done, step_done * tps,
                                 step_done * tps * fpt, None)
        log.warning("run %s: claim taken over by another worker at step %d; this member "
                    "stopped without writing", run_keys[m], step_done)
        if m < len(writers):
            with contextlib.suppress(ClaimLost):  # its unwritten rows are refused, not kept
                writers[m].close()

    def guarded(m: int, step_done: int, write: Callable[[], Any]) -> None:
        """One member's store write; a claim taken over drops that member, not the group."""
        try:
            write()
        except ClaimLost:
            drop(m, step_done)

    def check_claims(step_done: int) -> None:
        """Heartbeat every alive member; drop those whose claim another worker holds now."""
        for m in range(M):
            if alive[m] and not store.heartbeat(run_keys[m], worker):
                drop(m, step_done)

    if states is not None:
        for m, state in enumerate(states):
            gens[m].set_state(state.rng["data"])
            spikes[m] = SpikeDetector.from_state(state.meta["spikes"])
        for m, key in enumerate(run_keys):
            guarded(m, start, lambda key=key: store.delete_metrics_after(key, start))
    val_sets = [
        (x.to(device), y.to(device))
        for x, y in eval_batches(data.val, cfg0.eval_batches, cfg0.batch_size, cfg0.context)
    ]
    sched = cfg0.schedule_kwargs()
    writers.extend(store.metric_writer(k) for k in run_keys)
    for m in range(M):
        if not alive[m]:  # lost before training started
            with contextlib.suppress(ClaimLost):
                writers[m].close()
    t0 = last_hb = time.perf_counter()
    # (step, lrs, losses, grad norms, wall s): each step keeps its own clock reading
    pending: list[tuple[int, list[float], torch.Tensor, torch.Tensor, float]] = []
    extra_ckpts = set(cfg0.checkpoint_at)
    last_saved = start
    lrs = [0.0] * M

    def save(step_done: int) -> None:
        """Each alive member's checkpoint at ``step_done``, in train_run's format."""
        nonlocal last_saved
        for m in range(M):
            if alive[m]:
                guarded(m, step_done, writers[m].flush)
        check_claims(step_done)  # never overwrite a new holder's checkpoint files
        for m, cfg in enumerate(configs):
            if not alive[m]:
                continue
            model = GPT(mcfg)
            with torch.no_grad():
                for n, p in model.named_parameters():
                    p.copy_(params[n][m].detach().cpu())
            opt = make_optimizer(model, cfg)
            for n, p in model.named_parameters():  # hand the member's AdamW state over
                opt.state[p] = {"step": torch.tensor(float(step_done)),
                                "exp_avg": exp_avg[n][m].detach().cpu().clone(),
                                "exp_avg_sq": exp_avg_sq[n][m].detach().cpu().clone()}
            for group in opt.param_groups:
                group["lr"] = lrs[m]
            path = checkpoint_dir / run_keys[m] / f"step_{step_done:08d}.safetensors"
            meta = _checkpoint_meta(cfg, mcfg)
            sha = save_checkpoint(path, model, optimizer=opt, rng={"data": gens[m].get_state()},
                                  meta={**meta, "step": step_done, "spikes": spikes[m].state()})
            record = CheckpointRecord(
                id=None, run_key=run_keys[m], kind="own", N=plan.N, tokens=step_done * tps,
                flops=step_done * tps * fpt, step=step_done, path=str(path), sha256=sha,
                loader="gpt", meta=meta)
            guarded(m, step_done, lambda record=record: store.add_checkpoint(record))
        last_saved = step_done

    @torch.no_grad()
    def val_losses() -> list[float]:
        total_loss = torch.zeros(M, device=device)
        for x, y in val_sets:
            xs = x.expand(M, *x.shape)
            with autocast_for(device):
                logits = stacked_gpt_forward(params, mcfg, xs)
            ce = F.cross_entropy(logits.float().flatten(0, 2), y.expand(M, *y.shape).flatten(),
                                 reduction="none")
            total_loss += ce.view(M, -1).mean(1)
        return (total_loss / len(val_sets)).tolist()

    def flush() -> None:
        if not pending:
            return
        losses = torch.stack([lo for _, _, lo, _, _ in pending]).tolist()  # (S, M), one sync
        norms = torch.stack([gn for _, _, _, gn, _ in pending]).tolist()
        for (step, lrs, _, _, wall), lrow, grow in zip(pending, losses, norms, strict=True):
            for m in range(M):
                if not alive[m]:
                    continue
                vals = {"train/loss": lrow[m], "lr": lrs[m], "grad_norm": grow[m]}
                bad = not math.isfinite(lrow[m]) or lrow[m] > diverge_at
                if not bad and spikes[m].update(lrow[m]):
                    vals["spike"] = 1.0
                try:
                    writers[m].log_many(step, vals, tokens=step * tps, wall_time=wall)
                    if bad:
                        writers[m].flush()
                        store.finish_run(run_keys[m], "diverged",
                                         error=f"training loss not finite or > "
                                         f"{diverge_at:.1f} nats at step {step}")
                except ClaimLost:
                    drop(m, step)
                    continue
                if bad:
                    alive[m] = False
                    results[m] = TrainResult("diverged", None, step, step * tps,
                                             step * tps * fpt, None)
        pending.clear()

    vals: list[float] = []
    try:
        for step in range(start, total):
            lrs = [lr_at(step, total, c.lr, c.schedule, **sched) if alive[m] else 0.0
                   for m, c in enumerate(configs)]
            batches = [sample_batch(data.train, cfg0.batch_size, cfg0.context, g) for g in gens]
            x = torch.stack([b[0] for b in batches]).to(device)  # (M, B, T)
            y = torch.stack([b[1] for b in batches]).to(device)
            with autocast_for(device):
                logits = stacked_gpt_forward(params, mcfg, x)
            ce = F.cross_entropy(logits.float().flatten(0, 2), y.flatten(), reduction="none")
            losses = ce.view(M, -1).mean(1)  # (M,)
            for p in params.values():
                p.grad = None
            losses.sum().backward()  # members are independent: each gets its own gradient
            with torch.no_grad():
                sq = sum(p.grad.pow(2).flatten(1).sum(1) for p in params.values())
                gnorm = sq.sqrt()  # (M,)
                scale = (clip / (gnorm + 1e-6)).clamp(max=1.0)
                lr_t = torch.tensor(lrs, device=device)
                bc1, bc2 = 1 - BETAS[0] ** (step + 1), 1 - BETAS[1] ** (step + 1)
                for n, p in params.items():
                    g = p.grad * _member_view(scale, p.dim())
                    exp_avg[n].lerp_(g, 1 - BETAS[0])
                    exp_avg_sq[n].mul_(BETAS[1]).addcmul_(g, g, value=1 - BETAS[1])
                    lr_p = _member_view(lr_t, p.dim())
                    if p.dim() >= 3:  # matrices (stacked): decoupled weight decay
                        p.mul_(1 - lr_p * _member_view(wd, p.dim()))
                    denom = (exp_avg_sq[n].sqrt() / math.sqrt(bc2)).add_(EPS)
                    p.addcdiv_(exp_avg[n] * (lr_p / bc1), denom, value=-1.0)
            pending.append((step, lrs, losses.detach(), gnorm, time.perf_counter() - t0))
            done = step + 1
            at_eval = done % cfg0.eval_every == 0 or done == total
            at_ckpt = done % cfg0.checkpoint_every == 0 or done == total or done in extra_ckpts
            if len(pending) >= cfg0.log_every or at_eval or at_ckpt:
                flush()
            if at_eval:
                vals = val_losses()
                wall = time.perf_counter() - t0
                for m in range(M):
                    if alive[m]:
                        row = {"val/loss": vals[m], "tokens": float(done * tps),
                               "flops": float(done * tps * fpt)}
                        guarded(m, done, partial(writers[m].log_many, done, row,
                                                 tokens=done * tps, wall_time=wall))
            if at_ckpt and any(alive):
                save(done)
            now = time.perf_counter()
            if now - last_hb >= HEARTBEAT_INTERVAL_S:
                check_claims(done)
                last_hb = now
            if on_step is not None:
                on_step(done, total)
            if not any(alive):
                break
            if stop_event is not None and stop_event.is_set() and done < total:
                flush()
                if last_saved != done and any(alive):
                    save(done)
                for m in range(M):
                    if alive[m]:
                        results[m] = TrainResult("interrupted", None, done, done * tps,
                                                 done * tps * fpt, None)
                        guarded(m, done, writers[m].flush)
                        with contextlib.suppress(ClaimLost):  # taken over: nothing to release
                            store.release_run(run_keys[m], worker)
                return [r for r in results if r is not None]
        flush()
        if start >= total:  # resumed from the final checkpoint: only the final eval is left
            vals = val_losses()
        for m in range(M):
            if not alive[m]:
                continue
            guarded(m, total, writers[m].flush)
            guarded(m, total, lambda m=m: store.finish_run(run_keys[m], "finished",
                                                          final_loss=vals[m]))
            if alive[m]:
                results[m] = TrainResult("finished", vals[m], total, total * tps,
                                         total * tps * fpt, None)
    finally:
        for m, w in enumerate(writers):
            if alive[m]:
                w.close()
            else:  # diverged (flushed) or lost (refused): nothing left to write
                with contextlib.suppress(ClaimLost):
                    w.close()
    return [r for r in results if r is not None]
