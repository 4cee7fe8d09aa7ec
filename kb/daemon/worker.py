"""`kb watch`: the one writer. It owns the index, keeps the embedder warm, follows the note folders
and serves readers over a local endpoint.

Threads: the main thread is the *worker* — every write (debounced file changes, reconciliation
scans, `kb ingest`/`kb forget` handed over by clients, verify) runs there, one at a time, under the
writer lock held for the daemon's lifetime. Observer threads only enqueue paths. Endpoint threads
answer reads with a second `Index` (with its own focus layer) that shares the Chroma client and the
embedder but has its own SQLite connection (WAL: a reader sees the last committed manifest; a vector
written before its manifest commit is ignored).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from ingest.report import SyncEvent, SyncReport
from ingest.scan import safe_rel
from ingest.sync import Syncer
from ingest.watch import ChangeQueue, expand
from kb.daemon.client import state_path
from kb.daemon.requests import Job, Requests
from kb.daemon.roots import Watches
from kb.daemon.server import Endpoint
from kb.errors import KbError, environment_error
from kb.index.core import Index
from kb.index.embed import Embedder, setting_value
from kb.knowledge import KnowledgeBase
from kb.paths import make_private
from kb.settings import Settings, load_settings

log = logging.getLogger("kb.watch")

VERIFY_IDLE_WAIT = 120.0  # verify waits this long for pending changes to be written first


class Daemon:
    """`kb watch`: the writer (an `Index`), a reader beside it (a `KnowledgeBase` sharing its model,
    store and lock), the watched folders (`Watches`), the endpoint and its requests (`Requests`)."""

    def __init__(
        self,
        settings: Settings | None = None,
        paths: list[str | os.PathLike[str]] | None = None,
        *,
        embedder: Embedder | None = None,
        force_polling: bool = False,
    ) -> None:
        self.settings = settings or load_settings()
        self.writer = Index(self.settings, embedder=embedder)
        self.home = self.writer.home
        self.paths = paths
        w = self.settings.watch
        self.changes = ChangeQueue(w.debounce_s)
        self.watches = Watches(self.changes, w.poll_interval_s, force_polling)
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.stop_event = threading.Event()
        self.roots: list[Path] = []
        self.started = time.time()
        self.busy: str | None = None
        self.last_sync: dict[str, Any] | None = None
        self.last_error: dict[str, Any] | None = None
        self.reader: KnowledgeBase | None = None  # made once the writer holds its lock
        self._read_lock = threading.Lock()
        self.requests = Requests(
            lambda: self.reader,
            self._read_lock,
            self._submit,
            self.snapshot,
            lambda: self.stop_event.is_set() and self.busy is None,
        )
        self._endpoint: Endpoint | None = None
        self._token = secrets.token_urlsafe(32)
        self._next_reconcile = 0.0
        self._next_health = 0.0
        self._worker_error: BaseException | None = None
        self._retry_s = 0.0  # backoff after a sync failed for the machine's reason (full disk)

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Run in the foreground until SIGTERM/SIGINT (or `stop()`); returns the exit code.

        The writer works on its own thread; the main thread only waits for a stop. So a signal is
        always handled, even while the writer is blocked inside the store (a full disk once hung
        Chroma there): the writer gets ``watch.stop_timeout_s`` to finish its group, then the
        process leaves without it — safe, because the journal repairs a half-written group at the
        next start."""
        handler = self._setup_logging()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        worker = threading.Thread(target=self._work, name="kb-writer", daemon=True)
        try:
            worker.start()
            while worker.is_alive() and not self.stop_event.wait(0.2):
                pass
            worker.join(self.settings.watch.stop_timeout_s)
            if worker.is_alive():
                log.error(
                    "the writer is stuck (%s) and did not stop within %gs: exiting without it; the "
                    "next "
                    "start repairs anything half-written",
                    self.busy,
                    self.settings.watch.stop_timeout_s,
                )
                self._remove_state()
                logging.shutdown()
                os._exit(0)
            if self._worker_error is not None:
                raise self._worker_error
            return 0
        finally:
            if not worker.is_alive():
                self._shutdown()
            for s, h in previous.items():
                signal.signal(s, h)
            logging.getLogger("kb").removeHandler(handler)
            handler.close()

    def _work(self) -> None:
        try:
            self._start()
            self._loop()
        except BaseException as exc:  # handed to the main thread, which exits with it
            self._worker_error = exc
        finally:
            self.stop_event.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.changes.wake()

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info(
            "received %s: finishing the current write group, then exiting",
            signal.Signals(signum).name,
        )
        self.stop()

    def _setup_logging(self) -> logging.Handler:
        logs = self.home / "logs"
        try:
            logs.mkdir(mode=0o700, exist_ok=True)
            handler = RotatingFileHandler(
                logs / "watch.log",
                maxBytes=int(self.settings.watch.log_mb * 2**20),
                backupCount=3,
                encoding="utf-8",
            )
        except OSError as exc:  # a read-only or full KB_HOME: one line, as ingest and search say it
            env = environment_error(exc, f"KB_HOME ({self.home})")
            if env is None:
                raise KbError(
                    f"cannot write kb watch's log in {logs}: {exc.strerror or exc}",
                    "make KB_HOME writable (or point KB_HOME at a writable folder)",
                ) from None
            raise env from None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        make_private(logs)
        root = logging.getLogger("kb")
        root.addHandler(handler)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        return handler

    def _start(self) -> None:
        w = self.writer
        told = False
        # another writer (`kb ingest`) may be finishing: wait for it, stoppably
        while not w.lock.held:
            if self.stop_event.is_set():
                raise KbError("stopped while waiting for the writer lock")
            try:
                w.lock.acquire(timeout=0.5)
            except KbError as exc:
                if not told:
                    log.warning("%s; waiting for it to finish", exc.message)
                    told = True
        self.roots = w.roots_for(self.paths) if (self.paths or w.manifest.roots()) else []
        if not self.roots:
            raise KbError("no folders to watch", "run `kb watch PATH` (or `kb ingest PATH` first)")
        # before anything opens the store: a damaged one is rebuilt first
        for notice in w.check_store():
            log.warning("%s", notice)
        w.embedder()  # warm: the first search must not pay for loading the model
        self.reader = self._new_reader()
        self.syncer = self._new_syncer()
        self._endpoint = Endpoint(self._token, self.requests.dispatch)
        self._endpoint.start()
        for root in self.roots:
            self.watches.watch(root)
        self._write_state()
        log.info(
            "kb watch (pid %d) serving on 127.0.0.1:%d; watching %s",
            os.getpid(),
            self._endpoint.port,
            ", ".join(str(r) for r in self.roots),
        )
        self.jobs.put(Job("reconcile", {"why": "start"}))  # catch up on what changed meanwhile
        self._schedule_reconcile()

    def _new_reader(self) -> KnowledgeBase:
        """A knowledge base beside the writer: its model, store and lock (same process: reads never
        wait on the writer), its own SQLite connection (WAL: the last committed manifest)."""
        w = self.writer
        reader = KnowledgeBase(
            self.settings, embedder=w.embedder(), store=w.store(), lock=w.lock, use_daemon=False
        )
        reader.contexts().retriever()  # token counter vocabulary, retriever: warm before a query
        return reader

    def _submit(self, job: Job) -> None:
        self.jobs.put(job)
        self.changes.wake()

    def _shutdown(self) -> None:
        self.watches.stop()
        if self._endpoint is not None:
            self._endpoint.stop()
        self._remove_state()
        while not self.jobs.empty():  # tell waiting clients instead of leaving them hanging
            job = self.jobs.get_nowait()
            job.error = KbError("kb watch stopped before doing this", "run the command again")
            job.done.set()
        if self.reader is not None:
            self.reader.close()  # its own manifest connection (the lock is the writer's, held on)
        self.writer.close()
        log.info("kb watch stopped cleanly")

    def _remove_state(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            path = state_path(self.home)
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()

    def _write_state(self) -> None:
        assert self._endpoint is not None
        state = {
            "pid": os.getpid(),
            "host": "127.0.0.1",
            "port": self._endpoint.port,
            "token": self._token,
            "model_id": self.writer.model_id,
            "embed_model": self.settings.embed_model,
            "embed_setting": setting_value(self.settings.embed_model),
            "default_model": self.settings.embed_model
            == Settings.model_fields["embed_model"].default,
            "home": str(self.home),
            "started": self.started,
            "roots": [str(r) for r in self.roots],
        }
        path = state_path(self.home)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
        os.replace(tmp, path)

    def _schedule_reconcile(self) -> None:
        minutes = self.settings.watch.reconcile_minutes
        self._next_reconcile = time.monotonic() + minutes * 60 if minutes > 0 else float("inf")

    # ------------------------------------------------------------------ worker
    def _loop(self) -> None:
        while not self.stop_event.is_set():
            if time.monotonic() >= self._next_health:
                if self.watches.check(self.roots):  # a root is back: catch up on it
                    self.jobs.put(Job("reconcile", {"why": "root back"}))
                self._next_health = time.monotonic() + 2.0
            if time.monotonic() >= self._next_reconcile:
                self.jobs.put(Job("reconcile", {"why": "periodic"}))
                self._schedule_reconcile()
            job = self._next_job()
            if job is not None:
                self._run_job(job)
                continue
            ready = self.changes.ready(limit=self.settings.watch.batch_files)
            if ready:
                self._sync_changes(ready)
                continue
            due = self.changes.next_due()
            self.changes.wait(0.2 if due is None else min(0.2, max(0.01, due)))

    def _next_job(self) -> Job | None:
        try:
            job = self.jobs.get_nowait()
        except queue.Empty:
            return None
        if (
            job.kind == "verify"
            and len(self.changes)
            and time.monotonic() - job.queued < VERIFY_IDLE_WAIT
        ):
            self.jobs.put(job)  # let pending changes land first, so verify judges a settled index
            return None
        return job

    def _run_job(self, job: Job) -> None:
        self.busy = job.kind
        try:
            if job.kind == "reconcile":
                self._sync(self.roots, None, f"{job.args.get('why')} reconcile")
            elif job.kind == "ingest":
                folders = [Path(p) for p in job.args["paths"]]
                roots = self.writer.take_folders(folders, self._notice(job.emit))
                for r in roots:
                    if r not in self.roots:
                        self.roots.append(r)
                        self.watches.watch(r)
                job.result = self._sync(roots, None, "ingest request", job.emit).as_dict()
            elif job.kind == "forget":
                target = Path(job.args["path"])
                job.result = self.writer.forget_locked(target)
                if str(target) in self.watches.observers:
                    self.watches.unwatch(str(target))
                    self.roots = [r for r in self.roots if r != target]
            elif job.kind == "verify":
                job.result = self.writer.verify_locked().full()
        except Exception as exc:  # reported to the client (and the log), never fatal to the daemon
            job.error = exc
            if job.kind == "reconcile" and isinstance(exc, KbError):  # a full disk: retry soon
                self._retry_s = min(30.0, max(2.0, self._retry_s * 2))
                self._next_reconcile = time.monotonic() + self._retry_s
            if job.kind in ("forget", "verify") and not isinstance(exc, KbError):
                self._record_error(f"{job.kind}: {type(exc).__name__}: {exc}")
        finally:
            self.busy = None
            job.done.set()

    def _sync_changes(self, ready: list) -> None:
        only: dict[Path, set[str]] = {}
        for c in ready:
            root = Path(c.root)
            if root not in self.roots:
                continue
            rels = only.setdefault(root, set())
            if c.is_dir or (root / c.rel).is_dir():
                known = {p for (_, p) in self.writer.manifest.files(c.root)}
                files = expand(root, c.rel, known, self.syncer.scanner(root).is_ignored)
                if c.kind == "moved":
                    # both ends in one sync: vectors move with their files, nothing is re-embedded
                    rels |= files
                else:
                    for rel in files:  # a new or deleted folder: its files queue like any others
                        self.changes.add(c.root, rel, False, "expanded", due_now=True)
            else:
                rels.add(c.rel)
        if not any(only.values()):
            return
        n = sum(len(v) for v in only.values())
        try:
            self._sync(list(only), only, f"{n} changed paths")
            self._retry_s = 0.0
        except (
            KbError
        ):  # the machine's fault (full disk, store): keep the paths, retry with backoff
            for c in ready:
                self.changes.add(c.root, c.rel, c.is_dir, "retry")
            self._retry_s = min(30.0, max(2.0, self._retry_s * 2))
            self.stop_event.wait(self._retry_s)
        except Exception:  # unexpected: never let one path hold the others; sync each alone
            if n == 1:
                return  # recorded in status and the log; the next reconcile tries it again
            for root, rels in only.items():
                for rel in sorted(rels):
                    if self.stop_event.is_set():
                        return
                    with contextlib.suppress(Exception):
                        self._sync([root], {root: {rel}}, f"1 changed path ({safe_rel(rel)})")

    def _sync(
        self,
        roots: list[Path],
        only: dict[Path, set[str]] | None,
        what: str,
        emit: Callable[[dict[str, Any]], None] | None = None,
    ) -> SyncReport:
        self.busy = what

        def progress(e: SyncEvent) -> None:
            if e.stage == "notice":
                log.info("%s", e.message)  # now, not after the sync: a kill must not swallow it
            if emit is not None:
                emit(asdict(e))

        self.syncer.progress = progress
        try:
            report = self.writer.sync_locked(roots, progress, only=only, syncer=self.syncer)
        except KbError as exc:
            self._record_error(f"{what}: {exc.message}", exc.remedy)
            raise
        except Exception as exc:
            self._record_error(f"{what}: {type(exc).__name__}: {exc}")
            raise
        finally:
            self.syncer.progress = lambda e: None
            self.busy = None
            self._follow_writer()
        if self.last_error is not None and self.last_error.get("resolved") is None:
            self.last_error["resolved"] = time.time()
            log.info("writing again: the last error (%s) is resolved", self.last_error["message"])
            if only is not None:  # a repair during the failure may have marked notes outside these
                self.jobs.put(Job("reconcile", {"why": "catch-up after an error"}))
        summary = report.as_dict()
        changed = {
            k: summary[k]
            for k in ("added", "updated", "moved", "deleted", "skipped", "failed", "embedded")
        }
        self.last_sync = {
            "time": time.time(),
            "what": what,
            **changed,
            "seconds": summary["seconds"],
        }
        if any(changed.values()) or only is None:
            log.info(
                "synced %s: %s in %.2fs",
                what,
                ", ".join(f"{k} {v}" for k, v in changed.items() if v) or "no changes",
                report.seconds,
            )
        for p in report.problems:
            log.info("skipped %s: %s", p["path"], p["reason"])
        return report

    def _new_syncer(self) -> Syncer:
        """A syncer over the writer's live generation, with the daemon's write-group size, stoppable
        between groups."""
        syncer = self.writer.syncer(None)
        syncer.group_chunks = self.settings.watch.group_chunks
        syncer.should_stop = self.stop_event.is_set
        return syncer

    def _follow_writer(self) -> None:
        """After a model switch the writer has a new live generation, after a rebuild a new store:
        the reader beside it is made anew over them."""
        reader, w = self.reader, self.writer
        moved = reader.index.manifest.path != w.manifest.path
        if moved or (w.open_store is not None and reader.index.open_store is not w.open_store):
            fresh = self._new_reader()
            with self._read_lock:
                self.reader = fresh
            reader.close()
        if moved:
            self.syncer = self._new_syncer()

    def snapshot(self) -> dict[str, Any]:
        """What `kb status` shows about the daemon."""
        return {
            "running": True,
            "pid": os.getpid(),
            "started": self.started,
            "uptime_s": round(time.time() - self.started, 1),
            "endpoint": f"127.0.0.1:{self._endpoint.port}" if self._endpoint else None,
            "roots": self.watches.kinds(self.roots),
            "queue": len(self.changes) + self.jobs.qsize(),
            "busy": self.busy,
            "events": self.changes.events,
            "last_event": self.changes.last_event,
            "last_sync": self.last_sync,
            "last_error": self.last_error,
            "warnings": self.watches.warnings,
            "log": str(self.home / "logs" / "watch.log"),
        }

    @staticmethod
    def _notice(emit: Callable[[dict[str, Any]], None] | None) -> Callable[[SyncEvent], None]:
        def say(e: SyncEvent) -> None:
            log.info("%s", e.message)
            if emit is not None:
                emit(asdict(e))

        return say

    def _record_error(self, message: str, remedy: str | None = None) -> None:
        log.error("%s%s", message, f" — {remedy}" if remedy else "")
        self.last_error = {
            "time": time.time(),
            "message": message,
            "remedy": remedy,
            "resolved": None,
        }
