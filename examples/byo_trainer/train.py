"""A compact GPT training script of our own, tracked with `scaletrack.init`.

Runs alone (`python train.py --n_layer 2 --d_model 64 --tokens 40000`) or as a grid's command
cell (see grid.toml), where the environment names the run, the store and where checkpoints go.
Running it again resumes from the newest checkpoint with the same data order and optimiser
state, so its losses equal those of a run never stopped (on the CPU, one thread).
Data: the Python standard library's source, byte-level (vocab 256). Losses in nats/byte.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import scaletrack
from scaletrack.models.accounting import count_params, flops_per_token
from scaletrack.models.build import build_model, make_config
from scaletrack.models.data import eval_batches, load_tokens, sample_batch


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_layer", type=int, default=2)
    p.add_argument("--n_head", type=int, default=2)
    p.add_argument("--d_model", type=int, default=64)
    p.add_argument("--tokens", type=int, default=40_960, help="training budget (tokens)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--weight_decay", type=float, default=0.1)
    p.add_argument("--context", type=int, default=32)
    p.add_argument("--eval_every", type=int, default=10, help="steps between val losses")
    p.add_argument("--ckpt_every", type=int, default=10, help="steps between checkpoints")
    p.add_argument("--sweep", default="byo-example")
    p.add_argument("--sleep", type=float, default=0.0, help="extra seconds per step (demos)")
    return p.parse_args()


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def val_loss(model: torch.nn.Module, batches: list) -> float:
    model.eval()
    total = sum(float(F.cross_entropy(model(x).flatten(0, 1), y.flatten())) for x, y in batches)
    model.train()
    return total / len(batches)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # one thread: bit-for-bit equal losses after a resume
    shape = {"n_layer": args.n_layer, "n_head": args.n_head, "d_model": args.d_model,
             "context": args.context, "vocab_size": 256}
    mcfg = make_config("gpt", shape)
    n_params = count_params(mcfg).non_embedding
    config = {**shape, "tokens": args.tokens, "lr": args.lr, "seed": args.seed,
              "batch_size": args.batch_size, "weight_decay": args.weight_decay}
    data = load_tokens({"corpus": "stdlib"})
    tokens_per_step = args.batch_size * args.context
    total = max(1, math.ceil(args.tokens / tokens_per_step))

    with scaletrack.init(sweep=args.sweep, config=config, params=n_params, tokens=args.tokens,
                         flops_per_token=flops_per_token(mcfg)) as run:
        torch.manual_seed(args.seed)
        model = build_model("gpt", shape)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95),
                                weight_decay=args.weight_decay)
        gen = torch.Generator().manual_seed(args.seed)
        start = 0
        if run.resume_from:  # newest registered checkpoint of this run
            state = torch.load(run.resume_from, weights_only=False)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            gen.set_state(state["gen"])
            start = state["step"]
            print(f"resumed from {run.resume_from} at step {start}")
        ckpt_dir = run.checkpoint_dir or Path("checkpoints") / run.run_key
        val = eval_batches(data.val, 4, args.batch_size, args.context)
        for step in range(start, total):
            lr = lr_at(step, total, args.lr, warmup=max(1, total // 20))
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = sample_batch(data.train, args.batch_size, args.context, gen)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            done = step + 1
            seen = done * tokens_per_step
            run.log({"train/loss": loss.item(), "lr": lr}, step=done, tokens=seen)
            if done % args.eval_every == 0 or done == total:
                run.log({"val/loss": val_loss(model, val)}, step=done, tokens=seen)
            if done % args.ckpt_every == 0 or done == total:
                path = Path(ckpt_dir) / f"step_{done:06d}.pt"
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                            "gen": gen.get_state(), "step": done}, tmp)
                os.replace(tmp, path)  # never a half-written checkpoint
                run.checkpoint(path, step=done, tokens=seen)
            if args.sleep:
                time.sleep(args.sleep)
        print(f"run {run.run_key}: {total} steps, N={n_params:,}, D={args.tokens:,}")


if __name__ == "__main__":
    main()
