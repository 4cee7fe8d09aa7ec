"""Talk to a running `kb watch` daemon. Standard library only: `kb search` through a warm daemon
must not pay for importing torch, Chroma or even pydantic.

Wire format: one JSON line per request ``{"token", "op", "args"}`` over TCP on 127.0.0.1; the daemon
answers with zero or more ``{"event": {...}}`` lines (progress) and one final ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error": {"kind", "message", "remedy", "exit_code"}}`` line. The
port and a random token live in ``KB_HOME/daemon.json`` (mode 0600): only the user who can read
KB_HOME can talk to the daemon.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATE_FILE = "daemon.json"


class DaemonUnavailable(Exception):
    """No daemon answered (not running, just died, or still starting)."""


def state_path(home: Path) -> Path:
    return home / STATE_FILE


def read_state(home: Path) -> dict[str, Any] | None:
    """The daemon's state file, or None when there is none or its process is gone."""
    try:
        state = json.loads(state_path(home).read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not pid_alive(pid):
        return None
    return state


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connect(home: Path) -> DaemonClient | None:
    """A client for the daemon serving ``home``, or None when none is running."""
    state = read_state(home)
    if state is None:
        return None
    return DaemonClient(state)


class DaemonClient:
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.address = (state.get("host", "127.0.0.1"), int(state["port"]))
        self.token = state["token"]

    def request(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = 600.0,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """Send one request and return its result; raises `DaemonUnavailable` when nobody answers,
        and the daemon's `KbError` (same class, message and remedy) when the request failed there.
        A connection the daemon closes before answering a word (it was at its connection cap) is
        tried again a few times: the request was never read, so it is safe to send again."""
        from kb.retry import Again, retry

        def once() -> Any:
            try:
                return self._request(op, args, timeout, on_event)
            except _Unread as exc:
                raise Again(DaemonUnavailable(str(exc))) from None

        return retry(once, 3, delay=0.2)

    def _request(
        self,
        op: str,
        args: dict[str, Any] | None,
        timeout: float | None,
        on_event: Callable[[dict[str, Any]], None] | None,
    ) -> Any:
        try:
            sock = socket.create_connection(self.address, timeout=2.0)
        except OSError as exc:
            raise DaemonUnavailable(str(exc)) from None
        with sock:
            sock.settimeout(timeout)
            line = json.dumps(
                {"token": self.token, "op": op, "args": args or {}}, ensure_ascii=False
            )
            heard = False
            try:
                sock.sendall(line.encode("utf-8") + b"\n")
                reader = sock.makefile("rb")
                for raw in reader:
                    heard = True
                    msg = json.loads(raw)
                    if "event" in msg:
                        if on_event is not None:
                            on_event(msg["event"])
                        continue
                    if msg.get("ok"):
                        return msg.get("result")
                    raise _error(msg.get("error") or {})
            except ConnectionResetError as exc:
                if not heard:
                    raise _Unread(f"the daemon closed the connection: {exc}") from None
                raise DaemonUnavailable(f"the daemon stopped answering: {exc}") from None
            except (TimeoutError, ConnectionError) as exc:
                raise DaemonUnavailable(f"the daemon stopped answering: {exc}") from None
        if not heard:
            raise _Unread("the daemon closed the connection without an answer")
        raise DaemonUnavailable("the daemon closed the connection without an answer")


class _Unread(Exception):
    """The daemon closed the connection before a word of answer (it did not take the request)."""


def _error(err: dict[str, Any]) -> Exception:
    from kb import errors

    cls = getattr(errors, str(err.get("kind", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.KbError)):
        cls = errors.KbError
    exc = cls(str(err.get("message", "the daemon failed")), err.get("remedy"))
    if "exit_code" in err:
        exc.exit_code = int(err["exit_code"])
    return exc


def daemon_status(home: Path) -> dict[str, Any]:
    """The running daemon's snapshot, or why there is none."""
    client = connect(home)
    if client is None:
        stale = state_path(home).exists()
        return {
            "running": False,
            "note": "last run ended without cleaning up (crash or kill -9); the next start "
            "repairs the index"
            if stale
            else "not running (start it with `kb watch`)",
            "log": str(home / "logs" / "watch.log"),
        }
    try:
        return client.request("status", timeout=10)
    except DaemonUnavailable as exc:
        return {
            "running": False,
            "note": f"state file names pid {client.state.get('pid')} but it does not answer: {exc}",
            "log": str(home / "logs" / "watch.log"),
        }
