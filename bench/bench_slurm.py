"""Slurm executor figures on the test set-up's one-node Slurm; prints figures (no assertions).

1. How long the private cluster (munged + slurmctld + slurmd, tests/services/slurm.py) takes
   to start until sinfo shows the node idle, over several starts.
2. Round trip of one trivial submitit task (submit -> result file read back): the floor of
   any cell's overhead on Slurm.
3. A 4-cell grid of tiny GPTs: wall time through the local executor (4 workers) and through
   one Slurm job array (4 tasks of 1 CPU), best of two each.

Usage: .venv/bin/python bench/bench_slurm.py [--starts 3] [--trips 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from services.slurm import running_slurm  # noqa: E402

from scaletrack.sweeps.executors.local import LocalExecutor  # noqa: E402
from scaletrack.sweeps.grid import load_grid  # noqa: E402
from scaletrack.sweeps.runner import run_sweep  # noqa: E402

GRID = """
name = "{name}"
[data]
path = "{corpus}"
context = 32
[model]
family = "gpt"
sizes = [{{ n_layer = 1, n_head = 1, d_model = 16 }}, {{ n_layer = 1, n_head = 2, d_model = 32 }}]
[axes]
tokens = [40960, 81920]
[train]
batch_size = 4
[eval]
every = 10
batches = 2
[checkpoint]
every = 20
[executor]
kind = "slurm"
cpus_per_task = 1
same_node = true
"""


def _double(x: int) -> int:
    return 2 * x


def cluster_starts(n: int) -> list[float]:
    times = []
    for _ in range(n):
        with running_slurm() as cluster:
            assert cluster.startup_s is not None
            times.append(cluster.startup_s)
    return times


def round_trips(n: int, folder: Path) -> list[float]:
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder / "%j"))
    executor.update_parameters(time=5, cpus_per_task=1)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        job = executor.submit(_double, i)
        while not Path(job.paths.result_pickle).exists():
            time.sleep(0.05)
        assert job.result() == 2 * i
        times.append(time.perf_counter() - t0)
    return times


def grid_walls(directory: Path) -> tuple[float, float]:
    rng = random.Random(0)
    words = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog")
    corpus = directory / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(words) for _ in range(30_000)))
    walls: dict[str, float] = {}
    # twice each, interleaved, best of two: the machine may be shared
    runs = [("slurm", None), ("local", LocalExecutor(workers=4))] * 2
    for i, (kind, executor) in enumerate(runs):
        name = f"bench-{kind}-{i}"
        path = directory / f"{name}.toml"
        path.write_text(GRID.format(name=name, corpus=corpus))
        t0 = time.perf_counter()
        report = run_sweep(load_grid(path), f"sqlite:///{directory / (name + '.db')}",
                           executor=executor, checkpoint_dir=directory / name)
        wall = time.perf_counter() - t0
        walls[kind] = min(walls.get(kind, wall), wall)
        assert report.ok, report
    return walls["local"], walls["slurm"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--trips", type=int, default=5)
    args = parser.parse_args()

    starts = cluster_starts(args.starts)
    print(f"cluster start (munged+slurmctld+slurmd -> node idle): "
          f"median {statistics.median(starts):.2f} s, min {min(starts):.2f} s, "
          f"max {max(starts):.2f} s over {len(starts)} starts")
    with running_slurm(), tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
        trips = round_trips(args.trips, Path(tmp) / "trips")
        print(f"trivial submitit task, submit -> result: median {statistics.median(trips):.2f} s,"
              f" min {min(trips):.2f} s over {len(trips)}")
        local, slurm = grid_walls(Path(tmp))
        print(f"4-cell tiny GPT grid, best of 2: local executor (4 workers) {local:.1f} s, "
              f"slurm job array (4 x 1 CPU) {slurm:.1f} s; difference {slurm - local:+.1f} s")


if __name__ == "__main__":
    main()
