"""The daemon's folders: one watchdog observer per root, and the health check that unwatches a root
that vanished and watches it again when a folder is back at that path (the daemon then reconciles
it)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ingest.watch import ChangeQueue, RootHandler, start_observer

log = logging.getLogger("kb.watch")


class Watches:
    """The observers of the watched roots; events go into ``changes``."""

    def __init__(self, changes: ChangeQueue, poll_interval_s: float, polling: bool) -> None:
        self.changes = changes
        self.poll_interval_s = poll_interval_s
        self.polling = polling  # poll every root (network drives), not only where the OS refused
        self.observers: dict[str, object] = {}
        self.warnings: list[str] = []
        self._inode: dict[str, int] = {}

    def watch(self, root: Path) -> None:
        key = str(root)
        if key in self.observers or not root.is_dir():
            return
        obs, warning = start_observer(
            root, RootHandler(root, self.changes), self.poll_interval_s, self.polling
        )
        self.observers[key] = obs
        self._inode[key] = root.stat().st_ino
        if warning:
            self.warnings.append(warning)

    def unwatch(self, root: str) -> None:
        obs = self.observers.pop(root, None)
        if obs is not None:
            with contextlib.suppress(Exception):
                obs.stop()

    def stop(self) -> None:
        for key in list(self.observers):
            obs = self.observers.pop(key)
            with contextlib.suppress(Exception):
                obs.stop()
                obs.join(timeout=5)

    def kinds(self, roots: list[Path]) -> dict[str, str]:
        """How each root is followed (the observer's class), for `kb status`."""
        return {
            str(r): type(self.observers[str(r)]).__name__
            if str(r) in self.observers
            else "not watched (folder missing)"
            for r in roots
        }

    def check(self, roots: list[Path]) -> list[Path]:
        """Unwatch roots that vanished (unmounted, moved away); watch again roots where a folder is
        back (same or new inode). Returns the roots watched again: they need a reconcile, so
        nothing saved meanwhile is missed."""
        back: list[Path] = []
        for root in roots:
            key = str(root)
            try:
                ino = root.stat().st_ino if root.is_dir() else None
            except OSError:
                ino = None
            obs = self.observers.get(key)
            healthy = (
                obs is not None
                and obs.is_alive()
                and all(e.is_alive() for e in obs.emitters)
                and self._inode.get(key) == ino
            )
            if ino is None and obs is not None:
                self.unwatch(key)
                log.warning("%s is gone: not watching it until it is back", root)
            elif ino is not None and not healthy:
                self.unwatch(key)
                self.watch(root)
                log.info("%s is back: watching it again and catching up", root)
                back.append(root)
        return back
