"""Soak test, by hand: the reliability suite's chaos, load and bad-input drivers, longer.

1. chaos: a 4-cell tiny-GPT grid through `scaletrack sweep run`, SIGKILLing random worker
   processes `--kills` times, rerunning until every cell finishes, then comparing every metric
   row with an uninterrupted sweep of the same grid;
2. load: `--writers` processes log metrics through MetricWriter into one SQLite store for
   `--minutes` while `--readers` processes query it;
3. bad input: every malformed grid / CSV / task case of tests/reliability against a populated
   store (exit code 1, one line, no traceback, store unchanged).

Prints figures: kills survived, rows compared, bad inputs tried, lock errors seen, rows lost.
Asserts nothing (exit code 1 if a guarantee was broken, so it can gate a release by hand).

Run: .venv/bin/python bench/soak.py [--minutes 5] [--kills 20] [--writers 8] [--readers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from reliability.harness import (  # noqa: E402 - tests/ must be on sys.path first
    populate_store,
    run_chaos,
    run_load,
    store_fingerprint,
)


def chaos(workdir: Path, kills: int, seed: int, scale: int) -> dict[str, float]:
    """Rounds of run_chaos (a fresh store each) until `kills` workers have been killed."""
    t0 = time.monotonic()
    tokens = (3200 * scale, 6400 * scale)
    total = {"kills": 0, "mid": 0, "runs": 0, "rows": 0, "lost": 0, "extra": 0, "damaged": 0,
             "named": 0}
    worst = 0.0
    for round_ in range(max(1, kills)):
        if total["kills"] >= kills:
            break
        result, got, reference = run_chaos(
            workdir / f"chaos-{round_}", kills=kills - total["kills"], seed=seed + round_,
            tokens=tokens, log=lambda line: print("  " + line, flush=True))
        total["kills"] += result.kills
        total["mid"] += result.kills_mid_cell
        total["runs"] += result.sweep_runs
        total["rows"] += result.rows_compared
        total["lost"] += len(reference) - result.rows_compared
        total["extra"] += (len(got) - result.rows_compared
                           + int(got.duplicated(["run_key", "name", "step"]).sum()))
        total["damaged"] += result.corrupted
        total["named"] += result.fallbacks_reported
        worst = max(worst, result.max_loss_diff)
    print(f"chaos: {total['kills']} kills survived ({total['mid']} mid-cell) over "
          f"{total['runs']} sweep runs; {total['rows']} rows compared, {total['lost']} missing, "
          f"{total['extra']} extra; max loss diff {worst:.2e} nats; {total['damaged']} "
          f"checkpoints damaged, {total['named']} fallbacks reported "
          f"({time.monotonic() - t0:.0f}s)", flush=True)
    return {"kills": total["kills"], "rows compared": total["rows"], "rows lost": total["lost"],
            "broken": int(total["lost"] > 0 or total["extra"] > 0 or worst > 1e-6)}


def load(workdir: Path, minutes: float, writers: int, readers: int) -> dict[str, float]:
    t0 = time.monotonic()
    result = run_load(f"sqlite:///{workdir / 'load.db'}", writers=writers, readers=readers,
                      seconds=minutes * 60)
    print(f"load: {writers} writers + {readers} readers for {minutes:g} min: "
          f"{result.rows_logged} rows logged ({result.rows_logged / result.seconds:,.0f}/s), "
          f"{result.rows_stored} stored, {result.rows_lost} lost, {result.lock_errors} lock "
          f"errors, {len(result.other_errors)} other errors, {result.reads} reads "
          f"({time.monotonic() - t0:.0f}s)", flush=True)
    for line in result.other_errors[:5]:
        print("  " + line)
    return {"lock errors": result.lock_errors, "rows lost": result.rows_lost,
            "broken": int(bool(result.lock_errors or result.rows_lost or result.rows_extra
                               or result.other_errors))}


def bad_inputs(workdir: Path) -> dict[str, float]:
    from reliability.test_reliability_bad_input import (
        CSV_CASES,
        GOOD_CSV,
        GRID_CASES,
        USER_TASKS,
        _set_cell,
    )
    from typer.testing import CliRunner

    from scaletrack.cli.main import app

    db = workdir / "bad.db"
    url = f"sqlite:///{db}"
    info = populate_store(url, workdir / "ckpt")
    user = workdir / "userpkg"
    user.mkdir(exist_ok=True)
    (user / "h_user_tasks.py").write_text(USER_TASKS)
    sys.path.insert(0, str(user))
    from reliability.harness import grid_toml

    cases: list[tuple[str, list[str]]] = []
    for name, (edit, _) in sorted(GRID_CASES.items()):
        path = workdir / f"grid-{len(cases)}.toml"
        path.write_text(edit(grid_toml("bad-grid"), workdir))
        cases.append((f"grid: {name}", ["sweep", "run", str(path), "--store", url]))
    for name, (content, _) in sorted(CSV_CASES.items()):
        path = workdir / f"csv-{len(cases)}.csv"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        cases.append((f"fit csv: {name}", ["fit", "--form", "chinchilla", "--bootstrap", "0",
                                           "--csv", str(path)]))
        cases.append((f"import-csv: {name}", ["import-csv", str(path), "--store", url]))
    ckpt = str(info["checkpoint_id"])
    for task in ("telepathy", "h_user_tasks:boom", "h_user_tasks:not_a_number",
                 "h_user_tasks:nothing", "no_such_mod_h:fn"):
        cases.append((f"eval task {task}", ["checkpoints", "eval", ckpt, "--task", task,
                                            "--store", url]))
        if ":" not in task or task.startswith("no_such"):  # a valid user task may be added
            cases.append((f"idea task {task}", ["ideas", "add", "x", "--task", task, "--metric",
                                                "value", "--threshold", "1", "--store", url]))
    huge = workdir / "huge.csv"
    huge.write_text(_set_cell(GOOD_CSV, 6, 0, "1e30"))
    cases.append(("import-csv: N too large for a 64-bit integer", ["import-csv", str(huge),
                                                                   "--store", url]))
    clean = 0
    for name, args in cases:
        before = store_fingerprint(db)
        result = CliRunner().invoke(app, args)
        lines = [ln for ln in (result.stderr or "").splitlines() if ln.strip()]
        ok = (result.exit_code == 1 and isinstance(result.exception, SystemExit)
              and "Traceback" not in result.output and len(lines) == 1
              and store_fingerprint(db) == before)
        clean += ok
        if not ok:
            why = (type(result.exception).__name__ if result.exception
                   else f"exit {result.exit_code}")
            print(f"  NOT CLEAN: {name}: {why}: {(lines or [''])[0][:120]}")
    print(f"bad input: {len(cases)} tried, {clean} rejected cleanly with the store unchanged",
          flush=True)
    return {"bad inputs": len(cases), "broken": int(clean != len(cases))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="load phase length")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in the chaos phase")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--scale", type=int, default=2, help="token budgets x this (longer cells)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["chaos", "load", "bad"])
    args = parser.parse_args()

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="scaletrack-soak-") as tmp:
        work = Path(tmp)
        phases = []
        if "chaos" not in args.skip:
            phases.append(chaos(work, args.kills, args.seed, args.scale))
        if "load" not in args.skip:
            phases.append(load(work, args.minutes, args.writers, args.readers))
        if "bad" not in args.skip:
            (work / "bad").mkdir()
            phases.append(bad_inputs(work / "bad"))
        for phase in phases:
            for key, value in phase.items():
                figures[key] = figures.get(key, 0) + value
    print(f"soak: kills survived {figures.get('kills', 0):.0f}, rows compared "
          f"{figures.get('rows compared', 0):.0f}, bad inputs tried "
          f"{figures.get('bad inputs', 0):.0f}, lock errors seen "
          f"{figures.get('lock errors', 0):.0f}, rows lost {figures.get('rows lost', 0):.0f}")
    if figures.get("broken"):
        print("soak: a guarantee was broken (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
