"""Questions → focused context → LLM → `Answer` with verified citations. Also `Chat`
(multi-turn)."""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kb.answers.check import EvidenceCheck, apply_check, check_evidence
from kb.answers.llm import LLM, Delta, GenParams, OpenAICompatLLM, Usage
from kb.errors import PromptTooLongError
from kb.focus.prompt import abstention, is_abstention
from kb.focus.prompt import messages as build_messages
from kb.settings import Mode

if TYPE_CHECKING:
    from ingest.span import Span
    from kb.focus.budget import Context
    from kb.focus.context import ContextBuilder
    from kb.focus.retrieve import Filters
    from kb.focus.tokens import TokenCounter
    from kb.settings import ModeSettings, Settings

DEFAULT_CONTEXT_LEN = 32768


class ContextSource(Protocol):
    """What answering needs (`kb.KnowledgeBase` is one): settings, focused contexts and their token
    counter."""

    settings: Settings

    def context(
        self,
        question: str,
        mode: str = "auto",
        filters: Filters | None = None,
        now: dt.date | None = None,
    ) -> Context: ...

    def contexts(self) -> ContextBuilder: ...


_CITE = re.compile(r"\[(\d{1,3})\]")


@dataclass
class Citation:
    """A note the answer cites as ``[n]``, checked against the passages that were sent."""

    n: int
    span: Span
    link: str | None = None  # obsidian:// when the root is an Obsidian vault

    @property
    def path(self) -> str:
        """The cited note's absolute path."""
        return self.span.file

    @property
    def heading(self) -> str:
        return self.span.heading

    @property
    def start_line(self) -> int:
        return self.span.start_line

    @property
    def end_line(self) -> int:
        return self.span.end_line

    def as_dict(self) -> dict[str, Any]:
        span = self.span.as_dict()
        span["rel"] = span.pop("path")
        return {"n": self.n, "path": self.span.file, **span, "link": self.link}


@dataclass
class Answer:
    question: str
    text: str
    mode: str
    mode_reason: str
    context: Context
    citations: list[Citation] = field(default_factory=list)
    invalid_citations: list[int] = field(default_factory=list)  # [n] that pointed at no passage
    reasoning: str = ""
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float | None] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    # "not in your notes": said by kb (empty context, evidence check) or by the model
    abstained: bool = False
    abstain_reason: str = ""
    # the evidence check, when it ran (see kb.answers.check)
    check: dict[str, Any] = field(default_factory=dict)
    # the answer stopped before the server finished it, and why ("" = it is complete): what came is
    # in `text`, but it is not an answer to rely on
    cut: str = ""
    cut_remedy: str = ""
    # a chat follow-up is searched as a standalone query the model rewrote: that query
    rewritten: str = ""

    @property
    def by_kb(self) -> bool:
        """kb abstained itself (an empty context, or an evidence check that kept nothing): no answer
        call."""
        return self.usage.source == "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "mode": self.mode,
            "mode_reason": self.mode_reason,
            "citations": [c.as_dict() for c in self.citations],
            "invalid_citations": self.invalid_citations,
            "usage": self.usage.as_dict(),
            "timings": self.timings,
            "reasoning": self.reasoning,
            "context": self.context.as_dict(),
            "request": self.request,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "evidence_check": self.check,
            "cut": self.cut,
            "rewritten_query": self.rewritten,
        }


def default_llm(base: ContextSource) -> OpenAICompatLLM:
    return llm_from_settings(base.settings)


def llm_from_settings(s: Settings) -> OpenAICompatLLM:
    """The configured LLM server (KB_LLM_BASE_URL, KB_LLM_MODEL, timeouts)."""
    return OpenAICompatLLM(
        s.llm_base_url,
        s.llm_model,
        timeout=s.llm_timeout,
        connect_timeout=s.llm_connect_timeout,
        context_length=s.llm_context_length,
        api_key=llm_api_key(s),
        deadline=s.llm_deadline,
    )


def llm_api_key(s: Settings) -> str:
    """KB_LLM_API_KEY; unset, for a server on this machine, the token `kb llm serve --profile
    tiny|reader` keeps in KB_HOME (servers without a token ignore it)."""
    if s.llm_api_key is not None:
        return s.llm_api_key.get_secret_value()
    from urllib.parse import urlparse

    from kb.paths import LLM_TOKEN_FILE

    if urlparse(s.llm_base_url).hostname in ("127.0.0.1", "localhost", "::1"):
        try:
            token = (s.data_dir() / LLM_TOKEN_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
        if token:
            return token
    return "EMPTY"


def obsidian_link(root: str, rel: str) -> str | None:
    if not (Path(root) / ".obsidian").is_dir():
        return None
    file = rel[:-3] if rel.endswith(".md") else rel
    vault = urllib.parse.quote(Path(root).name)
    return f"obsidian://open?vault={vault}&file={urllib.parse.quote(file)}"


def cite(text: str, ctx: Context) -> tuple[list[Citation], list[int]]:
    """Citations in order of first use; each checked against the passages that were in the
    context."""
    by_n = {p.n: p for p in ctx.passages}
    out: list[Citation] = []
    bad: list[int] = []
    for n in dict.fromkeys(int(m) for m in _CITE.findall(text)):
        p = by_n.get(n)
        if p is None:
            bad.append(n)
        else:
            out.append(Citation(n, p.span, obsidian_link(p.span.root, p.span.path)))
    return out, bad


def _shrink(
    ctx: Context, counter, target: int, reason: str = "over the model's context length"
) -> None:
    """Drop the weakest passages until the notes block fits ``target`` tokens (recorded as
    dropped)."""
    from kb.focus.budget import Dropped, render_notes

    while ctx.passages and counter.count(render_notes(ctx.passages)) > target:
        weakest = min(ctx.passages, key=lambda p: p.score)
        ctx.passages.remove(weakest)
        ctx.dropped.append(Dropped(weakest.span, weakest.score, reason, weakest.tokens))
    for i, p in enumerate(ctx.passages, 1):
        p.n = i
    ctx.tokens = counter.count(render_notes(ctx.passages)) if ctx.passages else 0


def answer(
    base: ContextSource,
    question: str,
    mode: str = "auto",
    *,
    llm: LLM | None = None,
    filters: Filters | None = None,
    on_delta: Callable[[Delta], None] | None = None,
    history: list[dict[str, str]] | None = None,
    retrieval_query: str | None = None,
    now: dt.date | None = None,
) -> Answer:
    t0 = time.perf_counter()
    choice = None
    if retrieval_query and retrieval_query != question and Mode.parse(mode) is Mode.AUTO:
        # a follow-up is routed by what was typed, not by its rewrite (which is longer and reads
        # like analysis); the rewrite only retrieves
        from kb.focus.modes import choose_mode

        choice = choose_mode(question)
        mode = choice.mode
    ctx = base.context(retrieval_query or question, mode, filters, now)
    ctx.question = question
    if choice is not None:
        ctx.mode_reason = (
            f"{choice.reason} (the question as typed; searched as {retrieval_query!r})"
        )
    mset = base.settings.modes.get(ctx.mode)
    return respond(
        ctx,
        llm or default_llm(base),
        base.contexts().counter,
        mset,
        on_delta=on_delta,
        history=history,
        started=t0,
    )


def respond(
    ctx: Context,
    llm: LLM,
    counter: TokenCounter,
    mset: ModeSettings,
    *,
    on_delta: Callable[[Delta], None] | None = None,
    history: list[dict[str, str]] | None = None,
    evidence_check: bool | None = None,
    started: float | None = None,
) -> Answer:
    """Answer from a given context with a mode's generation settings. An empty context (or an
    evidence check that finds no answering passage) abstains without asking the model for an answer.
    """
    t0 = started if started is not None else time.perf_counter()
    t_retrieval = time.perf_counter() - t0
    check: EvidenceCheck | None = None

    def timings(ttft: float | None) -> dict[str, float | None]:
        out = {
            "retrieval_s": round(t_retrieval, 4),
            "ttft_s": ttft and round(ttft, 4),
            "total_s": round(time.perf_counter() - t0, 4),
        }
        if check is not None:
            out["check_s"] = round(check.seconds, 4)
        return out

    def abstain(reason: str) -> Answer:
        return Answer(
            ctx.question,
            abstention(ctx.question),
            ctx.mode,
            ctx.mode_reason,
            ctx,
            usage=Usage(source="none"),
            timings=timings(None),
            abstained=True,
            abstain_reason=reason,
            check=check.as_dict() if check else {},
        )

    if not ctx.passages:
        if ctx.empty_reason:  # "no notes dated last week": said instead of answering from others
            return abstain(f"{ctx.empty_reason}: the model was not asked")
        return abstain("nothing in your notes is relevant (empty context): the model was not asked")
    if isinstance(llm, OpenAICompatLLM):
        llm.check_model()
    limit = llm.max_model_len or DEFAULT_CONTEXT_LEN
    bare = build_messages(replace(ctx, passages=[]), history)  # the prompt around the notes

    def fit() -> tuple[list[dict[str, str]], GenParams]:
        share = int(mset.window_share * (limit - counter.chat_tokens(bare, mset.thinking)))
        if ctx.tokens > share:  # the mode's share of a small window, whatever its budget says
            _shrink(ctx, counter, share, f"over the mode's share of the model's window ({share})")
        msgs = build_messages(ctx, history)
        prompt = counter.chat_tokens(msgs, thinking=mset.thinking)
        room = limit - prompt - 32
        if room < min(mset.max_output_tokens, 512):  # make room for the answer by dropping notes
            _shrink(ctx, counter, max(0, ctx.tokens - (min(mset.max_output_tokens, 512) - room)))
            msgs = build_messages(ctx, history)
            prompt = counter.chat_tokens(msgs, thinking=mset.thinking)
            room = limit - prompt - 32
        params = GenParams(
            max_tokens=max(16, min(mset.max_output_tokens, room)),
            thinking=mset.thinking,
            temperature=mset.temperature,
            top_p=mset.top_p,
            top_k=mset.top_k,
            min_p=mset.min_p,
            presence_penalty=mset.presence_penalty,
        )
        return msgs, params

    msgs, params = fit()
    if mset.evidence_check if evidence_check is None else evidence_check:
        # after fit(): the check shows the model the notes the answer would get, so they fit the
        # server too
        check = check_evidence(llm, ctx, counter)
        apply_check(ctx, check, counter)
        if not ctx.passages:
            return abstain("the evidence check found no passage that answers the question")
        msgs, params = fit()
    try:
        done = llm.complete(msgs, params, on_delta)
    except PromptTooLongError:
        # counts disagreed with the server (another tokenizer?): halve the notes and try once more
        _shrink(ctx, counter, ctx.tokens // 2)
        msgs, params = fit()
        done = llm.complete(msgs, params, on_delta)
    if done.usage.source == "counted" or not done.usage.prompt_tokens:
        done.usage = Usage(
            counter.chat_tokens(msgs, params.thinking),
            counter.count(done.text + done.reasoning),
            counter.count(done.reasoning),
            source="counted",
        )
    elif not done.usage.reasoning_tokens and done.reasoning:
        done.usage.reasoning_tokens = counter.count(done.reasoning)
    citations, bad = cite(done.text, ctx)
    request = {
        "model": getattr(llm, "model", ""),
        "max_tokens": params.max_tokens,
        "enable_thinking": params.thinking,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "prompt_tokens_counted": counter.chat_tokens(msgs, params.thinking),
        "max_model_len": limit,
        "messages": msgs,
    }
    said = is_abstention(done.text) and not done.cut
    return Answer(
        ctx.question,
        done.text,
        ctx.mode,
        ctx.mode_reason,
        ctx,
        citations,
        bad,
        done.reasoning,
        done.usage,
        timings(done.ttft_s),
        request,
        abstained=said,
        abstain_reason="the model found no answer in the notes" if said else "",
        check=check.as_dict() if check else {},
        cut=done.cut,
        cut_remedy=done.remedy,
    )


REWRITE = (
    "Rewrite the user's last question as one standalone search query for their notes, resolving "
    "pronouns and "
    "references from the conversation. Reply with the query only, in the language of the question."
)


class Chat:
    """A conversation over your notes. History is trimmed to its own token budget; thinking text is
    never kept; follow-ups are rewritten into standalone queries (thinking off) before retrieval."""

    def __init__(
        self,
        base: ContextSource,
        llm: LLM | None = None,
        mode: str = "auto",
        history_budget: int = 2000,
        now: dt.date | None = None,
    ) -> None:
        self.base = base
        self.llm = llm or default_llm(base)
        self.mode = mode
        self.now = now  # the day questions' dates are read against (None: KB_NOW, else today)
        self.history_budget = history_budget
        self.history: list[dict[str, str]] = []

    def standalone(self, question: str) -> str:
        if not self.history:
            return question
        convo = "\n".join(f"{m['role']}: {m['content'][:500]}" for m in self.history[-6:])
        msgs = [
            {"role": "system", "content": REWRITE},
            {"role": "user", "content": f"Conversation:\n{convo}\n\nLast question: {question}"},
        ]
        done = self.llm.complete(
            msgs, GenParams(max_tokens=96, thinking=False, temperature=0.2, top_p=0.8)
        )
        query = done.text.strip().strip('"').splitlines()[0] if done.text.strip() else ""
        return query or question

    def ask(self, question: str, on_delta: Callable[[Delta], None] | None = None) -> Answer:
        query = self.standalone(question)
        ans = answer(
            self.base,
            question,
            self.mode,
            llm=self.llm,
            on_delta=on_delta,
            history=self.history,
            retrieval_query=query,
            now=self.now,
        )
        ans.rewritten = query if query != question else ""
        self.history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": ans.text},
        ]
        self._trim()
        return ans

    def _trim(self) -> None:
        counter = self.base.contexts().counter
        while (
            self.history
            and sum(counter.count(m["content"]) for m in self.history) > self.history_budget
        ):
            self.history = self.history[2:]
