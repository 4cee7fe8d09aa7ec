"""File-system events → a debounced set of paths to re-sync.

Watchdog delivers a burst of events per save (editors write a temp file, rename it over the note,
touch metadata). `ChangeQueue` coalesces them per path and releases a path only after it has been
quiet for the debounce time *and* its mtime is that old too (a half-written file that stopped
emitting events is not read). The syncer then reconciles exactly those paths; a folder event expands
to every file under the folder on disk and in the index, so folder create/move/delete need no
special cases.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler

log = logging.getLogger(__name__)

# OS refused another watch: inotify's max_user_watches / max_user_instances, too many open files
WATCH_LIMIT_ERRNOS = {errno.ENOSPC, errno.EMFILE, errno.ENFILE}


@dataclass
class Change:
    root: str
    rel: str  # POSIX path relative to the root ('' = the root itself)
    is_dir: bool
    last: float  # monotonic time of the last event for this path
    kind: str = (
        "modified"  # last event type: created | modified | deleted | moved | closed | expanded
    )


class ChangeQueue:
    """Thread-safe, per-path debounced queue. `add` from observer threads; `ready` from the
    worker."""

    def __init__(self, debounce: float) -> None:
        self.debounce = debounce
        self._items: dict[tuple[str, str], Change] = {}
        self._partners: dict[
            tuple[str, str], tuple[str, str]
        ] = {}  # the two ends of a move leave together
        self._cv = threading.Condition()
        self.events = 0
        self.last_event: dict[str, object] | None = None

    def add(
        self, root: str, rel: str, is_dir: bool, kind: str = "modified", due_now: bool = False
    ) -> None:
        now = time.monotonic() - (self.debounce if due_now else 0.0)
        with self._cv:
            key = (root, rel)
            old = self._items.get(key)
            if old is not None and old.kind == "moved":
                kind = "moved"  # stays one change with its partner
            self._items[key] = Change(
                root, rel, is_dir or (old.is_dir if old else False), now, kind
            )
            self.events += 1
            self.last_event = {"time": time.time(), "kind": kind, "path": os.path.join(root, rel)}
            self._cv.notify_all()

    def add_move(self, root: str, src: str, dest: str, is_dir: bool) -> None:
        self.add(root, src, is_dir, "moved")
        self.add(root, dest, is_dir, "moved")
        with self._cv:
            self._partners[(root, src)] = (root, dest)
            self._partners[(root, dest)] = (root, src)

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)

    def wake(self) -> None:
        """Interrupt a `wait` (new job, shutdown)."""
        with self._cv:
            self._cv.notify_all()

    def wait(self, timeout: float) -> None:
        """Sleep until something is queued or ``timeout`` passes."""
        with self._cv:
            if not self._items:
                self._cv.wait(timeout)

    def next_due(self) -> float | None:
        """Seconds until the earliest queued path becomes due (None when empty)."""
        with self._cv:
            if not self._items:
                return None
            return max(
                0.0, min(c.last for c in self._items.values()) + self.debounce - time.monotonic()
            )

    def ready(self, limit: int | None = None) -> list[Change]:
        """Pop up to ``limit`` paths that have been quiet for the debounce time and whose file is
        not being written. Small changes go first: paths are ordered by how many due paths share
        their folder, so one edited note is not stuck behind a bulk copy into another folder (which
        fills the remaining rounds)."""
        now = time.monotonic()
        wall = time.time()
        with self._cv:
            due: list[Change] = []
            for c in self._items.values():
                if now - c.last < self.debounce:
                    continue
                if not c.is_dir and _still_written(Path(c.root) / c.rel, wall, self.debounce):
                    c.last = now  # events stopped but the file keeps changing: wait another round
                    continue
                due.append(c)
            if limit is not None and len(due) > limit:
                crowd: dict[tuple[str, str], int] = {}
                for c in due:
                    crowd[(c.root, _parent(c.rel))] = crowd.get((c.root, _parent(c.rel)), 0) + 1
                due.sort(key=lambda c: (crowd[(c.root, _parent(c.rel))], c.last))
                due = due[:limit]
            out = [self._items.pop((c.root, c.rel)) for c in due]
            for c in list(
                out
            ):  # a rename is one change: its other end goes now too, debounced or not
                partner = self._partners.pop((c.root, c.rel), None)
                if partner is not None:
                    self._partners.pop(partner, None)
                    if partner in self._items:
                        out.append(self._items.pop(partner))
        return out


def _parent(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def _still_written(path: Path, wall: float, debounce: float) -> bool:
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return False
    return 0 <= wall - mtime < debounce * 0.5


class RootHandler(FileSystemEventHandler):
    """Maps watchdog events under one root to queue entries (both ends of a move)."""

    def __init__(self, root: Path, queue: ChangeQueue) -> None:
        self.root = root
        self.rkey = str(root)
        self.queue = queue

    def _rel(self, path: str | bytes) -> str | None:
        p = os.fsdecode(path)
        try:
            rel = Path(p).relative_to(self.root).as_posix()
        except ValueError:
            return None  # moved out of this root (the other end is handled by the source event)
        return "" if rel == "." else rel

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            # a folder's mtime changes with every file event; the file events carry the information
            return
        src = self._rel(event.src_path)
        dest = self._rel(event.dest_path) if event.event_type == "moved" else None
        if src and dest:
            self.queue.add_move(self.rkey, src, dest, event.is_directory)
            return
        for rel in (src, dest):
            if rel:
                self.queue.add(self.rkey, rel, event.is_directory, event.event_type)


def expand(root: Path, rel: str, known: set[str], is_ignored) -> set[str]:
    """A folder event's file set: everything the index holds under it plus everything on disk under
    it."""
    prefix = rel + "/"
    out = {p for p in known if p.startswith(prefix)}
    folder = root / rel
    if folder.is_dir() and not folder.is_symlink():
        for dirpath, dirnames, filenames in os.walk(folder):
            d = Path(dirpath)
            drel = d.relative_to(root).as_posix()
            dirnames[:] = [n for n in dirnames if not is_ignored(f"{drel}/{n}", True)]
            out.update(f"{drel}/{n}" for n in filenames)
    return out


def start_observer(
    root: Path, handler: RootHandler, poll_interval: float, force_polling: bool = False
):
    """Watch ``root`` with the native observer; when the OS watch limit is exhausted, fall back to
    polling.

    Returns ``(observer, warning)``; ``warning`` is None unless the fallback was taken."""
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    warning = None
    if not force_polling:
        obs = Observer()
        try:
            obs.schedule(handler, str(root), recursive=True)
            obs.start()
            return obs, None
        except OSError as exc:
            if exc.errno not in WATCH_LIMIT_ERRNOS:
                raise
            _stop_quietly(obs)
            warning = (
                f"the OS watch limit is exhausted ({os.strerror(exc.errno)}) for {root}: polling "
                "it every "
                f"{poll_interval:g}s instead (raise it with `sudo sysctl "
                "fs.inotify.max_user_watches=524288`)"
            )
            log.warning(warning)
    obs = PollingObserver(timeout=poll_interval)
    obs.schedule(handler, str(root), recursive=True)
    obs.start()
    return obs, warning


def _stop_quietly(obs) -> None:
    with contextlib.suppress(Exception):  # never started
        obs.stop()
