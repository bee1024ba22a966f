"""`scaletrack.init` reads its environment once, before it opens or writes the store."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

import scaletrack as st
from scaletrack.store import Store
from scaletrack.tracking.attach import AttachSettings


def test_settings_are_read_from_the_environment_and_frozen(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCALETRACK_RUN", "abc")
    monkeypatch.setenv("SCALETRACK_CLAIM", "7")
    monkeypatch.setenv("SCALETRACK_WORKER", "node-3:41")
    monkeypatch.setenv("SCALETRACK_RESUME_FROM", str(tmp_path / "step_10.pt"))
    monkeypatch.setenv("SCALETRACK_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    monkeypatch.setenv("SCALETRACK_STORE", "sqlite:///from-env.db")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    settings = AttachSettings.from_environment()
    assert settings == AttachSettings(
        cell_run="abc", claim="7", worker="node-3:41", resume_from=str(tmp_path / "step_10.pt"),
        checkpoint_dir=tmp_path / "ckpt", store_url="sqlite:///from-env.db", rank=1, world=2)
    assert AttachSettings.from_environment(tmp_path / "given.db").store_url == str(
        tmp_path / "given.db")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.worker = "other"  # type: ignore[misc]


class _EnvironmentChangingStore:
    """A real store that changes the process environment at its first write, as a library
    imported by the training script (or a signal handler) might."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def ensure_run(self, run: Any) -> Any:
        os.environ["SCALETRACK_WORKER"] = "changed-during-init"
        os.environ["SCALETRACK_CHECKPOINT_DIR"] = "/changed/during/init"
        return self._store.ensure_run(run)


def test_init_uses_the_settings_it_read_before_its_first_write(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SCALETRACK_RUN", raising=False)
    monkeypatch.setenv("SCALETRACK_WORKER", "worker-a")
    monkeypatch.setenv("SCALETRACK_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        run = st.init("settings", {"lr": 1e-3}, params=1000, tokens=10_000,
                      store=_EnvironmentChangingStore(store))
        try:
            assert os.environ["SCALETRACK_WORKER"] == "changed-during-init"  # it did change
            assert run.worker == "worker-a" and run.checkpoint_dir == tmp_path / "ckpt"
            assert store.get_run(run.run_key).worker == "worker-a"
        finally:
            run.finish()


def test_init_opens_the_store_named_by_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.delenv("SCALETRACK_RUN", raising=False)
    monkeypatch.setenv("SCALETRACK_STORE", url)
    run = st.init("settings", {"lr": 2e-3}, params=1000, tokens=10_000)
    run.finish()
    with Store.open(url) as store:
        assert store.get_run(run.run_key) is not None
