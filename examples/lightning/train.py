"""A tiny character LM trained with PyTorch Lightning, tracked by scaletrack.

    python examples/lightning/train.py --d_model 16 --steps 40 --store sqlite:///pl.db
"""

import argparse

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from scaletrack.integrations.lightning import ScaletrackLogger


class CharLM(L.LightningModule):
    def __init__(self, vocab: int = 64, d_model: int = 16, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()  # these name the run
        self.emb = nn.Embedding(vocab, d_model)
        self.rnn = nn.GRU(d_model, d_model, batch_first=True)
        self.head = nn.Linear(d_model, vocab)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = batch["input_ids"]
        h, _ = self.rnn(self.emb(x[:, :-1]))
        loss = nn.functional.cross_entropy(self.head(h).flatten(0, 1), x[:, 1:].flatten())
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


p = argparse.ArgumentParser()
p.add_argument("--d_model", type=int, default=16)
p.add_argument("--steps", type=int, default=40)
p.add_argument("--store", default=None)
p.add_argument("--out", default="pl-out")
p.add_argument("--ckpt_path", default=None)
a = p.parse_args()
torch.manual_seed(0)
ids = torch.randint(0, 64, (256, 32))
ids[:, 1::2] = (ids[:, 0::2] * 7 + 3) % 64  # every second token is predictable
data = [{"input_ids": x, "attention_mask": torch.ones_like(x)} for x in ids]
tracker = ScaletrackLogger(sweep="pl-ladder", store=a.store, name=f"gru-{a.d_model}")
trainer = L.Trainer(max_steps=a.steps, logger=tracker, callbacks=[tracker], log_every_n_steps=5,
                    default_root_dir=a.out, accelerator="cpu", enable_progress_bar=False,
                    enable_model_summary=False)
trainer.fit(CharLM(d_model=a.d_model), DataLoader(data, batch_size=8, shuffle=True),
            ckpt_path=a.ckpt_path)
