"""What a sync reports: progress events for renderers and the final `SyncReport`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncEvent:
    """Progress for a renderer: ``stage`` is scan | embed | write | notice | done."""

    stage: str
    files_done: int = 0
    files_total: int = 0
    chunks: int = 0
    embedded: int = 0
    message: str = ""


ProgressFn = Callable[[SyncEvent], None]


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    embedded: int = 0
    reused: int = 0
    chunks: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False  # stopped early (shutdown); the next sync finishes the job

    def merge(self, other: SyncReport) -> None:
        for name in (
            "added",
            "updated",
            "unchanged",
            "moved",
            "deleted",
            "skipped",
            "failed",
            "embedded",
            "reused",
            "chunks",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems += other.problems
        self.notices += other.notices
        self.seconds += other.seconds
        self.interrupted = self.interrupted or other.interrupted

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyncReport:
        """Inverse of `as_dict` (a daemon's sync report travels as JSON)."""
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        keys = (
            "added",
            "updated",
            "unchanged",
            "moved",
            "deleted",
            "skipped",
            "failed",
            "embedded",
        )
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out.update(
            reused=self.reused,
            chunks=self.chunks,
            seconds=round(self.seconds, 3),
            problems=self.problems,
            notices=self.notices,
            interrupted=self.interrupted,
        )
        return out
