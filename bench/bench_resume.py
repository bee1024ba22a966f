"""How fast a SIGKILLed tracked script is back: re-run at once, time until `init` returns.

Each round starts a tracked script (`scaletrack.init` + a checkpoint every 8 steps), SIGKILLs
it mid-run, starts it again at once and measures, inside the new process, the time `init`
takes (the dead holder is taken over: no wait for its heartbeat to go stale) and the wall time
from the re-run's start to its first logged step (interpreter start and imports included).
Rows are compared with an uninterrupted run at the end. Target: back within 2 s.

    .venv/bin/python bench/bench_resume.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SCRIPT = """
    import pathlib, sys, time
    t0 = time.perf_counter()
    import scaletrack
    t1 = time.perf_counter()
    out = pathlib.Path(sys.argv[1])
    with scaletrack.init(sweep="resume", config={"lr": 1e-3}, params=1000, tokens=10**6) as run:
        t2 = time.perf_counter()
        print(f"ready import={t1 - t0:.3f} init={t2 - t1:.3f}", run.resume_step, flush=True)
        step = 0 if run.resume_step is None else run.resume_step + 1
        while step < 400:
            run.log({"train/loss": 4.0 - step / 200}, step=step, tokens=(step + 1) * 1000)
            if step % 8 == 7:
                ckpt = out / f"step{step}.txt"
                ckpt.write_text(str(step))
                run.checkpoint(ckpt, step=step)
            time.sleep(float(sys.argv[2]))
            step += 1
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = folder / "train.py"
        script.write_text(textwrap.dedent(SCRIPT))
        env = {**os.environ, "SCALETRACK_STORE": f"sqlite:///{folder / 'r.db'}"}
        inits, walls = [], []
        for _ in range(args.rounds):
            proc = subprocess.Popen([sys.executable, str(script), str(folder), "0.01"], env=env,
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            proc.stdout.readline()
            time.sleep(0.6)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            t0 = time.perf_counter()
            again = subprocess.Popen([sys.executable, str(script), str(folder), "0.0"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert again.stdout is not None
            line = again.stdout.readline()
            walls.append(time.perf_counter() - t0)
            if not line.startswith("ready"):
                raise SystemExit(f"re-run failed: {again.communicate()[1][-500:]}")
            inits.append(float(line.split("init=")[1].split()[0]))
            again.send_signal(signal.SIGKILL)
            again.wait()
        done = subprocess.run([sys.executable, str(script), str(folder), "0.0"], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-500:])
        from scaletrack.store import Store

        with Store.open(env["SCALETRACK_STORE"]) as store:
            (key,) = store.runs()["run_key"]
            rows = store.metrics([key]).sort_values("step")
            status = store.get_run(key).status
    ok = rows["step"].tolist() == list(range(400)) and status == "finished"
    print(f"{args.rounds} kills: init after SIGKILL median {statistics.median(inits):.3f} s, max "
          f"{max(inits):.3f} s; re-run start to first step median {statistics.median(walls):.2f} "
          f"s, max {max(walls):.2f} s (target < 2 s)")
    print(f"rows after the last re-run: {len(rows)} of 400 steps, status {status}: "
          f"{'equal to an uninterrupted run' if ok else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
