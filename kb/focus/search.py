"""`Hit` and hybrid search over an index: the passages most relevant to a query, best first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.span import Span, span_fields

if TYPE_CHECKING:
    import numpy as np

    from kb.focus.context import ContextBuilder
    from kb.focus.retrieve import Filters


@dataclass
class Hit:
    """One search result: where it is, its text, and how relevant it is."""

    id: str
    span: Span
    text: str
    score: float  # the calibrated relevance 0..1 results are ordered by (what `kb search` shows)
    fused: float = 0.0  # reciprocal-rank fusion of the dense and BM25 ranks that gathered it

    @property
    def path(self) -> str:
        """The note's absolute path."""
        return self.span.file

    @property
    def rel(self) -> str:
        """The note's path inside its notes folder."""
        return self.span.path

    @property
    def root(self) -> str:
        return self.span.root

    @property
    def heading(self) -> str:
        return self.span.heading

    @property
    def start_line(self) -> int:
        return self.span.start_line

    @property
    def end_line(self) -> int:
        return self.span.end_line

    @property
    def page(self) -> int | None:
        return self.span.page

    @property
    def date(self) -> str | None:
        return self.span.date

    @property
    def relevance(self) -> float:
        """The same as ``score`` (the name `kb search --json` and MCP use)."""
        return self.score

    def as_dict(self) -> dict[str, Any]:
        """Flat, as `kb search --json`, MCP and the daemon send it: ``path`` absolute, ``rel``
        inside its root."""
        span = self.span.as_dict()
        span["rel"] = span.pop("path")
        return {
            "id": self.id,
            "path": self.span.file,
            **span,
            "score": self.score,
            "relevance": self.score,
            "fused": self.fused,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hit:
        span, _ = span_fields({**d, "path": d["rel"]})
        return cls(d["id"], span, d["text"], d["score"], d.get("fused", 0.0))


def search(
    builder: ContextBuilder,
    query: str,
    k: int,
    filters: Filters | None = None,
    qvec: np.ndarray | None = None,
    now: dt.date | None = None,
) -> list[Hit]:
    """Hybrid search (dense + BM25) through ``builder``'s retriever, best first by the calibrated
    ``relevance`` the budgeter keeps passages by — so `kb search` shows what `kb ask` would send
    first. ``fused`` is the reciprocal-rank fusion of the dense and BM25 ranks that gathered the
    candidates, kept for inspection: it gives a BM25 match on common words the same weight as a
    match in meaning, and put an English licence text above the Russian note that answers an English
    question (top-1 by fused order vs by relevance, `python benchmarks/search_order.py`: en→ru 0.50
    → 0.77, xquad-ru 0.91 → 0.95, locomo 0.57 → 0.65). Ties keep the fused order. ``qvec``: the
    query's vector when the caller has it already. Dates in the query ("notes from last week") keep
    to those days, as `kb ask` does (against ``now``). The caller holds read access to the index."""
    if builder.index.manifest.chunk_count() == 0:
        return []
    filters, _ = builder.dated(query, filters, now)
    r = builder.retriever().retrieve(
        query, k=max(k, builder.index.settings.retrieval.candidates), filters=filters, qvec=qvec
    )
    ranked = sorted(
        ((round(r.relevance(c), 3), c) for c in r.candidates), key=lambda t: t[0], reverse=True
    )
    return [Hit(c.id, c.span, c.text, rel, round(c.fused, 5)) for rel, c in ranked[:k]]
