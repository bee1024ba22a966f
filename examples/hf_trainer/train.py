"""A tiny GPT-2 trained with the Hugging Face Trainer, tracked by scaletrack in one line.

    python examples/hf_trainer/train.py --n_embd 16 --steps 40 --store sqlite:///hf.db
    scaletrack sweep run examples/hf_trainer/grid.toml     # 3 widths x 2 token budgets
"""

import argparse
import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from scaletrack.integrations.transformers import ScaletrackCallback

p = argparse.ArgumentParser()
p.add_argument("--n_embd", type=int, default=16)
p.add_argument("--steps", type=int, default=40)
p.add_argument("--tokens", type=int, default=None, help="token budget D (sets the steps)")
p.add_argument("--store", default=None)
p.add_argument("--out", default="hf-out")
p.add_argument("--resume", action="store_true")
a = p.parse_args()
steps = a.steps if a.tokens is None else a.tokens // (8 * 32)  # 8 sequences of 32 tokens a step
out = os.environ.get("SCALETRACK_CHECKPOINT_DIR", a.out)  # a grid cell's own folder

torch.manual_seed(0)
ids = torch.randint(0, 64, (256, 32))  # 256 sequences of 32 tokens from a 64-token vocabulary
ids[:, 1::2] = (ids[:, 0::2] * 7 + 3) % 64  # every second token is predictable
data = [{"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x} for x in ids]
model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=a.n_embd, n_layer=2,
                                   n_head=2))
args = TrainingArguments(out, max_steps=steps, per_device_train_batch_size=8,
                         learning_rate=3e-3, logging_steps=5, save_steps=20, report_to=[],
                         use_cpu=True, disable_tqdm=True, seed=0)
callback = ScaletrackCallback(sweep="hf-ladder", store=a.store, name=f"gpt2-{a.n_embd}")
Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train(
    resume_from_checkpoint=a.resume or None)
