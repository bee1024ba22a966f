"""End to end on CPU: tiny models trained here leave an idea 'not yet'; a larger one flips it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.analysis.figures import save_figure
from scaletrack.cli.main import app
from scaletrack.evals.ideas import add_idea, due_ideas, rerun_due
from scaletrack.evals.ideas_table import plot_ideas
from scaletrack.store import Store, make_run_key
from scaletrack.sweeps.train import TrainConfig, train_run

DATA = {"task": "addition", "n_examples": 3000}


def tiny(model: dict, tokens: int) -> TrainConfig:
    return TrainConfig(
        family="gpt", model=model, data=DATA, context=32, batch_size=8, tokens=tokens,
        lr=3e-3, eval_every=20, eval_batches=4, checkpoint_every=1000, seed=0,
    )


SMALL = tiny({"n_layer": 1, "n_head": 1, "d_model": 8}, tokens=256 * 15)
LARGE = tiny({"n_layer": 2, "n_head": 2, "d_model": 16}, tokens=256 * 40)


def train(store: Store, cfg: TrainConfig, ckpt_dir: Path) -> float:
    key = make_run_key(cfg.to_dict())
    result = train_run(cfg, store, key, ckpt_dir)
    assert result.status == "finished"
    return float(result.final_loss)


@pytest.mark.slow
def test_idea_stays_not_yet_on_small_runs_and_works_on_a_larger_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    ckpts = tmp_path / "ckpts"
    store = Store.open(url)
    try:
        small_loss = train(store, SMALL, ckpts)
        bar = small_loss - 0.25  # nats/token: the small model does not reach it
        loss_idea = add_idea(store, "loss below bar", "val_loss", "loss", bar, direction="below")
        hard_idea = add_idea(store, "adds perfectly", "addition", "exact_match", 0.99)

        report = rerun_due(store)
        assert not report.errors, report.errors
        first = {a.idea_id: a for a in report.attempts}
        assert first[loss_idea].value == pytest.approx(small_loss, abs=1e-4)
        assert not first[loss_idea].passed and not first[hard_idea].passed
        small_idea = store.get_idea(loss_idea)
        assert small_idea.status == "not-yet"
        assert small_idea.max_N_tried == store.get_run(make_run_key(SMALL.to_dict())).N
        assert due_ideas(store) == []

        large_loss = train(store, LARGE, ckpts)
        assert large_loss < bar, (small_loss, large_loss)
        assert {i.id for i in due_ideas(store)} == {loss_idea, hard_idea}
    finally:
        store.close()

    result = CliRunner().invoke(app, ["ideas", "rerun", "--store", url])
    assert result.exit_code == 0, result.output
    store = Store.open(url)
    try:
        assert store.get_idea(loss_idea).status == "works"
        assert store.get_idea(hard_idea).status == "not-yet"
        attempts = store.idea_attempts(loss_idea)
        assert list(attempts["passed"]) == [False, True]
        assert attempts["flops"].iloc[1] > attempts["flops"].iloc[0]

        files = save_figure(plot_ideas(store), tmp_path / "ideas_timeline")
        assert files and all(f.is_file() and f.stat().st_size > 0 for f in files)
    finally:
        store.close()
