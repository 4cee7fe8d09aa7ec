#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
python -m pytest tests/ "$@"
