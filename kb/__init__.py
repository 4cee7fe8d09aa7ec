"""kb — a private, local, RAG-backed personal knowledge assistant.

Public API (heavy dependencies load only when first used)::

    import kb
    kb.ingest(["~/notes"])
    for hit in kb.search("rotate logs", k=5):
        print(hit.path, hit.start_line, hit.relevance)
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from kb.errors import KbError

if TYPE_CHECKING:
    from ingest.report import SyncReport
    from kb.answers.answer import Answer
    from kb.knowledge import Hit, KnowledgeBase
    from kb.settings import Settings

__all__ = [
    "Answer",
    "Chat",
    "Context",
    "Filters",
    "Hit",
    "KbError",
    "KnowledgeBase",
    "Settings",
    "SyncReport",
    "ask",
    "ingest",
    "route",
    "search",
]
__version__ = "0.1.0"

logging.getLogger("kb").addHandler(logging.NullHandler())


def ingest(paths: list[str | os.PathLike[str]] | None = None, **settings: Any) -> SyncReport:
    """Sync folders into the index (default: every folder indexed before). Returns a `SyncReport`."""
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(**settings) as base:
        return base.ingest(paths)


def search(query: str, k: int = 8, **settings: Any) -> list[Hit]:
    """The ``k`` passages most relevant to ``query``."""
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(**settings) as base:
        return base.search(query, k=k)


def ask(question: str, mode: str = "auto", **settings: Any) -> Answer:
    """Answer ``question`` from your notes with the configured LLM (see `kb.Answer`)."""
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(**settings) as base:
        return base.ask(question, mode)


def route(question: str) -> tuple[str, str]:
    """The task mode `auto` picks for ``question`` (code, dialog or think) and why."""
    from kb.focus.modes import route as _route

    return _route(question)


# public name → module that defines it (imported on first use: heavy dependencies stay lazy)
_LAZY = {
    "Answer": "kb.answers.answer",
    "Chat": "kb.answers.answer",
    "Context": "kb.focus.budget",
    "Filters": "kb.focus.retrieve",
    "KnowledgeBase": "kb.knowledge",
    "Hit": "kb.focus.search",
    "Settings": "kb.settings",
    "SyncReport": "ingest.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kb' has no attribute {name!r}")
