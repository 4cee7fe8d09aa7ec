"""The single-writer rule: an exclusive ``flock`` on ``KB_HOME/writer.lock``.

The lock dies with its process (kill -9 included), so a crashed writer never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ingest.manifest import read_only_place
from kb.errors import LockedError, environment_error


class WriterLock:
    def __init__(self, home: Path) -> None:
        self.path = home / "writer.lock"
        self._fd: int | None = None
        self.unclean_before = (
            False  # set by acquire(): the previous writer did not release the lock
        )

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def acquire(self, timeout: float = 0.0, on_wait: Callable[[str], None] | None = None) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            env = environment_error(exc, f"KB_HOME ({self.path.parent})")
            if env is None:
                raise
            raise env from None

        def waiting() -> None:
            if on_wait is not None:
                on_wait(f"waiting for the writer lock held by pid {self.holder()}")

        if not _flock(fd, fcntl.LOCK_EX, timeout, 0.1, waiting):
            os.close(fd)
            raise LockedError(
                f"another kb process (pid {self.holder()}) is writing to this index",
                "wait for it to finish (or stop `kb watch`), then run the command again",
            )
        # a pid left in the file: its writer died holding the lock (kill -9, power loss), not
        # released it
        try:
            self.unclean_before = bool(os.pread(fd, 32, 0).strip())
        except OSError:
            self.unclean_before = False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # a clean stop: the next writer need not check the store
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


class StoreLock:
    """Readers and the writer's commit steps, across processes: ``flock`` on ``KB_HOME/store.lock``.

    The writer holds it exclusively only while it writes one group (journal → vectors → manifest →
    delete → clear), never while it reads files or embeds; a reader without a daemon holds it shared
    for one read. So a reader waits for at most one group's commit instead of a whole `kb ingest`,
    and never sees Chroma mid-write.
    """

    def __init__(self, home: Path) -> None:
        self.path = home / "store.lock"
        self._fd: int | None = None
        self._depth = 0

    @contextmanager
    def hold(self, exclusive: bool, timeout: float = 600.0) -> Iterator[None]:
        if self._depth:  # re-entrant within this object (a repair inside a sync)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            if exclusive or not read_only_place(self.path.parent):
                raise
            # a read-only KB_HOME: nobody can write, a shared lock on a read-only descriptor is
            # enough
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                yield  # no lock file and no way to make one: and no writer either
                return
        try:
            if not _flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, timeout, 0.02):
                raise LockedError(
                    "the index stayed busy with a write for too long",
                    "run the command again; if it persists, check `kb status`",
                )
            self._fd, self._depth = fd, 1
            yield
        finally:
            if self._fd == fd:
                self._fd, self._depth = None, 0
            os.close(fd)  # closing the descriptor releases the lock

    def exclusive(self) -> AbstractContextManager[None]:
        return self.hold(True)

    def shared(self, timeout: float = 600.0) -> AbstractContextManager[None]:
        return self.hold(False, timeout)


def _flock(
    fd: int, mode: int, timeout: float, poll: float, on_first_wait: Callable[[], None] | None = None
) -> bool:
    """Take ``flock(mode)`` on ``fd``, polling every ``poll`` s for up to ``timeout`` s; False when
    it stayed taken. ``on_first_wait`` is told once, when the lock turns out to be held by someone
    else."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            if not told and on_first_wait is not None:
                on_first_wait()
                told = True
            time.sleep(poll)
