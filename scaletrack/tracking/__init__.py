"""The tracking API: log a training script of your own into the store, as short as `wandb.log`.

```python
import scaletrack
with scaletrack.init(sweep="my-ladder", config=cfg, model=model, tokens=D) as run:
    for step in ...:
        run.log({"train/loss": loss, "lr": lr}, step=step, tokens=seen)
    run.log_eval("hellaswag", "acc", 0.41, step=step)
    run.checkpoint("ckpt/step_1000.pt", step=1000, tokens=seen)
```

What scaletrack needs that other trackers do not: N (non-embedding parameters: `params=N`,
or `model=` to count them) and D (tokens: the budget `tokens=`, and tokens seen in `log`).

Keys and claims. A run behaves like a sweep cell: its key is
`make_run_key({"sweep": sweep, "train": config})` (the device left out), the same rule as grid
cells, so running the same script again resumes the same run; `resume="new"` starts a fresh
run of the same config instead. The process holds the run by a claim: a holder on this host
whose process is gone (PID and start time) is taken over at once, one elsewhere after its
heartbeat is `stale_after_s` old; every write carries the claim's generation, so a writer
whose claim was taken over is refused (`ClaimLost`), never mixed in.

Endings. A normal return or `sys.exit(0)` -> `finished`; an exception, a non-zero exit,
SIGTERM or Ctrl-C -> `failed` (resumable). A child made by `os.fork()` never finalises its
parent's run and logs nothing.

Values. `log` checks each value where it is called (`store.metric_values`): numbers, numpy
scalars and 0-d tensors are kept; None is skipped; nested dicts become "a/b" names; anything
else is refused for that key alone, with one `MetricValueWarning` naming the key and the step.
A bad `step` or `tokens` (not a whole number from 0 to 2**63 - 1) costs only itself: the
values are logged at the previous step + 1 (the step an omitted `step` gets), or without
tokens, with one warning per kind (later ones counted in `run.ignored`). N (`params`) and D
(`tokens`) given to `init` are whole numbers from 1 to 2**63 - 1 (`scaletrack.counts`).
Rows go to a background writer (`store.MetricWriter`), so the step never waits for the database
(a 0-d tensor is read off its device there, not in the step).

Distributed trainers. Under torchrun/accelerate (RANK and WORLD_SIZE set), rank 0 owns the run
and the other ranks' calls do nothing (`run.active` is False; they still get `resume_from`).
`per_rank=True` gives every rank a run of its own (its config gains `rank`).

C = FLOPs per token × D, with FLOPs per token = 6N, plus 6·n_layer·context·d_model when the
shape is given, or the user's `flops_per_token`.

Inside a grid's command cell the environment names the run (SCALETRACK_RUN), the store
(SCALETRACK_STORE), the worker holding the claim and its generation (SCALETRACK_WORKER,
SCALETRACK_CLAIM), where checkpoints go (SCALETRACK_CHECKPOINT_DIR) and, on resume, the newest
registered checkpoint (SCALETRACK_RESUME_FROM); `init()` attaches to that run, and a
`params=` it is given replaces the grid's N.
"""

from scaletrack.errors import RunBusyError
from scaletrack.tracking.attach import (
    count_params,
    distributed_rank,
    flops_per_token,
    init,
    run_key_for,
)
from scaletrack.tracking.run import (
    ENV_CHECKPOINT_DIR,
    ENV_CLAIM,
    ENV_RESUME_FROM,
    ENV_RUN,
    ENV_STORE,
    ENV_WORKER,
    RESUME_MODES,
    Run,
)

__all__ = [
    "ENV_CHECKPOINT_DIR", "ENV_CLAIM", "ENV_RESUME_FROM", "ENV_RUN", "ENV_STORE", "ENV_WORKER",
    "RESUME_MODES", "Run", "RunBusyError", "count_params", "distributed_rank",
    "flops_per_token", "init", "run_key_for",
]
