"""`ScaletrackCallback`: a Hugging Face `transformers.Trainer` run, tracked in one line.

```python
from scaletrack.integrations.transformers import ScaletrackCallback
trainer = Trainer(model=model, args=args, train_dataset=ds,
                  callbacks=[ScaletrackCallback(sweep="ladder", tokens=D)])
```

- N: counted from the model when training begins (non-embedding parameters; N_total all).
- D: the planned budget `tokens=`, else the tokens seen when training ends. Tokens seen come
  from the Trainer's own counter (`include_num_input_tokens_seen`, which the callback turns on:
  "non_padding" counts attention-mask tokens, across gradient accumulation and summed over
  data-parallel ranks).
- Config, and so the run key: `config=` if given, else the model's config and the training
  settings that change the result (learning rate, batch size, steps, seed, ...; never paths or
  dates), so a restarted script (`resume_from_checkpoint`) resumes the same run.
- Logged: `train/loss`, `train/learning_rate`, `train/grad_norm`, `train/epoch`, `eval/*`
  (the Trainer's `eval_` prefix becomes `eval/`), the end-of-training summary as `summary/*`;
  each at the optimizer step with tokens seen.
- Checkpoints: each `checkpoint-STEP` folder the Trainer saves is registered (its weights file).
- Ending: `finished` when training ends; an exception that escapes `trainer.train()` leaves the
  run to the tracking API's exit rules (`failed` on an uncaught exception).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from scaletrack.integrations import unwrap
from scaletrack.json_values import plain_json
from scaletrack.tracking import Run, init

# Training settings that change what a run learns: they name the run (with the model config).
KEY_ARGS = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
            "max_grad_norm", "num_train_epochs", "max_steps", "lr_scheduler_type",
            "warmup_ratio", "warmup_steps", "per_device_train_batch_size",
            "gradient_accumulation_steps", "seed", "data_seed", "optim", "bf16", "fp16")
# Keys only the end-of-training summary carries (every log has train_runtime in recent versions).
SUMMARY_KEYS = ("train_loss", "train_samples_per_second", "total_flos")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


class ScaletrackCallback(TrainerCallback):
    """Track a `transformers.Trainer` run in a scaletrack store (see the module docstring).

    `sweep`, `config`, `name`, `store`, `resume`, `tags` and the FLOP keywords (`n_layer`,
    `d_model`, `context`, `flops_per_token`) are `scaletrack.init`'s; `tokens` is the planned
    budget D (tokens); `params` states N instead of counting it; `count_tokens` is "non_padding"
    or "all".
    """

    def __init__(self, sweep: str | None = None, config: Mapping[str, Any] | None = None, *,
                 tokens: int | None = None, params: int | None = None, name: str | None = None,
                 store: Any = None, resume: str = "allow", tags: tuple[str, ...] = (),
                 count_tokens: str = "non_padding", **flops: Any) -> None:
        if count_tokens not in ("non_padding", "all"):
            raise ValueError(f"count_tokens must be 'non_padding' or 'all', got {count_tokens!r}")
        self.sweep, self.config, self.tokens, self.params = sweep, config, tokens, params
        self.name, self.store, self.resume, self.tags = name, store, resume, tags
        self.count_tokens, self.flops = count_tokens, flops
        self.run: Run | None = None

    # ------------------------------------------------------------------ Trainer hooks
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if args.include_num_input_tokens_seen in ("no", False, None):
            args.include_num_input_tokens_seen = self.count_tokens

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       **kwargs: Any) -> None:
        if self.run is not None or not state.is_world_process_zero:
            return
        module = unwrap(model)
        config = dict(self.config) if self.config is not None else run_config(args, module)
        self.run = init(self.sweep, config, params=self.params, tokens=self.tokens,
                        model=module, name=self.name, store=self.store, resume=self.resume,
                        tags=self.tags, family="transformers", **self.flops)

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        if self.run is None or not logs:
            return
        summary = any(k in logs for k in SUMMARY_KEYS)
        values: dict[str, Any] = {}
        for key, value in logs.items():
            if key == "num_input_tokens_seen":
                continue
            if summary:
                values[f"summary/{key}"] = value
            elif key.startswith("eval_"):
                values[f"eval/{key[5:]}"] = value
            else:
                values[f"train/{key}"] = value
        self.run.log(values, step=state.global_step, tokens=tokens_seen(state))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run is None or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
        if weights is not None:
            self.run.checkpoint(weights, step=state.global_step, tokens=tokens_seen(state),
                                meta={"folder": str(folder)})

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run is not None:
            self.run.finish("finished")


def tokens_seen(state: Any) -> int | None:
    """The Trainer's count of input tokens seen so far (None before it counts any)."""
    seen = getattr(state, "num_input_tokens_seen", 0)
    return int(seen) if seen else None


def run_config(args: Any, model: Any) -> dict[str, Any]:
    """What names a Trainer run: lr and seed (as every run's columns), the training settings in
    `KEY_ARGS`, and the model's config (without versions and paths)."""
    train = {k: plain_json(getattr(args, k)) for k in KEY_ARGS if hasattr(args, k)}
    config: dict[str, Any] = {"lr": train.pop("learning_rate", None),
                              "seed": train.pop("seed", None), "train": train}
    model_config = getattr(model, "config", None)
    if model_config is not None and hasattr(model_config, "to_diff_dict"):
        drop = {"transformers_version", "_name_or_path", "torch_dtype", "dtype",
                "_attn_implementation_autoset", "_commit_hash"}
        config["model"] = {k: plain_json(v) for k, v in model_config.to_diff_dict().items()
                           if k not in drop}
    elif model is not None:
        config["model"] = {"class": type(model).__name__}
    return config

