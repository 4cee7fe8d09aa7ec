"""Start `kb watch` as a real process and wait on conditions (never on fixed sleeps)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kb.daemon.client import DaemonClient, DaemonUnavailable, connect


def wait_for(
    cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", every: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except (DaemonUnavailable, OSError) as exc:
            last_exc = exc
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_exc})" if last_exc else "")
    )


class WatchProcess:
    """`python -m kb.cli.main watch PATH...` in its own process group, output captured to a file."""

    def __init__(
        self,
        home: Path,
        paths: list[Path],
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        prelude: str | None = None,
    ) -> None:
        self.home = home
        self.log = home / f"watch-proc-{time.monotonic_ns()}.out"
        full_env = {**os.environ, **(env or {})}
        full_env["KB_HOME"] = str(home)
        argv = ["watch", *map(str, paths), *(args or [])]
        cmd = [sys.executable, "-m", "kb.cli.main", *argv]
        if prelude:  # code run in the daemon process first (tests inject faults this way)
            cmd = [
                sys.executable,
                "-c",
                f"{prelude}\nimport sys, runpy\nsys.argv = ['kb', *{argv!r}]\n"
                "runpy.run_module('kb.cli.main', run_name='__main__')",
            ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, timeout: float = 180.0) -> DaemonClient:
        def ready() -> DaemonClient | None:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"kb watch exited with {self.proc.returncode}:\n{self.output()}"
                )
            c = connect(self.home)
            if c is not None and c.state["pid"] == self.proc.pid:
                c.request("ping", timeout=15)  # generous: a saturated CPU may delay one reply
                return c
            return None

        return wait_for(ready, timeout, "kb watch to serve")

    def status(self) -> dict[str, Any]:
        return self.client().request("status", timeout=30)

    def idle(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until nothing is queued or running, twice in a row across more than the debounce
        time."""
        seen: list[float] = []
        last: dict[str, Any] = {}

        def quiet() -> bool:
            s = self.status()
            last.update(s)
            if s["queue"] == 0 and s["busy"] is None and s["last_sync"] is not None:
                seen.append(time.monotonic())
                return seen[-1] - seen[0] >= 0.8
            seen.clear()
            return False

        try:
            wait_for(quiet, timeout, "kb watch to become idle", every=0.1)
        except AssertionError as exc:  # say why: the last status and the daemon's own log
            raise AssertionError(f"{exc}\nlast status: {last}\n{self.diagnostics()}") from None
        return self.status()

    def diagnostics(self, lines: int = 60) -> str:
        log = self.home / "logs" / "watch.log"
        tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
        return "watch.log (tail):\n" + "\n".join(tail) + "\noutput:\n" + self.output()[-3000:]

    def search(self, query: str, k: int = 8) -> list[dict[str, Any]]:
        return self.client().request("search", {"query": query, "k": k}, timeout=30)

    def verify(self) -> dict[str, Any]:
        return self.client().request("verify", timeout=300)

    def term(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill9()


def found(hits: list[dict[str, Any]], name: str) -> bool:
    return any(Path(h["path"]).name == name for h in hits)
