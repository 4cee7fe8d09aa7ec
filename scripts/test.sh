#!/usr/bin/env bash
# Set up (scripts/setup.sh, with the tiny CPU LLM for the real-server tests) and run the whole test suite.
# This is the README's test command and exactly what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
KB_TINY_LLM=1 bash scripts/setup.sh
. .venv/bin/activate
ruff check .
ruff format --check .
python -m pytest tests/ "$@"
