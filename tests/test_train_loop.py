"""The training loop against a real SQLite store: learning, exact resume, divergence."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from scaletrack.models.checkpoint import load_checkpoint_model
from scaletrack.models.data import load_tokens, unigram_entropy
from scaletrack.store import Store
from scaletrack.sweeps.train import TrainConfig, plan_run, train_run

DATA = {"corpus": "stdlib", "max_bytes": 1_000_000}
REPO = Path(__file__).resolve().parents[1]


def small(**kw) -> TrainConfig:
    base = dict(
        family="gpt", model={"n_layer": 2, "n_head": 2, "d_model": 32}, data=DATA, context=32,
        batch_size=8, tokens=8 * 32 * 60, lr=3e-3, eval_every=20, eval_batches=4,
        checkpoint_every=20, log_every=5,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path}/s.db")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _losses(store: Store, key: str, name: str = "train/loss") -> list[float]:
    m = store.metrics([key], [name]).sort_values("step")
    return m["value"].tolist()


def test_plan_and_config_round_trip() -> None:
    cfg = small()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    plan = plan_run(cfg)
    assert plan.steps == 60 and plan.tokens_per_step == 256
    assert plan.flops_per_token * cfg.tokens == plan.C
    assert pytest.approx(1e5, rel=0.15) == plan_run(small(model={"params": 100_000})).N


def test_small_gpt_learns_below_unigram_entropy(store: Store, tmp_path: Path) -> None:
    cfg = small(tokens=16 * 64 * 120, batch_size=16, context=64, eval_every=40,
                checkpoint_every=1000)
    steps: list[int] = []
    result = train_run(cfg, store, "learn", tmp_path / "ck", on_step=lambda s, t: steps.append(s))
    assert result.status == "finished" and steps[-1] == 120
    entropy = unigram_entropy(load_tokens(DATA).train, 256)
    assert result.final_loss < entropy - 0.3
    run = store.get_run("learn")
    assert run.status == "finished" and run.final_loss == pytest.approx(result.final_loss)
    names = set(store.metrics(["learn"])["name"])
    assert {"train/loss", "val/loss", "lr", "grad_norm", "tokens", "flops"} <= names
    ckpts = store.latest_checkpoints("learn")
    assert [c.step for c in ckpts] == [120] and ckpts[0].loader == "gpt"
    model = load_checkpoint_model(ckpts[0])
    assert sum(p.numel() for p in model.parameters()) == plan_run(cfg).N_total
    # steps flushed together (log_every = 5) keep their own wall-clock times
    wall = store.metrics(["learn"], ["train/loss"]).sort_values("step")["wall_time"]
    assert wall.is_monotonic_increasing and wall.nunique() == len(wall)
    # an already finished run is not trained again
    again = train_run(cfg, store, "learn", tmp_path / "ck")
    assert again.status == "finished" and again.steps == 0


def test_killed_after_checkpoint_resumes_exactly(store: Store, tmp_path: Path) -> None:
    cfg = small()
    full = train_run(cfg, store, "full", tmp_path / "ck")

    def crash(step: int, total: int) -> None:
        if step == 33:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated"):
        train_run(cfg, store, "crashed", tmp_path / "ck", on_step=crash)
    assert store.get_run("crashed").status == "failed"
    resumed = train_run(cfg, store, "crashed", tmp_path / "ck")
    assert resumed.resumed_from_step == 20
    assert abs(resumed.final_loss - full.final_loss) <= 1e-6
    assert _losses(store, "crashed") == pytest.approx(_losses(store, "full"), abs=1e-6)

    stop = threading.Event()
    stopped = train_run(cfg, store, "stopped", tmp_path / "ck", stop_event=stop,
                        on_step=lambda s, t: stop.set() if s == 27 else None)
    assert stopped.status == "interrupted" and stopped.steps == 27
    resumed = train_run(cfg, store, "stopped", tmp_path / "ck")
    assert resumed.resumed_from_step == 27
    assert abs(resumed.final_loss - full.final_loss) <= 1e-6


def test_corrupt_latest_checkpoint_falls_back(store: Store, tmp_path: Path) -> None:
    cfg = small()
    full = train_run(cfg, store, "full", tmp_path / "ck")

    def crash(step: int, total: int) -> None:
        if step == 45:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        train_run(cfg, store, "c", tmp_path / "ck", on_step=crash)
    newest = store.latest_checkpoints("c")[0]
    assert newest.step == 40
    raw = bytearray(Path(newest.path).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    Path(newest.path).write_bytes(bytes(raw))
    resumed = train_run(cfg, store, "c", tmp_path / "ck")
    assert resumed.resumed_from_step == 20
    assert abs(resumed.final_loss - full.final_loss) <= 1e-6


@pytest.mark.parametrize("lr", [float("nan"), 1e6])
def test_divergence_is_recorded_not_raised(store: Store, tmp_path: Path, lr: float) -> None:
    cfg = small(lr=lr, warmup_frac=0.0)
    result = train_run(cfg, store, "bad", tmp_path / "ck")
    assert result.status == "diverged" and result.final_loss is None
    run = store.get_run("bad")
    assert run.status == "diverged" and "step" in run.error
    losses = _losses(store, "bad")
    assert len(losses) >= 2 and math.isfinite(losses[0])
    assert not math.isfinite(losses[-1]) or losses[-1] > 20


@pytest.mark.slow
def test_sigkill_after_checkpoint_then_resume(store: Store, tmp_path: Path) -> None:
    cfg = small(tokens=8 * 32 * 200, checkpoint_every=25)
    url = f"sqlite:///{tmp_path}/s.db"
    script = textwrap.dedent(f"""
        import time, torch
        from pathlib import Path
        from scaletrack.store import Store
        from scaletrack.sweeps.train import TrainConfig, train_run
        torch.set_num_threads(1)
        cfg = TrainConfig.from_dict({cfg.to_dict()!r})
        store = Store.open({url!r})
        train_run(cfg, store, "killed", Path({str(tmp_path / 'ck')!r}),
                  on_step=lambda s, t: time.sleep(0.05))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not store.latest_checkpoints("killed"):
        assert proc.poll() is None, "trainer exited before its first checkpoint"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = store.latest_checkpoints("killed")[0].step
    assert step is not None and step < 200
    full = train_run(cfg, store, "full", tmp_path / "ck")
    resumed = train_run(cfg, store, "killed", tmp_path / "ck")  # same worker: picks it up
    assert resumed.resumed_from_step is not None and resumed.resumed_from_step >= 25
    assert abs(resumed.final_loss - full.final_loss) <= 1e-6


def test_lstm_on_a_task_corpus_trains_and_probes(store: Store, tmp_path: Path) -> None:
    from scaletrack.models.tasks import evaluate_task

    cfg = small(family="lstm", model={"n_layer": 1, "d_hidden": 48},
                data={"task": "addition", "n_examples": 3000}, tokens=8 * 32 * 40)
    result = train_run(cfg, store, "lstm", tmp_path / "ck")
    assert result.status == "finished" and result.final_loss < math.log(256)
    model = load_checkpoint_model(store.latest_checkpoints("lstm")[0])
    metrics = evaluate_task(model, "addition", n=20)
    assert 0.0 <= metrics["exact_match"] <= 1.0 and metrics["logprob_per_token"] < 0


@pytest.mark.gpu
def test_cuda_run_finishes(store: Store, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cfg = small(device="cuda", tokens=8 * 32 * 40)
    result = train_run(cfg, store, "cuda", tmp_path / "ck")
    assert result.status == "finished" and result.final_loss < math.log(256)
    assert store.latest_checkpoints("cuda")[0].meta["train"]["device"] == "cuda"
