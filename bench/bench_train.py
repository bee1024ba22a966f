"""Training throughput: tokens/s, achieved FLOP/s vs a measured matmul peak, tracking
overhead of ``train_run`` vs a bare PyTorch loop, and a stacked group vs one-by-one.

    .venv/bin/python bench/bench_train.py                      # CPU, GPT 0.1M / 1M / 5M
    .venv/bin/python bench/bench_train.py --device cuda --size 5e7 --batch-size 32 \
        --context 512 --compile --skip-group                    # MFU of a 50M GPT on a GPU

FLOPs per token follow models.accounting (6 N + 6 n_layer context d_model). MFU is achieved
FLOP/s over the measured dense matmul peak (fp32 on CPU; bf16 with TF32 enabled on CUDA).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scaletrack.models.data import load_tokens, sample_batch
from scaletrack.sweeps.train import (
    TrainConfig,
    autocast_for,
    init_model,
    make_optimizer,
    plan_run,
    train_run,
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 10) -> float:
    """FLOP/s of an n x n matmul (2 n^3 FLOPs), best of ``reps``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def bare_loop(cfg: TrainConfig, steps: int, warmup: int, compile_model: bool) -> float:
    """Seconds per step of a plain loop (same model, data sampling, AdamW, clipping)."""
    device = torch.device(cfg.device)
    plan = plan_run(cfg)
    model = init_model(cfg, plan.model_config).to(device)
    fwd = torch.compile(model) if compile_model else model
    opt = make_optimizer(model, cfg)
    for g in opt.param_groups:
        g["lr"] = cfg.lr
    data = load_tokens(cfg.data).train
    data = data.to(device) if device.type == "cuda" else data
    gen = torch.Generator().manual_seed(0)
    params = list(model.parameters())
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        x, y = sample_batch(data, cfg.batch_size, cfg.context, gen)
        x, y = x.to(device), y.to(device)
        with autocast_for(device):
            logits = fwd(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def tracked_loop(cfg: TrainConfig, steps: int, warmup: int, tmp: Path) -> float:
    """Seconds per step of train_run between step ``warmup`` and the last step (no evals)."""
    from scaletrack.store import Store

    stamps: dict[int, float] = {}
    store = Store.open(f"sqlite:///{tmp}/bench-{time.time_ns()}.db")
    try:
        train_run(cfg, store, f"bench{time.time_ns()}", tmp / "ck",
                  on_step=lambda s, t: stamps.__setitem__(s, time.perf_counter()))
    finally:
        store.close()
    return (stamps[warmup + steps - 1] - stamps[warmup]) / (steps - 1)


def vmap_step_time(cfg: TrainConfig, m: int, steps: int) -> tuple[float, float]:
    """Seconds per forward+backward of m stacked models: (batched bmm, vmap functional_call)."""
    from torch.func import functional_call, stack_module_state, vmap

    from scaletrack.sweeps.multi import stacked_gpt_forward

    plan = plan_run(cfg)
    models = [init_model(cfg, plan.model_config) for _ in range(m)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randint(0, 256, (m, cfg.batch_size, cfg.context))

    def one(p, b, xi):  # type: ignore[no-untyped-def]
        return functional_call(base, (p, b), (xi,))

    timings = []
    for fn in (lambda: stacked_gpt_forward(params, plan.model_config, x),
               lambda: vmap(one)(params, buffers, x)):
        fn().float().logsumexp(-1).mean().backward()
        t = time.perf_counter()
        for _ in range(steps):
            fn().float().logsumexp(-1).mean().backward()
        timings.append((time.perf_counter() - t) / steps)
    return timings[0], timings[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=float, nargs="+", default=[1e5, 1e6, 5e6],
                    help="non-embedding parameter targets (ladder shapes)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the bare loop's model")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="bare/tracked pairs for overhead")
    ap.add_argument("--skip-group", action="store_true")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--group-steps", type=int, default=60)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        peak = matmul_peak(device, torch.bfloat16, 8192)
        peak_label = "bf16 matmul"
    else:
        peak = matmul_peak(device, torch.float32, 1024)
        peak_label = "fp32 matmul"
    out: dict = {"device": str(device), "threads": torch.get_num_threads(),
                 "peak_flops": peak, "peak_kind": peak_label, "sizes": []}
    print(f"device {device}  threads {torch.get_num_threads()}  peak {peak / 1e9:.1f} GFLOP/s "
          f"({peak_label})")
    data = {"corpus": "stdlib"}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for size in args.size:
            total_steps = args.warmup + args.steps
            cfg = TrainConfig(
                family="gpt", model={"params": int(size)}, data=data, context=args.context,
                batch_size=args.batch_size, tokens=total_steps * args.batch_size * args.context,
                eval_every=10**9, checkpoint_every=10**9, device=args.device, warmup_frac=0.0,
            )
            plan = plan_run(cfg)
            step_s = bare_loop(cfg, args.steps, args.warmup, args.compile)
            tok_s = plan.tokens_per_step / step_s
            achieved = tok_s * plan.flops_per_token
            row = {"N": plan.N, "shape": plan.model_config.to_dict(), "tokens_per_s": tok_s,
                   "flops_per_s": achieved, "mfu": achieved / peak}
            line = (f"GPT N={plan.N / 1e6:7.3f}M  {tok_s:10.0f} tok/s  "
                    f"{achieved / 1e9:8.2f} GFLOP/s  MFU {100 * achieved / peak:5.1f}%")
            if not args.skip_overhead:  # alternate bare / tracked; median of paired ratios
                ratios = []
                for _ in range(args.repeats):
                    bare = bare_loop(cfg, args.steps, args.warmup, False)
                    ratios.append(tracked_loop(cfg, args.steps, args.warmup, tmp) / bare - 1)
                overhead = statistics.median(ratios)
                row["tracking_overhead"] = overhead
                row["tracking_overhead_all"] = ratios
                line += (f"  train_run overhead {100 * overhead:+5.1f}% (median of "
                         f"{', '.join(f'{100 * r:+.1f}' for r in ratios)})")
            print(line, flush=True)
            out["sizes"].append(row)
        if not args.skip_group:
            from scaletrack.store import Store
            from scaletrack.sweeps.multi import train_group

            m = args.group_size
            cfgs = [
                TrainConfig(family="gpt", model={"params": 100_000}, data=data,
                            context=args.context, batch_size=args.batch_size,
                            tokens=args.group_steps * args.batch_size * args.context, seed=i,
                            eval_every=10**9, checkpoint_every=10**9, device=args.device)
                for i in range(m)
            ]
            store = Store.open(f"sqlite:///{tmp}/group.db")
            t = time.perf_counter()
            for i, c in enumerate(cfgs):
                train_run(c, store, f"seq{i}", tmp / "ck")
            seq_s = time.perf_counter() - t
            t = time.perf_counter()
            train_group(cfgs, store, [f"grp{i}" for i in range(m)], tmp / "ck")
            grp_s = time.perf_counter() - t
            store.close()
            tokens = m * plan_run(cfgs[0]).steps * plan_run(cfgs[0]).tokens_per_step
            bmm_s, vmap_s = vmap_step_time(cfgs[0], m, 5)
            out["group"] = {"members": m, "sequential_tokens_per_s": tokens / seq_s,
                            "group_tokens_per_s": tokens / grp_s, "speedup": seq_s / grp_s,
                            "fwd_bwd_s_bmm": bmm_s, "fwd_bwd_s_vmap": vmap_s}
            print(f"{m} x GPT 0.1M: one after another {tokens / seq_s:9.0f} tok/s, "
                  f"stacked group {tokens / grp_s:9.0f} tok/s  -> {seq_s / grp_s:.1f}x "
                  f"(fwd+bwd per step: batched bmm {1e3 * bmm_s:.1f} ms, "
                  f"vmap(functional_call) {1e3 * vmap_s:.1f} ms)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
