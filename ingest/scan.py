"""Find the note files under a root: ignore rules, symlink safety, size limits."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

from kb.errors import describe

KBIGNORE = ".kbignore"


def safe_rel(rel: str) -> str:
    """A root-relative path that SQLite, JSON and Chroma can store. File names that are not valid
    UTF-8 (old cp866/cp1251 archives) reach Python with surrogate escapes; they are kept as
    backslash escapes of their raw bytes (``bad\\xffname.md``), so ids and rows are stable and the
    name stays readable."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_ESCAPED = re.compile(r"\\x([0-9a-f]{2})")


def disk_rel(rel: str) -> str:
    """The inverse of `safe_rel`: a stored path with ``\\xNN`` escapes as the operating system names
    the file (raw bytes through surrogate escapes), so a note with such a name can be opened."""
    if not _ESCAPED.search(rel):
        return rel
    raw = bytearray()
    pos = 0
    for m in _ESCAPED.finditer(rel):
        raw += rel[pos : m.start()].encode("utf-8") + bytes([int(m.group(1), 16)])
        pos = m.end()
    raw += rel[pos:].encode("utf-8")
    return bytes(raw).decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Candidate:
    """A file under a root that should be read (or skipped with a reason)."""

    rel: str  # POSIX path relative to the root, made storable by `safe_rel`
    found_at: Path | str  # absolute path as found on disk (may be a symlink inside the root)
    size: int
    mtime_ns: int
    skip_reason: str | None = None

    @property
    def path(self) -> Path:
        """``found_at`` as a Path, made only when a file is read (a 100k-note scan builds none)."""
        return self.found_at if isinstance(self.found_at, Path) else Path(self.found_at)


class Scanner:
    """Walks one root. Hidden folders, configured folder names and `.kbignore` patterns are skipped;
    symlinks are followed only when they resolve inside the root, and each real folder is visited
    once."""

    def __init__(
        self,
        root: Path,
        extensions: list[str],
        ignore_dirs: list[str],
        max_bytes: int,
        excludes: list[str] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.extensions = {e.lower() for e in extensions}
        self.ignore_dirs = set(ignore_dirs)
        self.max_bytes = max_bytes
        self.spec = _load_spec(self.root)
        self.excludes = tuple(excludes or ())

    def is_ignored(self, rel: str, is_dir: bool = False) -> bool:
        """True when a root-relative POSIX path is excluded by folder rules or `.kbignore`."""
        parts = rel.split("/")
        for part in parts if is_dir else parts[:-1]:
            if part.startswith(".") or part in self.ignore_dirs:
                return True
        if not is_dir:
            return self._file_ignored(rel)
        if any(rel == ex or rel.startswith(ex + "/") for ex in self.excludes):
            return True
        return self.spec is not None and self.spec.match_file(rel + "/")

    def _file_ignored(self, rel: str) -> bool:
        """`is_ignored` for a file whose folders were already checked (`walk` checks them on the way
        down)."""
        name = rel.rpartition("/")[2]
        dot = name.rfind(".")
        if name.startswith(".") or dot < 0 or name[dot:].lower() not in self.extensions:
            return True
        if self.excludes and any(rel == ex or rel.startswith(ex + "/") for ex in self.excludes):
            return True
        return self.spec is not None and self.spec.match_file(rel)

    def inside(self, path: Path) -> bool:
        try:
            path.resolve(strict=True).relative_to(self.root)
            return True
        except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11)
            return False

    def candidate(
        self, path: Path | str, rel: str, entry: os.DirEntry[str] | None = None
    ) -> Candidate | None:
        """Stat one file; None when it vanished or should be ignored. Never raises for one file's
        sake: whatever goes wrong becomes the candidate's skip reason. ``entry`` (from a folder
        scan) saves the lstat and, for a regular file, reuses the scan's stat."""
        try:
            return self._candidate(path, rel, entry)
        except Exception as exc:  # one odd file must not stop a scan
            return Candidate(safe_rel(rel), path, 0, 0, f"unreadable: {describe(exc)}")

    def _candidate(
        self, path: Path | str, rel: str, entry: os.DirEntry[str] | None = None
    ) -> Candidate | None:
        if self._file_ignored(rel) if entry is not None else self.is_ignored(rel):
            return None
        srel = safe_rel(rel)
        link = entry.is_symlink() if entry is not None else os.path.islink(path)
        if link:
            path = Path(path)
            try:
                path.resolve(strict=True)
            except RuntimeError:
                return Candidate(srel, path, 0, 0, "symlink loop: the link points back at itself")
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return Candidate(
                        srel, path, 0, 0, "symlink loop: the link points back at itself"
                    )
                return None  # a dangling link is not a note
            if not self.inside(path):
                return Candidate(srel, path, 0, 0, OUTSIDE)
        rel = srel
        try:
            st = entry.stat() if entry is not None and not link else os.stat(path)
        except OSError as exc:
            if not os.path.exists(path):
                return None
            return Candidate(rel, path, 0, 0, f"unreadable: {exc.strerror or exc}")
        if not _readable(st, path):
            return Candidate(rel, path, st.st_size, st.st_mtime_ns, "unreadable: permission denied")
        if st.st_size > self.max_bytes:
            mb = self.max_bytes / 2**20
            return Candidate(
                rel,
                path,
                st.st_size,
                st.st_mtime_ns,
                f"too large: {st.st_size / 2**20:.1f} MiB > {mb:g} MiB",
            )
        return Candidate(rel, path, st.st_size, st.st_mtime_ns)

    def walk(self) -> Iterator[Candidate]:
        seen: set[tuple[int, int]] = set()
        stack: list[tuple[Path, str]] = [(self.root, "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                st = folder.stat()
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                rel = prefix + entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                    is_file = not is_dir and entry.is_file(follow_symlinks=True)
                except OSError:  # a symlink loop, a vanished entry: `candidate` says which
                    is_dir, is_file = False, entry.is_symlink()
                if is_dir:
                    if self.is_ignored(rel, is_dir=True):
                        continue
                    path = folder / entry.name
                    if entry.is_symlink() and not self.inside(path):
                        yield Candidate(safe_rel(rel), path, 0, 0, OUTSIDE)
                        continue
                    stack.append((path, rel + "/"))
                elif is_file or entry.is_symlink():
                    cand = self.candidate(
                        entry.path, rel, entry
                    )  # a dangling link gives None, a loop a skip reason
                    if cand is not None:
                        yield cand


OUTSIDE = (
    "a link to somewhere outside the notes folder: not followed "
    "(links are followed only inside it; index that place as a folder of its own to include it)"
)
_EUID = os.geteuid() if hasattr(os, "geteuid") else -1


def _readable(st: os.stat_result, path: Path | str) -> bool:
    """os.access(R_OK) without its syscall in the common case (our own file with the owner's read
    bit)."""
    if st.st_uid == _EUID and st.st_mode & 0o400:
        return True
    return os.access(path, os.R_OK)


def exact_name(path: Path, listings: dict[Path, set[str]]) -> bool:
    """True when ``path`` exists with exactly this spelling (a case-only rename on a
    case-insensitive file system leaves the old spelling 'existing')."""
    if path.parent not in listings:
        try:
            listings[path.parent] = set(os.listdir(path.parent))
        except OSError:
            listings[path.parent] = set()
    return path.name in listings[path.parent]


def _load_spec(root: Path) -> pathspec.PathSpec | None:
    f = root / KBIGNORE
    if not f.is_file():
        return None
    lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except AttributeError:  # pathspec < 0.11
        return pathspec.PathSpec.from_lines("gitwildmatch", lines)
