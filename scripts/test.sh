#!/usr/bin/env bash
# One command: set up .venv with the test extras, lint, build the docs site and run the whole
# test suite
# (slow, PostgreSQL, Ray, Slurm and reliability tests included; their fixtures start the services).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "dev,postgres,ray,slurm,mlflow,parquet,wandb,transformers,lightning,docs"
.venv/bin/ruff check .
.venv/bin/python scripts/typecheck.py  # mypy, configured in pyproject.toml [tool.mypy]
stage="$(mktemp -d)"  # the package as installed, for import-linter's layer contract
.venv/bin/python scripts/stage_package.py "$stage"
root="$PWD"
(cd "$stage" && PYTHONPATH="$stage" "$root/.venv/bin/lint-imports" --no-cache "$root/pyproject.toml")
rm -rf "$stage"
site="$(mktemp -d)"  # the docs site, strict: any warning fails (not --quiet: it hides them)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$site"
rm -rf "$site"
exec .venv/bin/pytest "$@"
