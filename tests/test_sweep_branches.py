"""Cooldown branches: grid expansion into trunks and branches, a branch equal to a from-scratch
wsd run of its budget, lineage in the store, scheduling, re-runs and fits that skip trunks."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_sweep_spec import VALID, to_toml

from scaletrack.errors import ConfigError, DataError
from scaletrack.store import Store
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import flops_spent, run_sweep
from scaletrack.sweeps.schedule import branch_point, lr_at, wsd_lr
from scaletrack.sweeps.spec import parse_spec_text
from scaletrack.sweeps.train import TrainConfig, train_run

BRANCHES = {"kind": "wsd", "branches": True, "cooldown": "1-sqrt", "decay_frac": 0.25,
            "warmup_frac": 0.1, "min_lr_frac": 0.1}


def branch_grid(tmp_path: Path, **axes) -> Path:
    data = copy.deepcopy(VALID)
    data["name"] = "branchy"
    data["schedule"] = dict(BRANCHES)
    data["axes"].update({"tokens": [640, 1280, 1920]}, **axes)
    data["executor"]["workers"] = 2
    path = tmp_path / "grid.toml"
    path.write_text(to_toml(data))
    return path


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_one_sqrt_cooldown_shape() -> None:
    lrs = [wsd_lr(s, 1.0, 0, 10, 10, 0.0, "1-sqrt") for s in range(20)]
    assert lrs[:10] == [1.0] * 10
    assert lrs[10] == pytest.approx(1 - math.sqrt(0.1)) and lrs[19] == pytest.approx(0.0)
    linear = [wsd_lr(s, 1.0, 0, 10, 10, 0.0) for s in range(10, 20)]
    assert all(a <= b for a, b in zip(lrs[10:], linear, strict=True))  # 1-sqrt cools faster
    assert branch_point(100, 0.2) == 80 and branch_point(3, 0.2) == 2
    with pytest.raises(ConfigError, match="cooldown"):
        wsd_lr(15, 1.0, 0, 10, 10, 0.0, "cubic")


def test_branches_need_wsd() -> None:
    data = copy.deepcopy(VALID)
    data["schedule"] = {"kind": "cosine", "branches": True}
    with pytest.raises(ConfigError, match=r"schedule\.branches: cooldown branches need kind"):
        parse_spec_text(to_toml(data), "g.toml")


def test_grid_expands_to_one_trunk_and_a_branch_per_budget(tmp_path: Path) -> None:
    grid = load_grid(branch_grid(tmp_path, seeds=[0, 1]))
    trunks = [c for c in grid.cells if c.role == "trunk"]
    branches = [c for c in grid.cells if c.role == "branch"]
    assert len(trunks) == 2 * 2 and len(branches) == 2 * 2 * 3  # sizes x seeds (x budgets)
    step_tokens = 4 * 16
    for t in trunks:
        kids = [b for b in branches if b.parent_run_key == t.run_key]
        assert len(kids) == 3 and {k.seed for k in kids} == {t.seed}
        points = sorted(k.branch_step for k in kids)
        assert points == [branch_point(-(-d // step_tokens), 0.25) for d in (640, 1280, 1920)]
        assert t.steps == points[-1] and t.config.schedule == "constant"
        assert set(t.config.checkpoint_at) == set(points[:-1])
        # the trunk runs before its branches, and the first fits' cells come early
        order = [c.run_key for c in grid.cells]
        assert all(order.index(t.run_key) < order.index(k.run_key) for k in kids)
        # a branch only pays for its cooldown
        for k in kids:
            assert k.spent_flops == pytest.approx(k.C * (k.steps - k.branch_step) / k.steps)
            assert k.config.warmup_steps == t.config.warmup_steps == round(0.1 * 10)
    # the same grid gives the same keys
    again = load_grid(branch_grid(tmp_path, seeds=[0, 1]))
    assert [c.run_key for c in again.cells] == [c.run_key for c in grid.cells]


def test_configs_without_new_fields_keep_their_run_keys() -> None:
    cfg = TrainConfig(family="gpt", model={"n_layer": 1, "n_head": 2, "d_model": 16},
                      data={"corpus": "stdlib"})
    d = cfg.to_dict()
    for name in ("cooldown", "warmup_steps", "checkpoint_at", "branch_from", "branch_step"):
        assert name not in d
    assert TrainConfig.from_dict(d) == cfg
    with pytest.raises(ConfigError, match="branch_from"):
        TrainConfig(family="gpt", model={}, data={}, branch_step=5)


def test_a_branch_takes_the_steps_of_a_from_scratch_wsd_run(tmp_path: Path) -> None:
    """Trunk + branch == one uninterrupted wsd run of the branch's budget, bit for bit."""
    grid = load_grid(branch_grid(tmp_path))
    trunk = next(c for c in grid.cells if c.role == "trunk")
    branch = max((c for c in grid.cells if c.parent_run_key == trunk.run_key),
                 key=lambda c: c.D)
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        ck = tmp_path / "ck"
        for cell in (trunk, branch):
            store.ensure_run(cell.record())
            assert train_run(cell.config, store, cell.run_key, ck).status == "finished"
        plain = TrainConfig.from_dict({**branch.config.to_dict(), "branch_from": None,
                                       "branch_step": 0})
        assert train_run(plain, store, "scratch", ck).status == "finished"
        rows = store.metrics(["scratch", branch.run_key, trunk.run_key])
        scratch = rows[rows.run_key == "scratch"].set_index(["name", "step"])["value"]
        got = rows[rows.run_key == branch.run_key].set_index(["name", "step"])["value"]
        head = rows[rows.run_key == trunk.run_key].set_index(["name", "step"])["value"]
        # the branch logs only its own steps; with the trunk's they are the scratch run's
        assert got.index.get_level_values("step").min() >= branch.branch_step
        assert got.equals(scratch.loc[got.index])
        before = [i for i in scratch.index if i[1] < branch.branch_step and i[0] == "train/loss"]
        assert head.loc[before].equals(scratch.loc[before])
        run = store.get_run(branch.run_key)
        assert run.final_loss == store.get_run("scratch").final_loss
        assert (run.role, run.parent_run_key, run.branch_step) == (
            "branch", trunk.run_key, branch.branch_step)
        # the lr the branch used is its wsd schedule's
        lrs = got.loc["lr"]
        total = branch.steps
        for step, lr in lrs.items():
            assert lr == lr_at(step, total, branch.lr, "wsd", **branch.config.schedule_kwargs())


def test_branch_grid_runs_reruns_nothing_and_fits_skip_trunks(tmp_path: Path) -> None:
    grid = load_grid(branch_grid(tmp_path))
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    report = run_sweep(grid, url, checkpoint_dir=tmp_path / "ck")
    assert report.ok and report.trained == len(grid.cells) == 2 + 6
    again = run_sweep(grid, url, checkpoint_dir=tmp_path / "ck")
    assert again.ok and again.trained == 0
    with Store.open(url) as store:
        runs = store.runs(sweep="branchy")
        assert set(runs["role"]) == {"trunk", "branch"}
        fit_rows = store.fit_runs("branchy")
        assert len(fit_rows) == 6 and (fit_rows["role"] == "branch").all()
        assert sorted(set(fit_rows["D"])) == [640, 1280, 1920]
        spent = flops_spent(runs)
    planned = float(fit_rows["C"].sum())  # one from-scratch run per cell
    assert spent < planned
    # trunk (0.75 of the largest budget) + every cooldown (0.25 of each)
    step_c = {n: c / s for n, c, s in ((c.N, c.C, c.steps) for c in grid.cells)}
    expect = sum(step_c[c.N] * (c.steps - (c.branch_step or 0)) for c in grid.cells)
    assert spent == pytest.approx(expect)


def test_branch_of_a_diverged_trunk_is_marked_diverged(tmp_path: Path) -> None:
    grid = load_grid(branch_grid(tmp_path))
    trunk = next(c for c in grid.cells if c.role == "trunk")
    branch = next(c for c in grid.cells if c.parent_run_key == trunk.run_key)
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        for cell in (trunk, branch):
            store.ensure_run(cell.record())
        store.finish_run(trunk.run_key, "diverged", error="loss not finite at step 3")
        result = train_run(branch.config, store, branch.run_key, tmp_path / "ck")
        assert result.status == "diverged"
        run = store.get_run(branch.run_key)
        assert run.status == "diverged" and "trunk" in run.error and "diverged" in run.error
        # a trunk that is merely not there yet is a clear error, not a silent restart
        other = next(c for c in grid.cells if c.role == "trunk" and c is not trunk)
        kid = next(c for c in grid.cells if c.parent_run_key == other.run_key)
        store.ensure_run(other.record())
        store.ensure_run(kid.record())
        with pytest.raises(DataError, match="no checkpoint at step"):
            train_run(kid.config, store, kid.run_key, tmp_path / "ck")


def test_pack_groups_same_shape_cells_and_trunks_but_not_branches(tmp_path: Path) -> None:
    from scaletrack.sweeps.runner import pack_tasks, should_pack

    grid = load_grid(branch_grid(tmp_path, seeds=[0, 1], lrs=[3e-3, 1e-3]))
    tasks = pack_tasks(list(grid.cells))
    groups = [t for t in tasks if t.members]
    assert len(groups) == 2  # one group of 4 trunks (2 seeds x 2 lrs) per size
    for g in groups:
        assert len(g.members) == 4
        assert {grid_cell.role for grid_cell in grid.cells
                if grid_cell.run_key in {m.run_key for m in g.members}} == {"trunk"}
    assert sum(len(t.members) or 1 for t in tasks) == len(grid.cells)
    assert all(t.after is not None for t in tasks if not t.members)  # the branches
    assert should_pack("auto", "cuda", "local") and not should_pack("auto", "cpu", "local")
    assert should_pack("always", "cpu", "local") and not should_pack("always", "cpu", "ray")
    assert not should_pack("never", "cuda", "local")


@pytest.mark.slow
def test_packed_branch_grid_matches_unpacked_and_reruns_nothing(tmp_path: Path) -> None:
    """Trunks of 2 seeds train stacked; their branches start from the stacked checkpoints."""
    losses = {}
    for pack in ("always", "never"):
        data = copy.deepcopy(VALID)
        data["name"] = f"packed-{pack}"
        data["schedule"] = dict(BRANCHES)
        data["axes"].update({"tokens": [640, 1280], "seeds": [0, 1]})
        data["model"]["sizes"] = data["model"]["sizes"][:1]
        data["train"]["pack"] = pack
        data["executor"]["workers"] = 2
        path = tmp_path / f"{pack}.toml"
        path.write_text(to_toml(data))
        grid = load_grid(path)
        url = f"sqlite:///{tmp_path / (pack + '.db')}"
        report = run_sweep(grid, url, checkpoint_dir=tmp_path / "ck")
        assert report.ok and report.trained == 2 + 4, [r.message for r in report.results]
        assert run_sweep(grid, url, checkpoint_dir=tmp_path / "ck").trained == 0
        with Store.open(url) as store:
            runs = store.runs().sort_values(["role", "seed", "D"])
            assert (runs["attempts"] == 1).all()
            for key in runs.loc[runs.role == "trunk", "run_key"]:
                assert [c.step for c in store.latest_checkpoints(key)][-1] > 0
        losses[pack] = runs["final_loss"].to_numpy()
    # stacked and single matmuls round differently: equal to float32 noise, not bit for bit
    assert losses["always"] == pytest.approx(losses["never"], abs=2e-3)


def test_warmup_steps_is_shared_by_every_cell(tmp_path: Path) -> None:
    for kind in ("cosine", "branches"):
        data = copy.deepcopy(VALID)
        data["schedule"] = ({"kind": "cosine", "warmup_steps": 3} if kind == "cosine"
                            else {**BRANCHES, "warmup_steps": 3})
        path = tmp_path / f"{kind}.toml"
        path.write_text(to_toml(data))
        cells = load_grid(path).cells
        assert {c.config.warmup_steps for c in cells} == {3}
        cfg = cells[-1].config
        assert lr_at(2, cells[-1].steps, 1.0, cfg.schedule, **cfg.schedule_kwargs()) == 1.0
        assert lr_at(0, cells[-1].steps, 1.0, cfg.schedule, **cfg.schedule_kwargs()) == \
            pytest.approx(1 / 3)
