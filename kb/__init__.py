"""kb — a private, local, RAG-backed personal knowledge assistant.

Public API (heavy dependencies load only when first used)::

    import kb
    kb.ingest(["~/notes"])
    for hit in kb.search("rotate logs", k=5):
        print(hit.path, hit.start_line, hit.score)

Everything goes through `kb.KnowledgeBase` (`kb.knowledge`); the functions here open one for a call.
`watch` and the `service_*` functions run or manage the `kb watch` daemon.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.errors import KbError

if TYPE_CHECKING:
    import datetime as dt

    from ingest.report import SyncReport
    from kb.answers.answer import Answer
    from kb.knowledge import Hit, KnowledgeBase
    from kb.settings import Mode, Settings

__all__ = [
    "Answer",
    "Chat",
    "Context",
    "Filters",
    "Hit",
    "KbError",
    "KnowledgeBase",
    "Mode",
    "Settings",
    "SyncReport",
    "ask",
    "ingest",
    "route",
    "search",
    "watch",
]
__version__ = "0.1.0"

logging.getLogger("kb").addHandler(logging.NullHandler())


def ingest(paths: list[str | os.PathLike[str]] | None = None, **settings: Any) -> SyncReport:
    """Sync folders into the index (default: every folder indexed before). Returns a
    `SyncReport`."""
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(**settings) as base:
        return base.ingest(paths)


def search(
    query: str,
    k: int = 8,
    *,
    folder: str | None = None,
    tag: str | None = None,
    since: str | None = None,
    until: str | None = None,
    now: dt.date | None = None,
    **settings: Any,
) -> list[Hit]:
    """The ``k`` passages most relevant to ``query``, best first. ``folder``, ``tag``,
    ``since``/``until`` (YYYY-MM-DD) filter as `kb search`'s flags do and win over dates read from
    the query ("notes from last week"), which are read against ``now`` (default KB_NOW or today)."""
    from kb.focus.retrieve import Filters
    from kb.knowledge import KnowledgeBase

    filters = Filters.parse(folder, tag, since, until)
    with KnowledgeBase(**settings) as base:
        return base.search(query, k=k, filters=filters, now=now)


def ask(
    question: str,
    mode: str = "auto",
    *,
    folder: str | None = None,
    tag: str | None = None,
    since: str | None = None,
    until: str | None = None,
    now: dt.date | None = None,
    **settings: Any,
) -> Answer:
    """Answer ``question`` from your notes with the configured LLM (see `kb.Answer`); filters and
    ``now`` as for `search`."""
    from kb.focus.retrieve import Filters
    from kb.knowledge import KnowledgeBase

    filters = Filters.parse(folder, tag, since, until)
    with KnowledgeBase(**settings) as base:
        return base.ask(question, mode, filters, now=now)


def route(question: str) -> tuple[Mode, str]:
    """The task mode `auto` picks for ``question`` (code, dialog or think) and why."""
    from kb.focus.modes import choose_mode

    choice = choose_mode(question)
    return choice.mode, choice.reason


def watch(
    paths: list[str | os.PathLike[str]] | None = None, *, polling: bool = False, **settings: Any
) -> int:
    """Run `kb watch` in the foreground until SIGTERM/SIGINT: follow the folders, keep the index in
    step, serve readers. Returns the exit code."""
    from kb.daemon.worker import Daemon
    from kb.settings import load_settings

    daemon = Daemon(load_settings(**settings), paths=paths, force_polling=polling)
    return daemon.run()


def warm_search(query: str, k: int = 8, home: Path | None = None) -> list[dict[str, Any]] | None:
    """Hits (as dicts) from a running `kb watch` whose model is the configured one, with the
    standard library only (no model, no torch); None when there is no such daemon. `kb search`'s
    fast path."""
    from kb.daemon.quick import warm_search as run

    return run(query, k, home)


def service_unit(paths: list[str] | None = None) -> str:
    """The systemd user unit that runs `kb watch` (``paths``: the folders; default every one)."""
    from kb.daemon import service

    return service.systemd_unit(paths)


def service_launchd(paths: list[str] | None = None) -> str:
    """How to run `kb watch` under launchd (macOS)."""
    from kb.daemon import service

    return service.launchd_instructions(paths)


def service_install(paths: list[str] | None = None, start: bool = True) -> list[str]:
    """Install (and start) the systemd user unit; what was done, line by line."""
    from kb.daemon import service

    return service.install(paths, start=start)[1]


def service_uninstall() -> list[str]:
    from kb.daemon import service

    return service.uninstall()


def service_status() -> dict[str, Any]:
    """Is the unit installed and active, and what the daemon is doing."""
    from kb.daemon import service
    from kb.daemon.client import daemon_status
    from kb.paths import data_dir

    return {**service.status(), "daemon": daemon_status(data_dir())}


_LAZY = {  # public name → module that defines it (imported on first use: heavy deps stay lazy)
    "Answer": "kb.answers.answer",
    "Chat": "kb.answers.answer",
    "Context": "kb.knowledge",
    "Filters": "kb.knowledge",
    "KnowledgeBase": "kb.knowledge",
    "Hit": "kb.knowledge",
    "Mode": "kb.settings",
    "Settings": "kb.settings",
    "SyncReport": "kb.knowledge",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kb' has no attribute {name!r}")
