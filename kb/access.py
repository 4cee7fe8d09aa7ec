"""How a process reaches the index: through a running `kb watch` daemon, or directly beside the writer.

Chroma is not process-safe (a second process's vector index goes stale; concurrent writers lose vectors), so a
reader either asks the daemon, which owns the store, or reads under the shared store lock (the writer holds it
exclusively only while it commits a group) and reopens the store when another process committed since it was
opened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kb.errors import ModelMismatchError

if TYPE_CHECKING:
    from kb.client import DaemonClient

log = logging.getLogger(__name__)

DOWN = object()  # no daemon answered: read directly


class IndexAccess:
    """Mixin for `KnowledgeBase` (uses its home, settings, manifest, lock, model_id, _store, _contexts)."""

    def _data_version(self) -> int:
        """Changes whenever *another* connection (process) commits to the manifest."""
        return int(self.manifest.db.execute("PRAGMA data_version").fetchone()[0])

    def daemon(self) -> DaemonClient | None:
        """A client for the `kb watch` daemon serving this KB_HOME with the same model, or None."""
        if not self.use_daemon:
            return None
        from kb.client import connect

        client = connect(self.home)
        if client is None:
            return None
        theirs = client.state.get("model_id")
        if theirs != self.model_id:
            from kb.embed import setting_value

            value = client.state.get("embed_setting") or setting_value(client.state.get("embed_model") or theirs)
            raise ModelMismatchError(
                f"`kb watch` (pid {client.state.get('pid')}) indexes with {theirs}, but this process is configured "
                f"for {self.model_id}", f"set KB_EMBED_MODEL={value} here, or stop `kb watch` first")
        return client

    def _via_daemon(self, op: str, args: dict[str, Any] | None = None, timeout: float | None = 120.0) -> Any:
        """The daemon's answer to a request, or ``DOWN`` when no daemon runs (or it stopped answering)."""
        from kb.client import DaemonUnavailable

        client = self.daemon()
        if client is None:
            return DOWN
        try:
            return client.request(op, args, timeout=timeout)
        except DaemonUnavailable:
            return DOWN

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Direct read access without a daemon. A writer in another process (`kb ingest`) holds the store lock
        only while it commits one group, so this waits at most for that commit, not for the whole sync; and
        when another process committed since the store was opened, Chroma is reopened (its view is stale)."""
        if self.lock.held:  # we are the writer (or the daemon's reader beside it): nothing can change under us
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
        from kb.switch import live_manifest

        if self.lock.held:  # the writer (or the daemon's reader beside it) switches generations itself
            return
        live = live_manifest(self.home)
        if live != self.manifest.path and live.exists():
            self.manifest.close()
            self.manifest = Manifest(live)
            self._reopen_store()

    def _reopen_store(self) -> None:
        from chromadb.api.shared_system_client import SharedSystemClient

        self._store = None
        self._contexts = None
        SharedSystemClient.clear_system_cache()
