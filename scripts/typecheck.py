"""Type-check the installed package (scaletrack.store, scaletrack.sweeps, ...) with mypy.

mypy names modules after folders, so it cannot see store/ as scaletrack.store; the package is
staged as symlinks (scripts/stage_package.py) and mypy runs on the staged tree, with the
settings in pyproject.toml's [tool.mypy]. Reported paths are the source files (store/x.py).
Extra arguments go to mypy; the exit status is mypy's.

    python scripts/typecheck.py [mypy options]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from stage_package import ROOT, stage

CACHE = ROOT / ".venv" / "mypy_cache"  # .venv is ignored by git; the cache makes re-runs fast
STAGED_PATH = re.compile(r"^(scaletrack/[^:]+\.py)(?=:)", re.MULTILINE)


def main(arguments: list[str]) -> int:
    """Stage, run mypy on `scaletrack`, print its report with source paths; mypy's status."""
    with tempfile.TemporaryDirectory(prefix="scaletrack-typecheck-") as dest:
        stage(Path(dest), link=True)

        def source_path(match: re.Match[str]) -> str:
            real = Path(os.path.realpath(Path(dest) / match.group(1)))
            return str(real.relative_to(ROOT)) if real.is_relative_to(ROOT) else str(real)

        done = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
             "--cache-dir", str(CACHE), *arguments, "-p", "scaletrack"],
            cwd=dest, capture_output=True, text=True, check=False,
        )
        sys.stdout.write(STAGED_PATH.sub(source_path, done.stdout))
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
