"""The dashboard's emergence view and `scaletrack emergence` agree (one bootstrap default, the
same interval for the same curve), and the view's answers kept in the store's fit cache are
the ones it would compute, follow the data, and are written only by the CLI."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from scaletrack.analysis import code_version
from scaletrack.analysis.classify import classify_groups, classify_task, eval_points
from scaletrack.analysis.emergence import N_BOOTSTRAP, fit_floored_sigmoid, sigmoid_value
from scaletrack.cli.main import app
from scaletrack.store import CheckpointRecord, Store, open_read_only
from scaletrack.ui import emergence_data

runner = CliRunner()
CURVES = {("arith", "acc", 0), ("arith", "acc", 5), ("arith", "ppl", 0), ("recall", "acc", 0)}


def _fresh_process() -> None:
    """Forget what the view keeps in memory, as a restarted dashboard would."""
    emergence_data._answers.clear()
    emergence_data._curve_lists.clear()


@pytest.fixture(autouse=True)
def _forget() -> Any:
    _fresh_process()
    yield
    _fresh_process()


def build(tmp_path: Path, url: str | None = None) -> tuple[str, list[int]]:
    """Eight scales from 1e18 to 1e22 FLOPs, each with a 0-shot and a 5-shot external
    checkpoint: noisy sigmoid accuracies, a perplexity, and a second task."""
    url = url or f"sqlite:///{tmp_path / 'evals.db'}"
    rng = np.random.default_rng(3)
    ids = []
    with Store.open(url) as st:
        for i, c in enumerate(np.logspace(18, 22, 8)):
            n = int(np.sqrt(c / 120))
            cid = st.add_checkpoint(CheckpointRecord(
                id=None, run_key=None, kind="external", N=n, tokens=20 * n, flops=float(c),
                step=None, path=str(tmp_path / f"ck{i}"), sha256=None, loader=None))
            ids.append(cid)
            five = st.add_checkpoint(CheckpointRecord(  # evals are keyed by checkpoint, task
                id=None, run_key=None, kind="external", N=n, tokens=20 * n, flops=float(c),
                step=None, path=str(tmp_path / f"ck{i}-5shot"), sha256=None, loader=None))
            for ck, shot, mid in ((cid, 0, 20.4), (five, 5, 20.0)):  # and metric, not shots
                acc = float(sigmoid_value(c, 0.25, 0.9, 2.0, mid)) + rng.normal(0, 0.01)
                st.add_eval(ck, "arith", "acc", acc, n_shot=shot)
            st.add_eval(cid, "arith", "ppl", float(40.0 / np.log10(c)), n_shot=0)
            st.add_eval(cid, "recall", "acc", 0.3 + 0.02 * i + rng.normal(0, 0.01), n_shot=0)
    return url, ids


def view(url: str, **page: Any) -> dict[str, Any]:
    with open_read_only(url) as st:
        return emergence_data.emergence(st, limit=None, **page)


def by_curve(answer: dict[str, Any]) -> dict[tuple[str, str, int | None], dict[str, Any]]:
    return {(t["task"], t["metric"], t["shot"]): t for t in answer["tasks"]}


def test_one_bootstrap_default_for_library_cli_and_dashboard() -> None:
    for fn in (fit_floored_sigmoid, classify_task, classify_groups):
        assert inspect.signature(fn).parameters["n_bootstrap"].default == N_BOOTSTRAP
    help_text = runner.invoke(app, ["emergence", "--help"], env={"COLUMNS": "200"}).output
    assert f"default {N_BOOTSTRAP}" in " ".join(help_text.split())


def test_dashboard_interval_equals_the_cli_and_the_library(tmp_path: Path) -> None:
    url, _ = build(tmp_path)
    shown = by_curve(view(url))  # the dashboard computing every curve itself
    assert set(shown) == CURVES
    with Store.open(url) as st:
        library = classify_groups(eval_points(st.evals()), shot_col="n_shot")
    res = runner.invoke(app, ["emergence", "--store", url, "--json"])
    assert res.exit_code == 0, res.output
    cli = {(r["task"], r["metric"], r["shot"]): r for r in json.loads(res.stdout)}
    assert set(cli) == set(library) == CURVES - {("arith", "ppl", 0)}  # ppl: a loss
    for curve, lib in library.items():
        lo, hi = lib.crossing_ci95
        assert np.isfinite([lo, hi]).all() and lo < hi
        assert (shown[curve]["crossing_lo"], shown[curve]["crossing_hi"]) == (lo, hi), curve
        assert (cli[curve]["crossing_lo"], cli[curve]["crossing_hi"]) == (lo, hi), curve
        assert shown[curve]["label"] == cli[curve]["label"] == lib.label
        assert lib.fit is not None and lib.fit.n_boot == N_BOOTSTRAP
    assert shown[("arith", "ppl", 0)]["label"] == "-"
    assert "looks like a loss" in shown[("arith", "ppl", 0)]["reason"]


class CountingStore:
    """The real store, counting how often the eval rows are read."""

    def __init__(self, store: Store) -> None:
        self.store, self.row_reads = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def evals(self, task: str | None = None) -> Any:
        self.row_reads += 1
        return self.store.evals(task)


def test_cached_answers_are_the_computed_ones_and_read_no_rows(tmp_path: Path) -> None:
    url, _ = build(tmp_path)
    computed = view(url)
    _fresh_process()
    res = runner.invoke(app, ["emergence", "--store", url])
    assert res.exit_code == 0, res.output
    assert "saved 4 curve(s) to the store's fit cache" in res.stderr
    with Store.open(url) as st:
        cached = st.fits(cached=True)
        assert sorted(cached["form"]) == ["emergence_curves"] + ["emergence_view"] * 4
        assert st.fits().empty  # cache entries, not fits someone saved
    _fresh_process()  # a restarted dashboard: answers from the store, no eval row read
    with open_read_only(url) as st:
        counting = CountingStore(st)
        answer = emergence_data.emergence(counting, limit=None)  # type: ignore[arg-type]
        again = emergence_data.emergence(counting, limit=2, offset=1)  # type: ignore[arg-type]
        assert counting.row_reads == 0
    assert answer == computed
    assert again["tasks"] == computed["tasks"][1:3] and again["total"] == 4
    res = runner.invoke(app, ["emergence", "--store", url])  # unchanged: nothing new saved
    assert res.exit_code == 0 and "saved" not in res.stderr


def test_a_changed_eval_is_answered_from_the_new_rows(tmp_path: Path) -> None:
    url, ids = build(tmp_path)
    assert runner.invoke(app, ["emergence", "--store", url]).exit_code == 0
    first = by_curve(view(url))
    with Store.open(url) as st:
        before = st.evals_version()
        assert st.evals_version() == before  # reading changes nothing
        st.add_eval(ids[-1], "recall", "acc", 0.95, n_shot=0)  # an upsert of one value
        assert st.evals_version() != before
    changed = by_curve(view(url))  # same process: the fingerprint moved, so do the answers
    assert changed[("recall", "acc", 0)]["value"][-1] == 0.95
    assert first[("recall", "acc", 0)]["value"][-1] != 0.95
    for curve in CURVES - {("recall", "acc", 0)}:
        assert changed[curve] == first[curve]
    _fresh_process()
    with open_read_only(url) as st:
        counting = CountingStore(st)
        again = by_curve(emergence_data.emergence(counting, limit=None))  # type: ignore[arg-type]
        assert counting.row_reads == 1  # no list for the new fingerprint: rows read once
    assert again == changed


def test_fingerprint_follows_checkpoints_and_new_rows(tmp_path: Path, store_url: str) -> None:
    url, ids = build(tmp_path, store_url)  # SQLite and PostgreSQL
    with Store.open(url) as st:
        v0 = st.evals_version()
        assert st.evals_version() == v0
        ck = st.get_checkpoint(ids[0])
        assert ck is not None
        st.add_checkpoint(CheckpointRecord(**{**ck.__dict__, "id": None, "flops": 2e18}))
        v1 = st.evals_version()
        st.add_eval(ids[0], "new_task", "acc", 0.5)
        v2 = st.evals_version()
    assert len({v0, v1, v2}) == 3
    assert ("new_task", "acc", None) in by_curve(view(url))


def test_cache_written_only_with_the_dashboards_options(tmp_path: Path) -> None:
    url, _ = build(tmp_path)
    for extra in (["--no-cache"], ["--bootstrap", "20"], ["--near-factor", "3"],
                  ["--lower-is-better", "ppl"], ["--x-col", "N"]):
        res = runner.invoke(app, ["emergence", "--store", url, *extra])
        assert res.exit_code == 0, res.output
    with Store.open(url) as st:
        assert st.fits(cached=True).empty
    res = runner.invoke(app, ["emergence", "--store", url, "--task", "recall"])
    assert res.exit_code == 0, res.output
    with Store.open(url) as st:  # one task: its curve, not the list of every curve
        assert list(st.fits(cached=True)["form"]) == ["emergence_view"]
    shown = by_curve(view(url))
    assert set(shown) == CURVES


def test_answers_saved_by_other_analysis_code_are_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = build(tmp_path)
    assert runner.invoke(app, ["emergence", "--store", url]).exit_code == 0
    computed = view(url)
    _fresh_process()
    monkeypatch.setattr(code_version, "analysis_code_version",
                        lambda: "changed classification code")
    with open_read_only(url) as st:
        counting = CountingStore(st)
        answer = emergence_data.emergence(counting, limit=None)  # type: ignore[arg-type]
        assert counting.row_reads == 1  # the saved list and answers are not this code's
    assert answer == computed  # (the code did not really change, so neither do the answers)
