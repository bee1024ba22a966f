"""One-line integrations with the trainers scaling studies already use.

- `scaletrack.integrations.transformers.ScaletrackCallback`: a Hugging Face `TrainerCallback`
  (`pip install 'scaletrack[transformers]'`).
- `scaletrack.integrations.lightning.ScaletrackLogger`: a PyTorch Lightning `Logger` that is
  also a `Callback` (`pip install 'scaletrack[lightning]'`).

Both attach a tracked run (`scaletrack.init`) when training begins, with N counted from the
model (non-embedding parameters, `scaletrack.count_params`) and D from the tokens actually
seen; log losses, learning rate and gradient norm with their step and tokens; register saved
checkpoints (so due "not yet" ideas are marked); and finish or fail the run with the trainer.
Rank 0 only, as in the tracking API. The frameworks are imported only by these modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def batch_tokens(batch: Any, *, non_padding: bool = True) -> int | None:
    """Tokens in one batch (a count, no device read until `.item()` on the result's tensor):
    a mapping's `attention_mask` sum (non-padding tokens) or its `input_ids` size; a tensor's
    size when it holds integers (token ids); a tuple's first element by the same rules. None
    when the batch holds no token ids this can recognise."""
    if isinstance(batch, Mapping):
        mask = batch.get("attention_mask")
        if non_padding and mask is not None and hasattr(mask, "sum"):
            return int(mask.sum().item())
        ids = batch.get("input_ids")
        return int(ids.numel()) if ids is not None and hasattr(ids, "numel") else None
    if isinstance(batch, tuple | list) and batch:
        return batch_tokens(batch[0], non_padding=non_padding)
    is_floating = getattr(batch, "is_floating_point", None)
    if callable(is_floating) and hasattr(batch, "numel") and not is_floating():
        return int(batch.numel())
    return None


def unwrap(model: Any) -> Any:
    """The user's module inside DDP/FSDP/compile wrappers (their `.module` / `._orig_mod`)."""
    seen = 0
    while seen < 8 and (hasattr(model, "module") or hasattr(model, "_orig_mod")):
        model = getattr(model, "_orig_mod", None) or model.module
        seen += 1
    return model
