"""The daemon's folders: one watchdog observer per root, and the health check that unwatches a root
that vanished and watches it again (with a catch-up reconcile) when a folder is back at that path.
Mixed into `Daemon`."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ingest.watch import RootHandler, start_observer
from kb.daemon.requests import _Job

log = logging.getLogger("kb.watch")


class Roots:
    """Mixin for `Daemon` (uses its roots, observers, changes, jobs, settings, warnings, _root_ino)."""

    def _watch(self, root: Path) -> None:
        key = str(root)
        if key in self.observers or not root.is_dir():
            return
        obs, warning = start_observer(
            root,
            RootHandler(root, self.changes),
            self.settings.watch.poll_interval_s,
            self.force_polling,
        )
        self.observers[key] = obs
        self._root_ino[key] = root.stat().st_ino
        if warning:
            self.warnings.append(warning)

    def _unwatch(self, root: str) -> None:
        obs = self.observers.pop(root, None)
        if obs is not None:
            with contextlib.suppress(Exception):
                obs.stop()

    def _check_roots(self) -> None:
        """A root that vanished (unmounted, moved away) loses its watch; when a folder is back at
        that path (same or new inode), watch it again and reconcile, so nothing saved meanwhile is
        missed."""
        for root in self.roots:
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
                and self._root_ino.get(key) == ino
            )
            if ino is None and obs is not None:
                self._unwatch(key)
                log.warning("%s is gone: not watching it until it is back", root)
            elif ino is not None and not healthy:
                self._unwatch(key)
                self._watch(root)
                log.info("%s is back: watching it again and catching up", root)
                self.jobs.put(_Job("reconcile", {"why": "root back"}))
