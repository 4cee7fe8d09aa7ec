"""LLM clients: a small base class (one abstract method) and an OpenAI-compatible implementation.

`OpenAICompatLLM` talks to vLLM (and any OpenAI-compatible server: llama.cpp's, Ollama's — extras
they don't know are ignored): discovers `max_model_len` from `/v1/models`, always sets `max_tokens`,
switches Qwen3 thinking per request with `chat_template_kwargs`, reads reasoning from `reasoning` or
`reasoning_content`, strips stray `<think>…</think>` from the answer, streams, records usage.

Faults are bounded and told apart: a connect timeout of a few seconds (nobody there → retried with
backoff, then "no server answers"), a read timeout that is the longest silence allowed *between*
streamed chunks (a server that accepted the request and stalls → abandoned, never retried blindly),
HTTP 5xx and malformed responses (→ one readable `LLMError` with the cause and a fix). Only 429/503
("busy, try later") and connection failures are retried.
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kb.errors import (
    AnswerCutError,
    LLMError,
    LLMTimeoutError,
    LLMUnavailableError,
    ModelNotServedError,
    PromptTooLongError,
)
from kb.retry import Again, retry

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
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "source": self.source,
        }


@dataclass
class Completion:
    text: str = ""
    reasoning: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    ttft_s: float | None = None
    cut: str = ""  # why the answer stopped before the server finished it ("" = it is complete)
    remedy: str = ""  # how to fix what cut it


class LLM(ABC):
    """Chat completion backend. Subclasses implement `stream`; `complete` collects it."""

    model: str = "llm"
    max_model_len: int | None = None

    @abstractmethod
    def stream(self, messages: list[dict[str, str]], params: GenParams) -> Iterator[Delta | Usage]:
        """Yield answer/reasoning deltas, then (optionally) one `Usage`."""

    def complete(
        self,
        messages: list[dict[str, str]],
        params: GenParams,
        on_delta: Callable[[Delta], None] | None = None,
    ) -> Completion:
        out = Completion()
        t0 = time.perf_counter()
        splitter = ThinkSplitter()
        try:
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
        except AnswerCutError as exc:  # what came is kept — and marked as not an answer
            out.cut, out.remedy = exc.message, exc.remedy or ""
        out.text = out.text.strip()
        return out


class ThinkSplitter:
    """Routes `<think>…</think>` that a server left in the answer text into the reasoning
    channel."""

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
    def __init__(
        self,
        base_url: str,
        model: str,
        timeout: float = 120.0,
        retries: int = 3,
        api_key: str = "EMPTY",
        connect_timeout: float = 5.0,
        context_length: int | None = None,
        deadline: float | None = None,
    ) -> None:
        from openai import OpenAI, Timeout

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = (
            timeout  # the longest silence: before the first byte, and between streamed chunks
        )
        self.connect_timeout = connect_timeout
        self.deadline = deadline  # seconds per answer (None: sized from max_tokens)
        self.retries = retries
        bounds = Timeout(
            timeout, connect=connect_timeout
        )  # its HTTP library's own (httpx or httpx2)
        self.client = OpenAI(base_url=self.base_url, api_key=api_key, timeout=bounds, max_retries=0)
        self._served: list[dict[str, Any]] | None = None
        self.context_length = context_length  # used when the server does not report its own

    # -- discovery
    def served(self) -> list[dict[str, Any]]:
        if self._served is None:
            with self._faults("listing models at /v1/models"):
                page = self._retry(lambda: self.client.models.list())
                self._served = [m.model_dump() for m in page.data]
        return self._served

    def check_model(self) -> None:
        """Raise `ModelNotServedError` (listing what is served) unless the configured model is
        served."""
        served = self.served()
        ids = [m.get("id") for m in served]
        if self.model not in ids:
            raise ModelNotServedError(
                f"{self.base_url} serves {', '.join(map(str, ids)) or 'no models'}, not "
                f"{self.model}",
                f"set KB_LLM_MODEL to one of them, or start the server with {self.model}",
            )
        card = next(m for m in served if m.get("id") == self.model)
        meta = card.get("meta") or {}
        self.max_model_len = (
            card.get("max_model_len")
            or meta.get("n_ctx")
            or meta.get("n_ctx_train")
            or self.context_length
        )

    def _unavailable(self, detail: str = "") -> LLMUnavailableError:
        return LLMUnavailableError(
            f"no LLM server answers at {self.base_url}{' ' + detail if detail else ''}",
            "start one with `kb llm serve` on a GPU machine (pip install 'kb-notes[vllm]'), or `kb "
            "llm serve --profile "
            "tiny` on a laptop, or point KB_LLM_BASE_URL at a running OpenAI-compatible server; "
            "`kb search` "
            "and `kb ask --dry-run` work without an LLM",
        )

    def _retry(self, fn: Callable[[], Any]) -> Any:
        """Retry what is worth retrying: nobody answering the connect yet, or the server saying it
        is busy (429/503). A request the server accepted and then stalled on is never repeated."""
        import openai

        def once() -> Any:
            try:
                return fn()
            except openai.APITimeoutError as exc:
                if _connect_phase(exc):
                    raise Again(exc) from None
                raise
            except openai.APIConnectionError as exc:
                raise Again(exc) from None
            except openai.APIStatusError as exc:
                if exc.status_code in (429, 503):
                    raise Again(exc) from None
                raise

        return retry(once, self.retries)

    @contextmanager
    def _faults(self, doing: str) -> Iterator[None]:
        """Every way a server can fail, as one `LLMError` with its cause and a fix."""
        import openai

        try:
            yield
        except LLMError:
            raise
        except openai.APITimeoutError as exc:
            if _connect_phase(exc):
                raise self._unavailable(
                    f"(connecting timed out after {self.connect_timeout:g}s)"
                ) from None
            raise LLMTimeoutError(
                f"{self.base_url} accepted the connection but sent nothing for {self.timeout:g}s "
                f"while {doing}",
                "check the server's log (is it overloaded or stuck?); raise KB_LLM_TIMEOUT for "
                "very long "
                "prompts, or use a smaller --mode",
            ) from None
        except openai.APIConnectionError:
            raise self._unavailable() from None
        except openai.AuthenticationError:
            raise LLMError(
                f"{self.base_url} refused kb's token (HTTP 401)",
                "set KB_LLM_API_KEY to the server's token (`kb llm serve --profile tiny|reader` "
                "keeps "
                "it in KB_HOME/llm.token and kb reads it there when KB_HOME is the same)",
            ) from None
        except openai.NotFoundError as exc:
            if "models" in doing:
                raise LLMError(
                    f"{self.base_url} has no /v1/models (HTTP 404): {_short(exc)}",
                    "check KB_LLM_BASE_URL: it must end in /v1 of an OpenAI-compatible server",
                ) from None
            self._served = None
            ids = [m.get("id") for m in self.served()]
            raise ModelNotServedError(
                f"{self.base_url} does not serve {self.model} (served: {', '.join(ids)})",
                "set KB_LLM_MODEL to a served model",
            ) from None
        except openai.BadRequestError as exc:
            msg = _short(exc)
            if any(
                w in msg.lower()
                for w in ("context", "too long", "maximum", "max_model_len", "exceed")
            ):
                raise PromptTooLongError(
                    f"the server refused the prompt as too long: {msg}",
                    "use a smaller mode or lower the mode's budget",
                ) from None
            raise LLMError(
                f"the server rejected the request: {msg}", "check the server's log"
            ) from None
        except openai.APIStatusError as exc:
            raise LLMError(
                f"{self.base_url} failed while {doing} (HTTP {exc.status_code}): {_short(exc)}",
                "check the LLM server's log and restart it if needed; `kb ask --dry-run` works "
                "without it",
            ) from None
        except SchemaError as exc:
            raise LLMError(
                f"{self.base_url} sent a reply kb cannot read while {doing}: {exc}",
                "is KB_LLM_BASE_URL an OpenAI-compatible chat server (vLLM, llama.cpp)? check "
                "its log",
            ) from None
        except (
            openai.APIResponseValidationError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
        ) as exc:
            raise LLMError(
                f"{self.base_url} sent a malformed response while {doing} ({type(exc).__name__}: "
                f"{str(exc)[:160]})",
                "is KB_LLM_BASE_URL an OpenAI-compatible server (vLLM, llama.cpp)? check its log",
            ) from None
        except _transport(
            "HTTPError"
        ) as exc:  # mid-stream: the connection broke or the server sent garbage
            raise LLMError(
                f"{self.base_url} broke off while {doing} ({type(exc).__name__}: {str(exc)[:160]})",
                "check the LLM server's log; run the command again once it is healthy",
            ) from None

    # -- generation
    def request(self, messages: list[dict[str, str]], params: GenParams) -> dict[str, Any]:
        """The exact request body (kept on the `Completion` for inspection)."""
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": params.temperature,
            "top_p": params.top_p,
            "presence_penalty": params.presence_penalty,
            "extra_body": {
                "top_k": params.top_k,
                "min_p": params.min_p,
                "chat_template_kwargs": {"enable_thinking": params.thinking},
            },
        }

    def stream(self, messages: list[dict[str, str]], params: GenParams) -> Iterator[Delta | Usage]:
        """The answer as it streams. Bounded whatever the server does: each silence by the read
        timeout, the whole answer by its deadline, what arrives by what ``max_tokens`` allows. A
        stream that ends without a finish reason, or breaks off in a malformed chunk, raises
        `AnswerCutError` after what came was yielded."""
        body = self.request(messages, params)
        self.last_request = body
        deadline = self.deadline_for(params)
        ends = time.monotonic() + deadline
        cap = params.max_tokens * CHARS_PER_TOKEN + 4096  # no token is longer than this, on average
        with self._faults("answering"):
            chunks = self._retry(lambda: self.client.chat.completions.create(**body))
            received = chars = 0
            finished = None
            try:
                for chunk in _chunks(chunks):
                    received += 1
                    if chunk.usage is not None:
                        yield _usage(chunk.usage)
                    for choice in _choices(chunk):
                        content, reasoning = _delta(choice)
                        finished = getattr(choice, "finish_reason", None) or finished
                        if content or reasoning:
                            chars += len(content) + len(reasoning)
                            yield Delta(text=content, reasoning=reasoning)
                    if chars > cap:
                        raise AnswerCutError(
                            f"{self.base_url} sent more than max_tokens ({params.max_tokens}) "
                            "allows: the answer was cut off there",
                            "the server ignores max_tokens: check its settings (llama.cpp: "
                            "--n-predict), or lower KB_MODES__<MODE>__MAX_OUTPUT_TOKENS",
                        )
                    if time.monotonic() > ends:
                        raise AnswerCutError(
                            f"the answer took longer than its deadline ({deadline:g} s) and was "
                            "cut off",
                            "raise KB_LLM_DEADLINE (seconds per answer), or check the server's "
                            "load (it answers very slowly)",
                        )
            finally:
                _close(chunks)
            if not received:
                raise LLMError(
                    f"{self.base_url} sent a malformed reply while answering: not a single chunk",
                    "llama.cpp's server ends the reply so when the prompt does not fit its context "
                    "window (--n_ctx): set KB_LLM_CONTEXT_LENGTH to that window and kb cuts the "
                    "notes to fit; otherwise check that KB_LLM_BASE_URL is an OpenAI-compatible "
                    "server, and its log",
                )
            if finished is None:
                raise AnswerCutError(
                    f"{self.base_url} ended the stream before the answer was complete (no "
                    "finish_reason): the answer was cut off",
                    "check the LLM server's log (did it crash or restart?); ask again once it is "
                    "healthy",
                )

    def deadline_for(self, params: GenParams) -> float:
        """Seconds one answer may take: KB_LLM_DEADLINE, else the longest silence plus half a second
        per token ``max_tokens`` allows (a server slower than 2 tokens/s is stuck, not working)."""
        if self.deadline is not None:
            return self.deadline
        return self.timeout + params.max_tokens * 0.5


CHARS_PER_TOKEN = 16


def _chunks(stream: Any) -> Iterator[Any]:
    """The stream's chunks; a chunk the client cannot parse after others arrived cuts the answer
    (before any: the reply is malformed, `_faults` says so)."""
    it = iter(stream)
    seen = 0
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if not seen:
                raise
            raise AnswerCutError(
                f"the answer broke off in a malformed chunk ({type(exc).__name__}): it was cut off",
                "check the LLM server's log; ask again once it is healthy",
            ) from None
        seen += 1
        yield chunk


def _choices(chunk: Any) -> list[Any]:
    choices = getattr(chunk, "choices", None)
    if choices is None and not getattr(chunk, "usage", None):
        raise SchemaError(f"a chunk without choices: {_shape(chunk)}")
    return list(choices or [])


def _delta(choice: Any) -> tuple[str, str]:
    """(content, reasoning) of one streamed choice; `SchemaError` when it is not a chat delta."""
    delta = getattr(choice, "delta", None)
    if delta is None:
        if getattr(choice, "finish_reason", None):
            return "", ""
        raise SchemaError(f"a choice without a delta: {_shape(choice)}")
    extra = getattr(delta, "model_extra", None) or {}
    reasoning = extra.get("reasoning") or extra.get("reasoning_content") or ""
    content = getattr(delta, "content", None) or ""
    if not isinstance(content, str) or not isinstance(reasoning, str):
        raise SchemaError("content that is not text")
    return content, reasoning


def _shape(obj: Any) -> str:
    dump = getattr(obj, "model_dump", None)
    return str(dump() if callable(dump) else obj)[:120]


def _close(stream: Any) -> None:
    """Close the HTTP response, so a server that keeps streaming is cut off now."""
    close = getattr(stream, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):  # closing a broken connection may fail: it is closed
            close()


class SchemaError(ValueError):
    """A streamed chunk that is not in the chat-completion schema."""


def _connect_phase(exc: BaseException) -> bool:
    """True when a timeout happened while connecting (nobody there), not while waiting for an
    answer."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, _transport("ConnectTimeout") + _transport("PoolTimeout"))


def _transport(name: str) -> tuple[type[BaseException], ...]:
    """The exception class `name` of each HTTP library the openai client may be built on: httpx
    (openai < 3) and httpx2 (openai >= 3, whose errors are not httpx's). Looked up only when
    something failed."""
    import importlib

    found = []
    for lib in ("httpx", "httpx2"):
        try:
            found.append(getattr(importlib.import_module(lib), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _short(exc: BaseException) -> str:
    """The server's message in one line, cut at a word boundary (never mid-URL)."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    if len(text) <= 300:
        return text
    cut = text.rfind(" ", 0, 300)
    return text[: cut if cut > 200 else 300] + " …"


def _usage(u: Any) -> Usage:
    details = getattr(u, "completion_tokens_details", None)
    reasoning = getattr(details, "reasoning_tokens", 0) if details is not None else 0
    return Usage(u.prompt_tokens or 0, u.completion_tokens or 0, reasoning or 0)


class ScriptedLLM(LLM):
    """Deterministic fake for tests: replies from a queue, records every request."""

    def __init__(
        self, replies: list[str] | None = None, reasoning: str = "", max_model_len: int = 32768
    ) -> None:
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
        yield Usage(
            sum(len(m["content"].split()) for m in messages),
            len(reply.split()),
            0,
            source="counted",
        )
