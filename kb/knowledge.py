"""`KnowledgeBase`: the one door. Every interface — the CLI, the MCP server, the `kb watch` daemon's
request handlers, notebooks — parses its input, calls a method here and renders the result.

It holds the parts by composition: an `Index` (one KB_HOME on disk: manifest, vectors, embedder,
locks, every write), the focus layer over it (search and focused contexts, `kb.focus`), answering
(`kb.answers`) and the notes as a reader sees them. It decides how to reach the index: through a
running `kb watch` daemon (warm model, one writer) when there is one, or directly.

Module-level functions here are the entry points that need no open index: evaluation runs (they
index a corpus of their own), `kb llm serve` profiles, the state of a daemon.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.report import ProgressFn, SyncEvent, SyncReport
from kb.errors import ModelMismatchError
from kb.focus.budget import Context
from kb.focus.retrieve import Filters
from kb.focus.search import Hit
from kb.focus.tokens import TokenBound
from kb.index.core import Index
from kb.index.notes import Note, Notes
from kb.index.status import Status
from kb.index.verify import VerifyReport
from kb.settings import Mode, Settings

if TYPE_CHECKING:
    from kb.answers.answer import Answer, Chat
    from kb.answers.llm import LLM, Delta
    from kb.daemon.client import DaemonClient
    from kb.focus.context import ContextBuilder
    from kb.index.embed import Embedder
    from kb.index.lock import WriterLock
    from kb.index.store import VectorStore

__all__ = [
    "Context",
    "Filters",
    "Hit",
    "KnowledgeBase",
    "Mode",
    "Note",
    "Plan",
    "Status",
    "SyncEvent",
    "SyncReport",
    "TokenBound",
    "VerifyReport",
]

DOWN = object()  # no daemon answered: read directly


@dataclass
class Plan:
    """What `kb ask` would send, without sending it: the focused context, the exact chat messages
    and their prompt tokens (Qwen3's template, thinking as the mode sets it)."""

    context: Context
    messages: list[dict[str, str]]
    prompt_tokens: int


class KnowledgeBase:
    """A personal knowledge base on disk. Use as a context manager or call `close()`.

    >>> with KnowledgeBase() as kb:          # doctest: +SKIP
    ...     kb.ingest(["~/notes"])
    ...     hits = kb.search("how do I rotate logs?")

    ``embedder``, ``store`` and ``lock`` share another index's (the daemon's reader beside its
    writer); ``use_daemon=False`` reads the index directly even when `kb watch` runs."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
        lock: WriterLock | None = None,
        use_daemon: bool = True,
        **overrides: Any,
    ):
        self.index = Index(settings, embedder=embedder, store=store, lock=lock, **overrides)
        self.use_daemon = use_daemon  # forward reads (and ingest) to a running `kb watch`
        self._focus: ContextBuilder | None = None

    @property
    def settings(self) -> Settings:
        return self.index.settings

    @property
    def home(self) -> Path:
        return self.index.home

    @property
    def model_id(self) -> str:
        return self.index.model_id

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
                f"process is configured for {self.model_id}",
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

    # ---------------------------------------------------------------- writing
    def ingest(
        self,
        paths: list[str | os.PathLike[str]] | None = None,
        progress: ProgressFn | None = None,
        wait: float = 600.0,
    ) -> SyncReport:
        """Sync the given folders (default: every known root) into the index; a running `kb watch`
        does it and streams its progress."""
        notify = progress or (lambda e: None)
        client = self.daemon()
        if client is not None:
            from kb.daemon.client import DaemonUnavailable

            roots = self.index.roots_for(paths)
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
                return SyncReport.from_dict(result)
            except DaemonUnavailable:
                notify(
                    SyncEvent("notice", message="the daemon stopped answering; syncing directly")
                )
        return self.index.ingest(paths, progress, wait)

    def forget(self, path: str | os.PathLike[str]) -> int:
        """Remove a root, a folder or a file from the index (files on disk are untouched); a folder
        inside a root stays out of later syncs until `kb ingest` names it again."""
        client = self.daemon()
        if client is not None:
            target = Path(path).expanduser().resolve()
            return int(client.request("forget", {"path": str(target)}, timeout=None))
        return self.index.forget(path)

    # ---------------------------------------------------------------- reading
    def check_readable(self) -> None:
        """`ModelMismatchError` (with the setting that reads this index) when the configured model
        is not the index's."""
        self.index.check_readable()

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: Filters | None = None,
        now: dt.date | None = None,
    ) -> list[Hit]:
        """Hybrid search (dense + BM25): the ``k`` best chunks for the query, best first by their
        ``score`` — the calibrated 0..1 relevance the budgeter keeps passages by."""
        self.check_readable()
        k = k or self.settings.retrieval.k
        now = now or self.settings.now
        args = {
            "query": query,
            "k": k,
            "filters": filters.as_dict() if filters else None,
            "now": now.isoformat() if now else None,
        }
        hits = self._via_daemon("search", args)
        if hits is not DOWN:
            return [Hit.from_dict(h) for h in hits]
        from kb.focus.search import search as hybrid_search

        with self.index.reading():
            return hybrid_search(self.contexts(), query, k, filters, now=now)

    def context(
        self,
        question: str,
        mode: str | Mode = Mode.AUTO,
        filters: Filters | None = None,
        now: dt.date | None = None,
    ) -> Context:
        """The focused context for a question: the mode (and why), kept passages and dropped
        candidates with their reasons, and the days the question asked about (read against
        ``now``, default KB_NOW or today)."""
        mode = Mode.parse(mode)
        now = now or self.settings.now
        self.check_readable()
        args = {
            "question": question,
            "mode": mode.value,
            "filters": filters.as_dict() if filters else None,
            "now": now.isoformat() if now else None,
        }
        d = self._via_daemon("context", args)
        if d is not DOWN:
            return Context.from_dict(d)
        with self.index.reading():
            return self.contexts().build(question, mode, filters, now=now)

    def plan(
        self,
        question: str,
        mode: str | Mode = Mode.AUTO,
        filters: Filters | None = None,
        now: dt.date | None = None,
    ) -> Plan:
        """What `ask` would send (a dry run): the context, the exact messages, their tokens."""
        from kb.focus.prompt import messages

        ctx = self.context(question, mode, filters, now)
        msgs = messages(ctx)
        thinking = self.settings.modes.get(ctx.mode).thinking
        return Plan(ctx, msgs, self.contexts().counter.chat_tokens(msgs, thinking=thinking))

    def ask(
        self,
        question: str,
        mode: str | Mode = Mode.AUTO,
        filters: Filters | None = None,
        *,
        on_delta: Callable[[Delta], None] | None = None,
        llm: LLM | None = None,
        now: dt.date | None = None,
    ) -> Answer:
        """Answer from the notes with the configured LLM, streaming through ``on_delta``: text,
        verified citations, the context, usage and timings."""
        from kb.answers.answer import answer

        return answer(
            self, question, Mode.parse(mode), llm=llm, filters=filters, on_delta=on_delta, now=now
        )

    def chat(
        self, mode: str | Mode = Mode.AUTO, llm: LLM | None = None, now: dt.date | None = None
    ) -> Chat:
        """A conversation: follow-ups are rewritten into standalone queries for retrieval."""
        from kb.answers.answer import Chat

        return Chat(self, llm=llm, mode=Mode.parse(mode), now=now)

    def route(self, question: str) -> tuple[Mode, str]:
        """The mode `auto` picks for ``question``, and why."""
        from kb.focus.modes import choose_mode

        choice = choose_mode(question)
        return choice.mode, choice.reason

    def contexts(self) -> ContextBuilder:
        """The focus layer over this index (one warm retriever, reused)."""
        if self._focus is None:
            from kb.focus.context import ContextBuilder

            self._focus = ContextBuilder(self.index)
        return self._focus

    def count_tokens(self, text: str) -> int:
        """Qwen3 tokens in ``text``, as contexts are counted."""
        return self.contexts().counter.count(text)

    # ---------------------------------------------------------------- the notes
    def notes(self) -> list[Note]:
        """Every indexed note, under its folder's short name."""
        self.index.follow_generation()
        return Notes(self.index.manifest).listing()

    def folders(self) -> dict[str, str]:
        """Root path → the folder's short name (``notes``; ``notes~2`` for a second ``notes``)."""
        self.index.follow_generation()
        return Notes(self.index.manifest).folder_of()

    def read_note(self, folder: str, rel: str) -> str:
        """The text of an indexed note (by its folder's name and path), nothing outside a folder."""
        self.index.follow_generation()
        return Notes(self.index.manifest).read(folder, rel)

    # ---------------------------------------------------------------- state
    def status(self) -> Status:
        """Folders, files by status, chunks, model, store size, problems, and the daemon."""
        from kb.daemon.client import daemon_status

        self.index.follow_generation()
        info = self.index.status()
        names = Notes(self.index.manifest).folder_of()
        for r in info.roots:
            r.name = names.get(r.root, "")
        info.daemon = daemon_status(self.home)
        return info

    def verify(self, notify: Callable[[str], None] | None = None) -> VerifyReport:
        """Compare manifest, vector store and disk (through the daemon, once it is idle, when one
        runs)."""
        st = self._via_daemon("status", timeout=10)
        if st is not DOWN:
            if notify is not None and (st.get("busy") or st.get("queue")):
                notify(
                    f"`kb watch` is busy ({st.get('busy') or 'changes queued'}, queue "
                    f"{st.get('queue')}): verifying once it has written them"
                )
            full = self._via_daemon("verify", timeout=None)
            if full is not DOWN:
                return VerifyReport(**full)
        return self.index.verify(notify)


# -------------------------------------------------------------------- entry points without an index
def daemon_state(home: Path | None = None) -> dict[str, Any]:
    """What the `kb watch` daemon of ``home`` (default: KB_HOME) is doing, or why none runs."""
    from kb.daemon.client import daemon_status
    from kb.paths import data_dir

    return daemon_status(home or data_dir())


def load_questions(path: Path) -> list[dict[str, Any]]:
    """A question set (JSON lines: question, evidence, optional answer and category)."""
    from kb.eval.retrieval import load_questions as load

    return load(path)


def sample_questions(
    questions: list[dict[str, Any]], n: int | None, seed: int = 0
) -> list[dict[str, Any]]:
    """A seeded random sample of ``n`` questions in their file order (all of them when ``n`` is
    None): the same sample for every strategy and every run."""
    from kb.eval.retrieval import sample

    return sample(questions, n, seed)


def evaluate(questions: list[dict[str, Any]], corpus: Path, modes: list[str], **kw: Any) -> dict:
    """Evidence recall and context tokens per mode (`kb eval`); see `kb.eval.retrieval`."""
    from kb.eval.retrieval import evaluate as run

    return run(questions, corpus, modes, **kw)


def evaluate_answers(
    questions: list[dict[str, Any]],
    corpus: Path,
    strategies: list[str],
    results_dir: Path,
    **kw: Any,
) -> dict:
    """What the model answers with each context strategy (`kb eval --answers`); answers are kept in
    ``results_dir`` (or ``results=FILE``) by request, so a run resumes. See `kb.eval.answers`."""
    from kb.eval.answers import evaluate_answers as run

    return run(questions, corpus, strategies, results_dir, **kw)


def serve_profiles() -> dict[str, Any]:
    """`kb llm serve` profiles by name."""
    from kb.serve.profiles import PROFILES

    return dict(PROFILES)


def serve_command(profile: str, **options: Any) -> tuple[list[str], list[str]]:
    """(argv, warnings) that serve ``profile``; `check_serve` says whether it can run here."""
    from kb.serve.profiles import build_command

    return build_command(profile, **options)


def check_serve(profile: str) -> None:
    """`DependencyMissingError` (with the install line) when ``profile`` cannot run here."""
    from kb.serve.profiles import check_runnable

    check_runnable(profile)
