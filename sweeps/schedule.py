"""Learning-rate schedules as pure functions of the step.

- cosine: linear warmup to ``lr``, then cosine decay to ``min_lr_frac * lr`` at the last step
  of the run's own budget (the schedule knows the run's D, as Chinchilla prescribes).
- wsd (warmup-stable-decay): warmup, constant ``lr``, then a cooldown to ``min_lr_frac * lr``
  over the last ``decay_steps``, linear or "1-sqrt" (lr falls as 1 - sqrt(progress), the shape
  Hägele et al. 2024 found best). Because the stable phase does not depend on the budget,
  several budgets can branch their cooldowns off one run: the lr of a branch that starts
  cooling at ``decay_start`` is :func:`wsd_lr` with that ``decay_start`` (see
  :func:`branch_point`).
- constant: warmup then constant.
"""

from __future__ import annotations

import math

from scaletrack.errors import ConfigError

SCHEDULES = ("cosine", "wsd", "constant")
COOLDOWNS = ("linear", "1-sqrt")


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warmup multiplier: (step + 1) / warmup_steps, capped at 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def cosine_lr(
    step: int, total_steps: int, lr: float, warmup_steps: int, min_lr_frac: float = 0.1
) -> float:
    """Warmup then cosine from ``lr`` to ``min_lr_frac * lr`` at ``total_steps - 1``."""
    if step < warmup_steps:
        return lr * warmup_factor(step, warmup_steps)
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    floor = min_lr_frac * lr
    return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def wsd_lr(
    step: int,
    lr: float,
    warmup_steps: int,
    decay_start: int,
    decay_steps: int,
    min_lr_frac: float = 0.1,
    cooldown: str = "linear",
) -> float:
    """WSD lr at ``step``; the cooldown runs ``decay_steps`` from ``decay_start``.

    The cooldown's last step reaches ``min_lr_frac * lr``; ``cooldown`` is "linear" or "1-sqrt".
    """
    if step < warmup_steps:
        return lr * warmup_factor(step, warmup_steps)
    if step < decay_start:
        return lr
    progress = min(1.0, (step - decay_start + 1) / max(1, decay_steps))
    if cooldown == "1-sqrt":
        progress = math.sqrt(progress)
    elif cooldown != "linear":
        raise ConfigError(f"unknown cooldown {cooldown!r}; expected one of {COOLDOWNS}")
    return lr * (1.0 - (1.0 - min_lr_frac) * progress)


def decay_steps_for(total_steps: int, decay_frac: float) -> int:
    """Cooldown length (steps) of a ``total_steps`` wsd run: round(decay_frac * total), >= 1."""
    return min(total_steps, max(1, int(round(decay_frac * total_steps))))


def branch_point(total_steps: int, decay_frac: float) -> int:
    """The step at which a ``total_steps`` wsd branch leaves its constant-lr trunk."""
    return total_steps - decay_steps_for(total_steps, decay_frac)


def lr_at(
    step: int,
    total_steps: int,
    lr: float,
    schedule: str = "cosine",
    *,
    warmup_frac: float = 0.05,
    decay_frac: float = 0.2,
    min_lr_frac: float = 0.1,
    cooldown: str = "linear",
    warmup_steps: int | None = None,
) -> float:
    """The lr of ``schedule`` at ``step`` of a ``total_steps`` run (fractions of total_steps).

    ``warmup_steps`` replaces ``warmup_frac * total_steps`` when given (the trunk and branches
    of one wsd model share one warmup, whatever their budget).
    """
    warmup = int(round(warmup_frac * total_steps)) if warmup_steps is None else warmup_steps
    if schedule == "cosine":
        return cosine_lr(step, total_steps, lr, warmup, min_lr_frac)
    if schedule == "wsd":
        decay_steps = decay_steps_for(total_steps, decay_frac)
        return wsd_lr(step, lr, warmup, total_steps - decay_steps, decay_steps, min_lr_frac,
                      cooldown)
    if schedule == "constant":
        return lr * warmup_factor(step, warmup)
    raise ConfigError(f"unknown lr schedule {schedule!r}; expected one of {SCHEDULES}")
