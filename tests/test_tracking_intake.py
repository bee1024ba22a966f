"""The tracking API's intake: bad values never cost a good row, a killed script resumes at
once, endings map to the right status, forks and ranks never finalise the owner's run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import scaletrack
from scaletrack.errors import ConfigError
from scaletrack.store import ClaimLost, Store, StoreError
from scaletrack.store.writer import MetricValueWarning
from scaletrack.tracking import run_key_for


def _script(tmp_path: Path, body: str, name: str = "train.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALETRACK_")
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "SCALETRACK_STORE": url, **extra}


def test_one_bad_value_costs_only_itself(store_url: str) -> None:
    """One None (and other bad values) among 100 steps."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with scaletrack.init(sweep="s", config={"x": 1}, params=1000, tokens=10_000,
                             store=store_url) as run:
            for step in range(100):
                values = {"train/loss": 3.0 - step / 100}
                if step == 37:
                    values["val/acc"] = None  # skipped, documented, no warning
                if step == 40:
                    values.update({
                        "val/acc": "n/a", "vec": torch.ones(2), "cplx": 1j,
                        "x" * 300: 1.0, "nul\x00name": 2.0, "huge": 10 ** 400,
                        "nested": {"a": np.float32(0.5), "b": {"c": torch.tensor(7)}},
                        "flag": True, "nan": float("nan"),
                    })
                if step == 41:
                    values["val/acc"] = "still n/a"  # the same key again: counted, not warned
                run.log(values, step=step, tokens=(step + 1) * 100)
    with Store.open(store_url) as store:
        rows = store.metrics([run.run_key])
        rec = store.get_run(run.run_key)
    loss = rows[rows["name"] == "train/loss"].sort_values("step")
    assert loss["step"].tolist() == list(range(100))
    assert loss["value"].tolist() == pytest.approx([3.0 - s / 100 for s in range(100)])
    kept = {r.name: r.value for r in rows[rows["step"] == 40].itertuples()}
    assert kept["nested/a"] == 0.5 and kept["nested/b/c"] == 7.0 and kept["flag"] == 1.0
    assert np.isnan(kept["nan"])
    assert set(kept) == {"train/loss", "nested/a", "nested/b/c", "flag", "nan"}
    assert rec.status == "finished" and rec.final_loss == pytest.approx(2.01)
    texts = [str(w.message) for w in caught if issubclass(w.category, MetricValueWarning)]
    val_acc = [t for t in texts if "'val/acc'" in t]
    assert len(val_acc) == 1 and "at step 40" in val_acc[0] and "got str" in val_acc[0]
    assert any("'vec'" in t and "shape (2,)" in t for t in texts)
    assert any("at most 200 characters" in t for t in texts)
    assert any("U+0000" in t and "\x00" not in t for t in texts)
    assert len(texts) == 6  # val/acc, vec, cplx, the long name, the NUL name, huge
    assert run.refused["val/acc"] == 2


def test_bad_step_or_tokens_is_one_line_and_keeps_the_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with scaletrack.init(config={"x": 1}, params=10, store=url) as run:
        run.log({"loss": 1.0}, step=np.int64(3), tokens=torch.tensor(512))
        run.log({"loss": 0.9}, step=4, tokens=1e6)
        with pytest.warns(MetricValueWarning, match="step must be a whole number from 0"):
            for bad in (-1, "7", 2.5):  # ignored: logged at the previous step + 1
                run.log({"loss": 0.5}, step=bad)
        with pytest.warns(MetricValueWarning, match="tokens must be"):
            run.log({"loss": 0.4}, step=9, tokens=float("nan"))
    with Store.open(url) as store:
        rows = store.metrics([run.run_key]).sort_values("step")
    assert rows["step"].tolist() == [3, 4, 5, 6, 7, 9]
    assert rows["tokens"].tolist()[:2] == [512, 1_000_000] and rows["tokens"][2:].isna().all()
    assert run.ignored == {"step": 3, "tokens": 1}


def test_sys_exit_zero_finishes_and_nonzero_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = _script(tmp_path, """
        import sys, scaletrack
        with scaletrack.init(config={"code": int(sys.argv[1])}, params=10) as run:
            run.log({"loss": 1.0}, step=0)
            sys.exit(int(sys.argv[1]))
    """)
    codes = {}
    for code in (0, 3):
        done = subprocess.run([sys.executable, str(script), str(code)], env=_env(url),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stderr
        codes[code] = run_key_for(None, {"code": code})
    with Store.open(url) as store:
        ok, bad = store.get_run(codes[0]), store.get_run(codes[3])
    assert ok.status == "finished" and ok.final_loss == 1.0
    assert bad.status == "failed" and bad.error == "exited with status 3"


def test_forked_child_never_finishes_the_parents_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = _script(tmp_path, """
        import os, sys, scaletrack
        with scaletrack.init(config={"fork": 1}, params=10) as run:
            run.log({"loss": 5.0}, step=0)
            pid = os.fork()
            if pid == 0:
                run.log({"loss": 99.0}, step=50)   # not recorded, one warning
                sys.exit(0)                        # a normal exit: must not finish the run
            os.waitpid(pid, 0)
            for step in range(1, 6):
                run.log({"loss": 5.0 - step}, step=step)
    """)
    done = subprocess.run([sys.executable, str(script)], env=_env(url), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "from forked process" in done.stderr
    key = run_key_for(None, {"fork": 1})
    with Store.open(url) as store:
        rec = store.get_run(key)
        rows = store.metrics([key]).sort_values("step")
    assert rows["step"].tolist() == [0, 1, 2, 3, 4, 5]  # all the parent's rows, none of the child's
    assert rec.status == "finished" and rec.final_loss == 0.0 and rec.attempts == 1


KILLABLE = """
    import pathlib, sys, time
    import scaletrack
    out = pathlib.Path(sys.argv[1])
    with scaletrack.init(sweep="k", config={"lr": 1e-3}, params=1000, tokens=64_000) as run:
        print("start", run.resume_step, flush=True)
        step = 0 if run.resume_step is None else run.resume_step + 1
        state = 0.0 if run.resume_from is None else float(pathlib.Path(run.resume_from).read_text())
        while step < 64:
            state = 0.9 * state + 0.1 * (step % 7)      # deterministic "training"
            run.log({"train/loss": 4.0 - step / 32 + state / 10, "state": state}, step=step,
                    tokens=(step + 1) * 1000)
            if step % 8 == 7:
                ckpt = out / f"step{step}.txt"
                ckpt.write_text(repr(state))
                run.checkpoint(ckpt, step=step)
            if len(sys.argv) > 2:
                time.sleep(float(sys.argv[2]))
            step += 1
"""


@pytest.mark.slow
def test_sigkilled_script_resumes_at_once_row_for_row(tmp_path: Path) -> None:
    reference_url = f"sqlite:///{tmp_path / 'ref.db'}"
    url = f"sqlite:///{tmp_path / 'k.db'}"
    (tmp_path / "ref").mkdir()
    (tmp_path / "run").mkdir()
    script = _script(tmp_path, KILLABLE)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "ref")],
                          env=_env(reference_url), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    for kill_after in (0.9, 0.5, 1.2):  # each attempt gets further (3.2 s of steps in all)
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), "0.05"],
                                env=_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("start"), (first, proc.communicate()[1][-2000:])
        time.sleep(kill_after)
        assert proc.poll() is None, "the script ended before it was killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    t0 = time.monotonic()
    again = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], env=_env(url),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr  # no RunBusyError: the dead holder is taken over
    assert "RunBusyError" not in again.stderr
    print(f"re-run after SIGKILL finished in {time.monotonic() - t0:.2f} s")
    key = run_key_for("k", {"lr": 1e-3})
    with Store.open(reference_url) as ref, Store.open(url) as store:
        want = ref.metrics([key]).sort_values(["name", "step"]).reset_index(drop=True)
        got = store.metrics([key]).sort_values(["name", "step"]).reset_index(drop=True)
        rec = store.get_run(key)
    assert rec.status == "finished" and rec.attempts >= 2
    assert len(got) == len(want) == 128
    columns = ["name", "step", "value", "tokens"]
    assert got[columns].equals(want[columns])


def test_stale_writer_is_refused_never_mixed(tmp_path: Path) -> None:
    """A run taken over from a stalled holder: the old holder's rows and ending are refused."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    old = scaletrack.init(config={"x": 1}, params=10, store=url, heartbeat_s=3600)
    old.log({"loss": 1.0}, step=0)
    old._writer.flush()
    os.environ["SCALETRACK_WORKER"] = "elsewhere:1:track"
    try:
        new = scaletrack.init(config={"x": 1}, params=10, store=url, stale_after_s=0.0)
    finally:
        del os.environ["SCALETRACK_WORKER"]
    old.log({"loss": 666.0}, step=1)
    with pytest.raises(ClaimLost):
        old.finish()
    new.log({"loss": 0.5}, step=1)
    new.finish()
    with Store.open(url) as store:
        rows = store.metrics([new.run_key]).sort_values("step")
        rec = store.get_run(new.run_key)
    assert rows["value"].tolist() == [1.0, 0.5]
    assert rec.status == "finished" and rec.worker == "elsewhere:1:track"


def test_resume_new_starts_a_fresh_run_and_names_show(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with scaletrack.init(sweep="s", config={"x": 1}, params=10, store=url, name="first") as a:
        a.log({"loss": 2.0})
    with pytest.raises(ConfigError, match="resume='new'"):
        scaletrack.init(sweep="s", config={"x": 1}, params=10, store=url)
    with scaletrack.init(sweep="s", config={"x": 1}, params=10, store=url, resume="new",
                         name="[bold]second") as b:
        b.log({"loss": 1.0})
    assert b.run_key != a.run_key and b.name == "[bold]second"
    # a crashed repeat is what "allow" resumes; "new" makes a third
    with pytest.raises(RuntimeError), scaletrack.init(sweep="s", config={"x": 1}, params=10,
                                                      store=url, resume="new") as c:
        raise RuntimeError("boom")
    with scaletrack.init(sweep="s", config={"x": 1}, params=10, store=url) as c2:
        assert c2.run_key == c.run_key
    with Store.open(url) as store:
        runs = store.runs(sweep="s").set_index("run_key")
    assert len(runs) == 3 and set(runs["status"]) == {"finished"}
    assert runs.loc[a.run_key, "name"] == "first"
    assert runs.loc[a.run_key, "config"] == runs.loc[b.run_key, "config"] == {"x": 1}


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 50, d: int = 8) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(16, d))
        self.mix = nn.Linear(d, d)
        self.head = nn.Linear(d, vocab, bias=False)


def test_count_params_and_init_model(tmp_path: Path) -> None:
    model = TinyLM()
    count = scaletrack.count_params(model)
    assert count.total == 50 * 8 + 16 * 8 + (8 * 8 + 8) + 8 * 50
    assert count.embedding == 50 * 8 and count.non_embedding == count.total - 400
    from scaletrack.models.accounting import count_module_params

    assert count_module_params(model, embedding=("pos",)).embedding == 400 + 128
    model.head.weight = model.tok.weight  # tied: counted once
    assert scaletrack.count_params(model).total == 400 + 128 + 72
    with pytest.raises(ValueError, match="no parameter named 'nope'"):
        count_module_params(model, embedding=("nope",))
    url = f"sqlite:///{tmp_path / 's.db'}"
    with scaletrack.init(config={"m": 1}, model=model, tokens=1000, store=url) as run:
        assert run.N == 128 + 72
    with Store.open(url) as store:
        rec = store.get_run(run.run_key)
    assert (rec.N, rec.N_total, rec.C) == (200, 600, 6.0 * 200 * 1000)
    with pytest.raises(ConfigError, match="model must be a torch.nn.Module"):
        scaletrack.init(config={"m": 2}, model="gpt2", store=url)


def test_closed_run_refuses_more_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    run = scaletrack.init(config={"x": 1}, params=10, store=url)
    run.finish()
    with pytest.raises(StoreError, match="is finished"):
        run.log({"loss": 1.0})


TORCHRUN = """
    import os, torch, torch.distributed as dist
    import scaletrack
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    with scaletrack.init(sweep="ddp", config={"lr": 1e-3}, params=100, tokens=4000) as run:
        assert run.active == (rank == 0), (rank, run.active)
        for step in range(20):
            loss = torch.tensor(float(step + rank * 100))
            dist.all_reduce(loss)                       # both ranks take part in every step
            run.log({"train/loss": loss / 2, "rank_seen": rank}, step=step, tokens=step * 200)
        run.log_eval("toy", "acc", 0.5, step=19)
    dist.destroy_process_group()
"""


@pytest.mark.slow
def test_torchrun_two_ranks_log_one_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = _script(tmp_path, TORCHRUN)
    torchrun = Path(sys.executable).parent / "torchrun"
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(script)],
                          env=_env(url, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with Store.open(url) as store:
        runs = store.runs()
        (key,) = runs["run_key"]
        rows = store.metrics([key])
        evals = store.evals()
    assert runs["status"].tolist() == ["finished"]
    loss = rows[rows["name"] == "train/loss"].sort_values("step")
    assert loss["step"].tolist() == list(range(20))
    assert loss["value"].tolist() == [(2 * s + 100) / 2 for s in range(20)]
    assert set(rows[rows["name"] == "rank_seen"]["value"]) == {0.0}  # rank 0's rows only
    assert len(evals) == 1


def test_log_eval_refuses_a_bad_value_alone_and_is_fenced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    old = scaletrack.init(config={"x": 1}, params=10, store=url, heartbeat_s=3600)
    old.log({"loss": 1.0}, step=3)
    with pytest.warns(MetricValueWarning, match="acc.*got str"):
        assert old.log_eval("arc", "acc", "high") is None
    with pytest.warns(MetricValueWarning, match="at most 200 characters"):
        assert old.log_eval("t" * 201, "acc", 0.5) is None
    ckpt = old.log_eval("arc", "acc", torch.tensor(0.25), stderr=np.float64(0.01))
    os.environ["SCALETRACK_WORKER"] = "elsewhere:1:track"
    try:
        new = scaletrack.init(config={"x": 1}, params=10, store=url, stale_after_s=0.0)
    finally:
        del os.environ["SCALETRACK_WORKER"]
    with pytest.raises(ClaimLost):  # the stale holder's eval at an existing checkpoint
        old.log_eval("arc", "acc", 0.99, step=3)
    new.finish()
    with Store.open(url) as store:
        evals = store.evals(task="arc")
    assert evals[["checkpoint_id", "value", "stderr"]].values.tolist() == [[ckpt, 0.25, 0.01]]


def test_a_command_cell_run_that_is_gone_names_the_store_by_its_masked_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cell.db'}"
    Store.open(url).close()
    monkeypatch.setenv("SCALETRACK_RUN", "no-such-run")
    with pytest.raises(ConfigError) as err:
        scaletrack.init(config={"params": 1000}, params=1000, store=url)
    message = str(err.value)
    assert "'no-such-run' names no run in sqlite:///" in message
    assert "Store(" not in message
