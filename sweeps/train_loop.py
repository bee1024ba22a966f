"""The one training loop, for one model (``train_run``) or a stack of models (``train_group``).

How an update is computed is the :class:`Stepper`'s business: one ``nn.Module`` under torch's
AdamW, or M GPTs whose parameters are stacked on a leading axis. Everything else lives here
once, for M members (M = 1 for a single run):

- batches: member ``m`` draws each step's batch from its own data generator (seeded by its
  ``seed``, restored from its checkpoint), so a member draws the batches a single run of its
  config would draw;
- cadence (:class:`Cadence`): losses are moved to the host every ``log_every`` steps and at
  every eval or checkpoint step (one sync); ``val/loss``, ``tokens`` and ``flops`` are logged
  every ``eval_every`` steps and at the end; checkpoints are written every
  ``checkpoint_every`` steps, at the steps of ``checkpoint_at``, at the end and when stopped;
- checkpoints (:func:`write_checkpoint`, :func:`usable_state`): one file per member with its
  weights, AdamW state, data generator, step and spike history;
- divergence: a training loss that is not finite or exceeds ``DIVERGENCE_FACTOR * ln(vocab)``
  marks that member ``diverged`` (its rows are kept, the others go on);
- claims: every write is fenced by the member's claim, which is also checked every
  ``HEARTBEAT_INTERVAL_S`` seconds and before every checkpoint. A claim taken over by another
  worker either stops the whole loop with ClaimLost (``on_lost="raise"``, a single run) or
  drops that member with status ``lost`` (``on_lost="drop"``, a group).

The ``step`` of a metric is the number of optimizer updates applied to the model that produced
it; its ``tokens`` are the tokens that model has trained on (``step * tokens_per_step``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import nn

from scaletrack.errors import DataError
from scaletrack.models.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from scaletrack.models.data import sample_batch
from scaletrack.models.gpt import GPTConfig
from scaletrack.models.lstm import LSTMConfig
from scaletrack.store import CheckpointRecord, ClaimLost
from scaletrack.sweeps.schedule import lr_at
from scaletrack.sweeps.spikes import SpikeDetector

if TYPE_CHECKING:
    from scaletrack.store.protocol import MetricLogger, WorkerStore
    from scaletrack.sweeps.train import RunPlan, TrainConfig

log = logging.getLogger(__name__)

DIVERGENCE_FACTOR = 4.0  # a loss above this many times ln(vocab) (a uniform guess) diverged
HEARTBEAT_INTERVAL_S = 10.0

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TrainResult:
    status: str  # "finished" | "diverged" | "interrupted" | "lost" (packed member, claim taken)
    final_loss: float | None  # final validation loss, nats/token
    steps: int
    tokens: int
    flops: float
    resumed_from_step: int | None


@dataclass(frozen=True)
class Cadence:
    """When the loop syncs losses, evaluates and checkpoints; steps count finished updates."""

    total: int  # steps of the run
    eval_every: int
    checkpoint_every: int
    log_every: int
    checkpoint_at: frozenset[int]  # extra checkpoint steps (a trunk's branch points)

    @classmethod
    def of(cls, cfg: TrainConfig, total: int) -> Cadence:
        return cls(total, cfg.eval_every, cfg.checkpoint_every, cfg.log_every,
                   frozenset(cfg.checkpoint_at))

    def evaluates_at(self, done: int) -> bool:
        return done % self.eval_every == 0 or done == self.total

    def checkpoints_at(self, done: int) -> bool:
        return done % self.checkpoint_every == 0 or done == self.total or done in self.checkpoint_at

    def syncs_at(self, done: int, pending: int) -> bool:
        """Whether the ``pending`` buffered steps' losses are moved to the host after ``done``."""
        return pending >= self.log_every or self.evaluates_at(done) or self.checkpoints_at(done)


@dataclass
class Member:
    """One model of the loop: its run and the state the loop advances besides the weights."""

    cfg: TrainConfig
    run_key: str
    gen: torch.Generator  # the data generator: every random draw after initialisation
    spikes: SpikeDetector
    resumed_from: int | None = None  # reported in the member's TrainResult

    @classmethod
    def start(cls, cfg: TrainConfig, run_key: str, state: TrainingState | None = None,
              resumed_from: int | None = None) -> Member:
        """A member at step 0 (seeded generator), or at the step a checkpoint ``state`` holds."""
        gen = torch.Generator().manual_seed(cfg.seed)
        spikes = SpikeDetector()
        if state is not None:
            gen.set_state(state.rng["data"])
            spikes = SpikeDetector.from_state(state.meta["spikes"])
        return cls(cfg, run_key, gen, spikes, resumed_from)


class Stepper(Protocol):
    """The numerics of M members: one update, the validation loss and a checkpointable state."""

    def step(self, step: int, lrs: Sequence[float], batches: Sequence[Batch]
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply update ``step`` (0-based) to every member at its lr on its batch; return the
        training losses before the update (M,) in nats/token and the gradient norms (M,)."""
        ...

    def evaluate(self) -> list[float]:
        """Each member's mean validation loss over the fixed eval batches, nats/token."""
        ...

    def member_state(self, m: int, step_done: int, lr: float
                     ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A model and an AdamW optimizer holding member ``m``'s weights and state."""
        ...


def checkpoint_meta(cfg: TrainConfig, mcfg: GPTConfig | LSTMConfig) -> dict[str, Any]:
    """The metadata every checkpoint of a run carries (model and training config)."""
    return {"family": cfg.family, "model": mcfg.to_dict(), "train": cfg.to_dict()}


def same_training(saved: Any, cfg: TrainConfig) -> bool:
    """Whether a checkpoint's saved TrainConfig is this run's (the device may differ)."""
    if not isinstance(saved, dict):
        return False
    ours = {k: v for k, v in cfg.to_dict().items() if k != "device"}
    theirs = {k: v for k, v in saved.items() if k != "device"}
    return json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)


def usable_state(rec: CheckpointRecord, cfg: TrainConfig) -> TrainingState | None:
    """The checkpoint's state if this run can resume from it; None (with a warning) if it is
    corrupt, missing, or written by another training configuration."""
    try:
        state = load_checkpoint(rec.path, rec.sha256)
    except DataError as exc:
        log.warning("run %s: skipping checkpoint at step %s: %s", rec.run_key, rec.step, exc)
        return None
    if not same_training(state.meta.get("train"), cfg) or state.optimizer is None:
        log.warning("run %s: skipping checkpoint at step %s: it was written by another "
                    "training configuration", rec.run_key, rec.step)
        return None
    return state


def write_checkpoint(
    member: Member, plan: RunPlan, checkpoint_dir: Path, model: nn.Module,
    optimizer: torch.optim.Optimizer, step_done: int,
) -> CheckpointRecord:
    """Save the member's state after ``step_done`` updates; return the record to store."""
    cfg = member.cfg
    path = checkpoint_dir / member.run_key / f"step_{step_done:08d}.safetensors"
    meta = checkpoint_meta(cfg, plan.model_config)
    sha = save_checkpoint(path, model, optimizer=optimizer, rng={"data": member.gen.get_state()},
                          meta={**meta, "step": step_done, "spikes": member.spikes.state()})
    tokens = step_done * plan.tokens_per_step
    return CheckpointRecord(
        id=None, run_key=member.run_key, kind="own", N=plan.N, tokens=tokens,
        flops=tokens * plan.flops_per_token, step=step_done, path=str(path), sha256=sha,
        loader=cfg.family, meta=meta,
    )


class TrainingLoop:
    """Steps ``start`` to the plan's last step for every member; see the module docstring."""

    def __init__(
        self,
        stepper: Stepper,
        members: Sequence[Member],
        plan: RunPlan,
        store: WorkerStore,
        checkpoint_dir: Path,
        worker: str,
        *,
        start: int,
        train_tokens: torch.Tensor,
        on_lost: Literal["raise", "drop"],
        stop_event: threading.Event | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        self.stepper, self.members, self.plan = stepper, list(members), plan
        self.store, self.checkpoint_dir, self.worker = store, checkpoint_dir, worker
        self.start, self.train_tokens, self.on_lost = start, train_tokens, on_lost
        self.stop_event, self.on_step = stop_event, on_step
        cfg0 = self.members[0].cfg
        self.cadence = Cadence.of(cfg0, plan.steps)
        self.diverge_at = DIVERGENCE_FACTOR * math.log(plan.model_config.vocab_size)
        M = len(self.members)
        self.alive = [True] * M
        self.results: list[TrainResult | None] = [None] * M
        self.writers: list[MetricLogger] = []
        self.lrs = [0.0] * M
        self.last_saved = start
        # (step, lrs, losses (M,), grad norms (M,), wall s): each step keeps its own clock
        self.pending: list[tuple[int, list[float], torch.Tensor, torch.Tensor, float]] = []
        self.t0 = time.perf_counter()

    # ------------------------------------------------------------------ results and claims
    def _result(self, status: str, m: int, step: int, final: float | None = None
                ) -> TrainResult:
        tokens = step * self.plan.tokens_per_step
        return TrainResult(status, final, step, tokens, tokens * self.plan.flops_per_token,
                           None if status == "lost" else self.members[m].resumed_from)

    def _drop(self, m: int, step_done: int) -> None:
        """Member ``m`` lost its claim to another worker: it writes nothing more."""
        self.alive[m] = False
        self.results[m] = self._result("lost", m, step_done)
        log.warning("run %s: claim taken over by another worker at step %d; this member "
                    "stopped without writing", self.members[m].run_key, step_done)
        if m < len(self.writers):
            with contextlib.suppress(ClaimLost):  # its unwritten rows are refused, not kept
                self.writers[m].close()

    def _write(self, m: int, step_done: int, write: Callable[[], Any]) -> None:
        """One member's store write, fenced by its claim."""
        if self.on_lost == "raise":
            write()
            return
        try:
            write()
        except ClaimLost:
            self._drop(m, step_done)

    def _check_claims(self, step_done: int) -> None:
        """Heartbeat every alive member; a claim another worker holds now raises or drops."""
        for m, member in enumerate(self.members):
            if self.alive[m] and not self.store.heartbeat(member.run_key, self.worker):
                if self.on_lost == "raise":
                    raise ClaimLost(f"worker {self.worker} lost its claim on run "
                                    f"{member.run_key}; it stopped without writing")
                self._drop(m, step_done)

    # ------------------------------------------------------------------ logging and saving
    def _sync(self) -> None:
        """Log the buffered steps (one host sync); a diverged member stops at its bad step."""
        if not self.pending:
            return
        tps = self.plan.tokens_per_step
        losses = torch.stack([lo for _, _, lo, _, _ in self.pending]).tolist()  # (S, M)
        norms = torch.stack([gn for _, _, _, gn, _ in self.pending]).tolist()
        for (step, lrs, _, _, wall), lrow, grow in zip(self.pending, losses, norms, strict=True):
            for m, member in enumerate(self.members):
                if not self.alive[m]:
                    continue
                vals = {"train/loss": lrow[m], "lr": lrs[m], "grad_norm": grow[m]}
                bad = not math.isfinite(lrow[m]) or lrow[m] > self.diverge_at
                if not bad and member.spikes.update(lrow[m]):
                    vals["spike"] = 1.0
                try:
                    self.writers[m].log_many(step, vals, tokens=step * tps, wall_time=wall)
                    if bad:
                        self.writers[m].flush()
                        self.store.finish_run(member.run_key, "diverged",
                                              error=f"training loss not finite or > "
                                              f"{self.diverge_at:.1f} nats at step {step}")
                except ClaimLost:
                    if self.on_lost == "raise":
                        raise
                    self._drop(m, step)
                    continue
                if bad:
                    self.alive[m] = False
                    self.results[m] = self._result("diverged", m, step)
        self.pending.clear()

    def _log_eval(self, done: int, vals: list[float]) -> None:
        tokens = done * self.plan.tokens_per_step
        row_base = {"tokens": float(tokens), "flops": float(tokens * self.plan.flops_per_token)}
        wall = time.perf_counter() - self.t0
        for m in range(len(self.members)):
            if self.alive[m]:
                row = {"val/loss": vals[m], **row_base}
                self._write(m, done, partial(self.writers[m].log_many, done, row,
                                             tokens=tokens, wall_time=wall))

    def _save(self, step_done: int) -> None:
        """Each alive member's checkpoint after ``step_done`` updates."""
        for m in range(len(self.members)):
            if self.alive[m]:
                self._write(m, step_done, self.writers[m].flush)
        self._check_claims(step_done)  # never overwrite a new holder's checkpoint files
        for m, member in enumerate(self.members):
            if not self.alive[m]:
                continue
            model, optimizer = self.stepper.member_state(m, step_done, self.lrs[m])
            record = write_checkpoint(member, self.plan, self.checkpoint_dir, model, optimizer,
                                      step_done)
            self._write(m, step_done, partial(self.store.add_checkpoint, record))
        self.last_saved = step_done

    # ------------------------------------------------------------------ the loop
    def run(self, clear_after: int | None = None) -> list[TrainResult]:
        """Train every member to the end (or until stopped, diverged or lost); one result per
        member. ``clear_after``: first delete each member's metrics after that step (a resume)."""
        if clear_after is not None:
            for m, member in enumerate(self.members):
                self._write(m, clear_after, partial(self.store.delete_metrics_after,
                                                    member.run_key, clear_after))
        self.writers.extend(self.store.metric_writer(mb.run_key) for mb in self.members)
        try:
            for m in range(len(self.members)):
                if not self.alive[m]:  # lost before training started
                    with contextlib.suppress(ClaimLost):
                        self.writers[m].close()
            return self._steps()
        finally:
            for m, writer in enumerate(self.writers):
                if self.alive[m]:
                    writer.close()
                else:  # diverged (flushed) or lost (refused): nothing left to write
                    with contextlib.suppress(ClaimLost):
                        writer.close()

    def _steps(self) -> list[TrainResult]:
        total, start, cadence = self.cadence.total, self.start, self.cadence
        self.t0 = last_hb = time.perf_counter()
        vals: list[float] = []
        for step in range(start, total):
            self.lrs = [lr_at(step, total, mb.cfg.lr, mb.cfg.schedule, **mb.cfg.schedule_kwargs())
                        if self.alive[m] else 0.0 for m, mb in enumerate(self.members)]
            batches = [sample_batch(self.train_tokens, mb.cfg.batch_size, mb.cfg.context, mb.gen)
                       for mb in self.members]
            losses, gnorms = self.stepper.step(step, self.lrs, batches)
            self.pending.append((step, self.lrs, losses, gnorms, time.perf_counter() - self.t0))
            done = step + 1
            if cadence.syncs_at(done, len(self.pending)):
                self._sync()
                if not any(self.alive):
                    break
            if cadence.evaluates_at(done):
                vals = self.stepper.evaluate()
                self._log_eval(done, vals)
            if cadence.checkpoints_at(done) and any(self.alive):
                self._save(done)
            now = time.perf_counter()
            if now - last_hb >= HEARTBEAT_INTERVAL_S:
                self._check_claims(done)
                last_hb = now
            if self.on_step is not None:
                self.on_step(done, total)
            if not any(self.alive):
                break
            if self.stop_event is not None and self.stop_event.is_set() and done < total:
                return self._stop(done)
        self._sync()
        if start >= total:  # resumed from the final checkpoint: only the final eval is left
            vals = self.stepper.evaluate()
        for m, member in enumerate(self.members):
            if not self.alive[m]:
                continue
            self._write(m, total, self.writers[m].flush)
            self._write(m, total, partial(self.store.finish_run, member.run_key, "finished",
                                          final_loss=vals[m]))
            if self.alive[m]:
                self.results[m] = self._result("finished", m, total, vals[m])
        return self._all_results()

    def _stop(self, done: int) -> list[TrainResult]:
        """Stopped from outside: log, checkpoint and release every alive member."""
        self._sync()
        if self.last_saved != done and any(self.alive):
            self._save(done)
        for m, member in enumerate(self.members):
            if self.alive[m]:
                self.results[m] = self._result("interrupted", m, done)
                self._write(m, done, self.writers[m].flush)
                if self.on_lost == "raise":
                    self.store.release_run(member.run_key, self.worker)
                else:
                    with contextlib.suppress(ClaimLost):  # taken over: nothing to release
                        self.store.release_run(member.run_key, self.worker)
        return self._all_results()

    def _all_results(self) -> list[TrainResult]:
        results = [r for r in self.results if r is not None]
        if len(results) != len(self.members):
            raise RuntimeError("training loop ended without a result for every member")
        return results
