"""One namespace: the wheel holds only `scaletrack`, and a user's own `models/` or `store/`
folder beside them does not shadow ours."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCALETRACK = str(Path(sys.executable).with_name("scaletrack"))


def test_user_folders_named_like_ours_do_not_shadow_the_package(tmp_path: Path) -> None:
    for name in ("models", "store", "sweeps", "analysis", "evals"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('user folder')\n")
    shutil.copy(ROOT / "sweeps" / "examples" / "tiny-cpu.toml", tmp_path / "grid.toml")
    (tmp_path / "runs.csv").write_text("N,D,loss\n1e6,2e7,3.1\n4e6,8e7,2.7\n")
    env = {k: v for k, v in os.environ.items() if k != "SCALETRACK_STORE"}
    for args in (["sweep", "validate", "grid.toml"], ["import-csv", "runs.csv"], ["runs"]):
        proc = subprocess.run([SCALETRACK, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    # build from a clean copy: an in-tree build/ from an earlier build could hide a stray file
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.db"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("scaletrack-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"scaletrack"}
    for part in ("sweeps", "models", "store", "analysis", "evals", "cli"):
        assert f"scaletrack/{part}/__init__.py" in names, part
    assert "scaletrack/sweeps/examples/tiny-cpu.toml" in names
    assert "scaletrack/store/migrations/script.py.mako" in names
    assert not [n for n in names if n.endswith((".png", ".svg", ".db", ".safetensors"))]
