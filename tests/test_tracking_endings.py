"""How a tracked run ends and what it keeps, in the cases an outside review broke: runs left
open at exit, SIGTERM with and without a handler of the user's, multiprocessing pools, values
updated in place after logging, counts too big for 64 bits, hostile names and mappings."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import scaletrack
from scaletrack.errors import ConfigError
from scaletrack.store import Store
from scaletrack.store.writer import MetricValueWarning
from scaletrack.tracking import run_key_for


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALETRACK_")
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "SCALETRACK_STORE": url}


def _run_script(tmp_path: Path, body: str, *args: str, timeout: float = 120
                ) -> subprocess.CompletedProcess:
    script = tmp_path / f"s{abs(hash(body)) % 10**8}.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script), *args],
                          env=_env(f"sqlite:///{tmp_path / 's.db'}"), capture_output=True,
                          text=True, timeout=timeout)


def _status(tmp_path: Path, config: dict) -> tuple[str, str | None, int]:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        key = run_key_for(None, config)
        rec = store.get_run(key)
        return rec.status, rec.error, store.count_metrics(key)


OPEN_RUN = """
    import os, signal, sys, scaletrack
    how = sys.argv[1]
    run = scaletrack.init(config={"how": how}, params=10)    # no `with`, no finish()
    run.log({"loss": 1.0}, step=0)
    if how == "exit1":
        sys.exit(1)
    if how == "exit0":
        sys.exit(0)
    if how == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    if how == "finally":
        try:
            raise ValueError("diverged")
        finally:
            run.finish()
"""


@pytest.mark.parametrize(("how", "status", "error", "code"), [
    ("exit1", "failed", "exited with status 1", 1),
    ("exit0", "finished", None, 0),
    ("term", "failed", "terminated (SIGTERM)", 143),
    ("finally", "failed", "ValueError: diverged", 1),
    ("end", "finished", None, 0),
])
def test_a_run_left_open_ends_by_how_the_script_ended(tmp_path: Path, how: str, status: str,
                                                      error: str | None, code: int) -> None:
    done = _run_script(tmp_path, OPEN_RUN, how)
    assert done.returncode == code, done.stderr
    assert _status(tmp_path, {"how": how}) == (status, error, 1)


def test_a_users_sigterm_handler_still_runs_and_the_run_fails(tmp_path: Path) -> None:
    done = _run_script(tmp_path, """
        import os, signal, sys, time, scaletrack
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))   # save-on-preemption style
        with scaletrack.init(config={"h": 1}, params=10) as run:
            for step in range(50):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
                if step == 10:
                    os.kill(os.getpid(), signal.SIGTERM)
                if stop:
                    print("handler ran at", step, flush=True)
                    break
    """)
    assert done.returncode == 0, done.stderr
    assert "handler ran at" in done.stdout
    assert _status(tmp_path, {"h": 1}) == ("failed", "terminated (SIGTERM)", 11)


@pytest.mark.slow
def test_fork_pools_terminated_after_init_never_hang(tmp_path: Path) -> None:
    done = _run_script(tmp_path, """
        import multiprocessing as mp, scaletrack
        def work(x):
            return x * x
        with scaletrack.init(config={"pool": 1}, params=10) as run:
            for k in range(40):
                with mp.get_context("fork").Pool(3) as pool:   # leaving `with` terminates it
                    pool.map(work, range(6))
                run.log({"k": float(k)}, step=k)
    """, timeout=240)
    assert done.returncode == 0, done.stderr
    assert _status(tmp_path, {"pool": 1}) == ("finished", None, 40)


def test_values_are_taken_when_logged_not_when_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    scale = torch.nn.Parameter(torch.tensor(0.0))
    opt = torch.optim.SGD([scale], lr=1.0)
    acc = torch.zeros(())
    with scaletrack.init(config={"inplace": 1}, params=10, store=url) as run:
        for step in range(50):
            acc += step
            run.log({"scale": scale, "acc": acc}, step=step)
            opt.zero_grad()
            (-scale).backward()
            opt.step()  # scale += 1, in place
            acc.zero_()
    with Store.open(url) as store:
        rows = store.metrics([run.run_key])
    for name, want in (("scale", range(50)), ("acc", range(50))):
        got = rows[rows["name"] == name].sort_values("step")["value"].tolist()
        assert got == [float(v) for v in want]


def test_counts_beyond_64_bits_are_one_line_and_cost_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with (pytest.warns(MetricValueWarning) as caught,
          scaletrack.init(config={"big": 1}, params=10, store=url) as run):
        for step in range(20):
            run.log({"loss": 1.0}, step=step)
        for bad in (2**63, 2**70, 1e300):  # ignored: logged at steps 20, 21, 22
            run.log({"loss": 1.0}, step=bad)
        run.log({"loss": 1.0}, step=23, tokens=2**64)  # logged without tokens
    texts = [str(w.message) for w in caught]
    assert any("step must be a whole number from 0 to 2**63 - 1" in t for t in texts)
    assert any("tokens must be a whole number from 0 to 2**63 - 1" in t for t in texts)
    with Store.open(url) as store:
        rows = store.metrics([run.run_key])
        assert store.get_run(run.run_key).status == "finished"
    assert sorted(rows["step"].tolist()) == list(range(24)) and rows["tokens"].isna().all()


class Exploding(dict):
    def items(self):  # noqa: ANN201
        raise RuntimeError("boom")


class BadFloat(float):
    def __float__(self) -> float:
        raise RuntimeError("no")


class BadFraction(Fraction):
    def __float__(self) -> float:
        raise ZeroDivisionError


def test_hostile_names_and_mappings_cost_only_themselves(store_url: str) -> None:
    url = store_url
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with scaletrack.init(config={"hostile": 1}, params=10, store=url) as run:
            for step in range(20):
                values: dict = {"train/loss": 1.0 + step}
                if step == 5:
                    values.update({"bad\ud800": 1.0, "rtl\u202eevil": 2.0, "sep\u2028": 3.0,
                                   "nested": Exploding(a=1), "f": BadFloat(1.0),
                                   "q": BadFraction(1, 3), "ld": 10 ** 400})
                run.log(values, step=step)
                if step == 6:
                    run.log(Exploding(x=1.0), step=step)  # nothing readable: nothing kept
    with Store.open(url) as store:
        rows = store.metrics([run.run_key])
        rec = store.get_run(run.run_key)
    assert rec.status == "finished"
    assert sorted(rows["name"].unique()) == ["train/loss"]
    assert rows["step"].sort_values().tolist() == list(range(20))
    refused = [str(w.message) for w in caught if issubclass(w.category, MetricValueWarning)]
    assert len(refused) == 8, refused
    assert all("\ud800" not in t and "\u202e" not in t for t in refused)


def test_a_second_init_in_the_same_process_keeps_the_first_runs_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = scaletrack.init(config={"nb": 1}, params=10, store=url)
    for step in range(10):
        first.log({"loss": float(step)}, step=step)
    second = scaletrack.init(config={"nb": 1}, params=10, store=url)  # the cell run again
    assert first.closed
    for step in range(10, 20):
        second.log({"loss": float(step)}, step=step)
    second.finish()
    with Store.open(url) as store:
        assert store.count_metrics(second.run_key) == 20
        assert store.get_run(second.run_key).status == "finished"


def test_init_arguments_are_one_line_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    cases = [
        ({"config": {"x": 1}, "params": 10, "flops_per_token": "x"}, "flops_per_token must be"),
        ({"config": {1: "a"}, "params": 10}, "config keys must be text"),
        ({"config": {"f": lambda: 0}, "params": 10}, "config must be JSON data"),
        ({"config": {"x": 1}, "params": "1e6"}, "params must be a whole number"),
        ({"config": {"x": 1}, "params": 10, "heartbeat_s": 0}, "heartbeat_s must be a positive"),
        ({"config": {"x": 1}, "model": torch.nn.LazyLinear(3)}, "cannot count the parameters"),
        ({"config": {"x": 1}, "params": 10, "name": "x\n\x1b[31mFAKE"}, "name contains"),
        ({"config": {"x": 1}, "params": 10, "sweep": "a\nb"}, "sweep contains"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ConfigError, match=match):
            scaletrack.init(store=url, **kwargs)
    ns = argparse.Namespace(lr=1e-3, seed=1)
    with scaletrack.init(config=ns, params=10, store=url) as run:
        pass
    assert run.run_key == run_key_for(None, {"lr": 1e-3, "seed": 1})


def test_sigterm_in_a_forked_child_behaves_as_before_init(tmp_path: Path) -> None:
    done = _run_script(tmp_path, """
        import os, signal, time, scaletrack
        with scaletrack.init(config={"child": 1}, params=10) as run:
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
            print("child", os.WIFSIGNALED(status), os.WTERMSIG(status), flush=True)
            run.log({"loss": 1.0}, step=0)
    """)
    assert done.returncode == 0, done.stderr
    assert f"child True {int(signal.SIGTERM)}" in done.stdout
    assert _status(tmp_path, {"child": 1}) == ("finished", None, 1)
