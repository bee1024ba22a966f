"""Copy the one-namespace package, as pyproject.toml maps it, into DEST/scaletrack/.

The folders sweeps/, models/, store/, analysis/ and evals/ become scaletrack.sweeps, ... only
through setuptools' package-dir, which tools that read the source tree (import-linter) do not
follow; `PYTHONPATH=DEST lint-imports` checks the package as it is installed.

    python scripts/stage_package.py DEST
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stage(dest: Path, link: bool = False) -> None:
    """Copy (or, with link, symlink) each listed package's *.py files from its mapped folder
    to its place under dest."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = config.get("package-dir", {})
    for package in config["packages"]:
        parts = package.split(".")
        for i in range(len(parts), 0, -1):  # the longest mapped prefix decides the folder
            prefix = ".".join(parts[:i])
            if prefix in mapping:
                source = ROOT / mapping[prefix] / Path(*parts[i:])
                break
        else:
            source = ROOT / Path(*parts)
        target = dest / Path(*parts)
        target.mkdir(parents=True, exist_ok=True)
        for file in source.glob("*.py"):
            if link:
                (target / file.name).symlink_to(file)
            else:
                shutil.copy2(file, target / file.name)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/stage_package.py DEST")
    stage(Path(sys.argv[1]))
