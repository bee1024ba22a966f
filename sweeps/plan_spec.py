"""The `[plan]` table of a grid file: which cells a planner chose, and when to stop.

    [plan]
    target_compute = 1e14        # FLOPs of the large run the small ones should predict
    target_n = 5e7               # optional: its parameters N (non-embedding)
    target_tokens = 3e8          # optional: its training tokens D
    budget = 1e12                # FLOPs the small runs may spend (default: every cell)
    until_width = 0.02           # adaptive: stop once the 95 % band at the target is this
                                 #   narrow (relative width, 0.02 = 2 %)
    cells = [{ size = "L1-H2-D16", tokens = 200_000 }, ...]   # the planned cells, in order

With `cells`, only those cells of sizes x tokens are part of the grid (`scaletrack plan` writes
them); with `until_width`, `sweep run` trains them one at a time in the planner's order, refits
after each and stops when the band is narrow enough or the budget is spent.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from scaletrack.sweeps.spec_sections import PositiveInt, _Section

PositiveFlops = Annotated[float, Field(gt=0.0, le=1e40)]


class PlannedCell(_Section):
    """One planned cell: a size of `[model]` (its label, e.g. "L2-H2-D48") and a token budget
    of `[axes] tokens`."""

    size: str = Field(min_length=1, max_length=200)
    tokens: PositiveInt


class PlanSpec(_Section):
    """Planner settings of a grid (see the module docstring)."""

    target_compute: PositiveFlops | None = Field(None, description="FLOPs of the target run")
    target_n: PositiveFlops | None = Field(None, description="parameters of the target run")
    target_tokens: PositiveFlops | None = Field(None, description="tokens of the target run")
    budget: PositiveFlops | None = Field(None, description="FLOPs the small runs may spend")
    until_width: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        None, description="stop once the 95 % band at the target is this narrow (0.02 = 2 %)"
    )
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 0
    cells: list[PlannedCell] | None = Field(None, min_length=1)

    @field_validator("target_compute", "target_n", "target_tokens", "budget")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"expected a finite positive number, got {v!r}")
        return v

    @field_validator("cells")
    @classmethod
    def _distinct(cls, v: list[PlannedCell] | None) -> list[PlannedCell] | None:
        if v is not None:
            seen = [(c.size, c.tokens) for c in v]
            if len(set(seen)) != len(seen):
                raise ValueError("expected distinct planned cells (found a duplicate)")
        return v

    @model_validator(mode="after")
    def _target(self) -> PlanSpec:
        if self.until_width is not None and self.target_compute is None and not (
            self.target_n and self.target_tokens
        ):
            raise ValueError("@until_width: an adaptive run needs a target: target_compute "
                             "(FLOPs), or target_n and target_tokens")
        return self

    @property
    def adaptive(self) -> bool:
        """Whether `sweep run` trains the cells one at a time and stops on its own."""
        return self.until_width is not None
