"""What a cell will cost before it runs: memory (bytes) and wall time (seconds), estimated from
its parameters N, context, batch size and device, so a grid that cannot fit is refused before
anything is written or allocated.

Memory: AdamW training in fp32 keeps weights, gradients and two moments, 16 bytes a parameter;
activations follow Korthikanti et al. 2022 (about 34·d_model + 5·n_head·context bytes per token
and layer in 16-bit, doubled for fp32), plus the logits and their gradient. Wall time: planned
training FLOPs over a deliberately round sustained rate per device. Both are estimates, meant
to catch grids off by orders of magnitude, not to plan a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from scaletrack.errors import ConfigError

BYTES_PER_PARAM = 16  # fp32 weights + gradients + AdamW first and second moments
SUSTAINED_FLOPS = {"cpu": 1e10, "cuda": 5e13}  # FLOP/s one worker sustains, roughly
MAX_CELL_HOURS = 72.0  # longer cells need --force
MEMORY_SLACK = 1.2  # allocator and framework overhead


@dataclass(frozen=True)
class CellCost:
    """Estimated peak memory (bytes) and wall time (seconds) of one cell."""

    label: str
    memory_bytes: float
    seconds: float


def _activation_bytes(cfg: Any, mcfg: Any) -> float:
    tokens = float(cfg.batch_size) * float(cfg.context)
    vocab = float(getattr(mcfg, "vocab_size", 256))
    logits = tokens * vocab * 4 * 3  # logits, softmax, gradient (fp32)
    if hasattr(mcfg, "d_model"):
        per_layer = 34.0 * mcfg.d_model + 5.0 * mcfg.n_head * float(cfg.context)
        return float(tokens * mcfg.n_layer * per_layer * 2 + logits)
    # LSTM gates and states
    return float(tokens * mcfg.n_layer * float(mcfg.d_hidden) * 4 * 10 + logits)


def cell_cost(cell: Any) -> CellCost:
    """The estimate for a `grid.Cell` (its config's device decides the rate)."""
    from scaletrack.sweeps.train import model_config

    cfg = cell.config
    mcfg = model_config(cfg)
    memory = (float(cell.N_total) * BYTES_PER_PARAM + _activation_bytes(cfg, mcfg)) * MEMORY_SLACK
    device = "cuda" if str(cfg.device).startswith("cuda") else "cpu"
    label = f"{cell.size_label} D={cell.D:,} seed={cell.seed} lr={cell.lr:g}"
    return CellCost(label, memory, float(cell.C) / SUSTAINED_FLOPS[device])


def device_memory(device: str) -> float | None:
    """Bytes of memory one cell may use on `device` (RAM for cpu, the first GPU's memory for
    cuda); None when unknown here (a CUDA grid checked on a machine without a GPU)."""
    if str(device).startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                return float(torch.cuda.get_device_properties(0).total_memory)
        except Exception:  # noqa: BLE001 - no usable CUDA: unknown
            return None
        return None

    return float(psutil.virtual_memory().total)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def check_budget(cells: Sequence[Any], *, source: str = "<grid>", force: bool = False,
                 max_hours: float = MAX_CELL_HOURS) -> list[str]:
    """Refuse (ConfigError) a grid with a cell that cannot fit in memory, or one that would
    train longer than `max_hours` unless `force`; returns warnings (forced slow cells)."""
    warnings: list[str] = []
    memory_cache: dict[str, float | None] = {}
    for cell in cells:
        if cell.family not in ("gpt", "lstm"):
            continue  # a command cell's own model: nothing here knows what it costs
        cost = cell_cost(cell)
        device = str(cell.config.device)
        if device not in memory_cache:
            memory_cache[device] = device_memory(device)
        available = memory_cache[device]
        if available is not None and cost.memory_bytes > available:
            raise ConfigError(
                f"{source}: cell {cost.label}: needs about {_human_bytes(cost.memory_bytes)} "
                f"({cell.N_total:,} parameters, batch {cell.config.batch_size} x context "
                f"{cell.config.context}) but {device} has {_human_bytes(available)}"
            )
        hours = cost.seconds / 3600
        if hours > max_hours:
            rate = SUSTAINED_FLOPS["cuda" if device.startswith("cuda") else "cpu"]
            text = (f"{source}: cell {cost.label}: about {hours:.3g} hours of training "
                    f"({cell.C:.3g} FLOPs at ~{rate:.0e} FLOP/s), over the {max_hours:g} h limit")
            if not force:
                raise ConfigError(text + "; pass --force to run it anyway")
            warnings.append(text)
    return warnings
