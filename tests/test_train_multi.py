"""Training a group of stacked GPTs matches training them one by one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from scaletrack.errors import ConfigError
from scaletrack.models import GPTConfig, build_model
from scaletrack.models.checkpoint import load_checkpoint_model
from scaletrack.store import Store
from scaletrack.sweeps.multi import stacked_gpt_forward, train_group
from scaletrack.sweeps.train import TrainConfig, train_run


def small(**kw) -> TrainConfig:
    base = dict(
        family="gpt", model={"n_layer": 2, "n_head": 2, "d_model": 32},
        data={"corpus": "stdlib", "max_bytes": 1_000_000}, context=32, batch_size=8,
        tokens=8 * 32 * 40, lr=3e-3, eval_every=20, eval_batches=4, checkpoint_every=1000,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path}/s.db")
    yield s
    s.close()


def test_stacked_forward_equals_separate_models() -> None:
    cfg = GPTConfig(n_layer=2, n_head=4, d_model=32, context=16)
    torch.manual_seed(0)
    models = [build_model("gpt", cfg.to_dict()) for _ in range(3)]
    params = {n: torch.stack([dict(m.named_parameters())[n] for m in models])
              for n, _ in models[0].named_parameters()}
    idx = torch.randint(0, 256, (3, 2, 16))
    ref = torch.stack([m(idx[i]) for i, m in enumerate(models)])
    assert torch.allclose(stacked_gpt_forward(params, cfg, idx), ref, atol=1e-5)


def test_group_matches_single_runs(store: Store, tmp_path: Path) -> None:
    configs = [small(seed=0, lr=3e-3), small(seed=1, lr=1e-3), small(seed=2, lr=float("nan"))]
    keys = ["g0", "g1", "g2"]
    results = train_group(configs, store, keys, tmp_path / "ck")
    assert [r.status for r in results] == ["finished", "finished", "diverged"]
    assert store.get_run("g2").status == "diverged"
    for cfg, key, res in zip(configs[:2], keys[:2], results[:2], strict=True):
        single = train_run(cfg, store, f"single-{key}", tmp_path / "ck")
        assert res.final_loss == pytest.approx(single.final_loss, abs=2e-3)
        names = set(store.metrics([key])["name"])
        assert {"train/loss", "val/loss", "lr", "grad_norm", "tokens", "flops"} <= names
        wall = store.metrics([key], ["train/loss"]).sort_values("step")["wall_time"]
        assert wall.is_monotonic_increasing and wall.nunique() == len(wall)  # own stamps
        assert store.get_run(key).status == "finished"
        (ckpt,) = store.latest_checkpoints(key)
        assert ckpt.step == 40
        load_checkpoint_model(ckpt)
    again = train_group(configs[:2], store, keys[:2], tmp_path / "ck")
    assert [r.steps for r in again] == [0, 0]


def test_group_members_must_share_shape() -> None:
    with pytest.raises(ConfigError, match="differ only"):
        train_group([small(), small(context=16)], None, ["a", "b"], Path("."))  # type: ignore[arg-type]


def test_group_killed_mid_run_resumes_each_member_exactly(store: Store, tmp_path: Path) -> None:
    """A packed group stopped by a crash resumes from the newest step every member saved (here
    an older one: a member's newest file is damaged), and its rows equal an uninterrupted
    group's; the diverged member stays diverged."""
    configs = [small(seed=0, checkpoint_every=10), small(seed=1, lr=1e-3, checkpoint_every=10),
               small(seed=2, lr=float("nan"), checkpoint_every=10)]
    full = train_group(configs, store, ["a0", "a1", "a2"], tmp_path / "ck")
    assert [r.status for r in full] == ["finished", "finished", "diverged"]

    def crash(step: int, total: int) -> None:
        if step == 25:
            raise RuntimeError("power cut")

    keys = ["b0", "b1", "b2"]
    with pytest.raises(RuntimeError, match="power cut"):
        train_group(configs, store, keys, tmp_path / "ck", on_step=crash)
    assert [store.get_run(k).status for k in keys] == ["failed", "failed", "diverged"]
    newest = store.latest_checkpoints("b1")[0]
    assert newest.step == 20
    Path(newest.path).write_bytes(Path(newest.path).read_bytes()[:100])  # damaged
    again = train_group(configs, store, keys, tmp_path / "ck")
    assert [r.status for r in again] == ["finished", "finished", "diverged"]
    for a, b in (("a0", "b0"), ("a1", "b1")):
        ref = store.metrics([a]).set_index(["name", "step"])["value"].sort_index()
        got = store.metrics([b]).set_index(["name", "step"])["value"].sort_index()
        assert got.index.equals(ref.index)
        assert (got.to_numpy() == ref.to_numpy()).all()
        assert store.get_run(b).final_loss == store.get_run(a).final_loss
        assert store.get_run(b).attempts == 2
