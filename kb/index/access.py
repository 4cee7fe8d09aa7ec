"""Reading the index directly, beside whoever writes it.

Chroma is not process-safe (a second process's vector index goes stale; concurrent writers lose
vectors), so a direct reader holds the shared store lock (the writer holds it exclusively only while
it commits a group), follows a model switch to the live generation, and reopens the store when
another process committed since it was opened. (Reading through a running `kb watch` instead is
`kb.knowledge`'s choice.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class IndexAccess:
    """Mixin for `Index` (uses its home, settings, manifest, lock, store_lock, _store)."""

    def _data_version(self) -> int:
        """Changes whenever *another* connection (process) commits to the manifest."""
        return int(self.manifest.db.execute("PRAGMA data_version").fetchone()[0])

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Direct read access without a daemon. A writer in another process (`kb ingest`) holds the
        store lock only while it commits one group, so this waits at most for that commit, not for
        the whole sync; and when another process committed since the store was opened, Chroma is
        reopened (its view is stale)."""
        if (
            self.lock.held
        ):  # we are the writer (or the daemon's reader beside it): nothing can change under us
            yield
            return
        wait = self.settings.watch.reader_lock_wait_s
        with self.store_lock.shared(timeout=wait):
            self.follow_generation()
            if self._store is not None and self._data_version() != self._store_version:
                self._reopen_store()
            yield

    def follow_generation(self) -> None:
        """After another process switched models, read the new live generation, not the removed one."""
        from ingest.manifest import Manifest
        from kb.index.switch import live_manifest

        if (
            self.lock.held
        ):  # the writer (or the daemon's reader beside it) switches generations itself
            return
        live = live_manifest(self.home)
        if live != self.manifest.path and live.exists():
            self.manifest.close()
            self.manifest = Manifest(live)
            self._reopen_store()

    def _reopen_store(self) -> None:
        from chromadb.api.shared_system_client import SharedSystemClient

        self._store = None
        self._on_reopen()
        SharedSystemClient.clear_system_cache()

    def _on_reopen(self) -> None:
        """Hook for layers above that cache objects built on the store (a retriever)."""
