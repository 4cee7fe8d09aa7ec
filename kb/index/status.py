"""`Status`: what `kb status` (and MCP's ``status``) shows about one index, as a typed record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RootStatus:
    root: str
    last_sync: float | None
    files: dict[str, int]  # by status: indexed, skipped, failed
    exists: bool
    excluded: list[str] = field(default_factory=list)  # folders and files `kb forget` keeps out
    name: str = ""  # the folder's short name (``notes``, ``notes~2``): kb:// uris use it


@dataclass
class Problem:
    path: str
    status: str  # skipped | failed | indexed (with a warning)
    reason: str | None


@dataclass
class Status:
    home: str
    model: str  # the model the index was built with
    configured_model: str  # the model the settings select (a switch is pending when they differ)
    roots: list[RootStatus]
    files: dict[str, int]
    chunks: int
    store_bytes: int
    vector_store: str  # KB_HOME/chroma, or the Chroma server's URL
    embed_url: str | None
    last_sync: float | None
    interrupted_writes: int  # files of a write that was cut short (the next sync repairs them)
    warnings: list[dict[str, str]] = field(default_factory=list)  # {message, remedy}
    problems: list[Problem] = field(default_factory=list)
    daemon: dict[str, Any] = field(default_factory=dict)  # `kb watch`: up/down and what it does

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
