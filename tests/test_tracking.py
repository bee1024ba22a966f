"""The tracking API: `scaletrack.init` runs are keyed, claimed, heartbeated, finished, failed
and resumed like sweep cells."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import scaletrack
from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.evals.ideas import add_idea, due_ideas
from scaletrack.store import Store
from scaletrack.tracking import RunBusyError, run_key_for

CFG = {"n_layer": 2, "d_model": 64, "lr": 1e-3, "seed": 0}


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_three_line_script_finishes_with_N_D_C(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    script = _script(tmp_path, """
        import scaletrack
        cfg = {"n_layer": 2, "d_model": 64, "lr": 1e-3, "seed": 0}
        with scaletrack.init(sweep="my-ladder", config=cfg, params=98_304, tokens=1_000_000,
                             n_layer=2, d_model=64, context=128) as run:
            for step in range(50):
                run.log({"train/loss": 5.0 / (step + 1) ** 0.3, "lr": 1e-3}, step=step,
                        tokens=(step + 1) * 20_000)
            run.log_eval("hellaswag", "acc", 0.41, step=49, stderr=0.01, n_shot=0)
    """)
    done = subprocess.run([sys.executable, str(script)], env={"SCALETRACK_STORE": url,
                                                              "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = CliRunner().invoke(app, ["runs", "--json", "--store", url])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)
    assert run["status"] == "finished" and run["sweep"] == "my-ladder"
    assert run["run_key"] == run_key_for("my-ladder", CFG)
    assert run["N"] == 98_304 and run["D"] == 1_000_000
    assert run["C"] == (6 * 98_304 + 6 * 2 * 128 * 64) * 1_000_000
    assert run["final_loss"] == pytest.approx(5.0 / 50 ** 0.3)
    assert run["heartbeat_at"] is not None and run["attempts"] == 1
    with Store.open(url) as store:
        assert store.count_metrics(run["run_key"]) == 100
        evals = store.evals(task="hellaswag")
    assert evals["value"].tolist() == [0.41] and evals["stderr"].tolist() == [0.01]
    assert evals["tokens"].tolist() == [1_000_000] and evals["n_shot"].tolist() == [0]


def test_exception_fails_the_run_and_the_same_script_resumes_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ValueError), scaletrack.init(sweep="s", config=CFG, params=1000,
                                                    tokens=10_000, store=url) as run:
        run.log({"loss": 3.0}, step=1)
        raise ValueError("bad batch")
    with Store.open(url) as store:
        failed = store.get_run(run.run_key)
    assert failed.status == "failed" and failed.error == "ValueError: bad batch"

    with scaletrack.init(sweep="s", config=CFG, params=1000, tokens=10_000, store=url) as again:
        assert again.run_key == run.run_key
        again.log({"loss": 2.0}, step=2)
    with Store.open(url) as store:
        rec = store.get_run(run.run_key)
        assert rec.status == "finished" and rec.attempts == 2 and rec.final_loss == 2.0
    with pytest.raises(ConfigError, match="already finished"):
        scaletrack.init(sweep="s", config=CFG, params=1000, store=url)
    with pytest.raises(ConfigError, match="resume='never'"):
        scaletrack.init(sweep="s", config=CFG, store=url, resume="never")
    with pytest.raises(ConfigError, match="resume='must'"):
        scaletrack.init(sweep="s", config={"other": 1}, store=url, resume="must")


def test_live_run_is_not_taken_and_heartbeats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store.open(url) as store, scaletrack.init(
        sweep="s", config=CFG, params=10, tokens=10, store=store, heartbeat_s=0.05
    ) as run:
        first = store.get_run(run.run_key).heartbeat_at
        time.sleep(0.5)
        assert store.get_run(run.run_key).heartbeat_at > first
        assert store.get_run(run.run_key).status == "running"
        with pytest.raises(RunBusyError):  # another process (another worker name) is refused
            import os
            os.environ["SCALETRACK_WORKER"] = "elsewhere:1:track"
            try:
                scaletrack.init(sweep="s", config=CFG, store=url)
            finally:
                del os.environ["SCALETRACK_WORKER"]


def test_sigterm_marks_failed_and_resume_gets_the_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = _script(tmp_path, """
        import sys, time, pathlib
        import scaletrack
        with scaletrack.init(sweep="s", config={"x": 1}, params=1000, tokens=100_000) as run:
            print("resume", run.resume_from, run.resume_step, flush=True)
            start = run.resume_step or 0
            for step in range(start + 1, 11):
                run.log({"train/loss": 1.0 / step}, step=step, tokens=step * 1000)
                if step == 4:
                    ckpt = pathlib.Path(sys.argv[1]) / "step4.bin"
                    ckpt.write_bytes(b"weights")
                    run.checkpoint(ckpt, step=4)
                    print("saved", flush=True)
                if sys.argv[2] == "hang" and step == 6:
                    time.sleep(60)
    """)
    env = {"SCALETRACK_STORE": url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), "hang"], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    while "saved" not in lines:
        lines.append(proc.stdout.readline().strip())
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    with Store.open(url) as store:
        (key,) = store.runs()["run_key"]
        rec = store.get_run(key)
        assert rec.status == "failed" and "SIGTERM" in rec.error
        assert store.metrics(key)["step"].max() == 6
        idea = add_idea(store, "x", "val_loss", "loss", 0.1, direction="below")
        assert [i.id for i in due_ideas(store)] == [idea]  # the registered checkpoint counts

    done = subprocess.run([sys.executable, str(script), str(tmp_path), "go"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resume {tmp_path / 'step4.bin'} 4" in done.stdout
    with Store.open(url) as store:
        rec = store.get_run(key)
        metrics = store.metrics(key)
        ckpt = store.latest_checkpoints(key)[0]
    assert rec.status == "finished" and rec.attempts == 2
    assert metrics["step"].tolist() == list(range(1, 11))
    assert ckpt.tokens == 4000 and ckpt.flops == 6.0 * 1000 * 4000 and ckpt.sha256


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ConfigError, match="params must be a whole number from 1 to 2"):
        scaletrack.init(config=CFG, params=-3, store=url)
    with pytest.raises(ConfigError, match="resume must be one of"):
        scaletrack.init(config=CFG, params=3, store=url, resume="sometimes")
    with pytest.raises(ConfigError, match="needs a config"):
        scaletrack.init(store=url)


def test_tags_notes_and_filters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    for lr in (1e-3, 3e-3):
        with scaletrack.init(sweep="s", config={"lr": lr}, params=10, tokens=10, store=url,
                             tags=["ladder"] if lr == 1e-3 else []) as run:
            run.log({"loss": lr})
    runner = CliRunner()
    with Store.open(url) as store:
        keys = list(store.runs()["run_key"])
    res = runner.invoke(app, ["tag", keys[1][:6], "best", "[bold]x", "--note", "lr sweep top",
                              "--store", url])
    assert res.exit_code == 0 and "tags [bold]x, best" in res.output
    res = runner.invoke(app, ["tag", "s", "v1", "--sweep", "--store", url])
    assert res.exit_code == 0
    with Store.open(url) as store:
        assert list(store.runs(tag="ladder")["run_key"]) == [keys[0]]
        tagged = store.runs(tag="best")
        assert tagged["note"].tolist() == ["lr sweep top"]
        assert tagged["tags"].tolist() == [["[bold]x", "best"]]
        assert store.sweeps(tag="v1")["name"].tolist() == ["s"]
        assert store.tag(run_key=keys[1], remove=["best"]) == ["[bold]x"]
    res = runner.invoke(app, ["runs", "--tag", "ladder", "--json", "--store", url])
    assert [r["run_key"] for r in json.loads(res.output)] == [keys[0]]
    res = runner.invoke(app, ["tag", "nosuch", "x", "--store", url])
    assert res.exit_code == 1 and "no run with key 'nosuch'" in res.output
