"""The vector side of the index: one Chroma collection per embedding model, cosine space.

Chroma only ever receives vectors we computed: no embedding function is attached and no text query is
ever sent, so Chroma never tries to download its default model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kb.errors import StoreError, describe, environment_error

COLLECTION_PREFIX = "kb-"


def collection_name(model_id: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", model_id).strip("-").lower()[:40] or "model"
    return f"{COLLECTION_PREFIX}{slug}-{hashlib.sha1(model_id.encode()).hexdigest()[:8]}"


class VectorStore:
    """Chroma (embedded) behind a small interface: add, get vectors, update metadata, delete, query."""

    def __init__(self, path: Path, model_id: str) -> None:
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            self.client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            )
            self.name = collection_name(model_id)
            self.collection = self.client.get_or_create_collection(
                self.name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"model_id": model_id},
                embedding_function=None,
            )
            self.max_batch = int(self.client.get_max_batch_size())
        except Exception as exc:
            from ingest.manifest import read_only_place

            where = f"cannot open the vector store at {path}"
            if read_only_place(path.parent):
                raise StoreError(f"{where}: KB_HOME is read-only (Chroma must write to open its store)",
                                 "make KB_HOME writable (remount it read-write, or copy it to a writable folder and "
                                 "point KB_HOME there)") from None
            env = environment_error(exc, f"KB_HOME ({path.parent})")
            if env is not None:
                raise StoreError(f"{where}: {env.message}", env.remedy or "") from None
            raise StoreError(
                f"{where}: {describe(exc)}",
                "if the index is corrupt, move its 'chroma' folder away and run `kb ingest` to rebuild it",
            ) from None
        self.model_id = model_id

    def other_collections(self) -> list[str]:
        return [c.name for c in self.client.list_collections() if c.name != self.name]

    def drop_collection(self, name: str) -> None:
        self.client.delete_collection(name)

    def count(self) -> int:
        return self.collection.count()

    def add(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(ids), self.max_batch):
            self.collection.upsert(
                ids=list(ids[i : i + self.max_batch]),
                embeddings=vectors[i : i + self.max_batch],
                metadatas=list(metadatas[i : i + self.max_batch]),
            )

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(ids), self.max_batch):
            self.collection.update(
                ids=list(ids[i : i + self.max_batch]), metadatas=list(metadatas[i : i + self.max_batch])
            )

    def vectors(self, ids: Iterable[str]) -> dict[str, np.ndarray]:
        ids = list(dict.fromkeys(ids))
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), self.max_batch):
            got = self.collection.get(ids=ids[i : i + self.max_batch], include=["embeddings"])
            for cid, vec in zip(got["ids"], got["embeddings"], strict=True):
                out[cid] = np.asarray(vec, dtype=np.float32)
        return out

    def delete(self, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), self.max_batch):
            self.collection.delete(ids=list(ids[i : i + self.max_batch]))

    def all_ids(self) -> list[str]:
        out: list[str] = []
        page = 5000
        offset = 0
        while True:
            got = self.collection.get(include=[], limit=page, offset=offset)
            out.extend(got["ids"])
            if len(got["ids"]) < page:
                return out
            offset += page

    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """(id, cosine similarity) best first."""
        n = self.count()
        if n == 0:
            return []
        res = self.collection.query(
            query_embeddings=[vector], n_results=min(k, n), where=where or None, include=["distances"]
        )
        return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0], strict=True)]
