"""LR schedules and the spike detector."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaletrack.errors import ConfigError
from scaletrack.sweeps.schedule import cosine_lr, lr_at, wsd_lr
from scaletrack.sweeps.spikes import SpikeDetector, find_spikes


def test_cosine_warmup_then_decay_to_floor() -> None:
    lrs = [lr_at(s, 100, 1.0, "cosine", warmup_frac=0.1, min_lr_frac=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.1)
    expected = 0.5 * (1 + math.cos(math.pi * 44 / 89))
    assert cosine_lr(54, 100, 1.0, 10, 0.0) == pytest.approx(expected)


def test_wsd_branches_share_the_stable_phase() -> None:
    long = [wsd_lr(s, 1.0, 10, 800, 200) for s in range(1000)]
    short = [lr_at(s, 500, 1.0, "wsd", warmup_frac=0.02, decay_frac=0.2) for s in range(500)]
    assert short[:400] == long[:400]  # same warmup (10 steps) and stable phase
    assert long[500] == 1.0 and short[-1] == pytest.approx(0.1)
    assert long[-1] == pytest.approx(0.1)
    assert lr_at(5, 100, 2.0, "constant", warmup_frac=0.0) == 2.0
    with pytest.raises(ConfigError, match="schedule"):
        lr_at(0, 10, 1.0, "linear")


def test_spike_detector_flags_jumps_only_and_resumes() -> None:
    rng = np.random.default_rng(0)
    losses = 3.0 + 0.01 * rng.standard_normal(200)
    losses[120] = 4.0
    flags = find_spikes(losses)
    assert flags[120] and flags.sum() == 1
    det = SpikeDetector()
    for x in losses[:100]:
        det.update(float(x))
    clone = SpikeDetector.from_state(det.state())
    assert [det.update(float(x)) for x in losses[100:]] == [
        clone.update(float(x)) for x in losses[100:]
    ]
    assert not find_spikes(np.linspace(5, 2, 100)).any()  # a falling loss is never a spike
