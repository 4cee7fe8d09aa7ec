"""`kb status --verify`: does the index (manifest + vectors) agree with itself and with the disk?"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.manifest import INDEXED

if TYPE_CHECKING:
    from kb.index.view import IndexParts


@dataclass
class VerifyReport:
    missing: list[str] = field(default_factory=list)  # chunk ids in the manifest without a vector
    orphans: list[str] = field(default_factory=list)  # vectors the manifest doesn't know
    duplicates: list[str] = field(default_factory=list)  # files whose chunks are stored twice
    stale: list[dict[str, str]] = field(default_factory=list)  # disk differs from the index
    chunks: int = 0
    vectors: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.orphans or self.duplicates or self.stale)

    def full(self) -> dict[str, Any]:
        """Every field (the daemon sends this; ``VerifyReport(**d)`` restores it)."""
        return asdict(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chunks": self.chunks,
            "vectors": self.vectors,
            "missing": len(self.missing),
            "orphans": len(self.orphans),
            "duplicates": self.duplicates,
            "stale": self.stale,
        }


def verify_index(base: IndexParts) -> VerifyReport:
    """Compare manifest, vector store and disk; the caller holds the writer lock (or is the
    writer)."""
    rep = VerifyReport()
    ids = base.manifest.all_chunk_ids()
    rep.chunks = len(ids)
    store_ids = base.store().all_ids() if (ids or base.manifest.get_meta("model_id")) else []
    rep.vectors = len(store_ids)
    in_store, in_manifest = set(store_ids), set(ids)
    rep.missing = sorted(in_manifest - in_store)
    rep.orphans = sorted(in_store - in_manifest)
    dup = base.manifest.duplicate_positions()
    rep.duplicates = sorted({str(Path(r) / p) for r, p in dup})
    if len(store_ids) != len(in_store):
        rep.duplicates.append("vector store holds repeated ids")
    syncer = base.syncer(None)
    for root, _ in base.manifest.roots():
        rpath = Path(root)
        if not rpath.is_dir():
            rep.stale.append({"path": root, "problem": "root folder missing"})
            continue
        known = {p: f for (_, p), f in base.manifest.files(root).items()}
        disk = {c.rel: c for c in syncer.scanner(rpath).walk()}
        for rel in sorted(set(disk) - set(known)):
            rep.stale.append({"path": str(rpath / rel), "problem": "on disk, not in the index"})
        for rel in sorted(set(known) - set(disk)):
            rep.stale.append({"path": str(rpath / rel), "problem": "in the index, gone from disk"})
        for rel in sorted(set(disk) & set(known)):
            f = known[rel]
            if f.status != INDEXED:
                continue
            if not f.sha256:
                rep.stale.append({"path": str(rpath / rel), "problem": "marked for re-indexing"})
                continue
            try:
                sha = hashlib.sha256(disk[rel].path.read_bytes()).hexdigest()
            except OSError:
                continue
            if sha != f.sha256:
                rep.stale.append(
                    {"path": str(rpath / rel), "problem": "changed on disk since indexing"}
                )
    return rep
