"""A llama.cpp OpenAI-compatible server on the CPU, from the prebuilt ``xllamacpp`` wheels (no
compiler).

``python -m kb.serve.llamacpp --profile tiny|reader --port N`` (what ``kb llm serve --profile …``
runs) finds or assembles the profile's GGUF, starts llama.cpp's own HTTP server
(``/v1/chat/completions`` with streaming and usage, ``/v1/models`` with the context window, stop
sequences, ``max_tokens``) on 127.0.0.1 behind a bearer token, prints one ``ready`` line, and serves
until SIGTERM/SIGINT.

The token is kept in ``KB_HOME/llm.token`` (0600, made on first use); kb's LLM client sends it by
itself when it talks to a server on this machine and ``KB_LLM_API_KEY`` is unset.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kb.errors import DependencyMissingError, KbError


@dataclass(frozen=True)
class GgufProfile:
    """What a CPU profile serves and how."""

    alias: str  # the model name at /v1/models (KB_LLM_MODEL)
    n_ctx: int  # the context window
    n_predict: int  # the server's cap on generated tokens per request, whatever a client asks
    repeat_penalty: float = 1.0
    dry_multiplier: float = 0.0  # DRY: penalises repeating sequences (a small model's loops)


TINY = GgufProfile(
    "SmolLM2-135M-Instruct", 8192, n_predict=256, repeat_penalty=1.15, dry_multiplier=0.8
)
READER = GgufProfile("Qwen2.5-Coder-1.5B-Instruct", 8192, n_predict=1024)
GGUF_PROFILES = {"tiny": TINY, "reader": READER}


def model_file(profile: str, progress=None) -> Path:
    from kb.serve import models

    if profile == "tiny":
        return models.tiny_model_path()
    return models.assemble(models.READER, progress=progress)


def token_path(home: Path) -> Path:
    from kb.paths import LLM_TOKEN_FILE

    return home / LLM_TOKEN_FILE


def server_token(home: Path) -> str:
    """The bearer token of the local LLM server, created once (0600) and kept."""
    import secrets

    path = token_path(home)
    try:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    except OSError:
        pass
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f"llm.token.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token


def start(
    model: Path, p: GgufProfile, *, port: int, token: str, threads: int | None = None
):  # -> xllamacpp.Server
    """Start llama.cpp's HTTP server for ``model`` on 127.0.0.1:``port`` (it runs on its own threads
    until the returned object is dropped)."""
    try:
        import xllamacpp as x
    except ImportError:
        raise DependencyMissingError(
            "xllamacpp (llama.cpp's prebuilt server) is not installed",
            "pip install 'kb-notes[tiny]' (or 'kb-notes[reader]')",
        ) from None
    params = x.CommonParams()
    params.model.path = str(model)
    params.model_alias = {p.alias}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.api_keys = [token]
    params.ui = False
    params.n_ctx = p.n_ctx
    params.n_parallel = 1  # one request at a time: two on two cores only halve each other's speed
    params.n_predict = p.n_predict
    params.flash_attn_type = x.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED
    params.sampling.penalty_repeat = p.repeat_penalty
    params.sampling.dry_multiplier = p.dry_multiplier
    n = threads or os.cpu_count() or 2
    params.cpuparams.n_threads = n
    params.cpuparams_batch.n_threads = n
    return x.Server(params)


def wait_ready(url: str, token: str, timeout: float = 300.0) -> None:
    """Wait until ``/v1/models`` answers (the model is loaded); `KbError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    req = urllib.request.Request(url + "/v1/models", headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise KbError(f"llama.cpp did not answer at {url} within {timeout:g}s", "see its log above")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kb.serve.llamacpp")
    ap.add_argument("--profile", choices=sorted(GGUF_PROFILES), required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--home", type=Path, help="KB_HOME (where llm.token is kept)")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    from kb.paths import data_dir, ensure_home

    say = lambda m: print(f"kb llm serve: {m}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        home = ensure_home(args.home) if args.home else data_dir()
        p = GGUF_PROFILES[args.profile]
        model = model_file(args.profile, say)
        token = server_token(home)
        say(
            f"loading {model.name} ({model.stat().st_size / 2**20:,.0f} MiB), window {p.n_ctx} "
            "tokens"
        )
        server = start(model, p, port=args.port, token=token, threads=args.threads)
        url = f"http://127.0.0.1:{args.port}"
        wait_ready(url, token)
    except KbError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.remedy:
            print(f"  fix: {exc.remedy}", file=sys.stderr)
        return exc.exit_code
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"ready: {p.alias} at {url}/v1 (token in {token_path(home)})", flush=True)
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
