"""Reconcile a root with the index: add / update (changed chunks only) / move / delete. Deciding
what to write happens here; writing it, crash-ordered, in `ingest.commit`.

On open, a non-empty journal triggers `repair()`: vectors the manifest doesn't know are deleted, and
manifest chunks without a vector are dropped and their files marked stale, so the next sync redoes
them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from ingest.chunk import SEP, Chunker
from ingest.commit import GroupWriter, PassageEmbedder, Tally, VectorSink, Work, shown
from ingest.dates import passage_date
from ingest.load import Document, LoadError, load
from ingest.manifest import FAILED, INDEXED, SKIPPED, ChunkRow, FileRow, Manifest
from ingest.report import ProgressFn, SyncEvent, SyncReport
from ingest.scan import Candidate, Scanner, exact_name, safe_rel
from ingest.span import Span
from kb.errors import KbError, describe, machine_errors

#: chunks embedded and committed together: a kill (or a crash) loses at most one group's embedding
#: (≈40 s with the multilingual model on two busy cores); efficiency measured in docs/benchmarks.md
GROUP_CHUNKS = 256
GROUP_FILES = 500


def chunk_id(root: str, path: str, chunk_hash: str, occurrence: int) -> str:
    """Stable id of a chunk; computed from raw bytes, so a name that is not valid UTF-8 can't break
    it."""
    key = f"{root}\0{path}\0{chunk_hash}\0{occurrence}"
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class Syncer:
    """Runs syncs against one manifest + vector store. The embedder and store are created lazily, so
    a no-op sync never loads the model or opens Chroma."""

    def __init__(
        self,
        manifest: Manifest,
        store: Callable[[], VectorSink],
        embedder: Callable[[], PassageEmbedder],
        chunker: Callable[[], Chunker],
        *,
        model_id: str,
        chunker_version: str,
        extensions: list[str],
        ignore_dirs: list[str],
        max_bytes: int,
        progress: ProgressFn | None = None,
        crash_hook: Callable[[str], None] | None = None,
        group_chunks: int = GROUP_CHUNKS,
        should_stop: Callable[[], bool] | None = None,
        guard: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        self.manifest = manifest
        # held exclusively around each commit (readers hold it shared); `crash_hook`: tests inject
        # crashes between write steps
        self.writer = GroupWriter(manifest, store, embedder, guard, crash_hook)
        self.chunker = chunker
        self.model_id = model_id
        self.chunker_version = chunker_version
        self.extensions, self.ignore_dirs, self.max_bytes = extensions, ignore_dirs, max_bytes
        self.progress = progress or (lambda e: None)
        self.group_chunks = group_chunks
        # checked between write groups (graceful shutdown)
        self.should_stop = should_stop or (lambda: False)

    def repair(self, force: bool = False) -> tuple[int, int]:
        """Bring the store and the manifest back in line after a crash (see
        `GroupWriter.repair`)."""
        return self.writer.repair(force)

    def scanner(self, root: Path) -> Scanner:
        return Scanner(
            root,
            self.extensions,
            self.ignore_dirs,
            self.max_bytes,
            excludes=self.manifest.excludes(str(root.resolve())),
        )

    # ------------------------------------------------------------------ public
    def sync_root(self, root: Path, only: set[str] | None = None) -> SyncReport:
        """Reconcile ``root`` (or just the relative paths in ``only``) with the index. A full or
        read-only disk stops it with a `DiskFullError`; anything a single file causes is recorded on
        that file."""
        with machine_errors():
            return self._sync_root(root, only)

    def _sync_root(self, root: Path, only: set[str] | None) -> SyncReport:
        t0 = time.perf_counter()
        root = root.resolve()
        rkey = str(root)
        report = SyncReport()
        scanner = self.scanner(root)
        self.manifest.add_root(rkey)
        if only is None:
            known = {p: f for (_, p), f in self.manifest.files(rkey).items()}
            disk = {c.rel: c for c in scanner.walk()}
        else:
            disk = {}
            listings: dict[Path, set[str]] = {}
            for rel in only:
                try:
                    c = scanner.candidate(root / rel, rel)
                    if c is not None and exact_name(root / rel, listings):
                        disk[c.rel] = c
                except Exception as exc:  # never let one path stop the others
                    disk[safe_rel(rel)] = Candidate(
                        safe_rel(rel), root / rel, 0, 0, f"unreadable: {describe(exc)}"
                    )
            wanted = {
                safe_rel(r) for r in only
            }  # their rows only: an edit costs the same in 100 or 100k notes
            known = {p: f for p in wanted if (f := self.manifest.file(rkey, p)) is not None}
        self.progress(
            SyncEvent("scan", files_total=len(disk), message=f"{len(disk)} files in {root}")
        )

        work: list[Work] = []
        stale_model = 0
        for rel, cand in disk.items():
            old = known.get(rel)
            if cand.skip_reason:
                if old and old.status == SKIPPED and old.reason == cand.skip_reason:
                    report.unchanged += 1
                    report.skipped += 1
                    report.problems.append({"path": shown(rkey, rel), "reason": cand.skip_reason})
                else:
                    work.append(Work(cand, "", old, problem=cand.skip_reason))
                continue
            current = (
                old is not None
                and old.model_id == self.model_id
                and old.chunker == self.chunker_version
            )
            if old is not None and not current and old.status == INDEXED:
                stale_model += 1
            if (
                current
                and old.status in (INDEXED, SKIPPED)
                and old.size == cand.size
                and old.mtime_ns == cand.mtime_ns
                and old.sha256
            ):
                report.unchanged += 1
                if old.status == SKIPPED:
                    report.skipped += 1
                    report.problems.append({"path": shown(rkey, rel), "reason": old.reason or ""})
                continue
            try:
                data = cand.path.read_bytes()
            except OSError as exc:
                if not cand.path.exists():
                    continue  # vanished between scan and read: the delete pass handles it
                work.append(Work(cand, "", old, problem=f"unreadable: {exc.strerror or exc}"))
                continue
            except Exception as exc:  # any other failure is this file's alone
                work.append(Work(cand, "", old, problem=f"unreadable: {describe(exc)}"))
                continue
            sha = hashlib.sha256(data).hexdigest()
            if current and old.status == INDEXED and old.sha256 == sha:
                self.writer.retouch(old, cand.size, cand.mtime_ns)
                report.unchanged += 1
                continue
            work.append(Work(cand, sha, old, data=data))
        if stale_model:
            msg = (
                f"{stale_model} files were indexed with another model or chunker; re-chunking them "
                f"(vectors are reused where the text is unchanged)"
            )
            report.notices.append(msg)
            self.progress(SyncEvent("notice", message=msg))

        gone = [p for p in known if p not in disk]
        by_sha: dict[str, list[str]] = {}
        for p in gone:
            f = known[p]
            if f.status == INDEXED and f.sha256:
                by_sha.setdefault(f.sha256, []).append(p)
        for w in work:
            if w.old is None and w.sha and by_sha.get(w.sha):
                w.moved_from = by_sha[w.sha].pop(0)

        if not self._process(rkey, work, report, len(disk)):
            report.interrupted = True
            report.seconds = time.perf_counter() - t0
            # stopped between groups: what was written is consistent; the rest waits for next start
            return report
        self.writer.delete(rkey, gone)
        moved_sources = {w.moved_from for w in work if w.moved_from}
        report.deleted += len([p for p in gone if p not in moved_sources])
        self.manifest.touch_root(rkey)
        report.seconds = time.perf_counter() - t0
        self.progress(SyncEvent("done", len(disk), len(disk), report.chunks, report.embedded))
        return report

    def forget(self, root: str, paths: list[str] | None = None) -> int:
        """Remove files (all of a root when ``paths`` is None) from the index. Returns files
        removed."""
        known = self.manifest.files(root)
        targets = (
            [p for (_, p) in known] if paths is None else [p for p in paths if (root, p) in known]
        )
        self.writer.delete(root, targets)
        if paths is None:
            self.manifest.remove_root(root)
        return len(targets)

    def _process(self, rkey: str, work: list[Work], report: SyncReport, total: int) -> bool:
        """Prepare and write ``work`` in groups; False when ``should_stop`` interrupted it between
        groups."""
        if any(w.problem is None for w in work):
            self.chunker()  # load the model up front: failing here is not any one file's fault
        group: list[Work] = []
        pending = 0
        done = report.unchanged
        tally = Tally(self.progress, done, total)
        for w in work:
            tally.files_done = done
            self._prepare(rkey, w)
            group.append(w)
            pending += len(w.chunks)
            if pending >= self.group_chunks or len(group) >= GROUP_FILES:
                self.writer.write(rkey, group, report, tally)
                done += len(group)
                self.progress(SyncEvent("write", done, total, report.chunks, report.embedded))
                group, pending = [], 0
                if self.should_stop():
                    return False
        if group:
            tally.files_done = done
            self.writer.write(rkey, group, report, tally)
            done += len(group)
            self.progress(SyncEvent("write", done, total, report.chunks, report.embedded))
        return True

    def _prepare(self, rkey: str, w: Work) -> None:
        rel, cand = w.cand.rel, w.cand
        base = dict(
            root=rkey,
            path=rel,
            size=cand.size,
            mtime_ns=cand.mtime_ns,
            sha256=w.sha,
            model_id=self.model_id,
            chunker=self.chunker_version,
        )
        if w.problem is not None:
            w.row = FileRow(status=SKIPPED, reason=w.problem, **base)
            return
        try:
            doc = load(cand.path, w.data, rel)
            doc.title = safe_rel(doc.title)
            chunks = self._chunk(doc, cand.path)
            note = (doc.date, doc.date_source) if doc.date and doc.date_source else None
            rows = []
            for c, occ in zip(chunks, _occurrences(chunks), strict=True):
                day, source = passage_date(c.heading, note, SEP) or (None, None)
                page = doc.page_at(c.start_line - doc.first_line + 1)
                span = Span(rkey, rel, c.heading, c.start_line, c.end_line, page, day, source)
                rows.append(
                    ChunkRow(chunk_id(rkey, rel, c.hash, occ), span, c.position, c.hash, c.text)
                )
        except LoadError as exc:
            w.row = FileRow(status=SKIPPED, reason=str(exc), **base)
            return
        except KbError:  # not the file's fault (model can't load, ...): stop with a clear error
            raise
        except Exception as exc:  # one bad file never stops the sync, whatever it raises
            w.row = FileRow(status=FAILED, reason=describe(exc), **base)
            return
        finally:
            w.data = None
        w.row = FileRow(
            status=INDEXED,
            reason=doc.warning,
            title=doc.title,
            tags=doc.tags,
            date=doc.date,
            date_source=doc.date_source,
            kind=doc.kind,
            **base,
        )
        w.chunks = rows
        for c, row in zip(chunks, rows, strict=True):
            self.writer.texts[row.id] = c.embed_text

    def _chunk(self, doc: Document, path: Path):
        title_from_content = doc.title != safe_rel(path.stem)
        return self.chunker().chunk(
            doc.text, doc.title, doc.first_line, doc.kind != "text", title_from_content
        )


def _occurrences(chunks: list) -> list[int]:
    """For each chunk, how many earlier chunks of the file have the same hash (keeps ids unique)."""
    seen: dict[str, int] = {}
    out = []
    for c in chunks:
        out.append(seen.get(c.hash, 0))
        seen[c.hash] = out[-1] + 1
    return out
