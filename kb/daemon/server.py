"""The daemon's local endpoint: a threaded TCP server on 127.0.0.1 speaking the JSON-lines protocol
described in `kb.daemon.client`. It only authenticates and frames; `Requests.dispatch` does the
work.

Bounded whatever connects: at most ``MAX_CONNECTIONS`` are served at once (more are closed as soon
as they are accepted), a connection must send its whole request within ``FIRST_LINE_S`` seconds
(idle and slow-drip connections are dropped then), a request line is at most ``MAX_REQUEST`` bytes,
and the listen backlog is ``BACKLOG``. Only a request with the right token gets past that."""

from __future__ import annotations

import hmac
import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from kb.errors import KbError

log = logging.getLogger(__name__)

Dispatch = Callable[[str, dict[str, Any], Callable[[dict[str, Any]], None]], Any]

MAX_CONNECTIONS = 32
FIRST_LINE_S = 3.0  # a client sends its request at once; anything slower is not a kb client
MAX_REQUEST = 1 << 20
BACKLOG = 128


class _Handler(socketserver.BaseRequestHandler):
    server: Endpoint
    request: socket.socket

    def _send(self, msg: dict[str, Any]) -> bool:
        try:
            data = json.dumps(msg, ensure_ascii=False, default=str).encode("utf-8") + b"\n"
            self.request.sendall(data)
            return True
        except OSError:  # the client went away; the work it asked for still completes
            return False

    def _first_line(self) -> bytes | None:
        """The request line, read within FIRST_LINE_S in all (a byte a second does not keep a
        connection), or None."""
        deadline = time.monotonic() + FIRST_LINE_S
        buf = bytearray()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or len(buf) > MAX_REQUEST:
                return None
            self.request.settimeout(left)
            try:
                data = self.request.recv(65536)
            except OSError:
                return None
            if not data:
                return bytes(buf) or None
            buf += data
        return bytes(buf[: buf.index(b"\n")])

    def handle(self) -> None:
        line = self._first_line()
        if line is None:
            return  # idle, too slow or too big: dropped without a word
        try:
            req = json.loads(line or b"{}")
        except ValueError:
            self._send(_error("KbError", "malformed request", None, 1))
            return
        if not isinstance(req, dict) or not hmac.compare_digest(
            str(req.get("token", "")), self.server.token
        ):
            self._send(
                _error(
                    "KbError",
                    "the daemon refused the request: wrong token",
                    "KB_HOME/daemon.json is out of date; restart `kb watch`",
                    1,
                )
            )
            return
        self.request.settimeout(None)  # authenticated: long jobs (an ingest) stream for as long
        op, args = str(req.get("op", "")), req.get("args") or {}
        alive = True

        def emit(event: dict[str, Any]) -> None:
            nonlocal alive
            if alive:
                alive = self._send({"event": event})

        try:
            result = self.server.dispatch(op, args, emit)
        except KbError as exc:
            self._send(_error(type(exc).__name__, exc.message, exc.remedy, exc.exit_code))
            return
        except Exception as exc:  # a bug, not the client's fault: log it, answer, keep serving
            log.exception("request %s failed", op)
            self._send(
                _error(
                    "KbError",
                    f"the daemon failed on {op}: {type(exc).__name__}: {exc}",
                    "see KB_HOME/logs/watch.log",
                    1,
                )
            )
            return
        self._send({"ok": True, "result": result})


def _error(kind: str, message: str, remedy: str | None, code: int) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {"kind": kind, "message": message, "remedy": remedy, "exit_code": code},
    }


class Endpoint(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(self, token: str, dispatch: Dispatch, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.token = token
        self.dispatch = dispatch
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):  # over the cap: closed now, no thread made
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="kb-endpoint",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
