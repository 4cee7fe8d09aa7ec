"""Index generations: which manifest is live, and switching embedding models without losing the old
index.

A KB_HOME holds one *live* generation — a manifest file plus the Chroma collection of its model —
named by ``KB_HOME/index.json`` (absent: ``manifest.sqlite3``, the layout before generations). A
model switch builds a second generation beside it (``manifest.<collection>.sqlite3`` + the new
model's collection) and swaps the pointer atomically once every root is synced. Until then the old
generation keeps answering searches; a failed model load, an error, Ctrl-C or kill -9 leaves it
untouched, and the next `kb ingest` with the new model resumes the half-built generation where it
stopped (it is an ordinary incremental sync).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.manifest import Manifest
from ingest.report import ProgressFn, SyncEvent, SyncReport
from kb.errors import EmbedderError, KbError
from kb.index.store import collection_name

if TYPE_CHECKING:
    from ingest.sync import Syncer
    from kb.index.view import IndexParts

POINTER = "index.json"
FIRST = "manifest.sqlite3"


def live_manifest(home: Path) -> Path:
    """The manifest of the live generation."""
    try:
        name = json.loads((home / POINTER).read_text(encoding="utf-8"))["manifest"]
        if isinstance(name, str) and "/" not in name and name.endswith(".sqlite3"):
            return home / name
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return home / FIRST


def staging_manifest(home: Path, model_id: str) -> Path:
    return home / f"manifest.{collection_name(model_id)}.sqlite3"


def _set_live(home: Path, manifest: Path) -> None:
    tmp = home / f"{POINTER}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"manifest": manifest.name}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, home / POINTER)
    dfd = os.open(home, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_manifest(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)


def abandoned_generations(home: Path, live: Path) -> list[Path]:
    """Half-built generations other than the live one (a switch that was given up)."""
    return [p for p in home.glob("manifest.*.sqlite3") if p != live]


def probe(base: IndexParts) -> None:
    """Load the configured model and embed one text, before anything in the index is touched."""
    try:
        vec = base.embedder().embed_documents(["kb checks that the embedding model works"])
    except KbError:
        raise
    except Exception as exc:
        raise EmbedderError(
            f"the embedding model {base.model_id} failed on a test text: {type(exc).__name__}: "
            f"{exc}",
            "check KB_EMBED_MODEL; the existing index was not touched",
        ) from None
    if vec.shape[0] != 1 or not vec.shape[1]:
        raise EmbedderError(
            f"the embedding model {base.model_id} returned no vector for a test text",
            "check KB_EMBED_MODEL; the existing index was not touched",
        )


def switch_model(
    base: IndexParts,
    roots: list[Path],
    previous: str,
    progress: ProgressFn | None,
    template: Syncer | None = None,
) -> SyncReport:
    """Build the configured model's generation beside the live one, then swap. The caller holds the
    writer lock. Returns the sync report (``interrupted`` when it stopped before the swap)."""
    notify = progress or (lambda e: None)
    report = SyncReport()
    probe(base)
    old = base.manifest
    path = staging_manifest(base.home, base.model_id)
    resuming = path.exists()
    msg = (
        f"embedding model changed from {previous} to {base.model_id}: "
        f"{'resuming the new index' if resuming else 'building a new index'} beside the old one "
        "(the old one keeps answering searches until the new one is complete)"
    )
    report.notices.append(msg)
    notify(SyncEvent("notice", message=msg))
    new = Manifest(path)
    try:
        new.set_meta("model_id", base.model_id)
        from kb.index.embed import setting_value

        new.set_meta("embed_model", setting_value(base.settings.embed_model))
        all_roots = list(dict.fromkeys([Path(r) for r, _ in old.roots()] + list(roots)))
        for r in all_roots:
            new.add_root(str(r))
            for ex in old.excludes(str(r)):
                new.exclude(str(r), ex)
        syncer = base.syncer(progress, manifest=new)
        if template is not None:  # the daemon's: stoppable between groups, its group size
            syncer.should_stop, syncer.group_chunks = template.should_stop, template.group_chunks
        syncer.repair()  # a switch killed half-way left a journal in the new generation
        for root in all_roots:
            if not root.is_dir():
                report.problems.append(
                    {
                        "path": str(root),
                        "reason": "root folder is missing: the model switch "
                        f"completes once it is back (or after `kb forget {root}`)",
                    }
                )
                report.interrupted = True
                continue
            report.merge(syncer.sync_root(root))
            if report.interrupted:
                break
        if report.interrupted:
            new.close()
            return report
        with base.store_lock.exclusive():
            _set_live(base.home, path)
            base.manifest = new
            old_path = old.path
            old.close()
            store = base.store()
            for name in store.other_collections():
                store.drop_collection(name)
            remove_manifest(old_path)
    except BaseException:
        if base.manifest is not new:
            new.close()
        raise
    done = f"switched the index to {base.model_id}; the index built with {previous} was removed"
    report.notices.append(done)
    notify(SyncEvent("notice", message=done))
    return report
