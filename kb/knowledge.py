"""`KnowledgeBase`: the library's entry point. It composes the layers — the index (`kb.index`),
focus (`kb.focus`: search and focused contexts) and answers (`kb.answers`) — and decides how to
reach the index: through a running `kb watch` daemon (warm model, one writer) when there is one, or
directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.report import ProgressFn, SyncEvent, SyncReport
from kb.errors import ModelMismatchError
from kb.focus.search import Hit
from kb.focus.search import search as hybrid_search
from kb.index.core import Index
from kb.index.embed import Embedder
from kb.index.verify import VerifyReport
from kb.settings import Settings

if TYPE_CHECKING:
    from kb.answers.answer import Answer
    from kb.daemon.client import DaemonClient
    from kb.focus.budget import Context
    from kb.focus.context import ContextBuilder
    from kb.focus.retrieve import Filters

__all__ = ["Hit", "KnowledgeBase"]

DOWN = object()  # no daemon answered: read directly


def _filters_dict(filters: Filters | None) -> dict[str, Any] | None:
    return asdict(filters) if filters else None


class KnowledgeBase(Index):
    """A personal knowledge base on disk. Use as a context manager or call `close()`.

    >>> with KnowledgeBase() as kb:          # doctest: +SKIP
    ...     kb.ingest(["~/notes"])
    ...     hits = kb.search("how do I rotate logs?")
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        use_daemon: bool = True,
        **overrides: Any,
    ):
        super().__init__(settings, embedder=embedder, **overrides)
        self.use_daemon = use_daemon  # forward reads (and ingest) to a running `kb watch`
        self._contexts: ContextBuilder | None = None

    # ---------------------------------------------------------------- the daemon
    def daemon(self) -> DaemonClient | None:
        """A client for the `kb watch` daemon serving this KB_HOME with the same model, or None."""
        if not self.use_daemon:
            return None
        from kb.daemon.client import connect
        from kb.index.embed import setting_value

        client = connect(self.home)
        if client is None:
            return None
        theirs = client.state.get("model_id")
        if theirs != self.model_id:
            value = client.state.get("embed_setting") or setting_value(
                client.state.get("embed_model") or theirs
            )
            raise ModelMismatchError(
                f"`kb watch` (pid {client.state.get('pid')}) indexes with {theirs}, but this "
                "process is configured "
                f"for {self.model_id}",
                f"set KB_EMBED_MODEL={value} here, or stop `kb watch` first",
            )
        return client

    def _via_daemon(
        self, op: str, args: dict[str, Any] | None = None, timeout: float | None = 120.0
    ) -> Any:
        """The daemon's answer to a request, or ``DOWN`` when no daemon runs (or it stopped
        answering)."""
        from kb.daemon.client import DaemonUnavailable

        client = self.daemon()
        if client is None:
            return DOWN
        try:
            return client.request(op, args, timeout=timeout)
        except DaemonUnavailable:
            return DOWN

    # ---------------------------------------------------------------- writing (handed to the daemon
    # when up)
    def ingest(
        self,
        paths: list[str | os.PathLike[str]] | None = None,
        progress: ProgressFn | None = None,
        wait: float = 600.0,
    ) -> SyncReport:
        """Sync the given folders (default: every known root) into the index."""
        notify = progress or (lambda e: None)
        client = self.daemon()
        if client is not None:
            from kb.daemon.client import DaemonUnavailable

            roots = self._roots_for(paths)
            notify(
                SyncEvent(
                    "notice",
                    message=f"`kb watch` (pid {client.state['pid']}) is running: it does the sync",
                )
            )
            try:
                result = client.request(
                    "ingest",
                    {"paths": [str(r) for r in roots]},
                    timeout=None,
                    on_event=lambda e: notify(SyncEvent(**e)),
                )
                return SyncReport(
                    **{k: v for k, v in result.items() if k in SyncReport.__dataclass_fields__}
                )
            except DaemonUnavailable:
                notify(
                    SyncEvent("notice", message="the daemon stopped answering; syncing directly")
                )
        return super().ingest(paths, progress, wait)

    def forget(self, path: str | os.PathLike[str]) -> int:
        """Remove a root, a folder or a file from the index (files on disk are untouched)."""
        client = self.daemon()
        if client is not None:
            target = Path(path).expanduser().resolve()
            return int(client.request("forget", {"path": str(target)}, timeout=None))
        return super().forget(path)

    # ---------------------------------------------------------------- reading
    def search(self, query: str, k: int | None = None, filters: Filters | None = None) -> list[Hit]:
        """Hybrid search (dense + BM25): the ``k`` best chunks for the query, best first by
        ``relevance`` (the calibrated 0..1 evidence the budgeter keeps passages by); ``score`` is
        the rank-fusion score."""
        self.check_readable()
        k = k or self.settings.retrieval.k
        hits = self._via_daemon(
            "search", {"query": query, "k": k, "filters": _filters_dict(filters)}
        )
        if hits is not DOWN:
            return [Hit.from_dict(h) for h in hits]
        with self.reading():
            return hybrid_search(self.contexts(), query, k, filters)

    def context(
        self, question: str, mode: str = "auto", filters: Filters | None = None, **kw: Any
    ) -> Context:
        """The focused context for a question: mode (and why), kept passages and dropped
        candidates."""
        self.check_readable()
        if not kw:
            d = self._via_daemon(
                "context", {"question": question, "mode": mode, "filters": _filters_dict(filters)}
            )
            if d is not DOWN:
                from kb.focus.budget import Context

                return Context.from_dict(d)
        with self.reading():
            return self.contexts().build(question, mode, filters, **kw)

    def ask(
        self, question: str, mode: str = "auto", filters: Filters | None = None, **kw: Any
    ) -> Answer:
        """Answer from the notes with the configured LLM: text, verified citations, context, usage,
        timings."""
        from kb.answers.answer import answer

        return answer(self, question, mode, filters=filters, **kw)

    def contexts(self) -> ContextBuilder:
        """The focus layer over this index (one warm retriever, reused)."""
        if self._contexts is None:
            from kb.focus.context import ContextBuilder

            self._contexts = ContextBuilder(self)
        return self._contexts

    def _on_reopen(self) -> None:
        self._contexts = None  # its retriever holds the old store

    def verify(self, notify: Callable[[str], None] | None = None) -> VerifyReport:
        """Compare manifest, vector store and disk (through the daemon, once it is idle, when one
        runs)."""
        st = self._via_daemon("status", timeout=10)
        if st is not DOWN:
            if notify is not None and (st.get("busy") or st.get("queue")):
                notify(
                    f"`kb watch` is busy ({st.get('busy') or 'changes queued'}, queue "
                    f"{st.get('queue')}): "
                    "verifying once it has written them"
                )
            full = self._via_daemon("verify", timeout=None)
            if full is not DOWN:
                return VerifyReport(**full)
        return super().verify(notify)
