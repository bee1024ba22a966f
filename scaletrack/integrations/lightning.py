"""`ScaletrackLogger`: a PyTorch Lightning run, tracked by scaletrack.

```python
from scaletrack.integrations.lightning import ScaletrackLogger
tracker = ScaletrackLogger(sweep="ladder", tokens=D)
trainer = L.Trainer(logger=tracker, callbacks=[tracker], max_steps=1000)
```

A Lightning `Logger` sees metrics but neither the model nor the batches, so the same object
is also a `Callback`: pass it in both places. As a callback it counts N from the
LightningModule when fitting is set up (non-embedding parameters) and the tokens of every training
batch (`integrations.batch_tokens`: attention-mask tokens of a dict batch, else the size of
the token-id tensor; summed over data-parallel ranks, every micro-batch of gradient
accumulation counted; kept in the checkpoint, so a resumed fit counts on).

- Config, and so the run key: `config=` if given, else the module's `save_hyperparameters()`.
  The run key is also the logger's version, so checkpoints go to <root>/<sweep>/<key>/.
- Logged: every metric Lightning logs, at `trainer.global_step`, with the tokens seen.
- Checkpoints: each file `ModelCheckpoint` saves is registered (due "not yet" ideas marked).
- Ending: `finished` when `fit` succeeds, `failed` (resumable) when it raises or is
  interrupted. Metrics logged after the run finished (a later `trainer.test`) are dropped
  with one warning.
"""

from __future__ import annotations

import warnings
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from scaletrack.integrations import batch_tokens
from scaletrack.json_values import plain_json
from scaletrack.tracking import Run, init


class ScaletrackLogger(Logger, Callback):
    """Track a Lightning fit in a scaletrack store (see the module docstring).

    `sweep`, `config`, `name`, `store`, `resume`, `tags`, `params` and the FLOP keywords
    (`n_layer`, `d_model`, `context`, `flops_per_token`) are `scaletrack.init`'s; `tokens` is
    the planned budget D (tokens), else D is the tokens seen when the fit ends.
    """

    def __init__(self, sweep: str | None = None, config: Mapping[str, Any] | None = None, *,
                 tokens: int | None = None, params: int | None = None, name: str | None = None,
                 store: Any = None, resume: str = "allow", tags: tuple[str, ...] = (),
                 count_tokens: str = "non_padding", **flops: Any) -> None:
        super().__init__()
        if count_tokens not in ("non_padding", "all"):
            raise ValueError(f"count_tokens must be 'non_padding' or 'all', got {count_tokens!r}")
        self.sweep, self.config, self.tokens, self.params = sweep, config, tokens, params
        self.run_name, self.store, self.resume, self.tags = name, store, resume, tags
        self.non_padding, self.flops = count_tokens == "non_padding", flops
        self.run: Run | None = None
        self.tokens_seen = 0
        self._trainer: Any = None
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ Logger
    @property
    def name(self) -> str:
        return self.sweep or "scaletrack"

    @property
    def version(self) -> str:
        return self.run.run_key if self.run is not None else "pending"

    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any,
                        **kwargs: Any) -> None:
        """Hyperparameters name the run when it starts (`setup`); nothing to do later."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.run is None:
            self._warn_once("callback", "ScaletrackLogger logged before fitting started: pass "
                            "it in Trainer(callbacks=[...]) too, so it can count N and tokens")
            return
        if self.run.active and self._finished():
            self._warn_once("finished", f"run {self.run.run_key} is finished; metrics logged "
                            "after fit (e.g. by trainer.test) are not recorded")
            return
        values = {k: v for k, v in metrics.items() if k != "epoch" or step is None}
        self.run.log(values, step=step if step is not None else None,
                     tokens=self.tokens_seen or None)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        path = (getattr(checkpoint_callback, "_last_checkpoint_saved", "")
                or getattr(checkpoint_callback, "last_model_path", "")
                or getattr(checkpoint_callback, "best_model_path", ""))
        if self.run is None or not path or self._finished():
            return
        step = int(self._trainer.global_step) if self._trainer is not None else None
        self.run.checkpoint(path, step=step, tokens=self.tokens_seen or None)

    def finalize(self, status: str) -> None:
        if self.run is None or self._finished():
            return
        if status == "success":
            self.run.finish("finished")
        else:
            self.run.finish("failed", error=f"lightning fit {status}")

    # ------------------------------------------------------------------ Callback
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Start (or resume) the run before ModelCheckpoint picks its folder, which is then
        <root>/<sweep>/<run key>/checkpoints: one folder per run."""
        if stage != "fit":
            return
        self._trainer = trainer
        if self.run is not None and not self._finished():
            return
        config = dict(self.config) if self.config is not None else hyperparameters(pl_module)
        self.run = init(self.sweep, config, params=self.params, tokens=self.tokens,
                        model=pl_module, name=self.run_name, store=self.store,
                        resume=self.resume, tags=self.tags, family="lightning", **self.flops)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        n = batch_tokens(batch, non_padding=self.non_padding) or 0
        if trainer.world_size > 1:  # a collective: every rank calls it, every batch
            n = int(trainer.strategy.reduce(torch.tensor(n, device=pl_module.device),
                                            reduce_op="sum").item())
        self.tokens_seen += n

    def state_dict(self) -> dict[str, Any]:
        return {"tokens_seen": self.tokens_seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tokens_seen = int(state_dict.get("tokens_seen", 0))

    # ------------------------------------------------------------------ helpers
    def _finished(self) -> bool:
        return self.run is not None and self.run.closed

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"scaletrack: {message}", RuntimeWarning, stacklevel=3)


def hyperparameters(module: Any) -> dict[str, Any]:
    """The module's saved hyperparameters as plain JSON data, with its class name; without
    any, the class name and parameter count (so two sizes never share a run key)."""
    hparams = dict(getattr(module, "hparams", {}) or {})
    config: dict[str, Any] = {k: plain_json(v) for k, v in hparams.items()}
    config.setdefault("model_class", type(module).__name__)
    if len(config) == 1:
        config["params"] = sum(p.numel() for p in module.parameters())
    return config

