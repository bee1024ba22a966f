"""Fault and load drivers shared by the reliability tests and `bench/soak.py`.

- `run_chaos`: a small grid through `scaletrack sweep run` (a subprocess), SIGKILLing random
  worker processes (and now and then the sweep process itself) at random moments, damaging a
  crashed cell's newest checkpoint between runs, rerunning until every cell is finished; the
  metric rows are then compared with those of an uninterrupted sweep of the same grid.
- `run_load`: several processes write metrics through `MetricWriter` into one SQLite store
  while readers read; counts lock errors and rows lost.
- `store_fingerprint`: row counts and a hash of every table of a SQLite store, to prove that
  a rejected input left it untouched; `populate_store` fills one with a bit of everything.

Torch's results depend on its thread count, and the local executor gives each worker
cores / workers threads, so a sweep process is pinned to one CPU: every worker then trains
with one thread, in the reference sweep and in every rerun, and resume can be compared exactly.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[2]
KEYS = ["run_key", "name", "step"]


# ----------------------------------------------------------------------------- grid files


def grid_toml(
    name: str,
    *,
    tokens: Sequence[int] = (3200, 6400),
    sizes: Sequence[tuple[int, int, int]] = ((1, 2, 16), (2, 2, 16)),
    checkpoint_every: int = 5,
    eval_every: int = 10,
    context: int = 16,
    batch_size: int = 4,
    extra: str = "",
) -> str:
    """A tiny GPT grid on the stdlib corpus (steps = tokens / (batch_size * context))."""
    shapes = ", ".join(f"{{ n_layer = {a}, n_head = {b}, d_model = {c} }}" for a, b, c in sizes)
    return f"""\
name = "{name}"
[data]
corpus = "stdlib"
context = {context}
options = {{ max_bytes = 200_000 }}
[model]
family = "gpt"
sizes = [{shapes}]
[axes]
tokens = [{", ".join(str(t) for t in tokens)}]
seeds = [0]
lrs = [0.003]
[train]
batch_size = {batch_size}
device = "cpu"
[eval]
every = {eval_every}
batches = 2
[checkpoint]
every = {checkpoint_every}
[executor]
kind = "local"
workers = 2
{extra}"""


# ----------------------------------------------------------------------------- processes


def _pin(which: str) -> Callable[[], None]:
    """preexec_fn pinning a process (and the workers it spawns) to one CPU: the lowest or the
    highest this process may use (the same CPU where there is only one)."""

    def pin() -> None:
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus) if which == "low" else max(cpus)})

    return pin


def scaletrack_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "scaletrack.cli.main", *args]


def start_sweep(grid: Path, url: str, workers: int = 2, cpu: str = "low") -> subprocess.Popen:
    """`scaletrack sweep run GRID` as a subprocess pinned to one CPU, output captured."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        scaletrack_cmd("sweep", "run", str(grid), "--store", url, "--workers", str(workers)),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_pin(cpu),
    )


def worker_children(pid: int) -> list[Any]:
    """The executor's spawned worker processes (not multiprocessing's resource tracker)."""
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    out = []
    for child in children:
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.Error:
            continue
    return out


def running_holders(store: Any, *, checkpointed: bool = False) -> dict[int, str]:
    """pid -> run_key of every running cell (worker names are host:pid:index); with
    `checkpointed`, only cells that already have a checkpoint."""
    try:
        runs = store.runs(status="running")
        out = {}
        for key, worker in zip(runs["run_key"], runs["worker"], strict=True):
            parts = str(worker).split(":")
            if len(parts) < 3 or not parts[-2].isdigit():
                continue
            if checkpointed and not store.latest_checkpoints(str(key)):
                continue
            out[int(parts[-2])] = str(key)
        return out
    except Exception:  # noqa: BLE001 - a store busy being written is retried by the caller
        return {}


def metric_rows(url: str) -> pd.DataFrame:
    """Every metric row: run_key, name, step, value; sorted."""
    from scaletrack.store import Store

    with Store.open(url) as store:
        df = store.metrics()
    return df[[*KEYS, "value"]].sort_values(KEYS).reset_index(drop=True)


# ----------------------------------------------------------------------------- chaos


@dataclass
class ChaosResult:
    kills: int = 0  # SIGKILLs sent to worker processes
    kills_mid_cell: int = 0  # of which the victim held a running cell
    parent_kills: int = 0  # of which the victim was the `sweep run` process itself
    sweep_runs: int = 0  # `sweep run` invocations until every cell finished
    cells: int = 0
    rows_compared: int = 0
    max_loss_diff: float = 0.0  # nats, train/loss and val/loss vs the uninterrupted sweep
    max_value_diff: float = 0.0  # every metric, relative to max(1, |reference|)
    resumed_cells: int = 0  # cells trained in more than one attempt
    corrupted: int = 0  # newest checkpoints of crashed cells damaged before the rerun
    fallbacks_reported: int = 0  # damaged checkpoints named in a later run's output
    outputs: list[str] = field(default_factory=list)


def run_sweep_to_end(grid: Path, url: str, max_runs: int = 12, cpu: str = "low") -> list[str]:
    """Run `sweep run` (no faults) until it exits 0; return the outputs."""
    outputs = []
    for _ in range(max_runs):
        proc = start_sweep(grid, url, cpu=cpu)
        out, err = proc.communicate(timeout=600)
        outputs.append(out + err)
        if proc.returncode == 0:
            return outputs
        if proc.returncode != 1:
            raise AssertionError(f"sweep run exited {proc.returncode}:\n{out}\n{err}")
    raise AssertionError("sweep did not finish:\n" + "\n".join(outputs[-2:]))


def run_chaos(
    workdir: Path,
    *,
    kills: int = 6,
    seed: int = 0,
    tokens: Sequence[int] = (3200, 6400),
    max_kills_per_run: int = 2,
    log: Callable[[str], None] = print,
    reference_url: str | None = None,
    corrupt: bool = True,
    parent_every: int = 3,
    extra: str = "",
) -> tuple[ChaosResult, pd.DataFrame, pd.DataFrame]:
    """SIGKILL `kills` times at random moments of a sweep, rerun until every cell is done.

    `extra` is appended to the grid file (e.g. a [schedule] table). Every `parent_every`-th
    kill (0: none) hits the `sweep run` process itself instead of a worker. With `corrupt`,
    after every sweep run that left crashed cells the newest checkpoint of one of them is
    truncated or bit-flipped, so the rerun must fall back to an older one.

    Returns (figures, metric rows of the chaotic sweep, rows of the uninterrupted reference).
    """
    from scaletrack.store import Store

    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    grid = workdir / "chaos.toml"
    grid.write_text(grid_toml("chaos", tokens=tokens, extra=extra))
    reference_proc = None
    if reference_url is None:  # the uninterrupted sweep runs meanwhile, on the other CPU
        ref_dir = workdir / "reference"
        ref_dir.mkdir(exist_ok=True)
        reference_url = f"sqlite:///{ref_dir / 'ref.db'}"
        reference_proc = start_sweep(grid, reference_url, cpu="high")

    url = f"sqlite:///{workdir / 'chaos.db'}"
    poll = Store.open(url)  # schema in place before the sweep starts; polled for running cells
    result = ChaosResult()
    damaged: list[str] = []
    for _ in range(kills + 12):
        proc = start_sweep(grid, url)
        killed_here = 0
        after_checkpoint: bool | None = None  # the plan for the next kill, drawn once
        while proc.poll() is None:
            if result.kills >= kills or killed_here >= max_kills_per_run:
                time.sleep(0.1)
                continue
            # most kills (the first always) wait until a cell has a checkpoint and hit a worker
            # training one (it resumes from there); the rest hit any worker at any moment
            if after_checkpoint is None:
                after_checkpoint = result.kills == 0 or rng.random() < 0.75
            holders = running_holders(poll, checkpointed=after_checkpoint)
            if not holders or not worker_children(proc.pid):
                time.sleep(0.05)
                continue
            time.sleep(rng.uniform(0.0, 0.5 if after_checkpoint else 1.5))  # a random moment
            victims = worker_children(proc.pid)
            holders = running_holders(poll)
            if after_checkpoint:
                victims = [p for p in victims if p.pid in holders]
            if not victims:
                continue
            if parent_every and (result.kills + 1) % parent_every == 0:
                # the `sweep run` process itself: its workers notice, checkpoint and release
                orphans = worker_children(proc.pid)
                proc.kill()
                proc.wait()
                psutil.wait_procs(orphans, timeout=120)
                result.kills += 1
                result.parent_kills += 1
                log(f"chaos: SIGKILL #{result.kills} the sweep process {proc.pid} "
                    f"({len(orphans)} workers left to stop on their own)")
                break
            victim = rng.choice(sorted(victims, key=lambda p: p.pid))
            try:
                victim.kill()  # SIGKILL
            except Exception:  # noqa: BLE001 - it exited on its own meanwhile
                continue
            result.kills += 1
            killed_here += 1
            after_checkpoint = None
            result.kills_mid_cell += victim.pid in holders
            log(f"chaos: SIGKILL #{result.kills} worker pid {victim.pid}"
                f" ({'training ' + holders[victim.pid] if victim.pid in holders else 'idle'})")
        out, err = proc.communicate()
        result.sweep_runs += 1
        result.outputs.append(out + err)
        if "Traceback" in out + err:
            raise AssertionError(f"traceback in sweep output:\n{out}\n{err}")
        if proc.returncode not in (0, 1, -9):
            raise AssertionError(f"sweep run exited {proc.returncode}:\n{out}\n{err}")
        if proc.returncode == 0:
            done = poll.runs(sweep="chaos")["status"].eq("finished").all()
            if result.kills >= kills or (done and killed_here == 0):
                break  # every kill made, or the grid finished before the next one could land
        if corrupt:
            path = _damage_a_crashed_cell(url, rng)
            if path is not None:
                result.corrupted += 1
                damaged.append(path)
                log(f"chaos: damaged checkpoint {Path(path).name} of a crashed cell")
    # a rerun that skips a damaged checkpoint should say so, naming the file
    said = "\n".join(result.outputs)
    result.fallbacks_reported = sum(path in said for path in damaged)
    poll.close()
    if reference_proc is not None:
        out, err = reference_proc.communicate(timeout=600)
        if reference_proc.returncode != 0:
            raise AssertionError(f"reference sweep failed:\n{out}\n{err}")
    reference = metric_rows(reference_url)
    with Store.open(url) as store:
        runs = store.runs(sweep="chaos")
    result.cells = len(runs)
    result.resumed_cells = int((runs["attempts"] > 1).sum())
    got = metric_rows(url)
    merged = reference.merge(got, on=KEYS, how="inner", suffixes=("_ref", "_got"))
    result.rows_compared = len(merged)
    ref_v, got_v = merged["value_ref"].to_numpy(), merged["value_got"].to_numpy()
    both_nan = np.isnan(ref_v) & np.isnan(got_v)
    diff = np.where(both_nan, 0.0, np.abs(ref_v - got_v))
    losses = merged["name"].isin(["train/loss", "val/loss"]).to_numpy()
    result.max_loss_diff = float(diff[losses].max()) if losses.any() else 0.0
    scale = np.maximum(1.0, np.abs(np.nan_to_num(ref_v)))
    result.max_value_diff = float((diff / scale).max()) if len(diff) else 0.0
    return result, got, reference


def _damage_a_crashed_cell(url: str, rng: random.Random) -> str | None:
    """Truncate or bit-flip the newest checkpoint of a random failed cell; return its path."""
    from scaletrack.store import Store

    with Store.open(url) as store:
        failed = sorted(store.runs(status="failed")["run_key"])
        if not failed:
            return None
        ckpts = store.latest_checkpoints(rng.choice(failed))
    if not ckpts or not Path(ckpts[0].path).is_file():
        return None  # with no older checkpoint, the rerun restarts the cell
    path = Path(ckpts[0].path)
    raw = bytearray(path.read_bytes())
    if rng.random() < 0.5:
        raw = raw[: len(raw) // 2]
    else:
        raw[rng.randrange(len(raw))] ^= 0x01
    path.write_bytes(bytes(raw))
    return str(path)


# ----------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    writers: int
    readers: int
    seconds: float
    rows_logged: int
    rows_stored: int
    rows_lost: int  # logged by a writer, not in the store
    rows_extra: int  # in the store, never logged
    lock_errors: int  # "database is locked"/"busy" seen by any writer or reader
    other_errors: list[str]
    reads: int  # reader queries completed


def _is_lock_error(text: str) -> bool:
    low = text.lower()
    return "locked" in low or "busy" in low


def _load_writer(url: str, index: int, seconds: float, start: Any, out: Any) -> None:
    """One writer process: log 3 metrics per step through MetricWriter for `seconds`."""
    from scaletrack.store import RunRecord, Store

    errors: list[str] = []
    logged = 0
    key = f"load-{index:02d}"
    try:
        store = Store.open(url)
        store.ensure_run(RunRecord(run_key=key, sweep="load", family="gpt", config={"i": index},
                                   N=None, N_total=None, D=None, C=None))
        start.wait()
        deadline = time.monotonic() + seconds
        with store.metric_writer(key, batch_size=256, flush_interval_s=0.2) as writer:
            step = 0
            while time.monotonic() < deadline:
                writer.log_many(step, {"train/loss": 1.0 / (step + 1), "lr": float(index),
                                       "grad_norm": float(step % 7)}, tokens=step * 64)
                logged += 3
                step += 1
                if step % 500 == 0:
                    writer.flush()
                    store.heartbeat(key, "load")
                if step % 50 == 0:
                    time.sleep(0.001)  # let the other writers in
        store.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, counted
        errors.append(f"writer {index}: {type(exc).__name__}: {exc}")
    out.put(("writer", index, logged, errors, 0))


def _load_reader(url: str, index: int, seconds: float, writers: int, start: Any,
                 out: Any) -> None:
    """One reader process: random metrics/runs/count queries for `seconds`."""
    from scaletrack.store import Store

    errors: list[str] = []
    reads = 0
    rng = random.Random(index)
    try:
        store = Store.open(url)
        start.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                pick = rng.randrange(3)
                if pick == 0:
                    store.metrics([f"load-{rng.randrange(writers):02d}"], ["train/loss"])
                elif pick == 1:
                    store.runs(sweep="load")
                else:
                    store.count_metrics()
                reads += 1
            except Exception as exc:  # noqa: BLE001 - counted, the reader goes on
                errors.append(f"reader {index}: {type(exc).__name__}: {exc}")
            time.sleep(0.02)
        store.close()
    except BaseException as exc:  # noqa: BLE001
        errors.append(f"reader {index}: {type(exc).__name__}: {exc}")
    out.put(("reader", index, 0, errors, reads))


def run_load(url: str, *, writers: int = 8, readers: int = 2, seconds: float = 20.0) -> LoadResult:
    """`writers` processes log metrics into `url` for `seconds` while `readers` query it."""
    from scaletrack.store import Store

    Store.open(url).close()  # schema first, so the writers' opens take the fast path
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_load_writer, args=(url, i, seconds, start, out))
             for i in range(writers)]
    procs += [ctx.Process(target=_load_reader, args=(url, i, seconds, writers, start, out))
              for i in range(readers)]
    for p in procs:
        p.start()
    # wait until every writer has registered its run (imports take a while on a busy machine)
    deadline = time.monotonic() + 180
    with Store.open(url) as store:
        while len(store.runs(sweep="load")) < writers and time.monotonic() < deadline:
            if any(p.exitcode not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    time.sleep(0.5)  # readers open their stores too
    start.set()
    reports = [out.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    logged: dict[str, int] = {}
    errors: list[str] = []
    reads = 0
    for kind, index, n, errs, r in reports:
        if kind == "writer":
            logged[f"load-{index:02d}"] = n
        errors.extend(errs)
        reads += r
    errors.extend(f"process {p.name} exited {p.exitcode}" for p in procs if p.exitcode != 0)
    lost = extra = stored_total = 0
    with Store.open(url) as store:
        for key, n in logged.items():
            stored = store.count_metrics(key)
            stored_total += stored
            lost += max(0, n - stored)
            extra += max(0, stored - n)
    lock_errors = sum(_is_lock_error(e) for e in errors)
    return LoadResult(
        writers=writers, readers=readers, seconds=seconds, rows_logged=sum(logged.values()),
        rows_stored=stored_total, rows_lost=lost, rows_extra=extra, lock_errors=lock_errors,
        other_errors=[e for e in errors if not _is_lock_error(e)], reads=reads,
    )


# ----------------------------------------------------------------------------- fingerprints


def store_fingerprint(db_path: Path) -> dict[str, tuple[int, str]]:
    """table -> (row count, sha256 of its rows in a fixed order) for a SQLite store file."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {}
        for table in tables:
            n_cols = len(conn.execute(f'SELECT * FROM "{table}" LIMIT 0').description)
            order = ", ".join(str(i + 1) for i in range(n_cols))
            digest = hashlib.sha256()
            count = 0
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}'):
                digest.update(repr(row).encode())
                count += 1
            out[table] = (count, digest.hexdigest())
        return out
    finally:
        conn.close()


# ----------------------------------------------------------------------------- a populated store


def populate_store(url: str, ckpt_dir: Path) -> dict[str, Any]:
    """A store with a sweep, runs, metrics (NaN and inf included), a real tiny GPT checkpoint,
    an eval, an idea and a fit. Returns {"checkpoint_id": ..., "run_keys": [...]}."""
    import torch

    from scaletrack.models.build import build_model
    from scaletrack.models.checkpoint import save_checkpoint
    from scaletrack.store import CheckpointRecord, IdeaRecord, MetricRow, RunRecord, Store

    shape = {"n_layer": 1, "n_head": 2, "d_model": 16, "context": 16, "vocab_size": 256,
             "mlp_ratio": 4}
    train = {"family": "gpt", "model": {"n_layer": 1, "n_head": 2, "d_model": 16},
             "data": {"corpus": "stdlib", "max_bytes": 200_000}, "context": 16, "batch_size": 4}
    with Store.open(url) as store:
        store.upsert_sweep("existing", {"grid": {"name": "existing"}})
        keys = []
        for i in range(3):
            key = f"run-{i}"
            keys.append(key)
            store.ensure_run(RunRecord(
                run_key=key, sweep="existing", family="gpt", config={**train, "seed": i},
                N=1000 * (i + 1), N_total=2000 * (i + 1), D=10_000, C=6e7 * (i + 1), seed=i,
                lr=3e-3, status="finished", final_loss=3.0 - 0.1 * i,
            ))
            rows = [MetricRow(key, "train/loss", s, 5.0 / (s + 1), tokens=64 * s, wall_time=0.1 * s)
                    for s in range(100)]
            rows.append(MetricRow(key, "spike", 7, float("nan")))
            rows.append(MetricRow(key, "grad_norm", 8, float("inf")))
            store.write_metrics(rows)
        torch.manual_seed(0)
        model = build_model("gpt", shape)
        path = ckpt_dir / "run-0" / "step_00000100.safetensors"
        sha = save_checkpoint(path, model, meta={"family": "gpt", "model": shape, "train": train,
                                                 "step": 100})
        ckpt_id = store.add_checkpoint(CheckpointRecord(
            id=None, run_key="run-0", kind="own", N=1000, tokens=6400, flops=6.4e6, step=100,
            path=str(path), sha256=sha, loader="gpt", meta={"family": "gpt", "model": shape,
                                                            "train": train},
        ))
        store.add_eval(ckpt_id, "val_loss", "loss", 4.5)
        store.add_idea(IdeaRecord(id=None, title="existing idea", task="val_loss", metric="loss",
                                  threshold=1.0, direction="below"))
        store.save_fit("chinchilla", {"params": {"E": 1.7}}, sweep="existing")
    return {"checkpoint_id": ckpt_id, "run_keys": keys, "checkpoint_path": path}
