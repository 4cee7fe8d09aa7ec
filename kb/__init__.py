"""kb — a private, local, RAG-backed personal knowledge assistant.

Public API (heavy dependencies load only when first used)::

    import kb
    kb.ingest(["~/notes"])
    for hit in kb.search("rotate logs", k=5):
        print(hit.path, hit.start_line, hit.score)
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from kb.errors import KbError

if TYPE_CHECKING:
    from ingest.report import SyncReport
    from kb.answer import Answer
    from kb.core import Hit, KnowledgeBase
    from kb.settings import Settings

__all__ = ["Answer", "Chat", "Context", "Filters", "Hit", "KbError", "KnowledgeBase", "Settings", "SyncReport",
           "ask", "ingest", "search"]
__version__ = "0.1.0"

logging.getLogger("kb").addHandler(logging.NullHandler())


def ingest(paths: list[str | os.PathLike[str]] | None = None, **settings: Any) -> SyncReport:
    """Sync folders into the index (default: every folder indexed before). Returns a `SyncReport`."""
    from kb.core import KnowledgeBase

    with KnowledgeBase(**settings) as base:
        return base.ingest(paths)


def search(query: str, k: int = 8, **settings: Any) -> list[Hit]:
    """The ``k`` passages most relevant to ``query``."""
    from kb.core import KnowledgeBase

    with KnowledgeBase(**settings) as base:
        return base.search(query, k=k)


def ask(question: str, mode: str = "auto", **settings: Any) -> Answer:
    """Answer ``question`` from your notes with the configured LLM (see `kb.Answer`)."""
    from kb.core import KnowledgeBase

    with KnowledgeBase(**settings) as base:
        return base.ask(question, mode)


def __getattr__(name: str) -> Any:
    if name in ("Answer", "Chat"):
        from kb import answer

        return getattr(answer, name)
    if name == "Context":
        from kb.budget import Context

        return Context
    if name == "Filters":
        from kb.retrieve import Filters

        return Filters
    if name in ("KnowledgeBase", "Hit"):
        from kb import core

        return getattr(core, name)
    if name == "Settings":
        from kb.settings import Settings

        return Settings
    if name == "SyncReport":
        from ingest.report import SyncReport

        return SyncReport
    raise AttributeError(f"module 'kb' has no attribute {name!r}")
