"""`Hit` and hybrid search over an index: the passages most relevant to a query, best first."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kb.focus.context import ContextBuilder
    from kb.focus.retrieve import Filters


@dataclass
class Hit:
    """One search result."""

    id: str
    path: str  # absolute path of the note
    root: str
    rel: str
    heading: str
    start_line: int
    end_line: int
    score: float
    text: str
    page: int | None = None
    relevance: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def search(builder: ContextBuilder, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
    """Hybrid search (dense + BM25, reciprocal rank fusion) through ``builder``'s retriever. ``score`` is the
    fused score (ordering); ``relevance`` the calibrated 0..1 evidence the budgeter uses. The caller holds
    read access to the index."""
    if builder.index.manifest.chunk_count() == 0:
        return []
    r = builder.retriever().retrieve(query, k=max(k, builder.index.settings.retrieval.candidates), filters=filters)
    return [Hit(c.id, str(Path(c.root) / c.path), c.root, c.path, c.heading, c.start_line, c.end_line,
                round(c.fused, 5), c.text, c.page, round(r.relevance(c), 3))
            for c in r.candidates[:k]]
