"""`checkpoints add` records and prints the compute C of an external checkpoint: the stated
--flops, else 6·N·D, the same figure the ideas registry compares checkpoints by."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.evals.evaluate import CheckpointExists, register_external_checkpoint
from scaletrack.evals.ideas import checkpoint_scale
from scaletrack.models.checkpoint import file_sha256
from scaletrack.number_format import fmt_number
from scaletrack.store import CheckpointRecord, Store

runner = CliRunner()
TASK = f"{__name__}:kparams"  # this module is importable under pytest: the idea's own task


def kparams(ckpt) -> float:
    """Parameters in thousands, read from the record (no model needed)."""
    return ckpt.record.N / 1000.0


def _file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(name.encode() * 50)
    return path


def _add(store_url: str, path: Path, n: int, d: int, *extra: str):
    return runner.invoke(app, ["checkpoints", "add", str(path), "--params", str(n),
                               "--tokens", str(d), "--store", store_url, *extra])


def _listed(store_url: str) -> dict[str, dict]:
    res = runner.invoke(app, ["checkpoints", "list", "--json", "--store", store_url])
    assert res.exit_code == 0, res.output
    return {Path(row["path"]).name: row for row in json.loads(res.output)}


def test_compute_is_six_n_d_when_not_stated_and_ideas_use_that_figure(
    tmp_path: Path, store_url: str
) -> None:
    res = runner.invoke(app, ["ideas", "add", "needs 50k params", "--task", TASK,
                              "--metric", "value",
                              "--threshold", "50", "--store", store_url])
    assert res.exit_code == 0, res.output

    first = _add(store_url, _file(tmp_path, "a.bin"), 20_000, 1_000)
    assert first.exit_code == 0, first.output
    c_first = 6.0 * 20_000 * 1_000
    assert f"C={fmt_number(c_first)} (6·N·D" in first.output and "C=-" not in first.output
    assert "ideas now due: 1" in first.output
    assert _listed(store_url)["a.bin"]["flops"] == pytest.approx(c_first)

    res = runner.invoke(app, ["ideas", "rerun", "--store", store_url])
    assert res.exit_code == 0, res.output
    idea = json.loads(runner.invoke(app, ["ideas", "list", "--json", "--store",
                                          store_url]).output)[0]
    assert idea["status"] == "not-yet"
    assert idea["max_flops_tried"] == pytest.approx(c_first)  # the C printed and recorded

    # more parameters but less compute (6·N·D): not larger, so the idea is not due
    wider = _add(store_url, _file(tmp_path, "b.bin"), 30_000, 500)
    assert wider.exit_code == 0, wider.output
    assert f"C={fmt_number(6.0 * 30_000 * 500)} (6·N·D" in wider.output
    assert "ideas now due" not in wider.output
    # more compute: larger, due
    longer = _add(store_url, _file(tmp_path, "c.bin"), 10_000, 3_000)
    assert longer.exit_code == 0, longer.output
    assert f"C={fmt_number(6.0 * 10_000 * 3_000)} (6·N·D" in longer.output
    assert "ideas now due: 1" in longer.output
    with Store.open(store_url) as store:
        for row in store.checkpoints().itertuples(index=False):
            assert checkpoint_scale(row.N, row.tokens, None).compute == pytest.approx(row.flops)


def test_stated_flops_are_recorded_as_given(tmp_path: Path, store_url: str) -> None:
    res = _add(store_url, _file(tmp_path, "a.bin"), 20_000, 1_000, "--flops", "3.3e8")
    assert res.exit_code == 0, res.output
    assert f"C={fmt_number(3.3e8)}," in res.output and "6·N·D" not in res.output
    assert _listed(store_url)["a.bin"]["flops"] == pytest.approx(3.3e8)


def test_zero_tokens_says_why_there_is_no_compute(tmp_path: Path, store_url: str) -> None:
    res = _add(store_url, _file(tmp_path, "init.bin"), 20_000, 0)
    assert res.exit_code == 0, res.output
    assert "C=0 (D=0 tokens: no training compute)" in res.output
    assert _listed(store_url)["init.bin"]["flops"] is None


def test_registering_again_is_a_noop_also_for_a_checkpoint_recorded_without_flops(
    tmp_path: Path, store_url: str
) -> None:
    path = _file(tmp_path, "a.bin")
    assert _add(store_url, path, 20_000, 1_000).exit_code == 0
    again = _add(store_url, path, 20_000, 1_000)
    assert again.exit_code == 0 and "nothing changed" in again.output, again.output
    # a store written before C was derived holds the checkpoint without FLOPs
    old = _file(tmp_path, "old.bin")
    with Store.open(store_url) as store:
        store.add_checkpoint(CheckpointRecord(
            id=None, run_key=None, kind="external", N=20_000, tokens=1_000, flops=None,
            step=None, path=str(old.resolve()), sha256=file_sha256(old), loader=None, meta={}))
        before = store.checkpoints()
        with pytest.raises(CheckpointExists) as same:  # the API agrees: the same checkpoint
            register_external_checkpoint(store, old, params=20_000, tokens=1_000)
        assert same.value.identical
    res = _add(store_url, old, 20_000, 1_000)
    assert res.exit_code == 0 and "nothing changed" in res.output, res.output
    other = _add(store_url, old, 20_001, 1_000)
    assert other.exit_code == 1 and "refusing to replace" in other.output, other.output
    with Store.open(store_url) as store:
        assert store.checkpoints().equals(before)


def test_counts_beyond_64_bits_are_one_line(tmp_path: Path, store_url: str) -> None:
    """N and D are at most 2**63 - 1, so 6·N·D (at most about 5e38) is always a float."""
    path = _file(tmp_path, "a.bin")
    res = _add(store_url, path, 10**200, 10**200)
    assert res.exit_code == 1
    assert res.output.startswith("error: --params must be a whole number from 1 to 2**63 - 1")
    assert len(res.output.strip().splitlines()) == 1
    with Store.open(store_url) as store:
        assert store.checkpoints().empty
