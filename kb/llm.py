"""LLM clients: a small base class (one abstract method) and an OpenAI-compatible implementation.

`OpenAICompatLLM` talks to vLLM (and any OpenAI-compatible server: llama.cpp's, Ollama's — extras they
don't know are ignored): discovers `max_model_len` from `/v1/models`, always sets `max_tokens`, switches
Qwen3 thinking per request with `chat_template_kwargs`, reads reasoning from `reasoning` or
`reasoning_content`, strips stray `<think>…</think>` from the answer, streams, records usage, and retries
with backoff on connection errors only.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kb.errors import LLMError, LLMTimeoutError, LLMUnavailableError, ModelNotServedError, PromptTooLongError

log = logging.getLogger(__name__)


@dataclass
class GenParams:
    max_tokens: int
    thinking: bool = False
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    min_p: float = 0.0
    presence_penalty: float = 0.0


@dataclass
class Delta:
    """One streamed piece: answer text or reasoning text."""

    text: str = ""
    reasoning: str = ""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    source: str = "server"  # server | counted

    def as_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "reasoning_tokens": self.reasoning_tokens, "source": self.source}


@dataclass
class Completion:
    text: str = ""
    reasoning: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    ttft_s: float | None = None


class LLM(ABC):
    """Chat completion backend. Subclasses implement `stream`; `complete` collects it."""

    model: str = "llm"
    max_model_len: int | None = None

    @abstractmethod
    def stream(self, messages: list[dict[str, str]], params: GenParams) -> Iterator[Delta | Usage]:
        """Yield answer/reasoning deltas, then (optionally) one `Usage`."""

    def complete(self, messages: list[dict[str, str]], params: GenParams,
                 on_delta: Callable[[Delta], None] | None = None) -> Completion:
        out = Completion()
        t0 = time.perf_counter()
        splitter = ThinkSplitter()
        for item in self.stream(messages, params):
            if isinstance(item, Usage):
                out.usage = item
                continue
            if out.ttft_s is None:
                out.ttft_s = time.perf_counter() - t0
            for d in splitter.feed(item):
                out.text += d.text
                out.reasoning += d.reasoning
                if on_delta is not None:
                    on_delta(d)
        out.text = out.text.strip()
        return out


class ThinkSplitter:
    """Routes `<think>…</think>` that a server left in the answer text into the reasoning channel."""

    def __init__(self) -> None:
        self.inside = False
        self.buf = ""

    def feed(self, d: Delta) -> list[Delta]:
        out = [Delta(reasoning=d.reasoning)] if d.reasoning else []
        self.buf += d.text
        while self.buf:
            tag = "</think>" if self.inside else "<think>"
            i = self.buf.find(tag)
            if i < 0:
                keep = _partial_suffix(self.buf, tag)  # a tag may be split across chunks
                emit, self.buf = self.buf[: len(self.buf) - keep], self.buf[len(self.buf) - keep :]
                if emit:
                    out.append(Delta(reasoning=emit) if self.inside else Delta(text=emit))
                break
            before, self.buf = self.buf[:i], self.buf[i + len(tag) :]
            if before:
                out.append(Delta(reasoning=before) if self.inside else Delta(text=before))
            self.inside = not self.inside
        return out


def _partial_suffix(s: str, tag: str) -> int:
    for k in range(min(len(tag) - 1, len(s)), 0, -1):
        if s.endswith(tag[:k]):
            return k
    return 0


class OpenAICompatLLM(LLM):
    def __init__(self, base_url: str, model: str, timeout: float = 120.0, retries: int = 3,
                 api_key: str = "EMPTY") -> None:
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.client = OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self._served: list[dict[str, Any]] | None = None

    # -- discovery
    def served(self) -> list[dict[str, Any]]:
        if self._served is None:
            import openai

            try:
                page = self._retry(lambda: self.client.models.list())
            except openai.APIConnectionError:
                raise self._unavailable() from None
            self._served = [m.model_dump() for m in page.data]
        return self._served

    def check_model(self) -> None:
        """Raise `ModelNotServedError` (listing what is served) unless the configured model is served."""
        served = self.served()
        ids = [m.get("id") for m in served]
        if self.model not in ids:
            raise ModelNotServedError(
                f"{self.base_url} serves {', '.join(map(str, ids)) or 'no models'}, not {self.model}",
                f"set KB_LLM_MODEL to one of them, or start the server with {self.model}",
            )
        card = next(m for m in served if m.get("id") == self.model)
        meta = card.get("meta") or {}
        self.max_model_len = card.get("max_model_len") or meta.get("n_ctx") or meta.get("n_ctx_train")

    def _unavailable(self) -> LLMUnavailableError:
        return LLMUnavailableError(
            f"no LLM server answers at {self.base_url}",
            "start one with `kb llm serve` on a GPU machine (pip install 'kb[vllm]'), or `kb llm serve --profile "
            "tiny` on a laptop, or point KB_LLM_BASE_URL at a running OpenAI-compatible server; `kb search` "
            "and `kb ask --dry-run` work without an LLM",
        )

    def _retry(self, fn: Callable[[], Any]) -> Any:
        import openai

        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except openai.APIConnectionError:  # includes timeouts? no: APITimeoutError subclasses it
                if attempt == self.retries:
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # -- generation
    def request(self, messages: list[dict[str, str]], params: GenParams) -> dict[str, Any]:
        """The exact request body (kept on the `Completion` for inspection)."""
        return {
            "model": self.model, "messages": messages, "max_tokens": params.max_tokens, "stream": True,
            "stream_options": {"include_usage": True}, "temperature": params.temperature, "top_p": params.top_p,
            "presence_penalty": params.presence_penalty,
            "extra_body": {"top_k": params.top_k, "min_p": params.min_p,
                           "chat_template_kwargs": {"enable_thinking": params.thinking}},
        }

    def stream(self, messages: list[dict[str, str]], params: GenParams) -> Iterator[Delta | Usage]:
        import openai

        body = self.request(messages, params)
        self.last_request = body
        try:
            chunks = self._retry(lambda: self.client.chat.completions.create(**body))
            for chunk in chunks:
                if chunk.usage is not None:
                    yield _usage(chunk.usage)
                for choice in chunk.choices or []:
                    delta = choice.delta
                    extra = delta.model_extra or {}
                    reasoning = extra.get("reasoning") or extra.get("reasoning_content") or ""
                    if delta.content or reasoning:
                        yield Delta(text=delta.content or "", reasoning=reasoning)
        except openai.APITimeoutError:
            raise LLMTimeoutError(f"{self.base_url} did not answer within {self.timeout:.0f}s",
                                  "try a smaller --mode (less context), or raise the timeout") from None
        except openai.APIConnectionError:
            raise self._unavailable() from None
        except openai.NotFoundError as exc:
            self._served = None
            ids = [m.get("id") for m in self.served()]
            raise ModelNotServedError(f"{self.base_url} does not serve {self.model} (served: {', '.join(ids)})",
                                      "set KB_LLM_MODEL to a served model") from exc
        except openai.BadRequestError as exc:
            msg = str(exc)
            if any(w in msg.lower() for w in ("context", "too long", "maximum", "max_model_len", "exceed")):
                raise PromptTooLongError(f"the server refused the prompt as too long: {msg[:200]}",
                                         "use a smaller mode or lower the mode's budget") from None
            raise LLMError(f"the server rejected the request: {msg[:300]}", "check the server's log") from None


def _usage(u: Any) -> Usage:
    details = getattr(u, "completion_tokens_details", None)
    reasoning = getattr(details, "reasoning_tokens", 0) if details is not None else 0
    return Usage(u.prompt_tokens or 0, u.completion_tokens or 0, reasoning or 0)


class ScriptedLLM(LLM):
    """Deterministic fake for tests: replies from a queue, records every request."""

    def __init__(self, replies: list[str] | None = None, reasoning: str = "", max_model_len: int = 32768) -> None:
        self.replies = list(replies or [])
        self.reasoning = reasoning
        self.max_model_len = max_model_len
        self.requests: list[tuple[list[dict[str, str]], GenParams]] = []
        self.model = "scripted"

    def enqueue(self, reply: str) -> None:
        self.replies.append(reply)

    def stream(self, messages: list[dict[str, str]], params: GenParams) -> Iterator[Delta | Usage]:
        self.requests.append((messages, params))
        reply = self.replies.pop(0) if self.replies else "I don't know."
        if params.thinking and self.reasoning:
            yield Delta(reasoning=self.reasoning)
        for word in reply.split(" "):
            yield Delta(text=word + " ")
        yield Usage(sum(len(m["content"].split()) for m in messages), len(reply.split()), 0, source="counted")
