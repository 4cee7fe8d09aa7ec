#!/usr/bin/env bash
# Create .venv and install kb with its test/offline extras. Idempotent; safe on a fresh machine.
# On machines without an NVIDIA GPU, the CPU build of torch (2.13.0) is installed first, so pip
# doesn't pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    python -m pip install --quiet torch
  else
    echo "setup: no NVIDIA GPU found: installing the CPU build torch==2.13.0" >&2
    python -m pip install --quiet torch==2.13.0 || python -m pip install --quiet torch==2.13.0 \
      --index-url https://download.pytorch.org/whl/cpu
  fi
fi
python -m pip install --quiet -e ".[${KB_EXTRAS:-dev}]"
