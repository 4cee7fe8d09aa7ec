"""Writing one group of files: the crash-ordered commit, per-file isolation of write failures,
deletes and crash repair. `Syncer` (ingest/sync.py) decides *what* to write and hands each group to
its `GroupWriter`.

Write order for every group (the journal makes a crash at any point repairable):

1. journal the files about to change (SQLite commit);
2. write new vectors to Chroma (computed, or copied from a chunk with the same content hash);
3. commit the manifest: file rows + chunk rows in one transaction (the manifest is the truth);
4. delete the vectors that are no longer referenced;
5. clear the journal.

The store lock is held exclusively for steps 1–5 only (readers hold it shared), never while
embedding.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.manifest import FAILED, INDEXED, SKIPPED, ChunkRow, FileRow, Manifest
from ingest.report import ProgressFn, SyncEvent, SyncReport
from ingest.scan import Candidate
from ingest.span import MODIFIED
from kb.errors import describe, is_machine_fault, machine_errors


@dataclass
class Work:
    cand: Candidate
    sha: str
    old: FileRow | None
    data: bytes | None = None
    moved_from: str | None = None
    row: FileRow | None = None
    chunks: list[ChunkRow] = field(default_factory=list)
    problem: str | None = None


class VectorSink(Protocol):
    """The vector store as the writer uses it (kb.index.store.VectorStore is one)."""

    def add(
        self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]]
    ) -> None: ...

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None: ...

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def all_ids(self) -> list[str]: ...


class PassageEmbedder(Protocol):
    """The embedder as the writer uses it (kb.index.embed.Embedder is one)."""

    def embed_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...


@dataclass
class Tally:
    """Where a sync stands, for the progress events a write sends while it embeds."""

    progress: ProgressFn
    files_done: int = 0  # files finished before the group being written
    files_total: int = 0


class GroupWriter:
    """Writes groups of prepared files into one manifest and vector store, crash-ordered (module
    docstring), and deletes and repairs. The store and the embedder are opened on first use, so a
    sync that writes nothing never loads the model or opens Chroma.

    ``guard`` is held exclusively around each commit (readers hold it shared); ``crash`` is called
    between write steps (tests inject crashes there). ``texts`` maps a prepared chunk's id to the
    text to embed (filled by `Syncer` while it prepares files, emptied as they are written)."""

    def __init__(
        self,
        manifest: Manifest,
        store: Callable[[], VectorSink],
        embedder: Callable[[], PassageEmbedder],
        guard: Callable[[], AbstractContextManager[None]] | None = None,
        crash: Callable[[str], None] | None = None,
    ) -> None:
        self.manifest = manifest
        self.store = store
        self.embedder = embedder
        self.guard = guard or nullcontext
        self.crash = crash or (lambda point: None)
        self.texts: dict[str, str] = {}

    def repair(self, force: bool = False) -> tuple[int, int]:
        """Bring Chroma and the manifest back in line after a crash. Returns (orphans deleted,
        chunks dropped)."""
        if not force and self.manifest.journal_pending() == 0:
            return 0, 0
        with machine_errors(), self.guard():
            return self._repair_locked()

    def _repair_locked(self) -> tuple[int, int]:
        store = self.store()
        in_store = set(store.all_ids())
        in_manifest = set(self.manifest.all_chunk_ids())
        orphans = sorted(in_store - in_manifest)
        missing = sorted(in_manifest - in_store)
        if orphans:
            store.delete(orphans)
        with self.manifest.transaction():
            if missing:
                self.manifest.drop_chunks(missing)
            self.manifest.journal_clear()
        return len(orphans), len(missing)

    # ------------------------------------------------------------------ internals
    def write(self, rkey: str, group: list[Work], report: SyncReport, tally: Tally) -> None:
        """Write a group; when it fails for a reason that is not the machine's (a full disk, a model
        that can't load), write its files one by one, so only the file that fails is recorded as
        failed."""
        try:
            self._write(rkey, group, report, tally)
            return
        except Exception as exc:
            if is_machine_fault(exc):
                raise
        self.repair()  # a write that died half-way leaves a journal: undo what it left
        for w in group:
            try:
                self._write(rkey, [w], report, tally)
            except Exception as exc:
                if is_machine_fault(exc):
                    raise
                self.repair()
                w.row = FileRow(**{**w.row.__dict__, "status": FAILED, "reason": describe(exc)})
                for c in w.chunks:
                    self.texts.pop(c.id, None)
                w.chunks = []
                try:
                    # record the failure (no chunks, no vectors)
                    self._write(rkey, [w], report, tally)
                except Exception as again:
                    if is_machine_fault(again):
                        raise
                    self.repair()
                    report.failed += 1
                    report.problems.append(
                        {"path": shown(rkey, w.cand.rel), "reason": w.row.reason or ""}
                    )

    def _write(self, rkey: str, group: list[Work], report: SyncReport, tally: Tally) -> None:
        texts = self.texts
        new_rows = [c for w in group for c in w.chunks]
        existing = self.manifest.chunks_by_id([c.id for c in new_rows])
        need = [c for c in new_rows if c.id not in existing]
        donors = self.manifest.ids_for_hashes(sorted({c.hash for c in need}))
        copy = [c for c in need if c.hash in donors]
        embed = [c for c in need if c.hash not in donors]
        store = self.store() if (need or any(w.old for w in group)) else None

        vectors: dict[str, Any] = {}
        if copy:
            got = store.vectors([donors[c.hash] for c in copy])
            for c in copy:
                vec = got.get(donors[c.hash])
                if vec is None:  # donor vector missing (store repaired since): embed instead
                    embed.append(c)
                else:
                    vectors[c.id] = vec
        copied = len(vectors)
        if embed:
            emb = self.embedder()
            done = report.embedded
            last: dict[str, int] = {}  # a file is done once its last chunk is embedded
            for i, c in enumerate(embed):
                last[c.span.path] = i
            ends = sorted(last.values())
            files_before = tally.files_done + len(group) - len(last)
            in_group = 0

            def tick(n: int) -> None:
                nonlocal done, in_group
                done += n
                in_group += n
                files = files_before + bisect.bisect_left(ends, in_group)
                tally.progress(SyncEvent("embed", files, tally.files_total, report.chunks, done))

            arr = emb.embed_documents([texts[c.id] for c in embed], progress=tick)
            for c, vec in zip(embed, arr, strict=True):
                vectors[c.id] = vec

        with self.guard():
            self._commit(rkey, group, need, existing, vectors, store)

        for w in group:
            texts_for = [c.id for c in w.chunks]
            for i in texts_for:
                texts.pop(i, None)
            row = w.row
            report.chunks += len(w.chunks)
            if row.status == SKIPPED:
                report.skipped += 1
                report.problems.append(
                    {"path": shown(rkey, w.cand.rel), "reason": row.reason or ""}
                )
            elif row.status == FAILED:
                report.failed += 1
                report.problems.append(
                    {"path": shown(rkey, w.cand.rel), "reason": row.reason or ""}
                )
            elif w.moved_from:
                report.moved += 1
            elif w.old is None:
                report.added += 1
            else:
                report.updated += 1
        report.embedded += len(embed)
        report.reused += copied

    def _commit(
        self,
        rkey: str,
        group: list[Work],
        need: list[ChunkRow],
        existing: dict[str, ChunkRow],
        vectors: dict[str, Any],
        store: VectorSink | None,
    ) -> None:
        """The crash-ordered write of one group (see the module docstring)."""
        new_rows = [c for w in group for c in w.chunks]
        self.manifest.journal_add([(rkey, w.cand.rel, "write") for w in group])
        self.crash("after_journal")
        if vectors:
            ids = list(vectors)
            rows = {c.id: c for c in need}
            metas = [_meta(rows[i], _row_of(group, rows[i].span.path)) for i in ids]
            store.add(ids, np.vstack([vectors[i] for i in ids]), metas)
        for w in group:  # kept chunks whose tags or date changed: refresh their filter metadata
            if w.old is None or w.row.status != INDEXED:
                continue
            stale = [
                c
                for c in w.chunks
                if c.id in existing and _meta(existing[c.id], w.old) != _meta(c, w.row)
            ]
            if stale:
                store.update_metadata([c.id for c in stale], [_meta(c, w.row) for c in stale])
        self.crash("after_vectors")
        old_ids: list[str] = []
        with self.manifest.transaction():
            for w in group:
                if w.old is not None:
                    old_ids += [c.id for c in self.manifest.chunks_of(rkey, w.cand.rel)]
                self.manifest.put_file(w.row)
                self.manifest.replace_chunks(rkey, w.cand.rel, w.chunks)
        self.crash("after_manifest")
        keep = {c.id for c in new_rows}
        dead = [i for i in old_ids if i not in keep]
        if dead:
            store.delete(dead)
        self.crash("after_delete")
        self.manifest.journal_clear()

    def retouch(self, old: FileRow, size: int, mtime_ns: int) -> None:
        """A file whose bytes did not change got a new size/mtime: record them. Its passages that
        are dated by the mtime move to the new day in the store's filter metadata first (a crash in
        between leaves the old mtime recorded, so the next sync does both again)."""
        if mtime_day(old.mtime_ns) != mtime_day(mtime_ns):
            undated = [
                c
                for c in self.manifest.chunks_of(old.root, old.path)
                if c.span.date_source == MODIFIED
            ]
            if undated:
                now = replace(old, size=size, mtime_ns=mtime_ns)
                with self.guard():
                    self.store().update_metadata(
                        [c.id for c in undated], [_meta(c, now) for c in undated]
                    )
        self.manifest.touch_file(old.root, old.path, size, mtime_ns)

    def delete(self, rkey: str, paths: list[str]) -> None:
        if not paths:
            return
        ids: list[str] = []
        for p in paths:
            ids += [c.id for c in self.manifest.chunks_of(rkey, p)]
        with self.guard():
            self._delete_locked(rkey, paths, ids)

    def _delete_locked(self, rkey: str, paths: list[str], ids: list[str]) -> None:
        self.manifest.journal_add([(rkey, p, "delete") for p in paths])
        self.crash("delete_after_journal")
        with self.manifest.transaction():
            for p in paths:
                self.manifest.delete_file(rkey, p)
        self.crash("delete_after_manifest")
        if ids:
            self.store().delete(ids)
        self.crash("delete_after_vectors")
        self.manifest.journal_clear()


def _row_of(group: list[Work], path: str) -> FileRow:
    for w in group:
        if w.cand.rel == path:
            return w.row
    raise KeyError(path)


def _meta(c: ChunkRow, f: FileRow) -> dict[str, Any]:
    """Chroma metadata used for filtering (the manifest holds everything else): folders, tags and
    the day the passage is dated by — its own date, else its file's modification day."""
    parts = c.span.path.split("/")[:-1]
    meta: dict[str, Any] = {"root": c.span.root, "path": c.span.path}
    if parts:
        meta["dirs"] = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if f.tags:
        meta["tags"] = list(f.tags)
    meta["date"] = day_number(c.span.intrinsic_date or mtime_day(f.mtime_ns))
    return meta


def day_number(iso: str) -> int:
    """2024-11-05 → 20241105 (Chroma filters numbers, not strings)."""
    return int(iso.replace("-", ""))


def mtime_day(mtime_ns: int) -> str:
    """A file's modification day (UTC), the date of a note that gives none itself."""
    import datetime as dt

    return dt.datetime.fromtimestamp(mtime_ns / 1e9, tz=dt.UTC).date().isoformat()


def shown(root: str, rel: str) -> str:
    return str(Path(root) / rel)
