#!/usr/bin/env bash
# Create .venv (if needed) and install scaletrack into it with the extras given as $1.
# torch 2.13.0 is installed first so the project's `torch>=2.2` range is already met
# (a bare `torch` requirement could otherwise pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: scaletrack needs Python >= 3.11 (found $("$python" --version 2>&1)); set PYTHON=..." >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
# Skip the install when nothing it depends on changed since the last one.
stamp=".venv/.scaletrack-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) [$extras]"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
target="."
[ -n "$extras" ] && target=".[$extras]"
.venv/bin/python -m pip install --quiet -e "$target"
echo "$want" > "$stamp"
