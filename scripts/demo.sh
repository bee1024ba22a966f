#!/usr/bin/env bash
# One command: set up .venv and run the demo (a small CPU sweep, its fit, its plots, its ideas).
# Usage: bash scripts/demo.sh [OUT_DIR]   (default: scaletrack-demo/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/scaletrack demo --out "${1:-scaletrack-demo}"
