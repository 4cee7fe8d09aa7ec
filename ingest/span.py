"""`Span`: where a passage lives — the one record of a location that every stage carries, from the
chunk row in the manifest through retrieval candidates, context passages, dropped candidates, search
hits and citations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

#: the source of a date read from the file's modification time: shown, filtered on, never sent to
#: the model as the note's date (see `ingest.dates`)
MODIFIED = "modified"


@dataclass(frozen=True)
class Span:
    root: str  # the notes folder (absolute)
    path: str  # the note inside it (relative, "/"-separated)
    heading: str  # heading path: "Title › Section › Subsection"
    start_line: int  # lines in the file on disk (1-based, inclusive; frontmatter counted)
    end_line: int
    page: int | None = None  # PDF page
    date: str | None = None  # ISO day the passage is dated by
    # where that date came from (`ingest.dates`), MODIFIED: the mtime
    date_source: str | None = None

    @property
    def file(self) -> str:
        """The note's absolute path."""
        return str(Path(self.root) / self.path)

    @property
    def intrinsic_date(self) -> str | None:
        """The date the note itself gives (frontmatter, file name, heading) — not its file's
        mtime."""
        return self.date if self.date_source != MODIFIED else None

    def location(self) -> str:
        """``path › heading (lines a-b, page p)``: how a passage is named to people and models."""
        page = f", page {self.page}" if self.page else ""
        return f"{self.path} › {self.heading} (lines {self.start_line}-{self.end_line}{page})"

    def through(self, last: Span) -> Span:
        """This span extended to the end of ``last`` (a later chunk of the same note)."""
        return replace(self, end_line=last.end_line)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def span_fields(d: dict[str, Any]) -> tuple[Span, dict[str, Any]]:
    """A flat dict (a span's fields beside others, as records travel in JSON) → (the span, the
    rest)."""
    names = Span.__dataclass_fields__
    span = Span(**{k: d[k] for k in names if k in d})
    return span, {k: v for k, v in d.items() if k not in names}
