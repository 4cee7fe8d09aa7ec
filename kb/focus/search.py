"""`Hit` and hybrid search over an index: the passages most relevant to a query, best first."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

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
    score: float  # reciprocal-rank fusion of the dense and BM25 ranks (not the order: see `search`)
    text: str
    page: int | None = None
    relevance: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def search(
    builder: ContextBuilder,
    query: str,
    k: int,
    filters: Filters | None = None,
    qvec: np.ndarray | None = None,
) -> list[Hit]:
    """Hybrid search (dense + BM25) through ``builder``'s retriever, best first by the calibrated
    ``relevance`` the budgeter keeps passages by — so `kb search` shows what `kb ask` would send
    first. ``score`` is the reciprocal-rank fusion of the dense and BM25 ranks that gathered the
    candidates, kept for inspection: it gives a BM25 match on common words the same weight as a
    match in meaning, and put an English licence text above the Russian note that answers an English
    question (top-1 by fused order vs by relevance, `python benchmarks/search_order.py`: en→ru 0.50
    → 0.77, xquad-ru 0.91 → 0.95, locomo 0.57 → 0.65). Ties keep the fused order. ``qvec``: the
    query's vector when the caller has it already. The caller holds read access to the index."""
    if builder.index.manifest.chunk_count() == 0:
        return []
    r = builder.retriever().retrieve(
        query, k=max(k, builder.index.settings.retrieval.candidates), filters=filters, qvec=qvec
    )
    ranked = sorted(
        ((round(r.relevance(c), 3), c) for c in r.candidates), key=lambda t: t[0], reverse=True
    )
    return [
        Hit(
            c.id,
            str(Path(c.root) / c.path),
            c.root,
            c.path,
            c.heading,
            c.start_line,
            c.end_line,
            round(c.fused, 5),
            c.text,
            c.page,
            rel,
        )
        for rel, c in ranked[:k]
    ]
