"""N (params) and D (tokens) beyond a 64-bit integer are one line at every entry point (CLI
`checkpoints add`, `register_external_checkpoint`, `scaletrack.init`), nothing stored; the
API and the CLI record the same default compute C = 6·N·D."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import scaletrack
from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.evals.evaluate import register_external_checkpoint
from scaletrack.store import Store

runner = CliRunner()
RANGE = "must be a whole number from"


def _file(tmp_path: Path, name: str = "ck.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(name.encode() * 10)
    return path


@pytest.mark.parametrize(("params", "tokens", "named"), [
    ("1e30", "1e9", "--params"), ("1e9", "1e30", "--tokens"),
    ("9223372036854775808", "1", "--params"), ("0", "1", "--params"),
    ("1e9", "-1", "--tokens"),
])
def test_cli_counts_out_of_range_are_one_line(
    tmp_path: Path, store_url: str, params: str, tokens: str, named: str
) -> None:
    res = runner.invoke(app, ["checkpoints", "add", str(_file(tmp_path)), "--params", params,
                              "--tokens", tokens, "--store", store_url])
    assert res.exit_code == 1, res.output
    assert res.output.startswith(f"error: {named} {RANGE}"), res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    with Store.open(store_url) as store:
        assert store.checkpoints().empty


def test_cli_takes_the_largest_count_exactly(tmp_path: Path, store_url: str) -> None:
    top = 2**63 - 1
    res = runner.invoke(app, ["checkpoints", "add", str(_file(tmp_path)), "--params", str(top),
                              "--tokens", f"{top:_}", "--store", store_url])
    assert res.exit_code == 0, res.output
    with Store.open(store_url) as store:
        row = store.checkpoints().iloc[0]
    assert int(row["N"]) == top and int(row["tokens"]) == top
    assert row["flops"] == pytest.approx(6.0 * top * top)


@pytest.mark.parametrize(("params", "tokens", "named"), [
    (1e30, 10, "params"), (10, 1e30, "tokens"), (10**30, 10, "params"),
    (10, 2**63, "tokens"), (10, float("nan"), "tokens"), ("10", 10, "params"),
])
def test_api_counts_out_of_range_are_one_line(
    tmp_path: Path, store_url: str, params: object, tokens: object, named: str
) -> None:
    with Store.open(store_url) as store:
        with pytest.raises(ConfigError, match=f"^{named} {RANGE}") as caught:
            register_external_checkpoint(store, _file(tmp_path), params=params, tokens=tokens)
        assert "\n" not in str(caught.value)
        assert store.checkpoints().empty


@pytest.mark.parametrize(("params", "tokens", "named"), [
    (1e30, 10, "params"), (10, 1e30, "tokens"), (10**30, None, "params"),
])
def test_init_counts_out_of_range_are_one_line(
    tmp_path: Path, params: object, tokens: object, named: str
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ConfigError, match=f"^{named} {RANGE} 1 to 2\\*\\*63 - 1"):
        scaletrack.init(config={"x": 1}, params=params, tokens=tokens, store=url)
    assert not (tmp_path / "s.db").exists()


def test_api_and_cli_record_the_same_default_compute(tmp_path: Path, store_url: str) -> None:
    with Store.open(store_url) as store:
        api_id = register_external_checkpoint(store, _file(tmp_path, "api.bin"),
                                              params=20_000, tokens=1_000)
        zero_id = register_external_checkpoint(store, _file(tmp_path, "zero.bin"),
                                               params=20_000, tokens=0)
    res = runner.invoke(app, ["checkpoints", "add", str(_file(tmp_path, "cli.bin")),
                              "--params", "20000", "--tokens", "1000", "--store", store_url])
    assert res.exit_code == 0, res.output
    with Store.open(store_url) as store:
        by_name = {Path(r.path).name: r for r in store.checkpoints().itertuples(index=False)}
        assert store.get_checkpoint(api_id).flops == pytest.approx(6.0 * 20_000 * 1_000)
        assert store.get_checkpoint(zero_id).flops is None
    assert by_name["api.bin"].flops == by_name["cli.bin"].flops
    # the CLI's registration of the API's checkpoint is the same one: a no-op
    again = runner.invoke(app, ["checkpoints", "add", str(tmp_path / "api.bin"), "--params",
                                "2e4", "--tokens", "1e3", "--store", store_url])
    assert again.exit_code == 0 and "nothing changed" in again.output, again.output
