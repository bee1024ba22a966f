"""Big stores and big imports: `runs` and `sweep status` show a page and SQL-side counts (the
figures for a million runs are in bench/bench_runs_scale.py); `import-csv` works in batches,
reports progress and, on Ctrl-C, how many rows it kept; NaN/inf task values are reported as
skipped and non-integer N or D below 1 refused."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reliability.harness import REPO, scaletrack_cmd, store_fingerprint
from scaletrack.cli.common import console
from scaletrack.cli.main import app
from scaletrack.store import Store


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)


def _csv(path: Path, n: int, extra: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"N": rng.integers(10**5, 10**9, n), "D": rng.integers(10**8, 10**11, n),
                          "loss": 2.0 + rng.random(n), **(extra or {})})
    frame.to_csv(path, index=False)
    return path


def test_runs_and_status_are_paged_with_sql_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    csv = _csv(tmp_path / "runs.csv", 1234)
    ok = CliRunner().invoke(app, ["import-csv", str(csv), "--sweep", "pub", "--store", url])
    assert ok.exit_code == 0, ok.output
    out = CliRunner().invoke(app, ["runs", "--store", url]).output
    assert "runs 1-50 of 1,234 (--offset 50 for the next page" in out
    assert out.count("imported") <= 2  # 50 rows, one column folded into the title
    page = CliRunner().invoke(app, ["runs", "--store", url, "--offset", "1200"]).output
    assert "runs 1,201-1,234 of 1,234 (--limit 0 for all)" in page
    everything = CliRunner().invoke(app, ["runs", "--store", url, "--json"]).output
    assert everything.count('"run_key"') == 1234
    status = CliRunner().invoke(app, ["sweep", "status", "pub", "--store", url]).output
    assert "sweep pub: 0 pending, 0 running, 1234 finished" in status
    assert "cells 1-50 of 1,234" in status
    with Store.open(url) as store:
        first = store.runs(sweep="pub", order="compute", limit=50)
        assert list(first["C"]) == sorted(store.runs(sweep="pub")["C"])[:50]
        key = first["run_key"].iloc[0]
    shown = CliRunner().invoke(app, ["show", key[:12], "--store", url])
    assert shown.exit_code == 0 and key in shown.output


def test_import_reports_skipped_values_and_refuses_fractional_counts(tmp_path: Path,
                                                                     figures: dict) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    db = tmp_path / "s.db"
    good = _csv(tmp_path / "ok.csv", 4, {"acc": [0.1, float("nan"), float("inf"), 0.4]})
    out = CliRunner().invoke(app, ["import-csv", str(good), "--store", url])
    assert out.exit_code == 0, out.output
    assert "skipped 2 missing, NaN or infinite task values (first: line 3 column 'acc', " \
           "line 4 column 'acc')" in out.output, out.output  # the header is line 1
    before = store_fingerprint(db)
    lines = []
    for n, d in ((0.4, 100), (1000, 0.5), (0, 100), (-3, 10)):
        bad = tmp_path / "bad.csv"
        bad.write_text(f"N,D,loss\n1000,1000,3\n{n},{d},2.5\n")
        result = CliRunner().invoke(app, ["import-csv", str(bad), "--store", url])
        assert result.exit_code == 1, result.output
        line = result.output.strip()
        assert line.startswith("error: column ") and "line 3" in line, line
        assert len(line.splitlines()) == 1
        lines.append(line)
    assert store_fingerprint(db) == before
    assert "has 0.4: parameter counts must be at least 1" in lines[0], lines[0]
    assert "has 0.5: token counts must be at least 1" in lines[1], lines[1]
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 5


@pytest.mark.slow
def test_ctrl_c_during_a_big_import_says_how_many_rows_were_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    csv = _csv(tmp_path / "big.csv", 200_000)
    proc = subprocess.Popen(scaletrack_cmd("import-csv", str(csv), "--store", url), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the first progress line: some batches are in
    assert first.startswith("imported ") and "/ 200,000 rows" in first, first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("interrupted")][0]
    kept = int(line.split("kept ")[1].split(" of")[0].replace(",", ""))
    time.sleep(0.2)
    with Store.open(url) as store:
        assert store.count_runs() == kept and kept % 10_000 == 0 and 0 < kept < 200_000
