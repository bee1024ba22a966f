"""The runs page in SQL (`store.run_pages`): every sort column in both directions and every
page boundary against a plain Python sort of the same runs (missing values last, ties by
insertion), config filters through the leaves the database keeps per run (numbers within a
relative 1e-9, text, booleans, missing values, a config changed later), and groups."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from scaletrack.store import RunRecord, Store, StoreError
from scaletrack.store.run_pages import SORTABLE, RunFilter

RUNS = 23


def _record(i: int) -> RunRecord:
    config = {"i": i, "model": {"n_layer": 2 + i % 3, "act": ["gelu", "relu"][i % 2]},
              "train": {"compile": i % 4 == 0, "lr": 1e-3 / (1 + i % 5)}}
    if i % 6 == 0:
        del config["model"]["n_layer"]  # some runs miss a config value
    if i % 7 == 0:
        config["note"] = "3"  # a number written as text
    return RunRecord(
        run_key=f"k{(i * 7919) % 101:03d}-{i}", sweep=None if i % 5 == 0 else f"s{i % 2}",
        family="gpt", config=config, N=None if i % 4 == 1 else 10 ** (6 + i % 3),
        N_total=None, D=(i % 3) * 1000 or None, C=None if i % 3 == 0 else 6.0 * i,
        seed=i % 2, lr=[3e-4, 1e-3, None][i % 3], attempts=i % 3,
        status=["finished", "failed", "pending"][i % 3],
        final_loss=None if i % 5 == 2 else 2.0 + (i % 4) * 0.25,
        name=None if i % 4 == 3 else f"run {i % 6}", role="cell" if i % 8 else "branch")


@pytest.fixture
def filled(store_url: str) -> str:
    with Store.open(store_url) as store:
        store.ensure_runs([_record(i) for i in range(RUNS)])
    return store_url


def _all_runs(url: str) -> list[dict]:
    """Every run as the database holds it, with its id (insertion order)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM runs"))]
    engine.dispose()
    return rows


def _expected(runs: list[dict], sort: str, descending: bool) -> list[str]:
    valued = [r for r in runs if r[sort] is not None]
    missing = [r for r in runs if r[sort] is None]
    valued.sort(key=lambda r: (r[sort], r["id"]), reverse=descending)
    missing.sort(key=lambda r: r["id"], reverse=descending)
    return [r["run_key"] for r in valued + missing]


@pytest.mark.parametrize("descending", [False, True])
def test_every_sort_and_page_matches_a_plain_sort(filled: str, descending: bool) -> None:
    runs = _all_runs(filled)
    with Store.open(filled) as store:
        for sort in SORTABLE:
            want = _expected(runs, sort, descending)
            for limit in (5, 9):
                got = []
                for offset in range(0, RUNS + limit, limit):
                    page = store.runs_page(RunFilter(), sort=sort, descending=descending,
                                           offset=offset, limit=limit)
                    assert page["total"] == RUNS
                    got += [r["run_key"] for r in page["rows"]]
                assert got == want, (sort, limit)
            # a page starting past the last run with a value and past the end
            n_valued = sum(r[sort] is not None for r in runs)
            page = store.runs_page(RunFilter(), sort=sort, descending=descending,
                                   offset=n_valued + 1, limit=3)
            assert [r["run_key"] for r in page["rows"]] == want[n_valued + 1:n_valued + 4]
            assert store.runs_page(RunFilter(), sort=sort, offset=RUNS, limit=3)["rows"] == []


def test_filtered_sorted_pages_and_counts(filled: str) -> None:
    runs = [r for r in _all_runs(filled) if r["sweep"] == "s1"]
    with Store.open(filled) as store:
        page = store.runs_page(RunFilter(sweep="s1"), sort="final_loss", descending=True,
                               offset=2, limit=4)
    assert [r["run_key"] for r in page["rows"]] == _expected(runs, "final_loss", True)[2:6]
    assert page["total"] == len(runs)
    assert page["statuses"] == {s: sum(r["status"] == s for r in runs)
                                for s in {r["status"] for r in runs}}


def _keys(store: Store, *where: tuple[str, str], search: str | None = None) -> set[str]:
    page = store.runs_page(RunFilter(where=where, search=search), limit=1000)
    assert page["total"] == len(page["rows"])
    return {r["run_key"] for r in page["rows"]}


def test_config_filters_match_numbers_text_booleans_and_missing(filled: str) -> None:
    records = [_record(i) for i in range(RUNS)]

    def which(pred) -> set[str]:
        return {r.run_key for r in records if pred(r.config)}

    with Store.open(filled) as store:
        assert _keys(store, ("model.n_layer", "3")) == which(
            lambda c: c["model"].get("n_layer") == 3)
        assert _keys(store, ("model.n_layer", "3.0000000001")) == which(
            lambda c: c["model"].get("n_layer") == 3)  # within a relative 1e-9
        assert _keys(store, ("model.n_layer", "3.001")) == set()
        assert _keys(store, ("model.n_layer", "none")) == which(
            lambda c: "n_layer" not in c["model"])
        assert _keys(store, ("model.act", "relu")) == which(lambda c: c["model"]["act"] == "relu")
        assert _keys(store, ("train.compile", "true")) == which(lambda c: c["train"]["compile"])
        assert _keys(store, ("train.lr", "0.0005")) == which(
            lambda c: math.isclose(c["train"]["lr"], 5e-4, rel_tol=1e-9))
        assert _keys(store, ("note", "3")) == which(lambda c: c.get("note") == "3")
        assert _keys(store, ("no.such.path", "1")) == set()
        both = _keys(store, ("model.act", "gelu"), ("model.n_layer", "2"))
        assert both == which(lambda c: c["model"]["act"] == "gelu"
                             and c["model"].get("n_layer") == 2)
        assert _keys(store, ("N", "1000000")) == {r.run_key for r in records if r.N == 10**6}
        assert _keys(store, ("name", "run 1")) == {r.run_key for r in records
                                                   if r.name == "run 1"}
        assert _keys(store, ("name", "2")) == set()  # a text column compares as text
        assert _keys(store, search="RUN 5") == {r.run_key for r in records
                                                if r.name == "run 5"}
        # a config written later is what the filter sees
        key = next(r.run_key for r in records if r.config["model"]["act"] == "gelu")
        store.update_run(key, config={"model": {"act": "swiglu", "n_layer": 12}})
        assert _keys(store, ("model.act", "swiglu")) == {key}
        assert key not in _keys(store, ("model.act", "gelu"))
        assert _keys(store, ("model.n_layer", "12")) == {key}


def test_a_bad_config_path_is_one_clear_error(filled: str) -> None:
    with Store.open(filled) as store, pytest.raises(
            StoreError, match="not a run column or a dotted config path"):
        store.runs_page(RunFilter(where=(("model.n layer", "3"),)))


@pytest.mark.parametrize("group", ["N", "status", "sweep"])
def test_groups_summarise_every_matching_run(filled: str, group: str) -> None:
    runs = _all_runs(filled)
    with Store.open(filled) as store:
        page = store.runs_page(RunFilter(search="run"), group=group, sort="final_loss",
                               limit=4)
    matching = [r for r in runs if r["name"] is not None]
    values = {r[group] for r in matching}
    assert [g["value"] for g in page["groups"]] == sorted(
        v for v in values if v is not None) + ([None] if None in values else [])
    for g in page["groups"]:
        members = [r for r in matching if r[group] == g["value"]]
        losses = [r["final_loss"] for r in members if r["final_loss"] is not None]
        assert g["count"] == len(members)
        assert g["best_final_loss"] == (min(losses) if losses else None)
        assert g["mean_final_loss"] == pytest.approx(sum(losses) / len(losses)
                                                     if losses else None)


def test_groups_by_a_config_value(filled: str) -> None:
    records = {r.run_key: r for r in (_record(i) for i in range(RUNS))}
    runs = _all_runs(filled)
    with Store.open(filled) as store:
        page = store.runs_page(RunFilter(), group="config.model.n_layer", sort="final_loss",
                               limit=RUNS)
        by_act = store.runs_page(RunFilter(sweep="s1"), group="config.model.act", limit=2)
        with pytest.raises(StoreError, match="cannot group runs by 'lr2'"):
            store.runs_page(RunFilter(), group="lr2")
        with pytest.raises(StoreError, match="group by the run column 'lr' itself"):
            store.runs_page(RunFilter(), group="config.lr")

    def layers(key: str) -> int | None:
        return records[key].config["model"].get("n_layer")

    values = sorted({layers(r["run_key"]) for r in runs} - {None})
    assert [g["value"] for g in page["groups"]] == [*values, None]  # numbers, then missing
    for g in page["groups"]:
        members = [r for r in runs if layers(r["run_key"]) == g["value"]]
        assert g["count"] == len(members)
        assert g["by_status"] == {s: sum(r["status"] == s for r in members)
                                  for s in {r["status"] for r in members}}
    # the page runs through the groups in order, each by final loss (missing last)
    want = []
    for value in [*values, None]:
        members = [r for r in runs if layers(r["run_key"]) == value]
        want += _expected(members, "final_loss", False)
    assert [r["run_key"] for r in page["rows"]] == want
    s1 = [r for r in runs if r["sweep"] == "s1"]
    assert [(g["value"], g["count"]) for g in by_act["groups"]] == sorted(
        (a, sum(records[r["run_key"]].config["model"]["act"] == a for r in s1))
        for a in {records[r["run_key"]].config["model"]["act"] for r in s1})
    assert by_act["total"] == len(s1) and len(by_act["rows"]) == 2
