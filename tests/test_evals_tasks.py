"""Task evaluations on checkpoints: built-in tasks, user module:function tasks, error paths."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import pytest

from scaletrack.errors import ConfigError, DataError
from scaletrack.evals.evaluate import (
    LoadedCheckpoint,
    TaskError,
    evaluate_checkpoint,
    load_checkpoint,
    register_external_checkpoint,
    resolve_task,
)
from scaletrack.evals.hooks import evaluate_after_checkpoint
from scaletrack.models.build import build_model
from scaletrack.models.checkpoint import save_checkpoint
from scaletrack.store import Store

SHAPE = {"n_layer": 1, "n_head": 2, "d_model": 16, "context": 32}
DATA = {"task": "addition", "n_examples": 400}
USER_MODULE = "scaletrack_f_user_tasks"
USER_TASKS = '''
def size_in_thousands(ckpt):
    return ckpt.record.N / 1000.0

def two_metrics(ckpt):
    return {"a": 1.5, "b": 2}

def boom(ckpt):
    raise ValueError("bad input\\nsecond line of detail")

def count_files(ckpt):
    from pathlib import Path
    assert ckpt.model is None  # registered without a loader: the task reads the files itself
    return len(list(Path(ckpt.record.path).iterdir()))

def not_a_number(ckpt):
    return "seven"

def load_gpt(record):
    from scaletrack.models.checkpoint import load_checkpoint_model
    from dataclasses import replace
    return load_checkpoint_model(replace(record, loader="gpt"))
'''


@pytest.fixture()
def user_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real importable module of user tasks; returns its name."""
    folder = tmp_path / "user_pkg"
    folder.mkdir()
    (folder / f"{USER_MODULE}.py").write_text(textwrap.dedent(USER_TASKS))
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(USER_MODULE, None)
    return USER_MODULE


@pytest.fixture()
def store(tmp_path: Path):
    s = Store.open(f"sqlite:///{tmp_path / 'evals.db'}")
    yield s
    s.close()


def make_checkpoint(store, folder: Path, *, tokens: int = 10_000, seed: int = 0,
                    loader: str = "gpt") -> int:
    """Save a freshly initialised tiny GPT and register it as an external checkpoint."""
    import torch

    torch.manual_seed(seed)
    model = build_model("gpt", SHAPE)
    n_params = sum(p.numel() for p in model.parameters())
    path = folder / f"tiny_{seed}_{tokens}.safetensors"
    save_checkpoint(path, model, meta={"model": SHAPE})
    return register_external_checkpoint(
        store, path, params=n_params, tokens=tokens, loader=loader,
        meta={"model": SHAPE, "data": DATA},
    )


def test_unknown_task_name_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="unknown task 'multiplication'"):
        resolve_task("multiplication")
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        resolve_task("no_such_module_xyz:f")


def test_unknown_task_fails_before_anything_is_written(store, tmp_path):
    ckpt = make_checkpoint(store, tmp_path)
    with pytest.raises(ConfigError, match="nope"):
        evaluate_checkpoint(store, ckpt, ["val_loss", "nope"])
    assert store.evals().empty


def test_builtin_tasks_on_a_random_model(store, tmp_path):
    ckpt = make_checkpoint(store, tmp_path)
    results = evaluate_checkpoint(store, ckpt, ["val_loss", "addition", "continuation"])
    # an untrained byte-level model predicts ~uniformly: loss near ln(256) nats/token
    assert abs(results["val_loss"]["loss"] - math.log(256)) < 0.3
    assert 0.0 <= results["addition"]["exact_match"] <= 1.0
    assert results["addition"]["logprob_per_token"] < 0.0
    cont = results["continuation"]
    assert cont["loss"] == pytest.approx(-cont["logprob_per_token"])
    stored = store.evals()
    assert set(stored["task"]) == {"val_loss", "addition", "continuation"}
    row = stored[(stored["task"] == "val_loss") & (stored["metric"] == "loss")]
    assert float(row["value"].iloc[0]) == pytest.approx(results["val_loss"]["loss"])
    assert int(row["checkpoint_id"].iloc[0]) == ckpt


def test_user_tasks_scalar_and_dict(store, tmp_path, user_tasks):
    ckpt = make_checkpoint(store, tmp_path)
    n = store.get_checkpoint(ckpt).N
    res = evaluate_checkpoint(
        store, ckpt, [f"{user_tasks}:size_in_thousands", f"{user_tasks}:two_metrics"]
    )
    assert res[f"{user_tasks}:size_in_thousands"] == {"value": pytest.approx(n / 1000)}
    assert res[f"{user_tasks}:two_metrics"] == {"a": 1.5, "b": 2.0}
    assert len(store.evals()) == 3


def test_raising_user_task_is_one_line_and_harms_nothing(store, tmp_path, user_tasks):
    ckpt = make_checkpoint(store, tmp_path)
    evaluate_checkpoint(store, ckpt, [f"{user_tasks}:two_metrics"])
    before = store.evals().sort_values("metric").reset_index(drop=True)
    with pytest.raises(TaskError) as info:
        evaluate_checkpoint(store, ckpt, [f"{user_tasks}:size_in_thousands",
                                          f"{user_tasks}:boom"])
    message = str(info.value)
    assert f"{user_tasks}:boom" in message and "ValueError" in message and "bad input" in message
    assert "\n" not in message
    after = store.evals().sort_values("metric").reset_index(drop=True)
    assert after[["checkpoint_id", "task", "metric", "value"]].equals(
        before[["checkpoint_id", "task", "metric", "value"]]
    )


def test_non_numeric_result_is_a_task_error(store, tmp_path, user_tasks):
    ckpt = make_checkpoint(store, tmp_path)
    with pytest.raises(TaskError, match="not_a_number.*expected a number"):
        evaluate_checkpoint(store, ckpt, [f"{user_tasks}:not_a_number"])


def test_hook_reports_errors_instead_of_raising_and_marks_ideas_due(store, tmp_path, user_tasks):
    from scaletrack.evals.ideas import add_idea

    idea = add_idea(store, "bigger", f"{user_tasks}:size_in_thousands", "value", 1e9)
    ckpt = make_checkpoint(store, tmp_path)
    report = evaluate_after_checkpoint(
        store, ckpt, [f"{user_tasks}:boom", "val_loss", "bogus_task"]
    )
    assert set(report.errors) == {f"{user_tasks}:boom", "bogus_task"}
    assert "val_loss" in report.values
    assert set(store.evals()["task"]) == {"val_loss"}
    assert report.due_ideas == (idea,) and store.get_idea(idea).status == "due"

    report = evaluate_after_checkpoint(store, ckpt, (), rerun_ideas=True)
    assert report.due_ideas == () and store.get_idea(idea).status == "not-yet"
    assert len(store.idea_attempts(idea)) == 1


def test_lstm_checkpoint_val_loss(store, tmp_path):
    import torch

    shape = {"n_layer": 1, "d_hidden": 16}
    torch.manual_seed(0)
    path = tmp_path / "lstm.safetensors"
    save_checkpoint(path, build_model("lstm", shape))
    ckpt = register_external_checkpoint(
        store, path, params=1000, tokens=1000, loader="lstm",
        meta={"model": shape, "data": DATA, "context": 32},
    )
    loss = evaluate_checkpoint(store, ckpt, ["val_loss"])["val_loss"]["loss"]
    assert abs(loss - math.log(256)) < 0.3


def test_user_loader_and_checksum(store, tmp_path, user_tasks):
    ckpt = make_checkpoint(store, tmp_path, loader=f"{user_tasks}:load_gpt")
    loaded = load_checkpoint(store, ckpt)
    assert isinstance(loaded, LoadedCheckpoint)
    assert loaded.data == DATA and loaded.N == store.get_checkpoint(ckpt).N
    path = Path(store.get_checkpoint(ckpt).path)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(DataError, match="sha256"):
        load_checkpoint(store, ckpt)


def test_external_registration_validates(store, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        register_external_checkpoint(store, tmp_path / "missing.pt", params=10, tokens=10)
    (tmp_path / "x.bin").write_bytes(b"123")
    with pytest.raises(ConfigError, match="unknown loader 'jax'"):
        register_external_checkpoint(store, tmp_path / "x.bin", params=10, tokens=10,
                                     loader="jax")
    with pytest.raises(ConfigError, match="params"):
        register_external_checkpoint(store, tmp_path / "x.bin", params=0, tokens=10)
    ckpt_id = register_external_checkpoint(store, tmp_path / "x.bin", params=10, tokens=20,
                                           flops=1e6)
    rec = store.get_checkpoint(ckpt_id)
    assert rec.kind == "external" and rec.run_key is None and rec.flops == 1e6
    import hashlib

    assert rec.sha256 == hashlib.sha256(b"123").hexdigest()


def test_checkpoint_without_data_spec_names_the_fix(store, tmp_path):
    import torch

    torch.manual_seed(0)
    model = build_model("gpt", SHAPE)
    path = tmp_path / "nodata.safetensors"
    save_checkpoint(path, model)
    ckpt = register_external_checkpoint(store, path, params=100, tokens=100, loader="gpt",
                                        meta={"model": SHAPE})
    with pytest.raises(TaskError, match="names no data"):
        evaluate_checkpoint(store, ckpt, ["val_loss"])


def test_directory_checkpoint_without_loader(store, tmp_path, user_tasks):
    folder = tmp_path / "hf_style"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "weights.bin").write_bytes(b"\x00" * 10)
    ckpt = register_external_checkpoint(store, folder, params=10, tokens=10)
    sha = store.get_checkpoint(ckpt).sha256
    res = evaluate_checkpoint(store, ckpt, [f"{user_tasks}:count_files"])
    assert res[f"{user_tasks}:count_files"] == {"value": 2.0}
    with pytest.raises(TaskError, match="without a loader"):
        evaluate_checkpoint(store, ckpt, ["val_loss"])
    (folder / "weights.bin").write_bytes(b"\x01" * 10)
    with pytest.raises(DataError, match="sha256"):
        evaluate_checkpoint(store, ckpt, [f"{user_tasks}:count_files"])
    assert len(sha) == 64
