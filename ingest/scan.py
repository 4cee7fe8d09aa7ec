"""Find the note files under a root: ignore rules, symlink safety, size limits."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

KBIGNORE = ".kbignore"


@dataclass(frozen=True)
class Candidate:
    """A file under a root that should be read (or skipped with a reason)."""

    rel: str  # POSIX path relative to the root
    path: Path  # absolute path as found (may be a symlink inside the root)
    size: int
    mtime_ns: int
    skip_reason: str | None = None


class Scanner:
    """Walks one root. Hidden folders, configured folder names and `.kbignore` patterns are skipped;
    symlinks are followed only when they resolve inside the root, and each real folder is visited once."""

    def __init__(
        self, root: Path, extensions: list[str], ignore_dirs: list[str], max_bytes: int,
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
        if any(rel == ex or rel.startswith(ex + "/") for ex in self.excludes):
            return True
        parts = rel.split("/")
        dir_parts = parts if is_dir else parts[:-1]
        for part in dir_parts:
            if part.startswith(".") or part in self.ignore_dirs:
                return True
        name = parts[-1]
        if not is_dir and (name.startswith(".") or Path(name).suffix.lower() not in self.extensions):
            return True
        return self.spec is not None and self.spec.match_file(rel + ("/" if is_dir else ""))

    def inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root)
            return True
        except (ValueError, OSError):
            return False

    def candidate(self, path: Path, rel: str) -> Candidate | None:
        """Stat one file; None when it vanished or should be ignored."""
        if self.is_ignored(rel):
            return None
        if path.is_symlink() and not self.inside(path):
            return None
        try:
            st = path.stat()
        except OSError as exc:
            if not path.exists():
                return None
            return Candidate(rel, path, 0, 0, f"unreadable: {exc.strerror or exc}")
        if not os.access(path, os.R_OK):
            return Candidate(rel, path, st.st_size, st.st_mtime_ns, "unreadable: permission denied")
        if st.st_size > self.max_bytes:
            mb = self.max_bytes / 2**20
            return Candidate(
                rel, path, st.st_size, st.st_mtime_ns, f"too large: {st.st_size / 2**20:.1f} MiB > {mb:g} MiB"
            )
        return Candidate(rel, path, st.st_size, st.st_mtime_ns)

    def walk(self) -> Iterator[Candidate]:
        seen: set[tuple[int, int]] = set()
        stack = [self.root]
        while stack:
            folder = stack.pop()
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
                path = Path(entry.path)
                rel = path.relative_to(self.root).as_posix()
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                except OSError:
                    continue
                if is_dir:
                    if self.is_ignored(rel, is_dir=True):
                        continue
                    if entry.is_symlink() and not self.inside(path):
                        continue
                    stack.append(path)
                elif entry.is_file(follow_symlinks=True):
                    cand = self.candidate(path, rel)
                    if cand is not None:
                        yield cand


def exact_name(path: Path, listings: dict[Path, set[str]]) -> bool:
    """True when ``path`` exists with exactly this spelling (a case-only rename on a case-insensitive
    file system leaves the old spelling 'existing')."""
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
