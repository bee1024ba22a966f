"""One plain-JSON coercion for exports, W&B imports and framework hyperparameters."""

from __future__ import annotations

import datetime
import enum
import json
import math

import numpy as np
import pandas as pd

from scaletrack.json_values import plain_json


class Optimiser(enum.Enum):
    ADAMW = "adamw"


def test_every_kind_of_value_becomes_plain_json() -> None:
    value = {
        "lr": np.float32(0.5), "steps": np.int64(3), "grid": np.array([[1.0, np.nan], [2, 3]]),
        "missing": [None, pd.NA, pd.NaT, math.nan, np.float64("inf")], "when":
        pd.Timestamp("2024-05-01 12:00"), "day": datetime.date(2024, 5, 2), "opt": Optimiser.ADAMW,
        "shape": (2, 3), 7: {"nested": True, "flag": np.bool_(False)}, "other": complex(1, 2),
    }
    plain = plain_json(value)
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain  # standard JSON, no NaN
    assert plain == {
        "lr": 0.5, "steps": 3, "grid": [[1.0, None], [2.0, 3.0]],
        "missing": [None, None, None, None, None], "when": "2024-05-01T12:00:00",
        "day": "2024-05-02", "opt": "adamw", "shape": [2, 3],
        "7": {"nested": True, "flag": False}, "other": "(1+2j)",
    }
    assert type(plain["steps"]) is int and type(plain["lr"]) is float


def test_exported_json_records_hold_no_nan(tmp_path) -> None:
    from scaletrack.store.exporters import write_frame

    frame = pd.DataFrame({"run": ["a", "b"], "loss": [2.5, math.nan],
                          "N": pd.array([10, None], dtype="Int64"),
                          "at": [pd.Timestamp("2024-01-01"), pd.NaT]})
    path = write_frame(frame, tmp_path / "runs.jsonl", "jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"run": "a", "loss": 2.5, "N": 10, "at": "2024-01-01T00:00:00"},
                    {"run": "b", "loss": None, "N": None, "at": None}]
