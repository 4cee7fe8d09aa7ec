"""The indexed notes as a reader sees them: each under a short name for its notes folder, and read
back only when the manifest has it as indexed and it lies inside its folder (links out of a folder
and ignored files are never read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ingest.manifest import INDEXED, Manifest
from ingest.scan import disk_rel, safe_rel
from kb.errors import KbError


@dataclass(frozen=True)
class Note:
    """An indexed note: its folder's name (``notes``, ``notes~2``), its path inside the folder, and
    what the manifest knows of it."""

    folder: str
    rel: str
    root: str
    title: str
    kind: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    date: str | None = None


class NoteNotFound(KbError):
    """A note that is not an indexed note inside its folder."""


class Notes:
    """Folder names and note listing over one manifest."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    def folders(self) -> dict[str, str]:
        """Folder name → root path. Names are the folders' base names; two roots with one base name
        get ``~2``, ``~3`` in the order of their paths."""
        names: dict[str, str] = {}
        for root, _last in sorted(self.manifest.roots()):
            name = Path(root).name or "root"
            n, candidate = 1, name
            while candidate in names:
                n += 1
                candidate = f"{name}~{n}"
            names[candidate] = root
        return names

    def folder_of(self) -> dict[str, str]:
        """Root path → its folder name."""
        return {root: name for name, root in self.folders().items()}

    def listing(self) -> list[Note]:
        names = self.folder_of()
        return [
            Note(names[f.root], f.path, f.root, f.title or f.path, f.kind, tuple(f.tags), f.date)
            for f in self.manifest.files().values()
            if f.status == INDEXED and f.root in names
        ]

    def read(self, folder: str, rel: str) -> str:
        """The note's text, only when it is an indexed file inside its folder (symlinks resolved).
        Raises `NoteNotFound` otherwise, and a `KbError` naming the cause when it cannot be read."""
        from ingest.load import LoadError, load

        root = self.folders().get(folder)
        refuse = NoteNotFound(
            f"{folder}/{rel} is not an indexed note", "list the notes, or search for it"
        )
        if root is None:
            raise refuse
        root_path = Path(root).resolve()
        on_disk = root_path / rel
        if not on_disk.exists() and not on_disk.is_symlink():
            on_disk = root_path / disk_rel(rel)  # a name that is not valid UTF-8, stored escaped
        try:
            target = on_disk.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # gone, a symlink loop, no permission
            if isinstance(exc, FileNotFoundError):
                raise refuse from None
            raise KbError(
                f"{folder}/{rel} cannot be opened: {_why(exc)}",
                "fix the file or link on disk; `kb status` lists files kb could not read",
            ) from None
        if not target.is_relative_to(root_path) or not target.is_file():
            raise refuse
        row = self.manifest.file(root, safe_rel(target.relative_to(root_path).as_posix()))
        if row is None or row.status != INDEXED:
            raise refuse
        try:
            return load(target).text
        except LoadError as exc:
            raise KbError(f"{folder}/{rel} cannot be read: {exc}", "see `kb status`") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40:  # ELOOP
        return "a symbolic link loop"
    return getattr(exc, "strerror", None) or type(exc).__name__
