"""Which way an evaluation metric improves, read from what the metric is.

Three kinds besides the default (higher is better, e.g. acc, acc_norm, exact_match, f1):
- lower is better towards a known ideal: bias and error scores that are still abilities
  to gain (crows_pairs `likelihood_difference`, the mean absolute log-likelihood gap in
  nats between a stereotyped sentence and its counterpart, ideal 0; translation and
  transcription error rates ter / wer / cer, ideal 0; `brier_score`, ideal 0; raw
  `edit_distance` to the reference, ideal 0). The emergence classifier inverts these.
- two-sided: best at an interior value, so neither direction is right everywhere
  (crows_pairs `pct_stereotype`, the share of pairs where the stereotyped sentence is the
  more likely; 0.5 is unbiased, values below 0.5 prefer the anti-stereotype).
- a loss: next-token loss, bits per byte, perplexity, nll. It falls smoothly with scale
  and is not a capability with a transition; left out unless the caller says otherwise.

Names are matched on the metric's base name (lm-evaluation-harness 0.4's "metric,filter"
keys are cut at the comma), case-insensitively. A caller's override (metric -> lower is
better, True or False) always wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# metric base name -> the ideal value it falls towards
LOWER_IS_BETTER: dict[str, float] = {
    "likelihood_difference": 0.0,
    "ter": 0.0,
    "wer": 0.0,
    "cer": 0.0,
    "brier_score": 0.0,
    "edit_distance": 0.0,
}
# metric base name -> the interior value that is best
TWO_SIDED: dict[str, float] = {"pct_stereotype": 0.5}
LOSS_WORDS = ("loss", "bpb", "ppl", "perplexity", "nll", "bits")
KINDS = ("higher", "lower", "two_sided", "loss")


@dataclass(frozen=True)
class MetricDirection:
    """kind: higher | lower | two_sided | loss; ideal: the best value where known (lower:
    the value it falls towards; two_sided: the interior optimum); overridden: set by the
    caller rather than read from the name."""

    metric: str
    kind: str
    ideal: float | None = None
    overridden: bool = False

    @property
    def lower_is_better(self) -> bool:
        return self.kind in ("lower", "loss")


def base_name(metric: str) -> str:
    """'likelihood_difference,none' -> 'likelihood_difference' (lower case)."""
    return metric.split(",", 1)[0].strip().lower()


def metric_direction(metric: str,
                     override: Mapping[str, bool] | None = None) -> MetricDirection:
    """How `metric` improves; `override` (metric name -> lower is better) wins over the
    name. An overridden lower-is-better metric keeps its known ideal, if any."""
    base = base_name(metric)
    if override is not None and metric in override:
        if not override[metric]:
            return MetricDirection(metric, "higher", None, True)
        kind = "lower" if base in LOWER_IS_BETTER or base in TWO_SIDED else "loss"
        return MetricDirection(metric, kind, LOWER_IS_BETTER.get(base, TWO_SIDED.get(base)),
                               True)
    if base in LOWER_IS_BETTER:
        return MetricDirection(metric, "lower", LOWER_IS_BETTER[base])
    if base in TWO_SIDED:
        return MetricDirection(metric, "two_sided", TWO_SIDED[base])
    if any(w in base for w in LOSS_WORDS):
        return MetricDirection(metric, "loss")
    return MetricDirection(metric, "higher")
