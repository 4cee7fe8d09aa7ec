"""What the index's helpers (verify, model switches) need from an `Index`, as a protocol: they take
it as an argument instead of importing the class that calls them, so no module of the index imports
itself back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ingest.manifest import Manifest
    from ingest.report import ProgressFn
    from ingest.sync import Syncer
    from kb.index.embed import Embedder
    from kb.index.lock import StoreLock
    from kb.index.store import VectorStore
    from kb.settings import Settings


class IndexParts(Protocol):
    settings: Settings
    home: Path
    manifest: Manifest
    store_lock: StoreLock

    @property
    def model_id(self) -> str: ...

    def store(self) -> VectorStore: ...

    def embedder(self) -> Embedder: ...

    def syncer(self, progress: ProgressFn | None, manifest: Manifest | None = None) -> Syncer: ...
