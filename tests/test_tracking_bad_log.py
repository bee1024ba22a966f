"""A bad `step` or `tokens` given to `run.log` costs only itself: the values are kept (at the
step an omitted `step` gets; without tokens), one warning names each kind of problem once,
and the training loop goes on to a finished run."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

import scaletrack
from scaletrack.store import Store
from scaletrack.store.writer import MetricValueWarning


def test_bad_tokens_and_steps_keep_the_values(store_url: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with scaletrack.init(config={"x": 1}, params=10, store=store_url) as run:
            run.log({"train/loss": 3.0}, step=5, tokens=500)
            run.log({"train/loss": 2.0}, step=6, tokens=float("nan"))
            run.log({"train/loss": 1.9}, step=7, tokens=-3)
            run.log({"train/loss": 1.8}, step=-1, tokens=900)
            run.log({"train/loss": 1.7}, step="12", tokens=1000)
            run.log({"train/loss": 1.6}, step=2.5)
            run.log({"train/loss": 1.5}, step=20, tokens=2000)
    with Store.open(store_url) as store:
        rows = store.metrics([run.run_key]).sort_values("step")
        rec = store.get_run(run.run_key)
    assert rec.status == "finished" and rec.final_loss == pytest.approx(1.5)
    assert rows["step"].tolist() == [5, 6, 7, 8, 9, 10, 20]
    assert rows["value"].tolist() == pytest.approx([3.0, 2.0, 1.9, 1.8, 1.7, 1.6, 1.5])
    tokens = [None if pd.isna(t) else int(t) for t in rows["tokens"].tolist()]
    assert tokens == [500, None, None, 900, 1000, None, 2000]
    texts = [str(w.message) for w in caught if issubclass(w.category, MetricValueWarning)]
    assert len(texts) == 2, texts
    assert "tokens must be a whole number from 0" in texts[0] and "got nan" in texts[0]
    assert "step 6 were logged without tokens" in texts[0]
    assert "step must be a whole number from 0" in texts[1] and "got -1" in texts[1]
    assert "logged at step 8" in texts[1]
    assert all("\n" not in t for t in texts)
    assert run.ignored == {"tokens": 2, "step": 3}


def test_a_bad_step_does_not_end_an_uncaught_loop(tmp_path: Path) -> None:
    """The loop of a script that never catches anything runs to its end."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricValueWarning)
        with scaletrack.init(config={"x": 2}, params=10, store=url) as run:
            for i in range(4):
                run.log({"loss": 1.0 / (i + 1)}, step=-1 if i == 1 else i, tokens=i * 10 - 5)
    with Store.open(url) as store:
        rows = store.metrics([run.run_key]).sort_values("step")
        assert store.get_run(run.run_key).status == "finished"
    assert rows["step"].tolist() == [0, 1, 2, 3]
    assert rows["value"].tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    assert pd.isna(rows["tokens"].iloc[0]) and rows["tokens"].tolist()[1:] == [5, 15, 25]
