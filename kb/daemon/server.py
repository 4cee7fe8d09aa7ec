"""The daemon's local endpoint: a threaded TCP server on 127.0.0.1 speaking the JSON-lines protocol
described in `kb.client`. It only authenticates and frames; `Daemon.dispatch` does the work."""

from __future__ import annotations

import hmac
import json
import logging
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from kb.errors import KbError

log = logging.getLogger(__name__)

Dispatch = Callable[[str, dict[str, Any], Callable[[dict[str, Any]], None]], Any]


class _Handler(socketserver.StreamRequestHandler):
    server: Endpoint

    def _send(self, msg: dict[str, Any]) -> bool:
        try:
            self.wfile.write(
                json.dumps(msg, ensure_ascii=False, default=str).encode("utf-8") + b"\n"
            )
            self.wfile.flush()
            return True
        except OSError:  # the client went away; the work it asked for still completes
            return False

    def handle(self) -> None:
        try:
            req = json.loads(self.rfile.readline(1 << 22) or b"{}")
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

    def __init__(
        self, token: str, dispatch: Dispatch, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__((host, port), _Handler)
        self.token = token
        self.dispatch = dispatch
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

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
