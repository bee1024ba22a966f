"""The README's Quick start runs as written, in a fresh folder, with the venv's `scaletrack`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quickstart_script(readme: Path) -> str:
    """The bash code block(s) of the README's "## Quick start" section, joined."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert blocks, "the Quick start has no ```bash block"
    return "\n".join(blocks)


def test_quickstart_block_is_found_and_names_real_files() -> None:
    script = quickstart_script(ROOT / "README.md")
    assert "scaletrack sweep run" in script
    for path in re.findall(r"sweeps/examples/[\w.-]+\.toml", script):
        assert (ROOT / path).is_file(), path


@pytest.mark.slow
def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    script = quickstart_script(ROOT / "README.md")
    # the Quick start runs from the repository's folder: give it the example grids it names
    shutil.copytree(ROOT / "sweeps" / "examples", tmp_path / "sweeps" / "examples")
    env = {k: v for k, v in os.environ.items() if k != "SCALETRACK_STORE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    (tmp_path / "quickstart.sh").write_text(script, encoding="utf-8")
    # -e: stop at the first command that fails; -x: the log names it
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-x", "quickstart.sh"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"a Quick start command failed:\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr
    for produced in ("scaletrack.db", "loss_vs_compute.png", "big.safetensors"):
        assert (tmp_path / produced).exists(), produced
    assert '"form": "chinchilla"' in proc.stdout  # the sweep's fit printed its JSON
