"""The vector side of the index: one Chroma collection per embedding model, cosine space.

Vectors live in Chroma — embedded under KB_HOME/chroma, or on a Chroma server (``KB_CHROMA__URL``);
the manifest, the BM25 index and the journal always stay in KB_HOME, beside the writer. Chroma only
ever receives vectors we computed: no embedding function is attached and no text query is ever sent,
so Chroma never tries to download its default model.
"""

from __future__ import annotations

import functools
import hashlib
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from kb.errors import (
    DimensionMismatchError,
    DiskFullError,
    KbError,
    StoreDamagedError,
    StoreError,
    describe,
    environment_error,
)

if TYPE_CHECKING:
    from kb.settings import ChromaSettings

COLLECTION_PREFIX = "kb-"


def collection_name(model_id: str, scope: str = "") -> str:
    """The collection of ``model_id``'s vectors; ``scope`` (a KB_HOME's id) keeps homes apart on a
    shared server."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", model_id).strip("-").lower()[:40] or "model"
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:8]
    return f"{COLLECTION_PREFIX}{scope + '-' if scope else ''}{slug}-{digest}"


def home_id(home: Path) -> str:
    """A random id of this KB_HOME, made once (``KB_HOME/home-id``, 0600): its collections on a
    shared Chroma server are named with it, so two machines (or two homes) never write into each
    other's collection."""
    path = home / "home-id"
    try:
        value = path.read_text(encoding="ascii").strip()
        if re.fullmatch(r"[0-9a-f]{8}", value):
            return value
    except OSError:
        pass
    import os
    import secrets

    value = secrets.token_hex(4)
    tmp = home / f"home-id.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    try:
        os.link(tmp, path)  # first writer wins; a concurrent second one reads the first's id
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()


F = TypeVar("F", bound=Callable[..., Any])


def _guarded(fn: F) -> F:
    """Run a store method under `VectorStore._faults` (server faults → one `StoreError`)."""

    @functools.wraps(fn)
    def wrapper(self: VectorStore, *args: Any, **kwargs: Any) -> Any:
        with self._faults():
            return fn(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class VectorStore:
    """Chroma behind a small interface: add, get vectors, update metadata, delete, query. Embedded
    under KB_HOME by default; a Chroma server (``chromadb.HttpClient``) when ``server.url`` is set.
    """

    def __init__(self, path: Path, model_id: str, server: ChromaSettings | None = None) -> None:
        self.url = server.url if server is not None and server.url else None
        self.path = path
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings_

            opts = ChromaSettings_(anonymized_telemetry=False, allow_reset=False)
            if self.url is not None and server is not None:
                self.scope = home_id(path.parent)
                self.client = _http_client(self.url, server, opts)
            else:
                self.scope = ""
                self.client = chromadb.PersistentClient(path=str(path), settings=opts)
            self.name = collection_name(model_id, self.scope)
            ef = (server or _default_chroma()).ef_search
            with self._faults():
                self.collection = self.client.get_or_create_collection(
                    self.name,
                    configuration={"hnsw": {"space": "cosine", "ef_search": ef}},
                    metadata={
                        "model_id": model_id,
                        "kb_home": f"{socket.gethostname()}:{path.parent}",
                    },
                    embedding_function=None,
                )
                if (
                    self.ef_search != ef
                ):  # a store made before the setting (or with another value): adopt it
                    self.collection.modify(configuration={"hnsw": {"ef_search": ef}})
                self.max_batch = int(self.client.get_max_batch_size())
        except StoreError:
            raise
        except Exception as exc:
            from ingest.manifest import read_only_place

            if self.url is None:  # a half-made client stays in Chroma's cache: the next open
                _forget_clients()  # would get it back broken ('no attribute bindings')
            where = f"cannot open the vector store at {self.url or path}"
            if self.url is None and read_only_place(path.parent):
                raise StoreError(
                    f"{where}: KB_HOME is read-only (Chroma must write to open its store)",
                    "make KB_HOME writable (remount it read-write, or copy it to a writable folder "
                    "and "
                    "point KB_HOME there)",
                ) from None
            env = environment_error(exc, f"KB_HOME ({path.parent})") or _full_disk(path.parent)
            if env is not None:
                raise StoreError(f"{where}: {env.message}", env.remedy or "") from None
            if self.url is not None:
                raise StoreError(
                    f"{where}: {describe(exc)}",
                    "check KB_CHROMA__URL, KB_CHROMA__TOKEN, "
                    "KB_CHROMA__TENANT and KB_CHROMA__DATABASE",
                ) from None
            if is_damage(exc):
                raise damaged(exc) from None
            raise StoreError(
                f"{where}: {describe(exc)}",
                f"if the index is corrupt, move its folder away (mv {path} {path}.old) and run `kb "
                "ingest`: kb "
                "re-embeds your notes from their files",
            ) from None
        self.model_id = model_id
        self._dimension: int | None = None

    @property
    def ef_search(self) -> int | None:
        """The collection's HNSW search breadth, as Chroma reports it."""
        hnsw = (self.collection.configuration or {}).get("hnsw") or {}
        return hnsw.get("ef_search")

    @property
    def where(self) -> str:
        return f"Chroma server {self.url}" if self.url else "embedded Chroma"

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """A Chroma server that is down, restarting or failing is the machine's fault, not a file's:
        one `StoreError` that stops the sync (the journal repairs what it left on the next one).
        Embedded, an error naming a damaged segment is a `StoreDamagedError` (a writer rebuilds the
        store)."""
        if self.url is None:
            try:
                yield
            except Exception as exc:
                if is_damage(exc):
                    raise damaged(exc) from None
                raise
            return
        import httpx

        try:
            yield
        except httpx.HTTPError as exc:
            raise StoreError(
                f"the Chroma server at {self.url} did not answer ({describe(exc)})",
                "start it again (e.g. `chroma run --path DIR --host 127.0.0.1 --port PORT`) or "
                "unset "
                "KB_CHROMA__URL; then run the command again — kb repairs the index on the next "
                "sync",
            ) from None
        except Exception as exc:
            text = str(exc)
            if (
                type(exc).__name__ in ("InternalError", "ChromaError")
                or text.lstrip().startswith(("<", "{"))
                or "Internal Server Error" in text
                or "Service Unavailable" in text
            ):
                raise StoreError(
                    f"the Chroma server at {self.url} failed: {describe(exc)}",
                    "see the server's log; run the command again — kb repairs the index on the "
                    "next "
                    "sync",
                ) from None
            raise

    def other_collections(self) -> list[str]:
        """kb's collections of other models in this home (never another home's on a shared
        server)."""
        mine = COLLECTION_PREFIX + (self.scope + "-" if self.scope else "")
        with self._faults():
            names = [
                c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()
            ]
        return [
            n
            for n in names
            if n != self.name
            and n.startswith(mine)
            and (self.scope or not re.match(r"kb-[0-9a-f]{8}-", n))
        ]

    def drop_collection(self, name: str) -> None:
        with self._faults():
            self.client.delete_collection(name)

    @_guarded
    def count(self) -> int:
        return self.collection.count()

    @property
    def dimension(self) -> int | None:
        """The dimension of the vectors the collection holds (None while it is empty); read once."""
        if self._dimension is None:
            with self._faults():
                got = self.collection.get(limit=1, include=["embeddings"])
            vecs = got.get("embeddings")
            if vecs is not None and len(vecs):
                self._dimension = len(vecs[0])
        return self._dimension

    def check_dimension(self, got: int) -> None:
        """`DimensionMismatchError` when vectors of ``got`` dimensions cannot go with the index's
        (checked at every search and every write: a server can swap its model at any time)."""
        have = self.dimension
        if have is not None and got != have:
            raise DimensionMismatchError(
                f"the embedding model returns {got}-dimensional vectors, but this index holds "
                f"{have}-dimensional ones of {self.model_id}: the model changed (a server serving "
                "another model behind the same KB_EMBED__URL, or a replaced model folder)",
                f"serve {self.model_id} again, or set KB_EMBED_MODEL (and KB_EMBED__SERVED_MODEL) "
                "to the model now served and run `kb ingest` (it builds a new index beside this "
                "one)",
            )

    def _ensure_space(self, payload: int) -> None:
        """`DiskFullError` before a write the disk may not hold. Embedded Chroma that runs out of
        space in the middle of its own write blocks for good (holding the interpreter's lock: the
        whole process, reads included, stops answering, and freeing space does not wake it), so kb
        keeps a margin: ``MARGIN`` plus eight times what the write carries must be free."""
        if self.url is not None:
            return
        import os

        try:
            st = os.statvfs(self.path)
        except OSError:
            return
        free, need = st.f_bavail * st.f_frsize, MARGIN + 8 * payload
        if free < need:
            raise DiskFullError(
                f"the disk holding KB_HOME ({self.path.parent}) is full: {free / 2**20:.1f} MiB "
                f"free, kb writes only with {need / 2**20:.1f} MiB free (a vector store that runs "
                "out of space mid-write hangs)",
                "free space on that disk; a running `kb watch` resumes by itself, otherwise run "
                "the command again",
            )

    @_guarded
    def add(
        self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]]
    ) -> None:
        if len(ids):
            self.check_dimension(int(vectors.shape[1]))
            self._ensure_space(int(np.asarray(vectors).nbytes))
        for i in range(0, len(ids), self.max_batch):
            self.collection.upsert(
                ids=list(ids[i : i + self.max_batch]),
                embeddings=vectors[i : i + self.max_batch],
                metadatas=list(metadatas[i : i + self.max_batch]),
            )

    @_guarded
    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        self._ensure_space(0)
        for i in range(0, len(ids), self.max_batch):
            self.collection.update(
                ids=list(ids[i : i + self.max_batch]),
                metadatas=list(metadatas[i : i + self.max_batch]),
            )

    @_guarded
    def vectors(self, ids: Iterable[str]) -> dict[str, np.ndarray]:
        ids = list(dict.fromkeys(ids))
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), self.max_batch):
            got = self.collection.get(ids=ids[i : i + self.max_batch], include=["embeddings"])
            for cid, vec in zip(got["ids"], got["embeddings"], strict=True):
                out[cid] = np.asarray(vec, dtype=np.float32)
        return out

    @_guarded
    def delete(self, ids: Sequence[str]) -> None:
        self._ensure_space(0)
        for i in range(0, len(ids), self.max_batch):
            self.collection.delete(ids=list(ids[i : i + self.max_batch]))

    @_guarded
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

    @_guarded
    def query(
        self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """(id, cosine similarity) best first (fewer than ``k`` when the collection is smaller;
        Chroma ≥ 1.0 allows that, so no count() — it costs ~10 ms per 100k vectors — is asked
        first)."""
        self.check_dimension(int(np.asarray(vector).shape[-1]))
        res = self.collection.query(
            query_embeddings=[vector], n_results=k, where=where or None, include=["distances"]
        )
        return [
            (cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0], strict=True)
        ]


def _forget_clients() -> None:
    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
    except Exception:  # pragma: no cover - a chromadb without that cache
        pass


def _full_disk(folder: Path) -> KbError | None:
    """`DiskFullError` when the disk holding ``folder`` has no space left (whatever error Chroma
    raised for it), else None."""
    import os

    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize >= 1 << 20:
        return None
    return DiskFullError(
        f"the disk holding KB_HOME ({folder}) is full",
        "free space on that disk; a running `kb watch` resumes by itself, otherwise run the "
        "command "
        "again",
    )


MARGIN = 8 << 20  # bytes kept free on the disk of an embedded store (`VectorStore._ensure_space`)

_DAMAGE_WORDS = (
    "hnsw",
    "compactor",
    "compaction",
    "segment",
    "getting embedding",
    "apply logs",
    "backfill",
)


def is_damage(exc: BaseException) -> bool:
    """A Chroma ``InternalError`` in `damage_words`."""
    return type(exc).__name__ == "InternalError" and damage_words(str(exc))


def damage_words(text: str) -> bool:
    """Chroma's own words for a vector segment it cannot read (seen after kill -9 in the middle of
    its write: 'Error loading hnsw index', 'Failed to apply logs to the hnsw segment writer', 'Error
    getting embedding')."""
    text = text.lower()
    return any(w in text for w in _DAMAGE_WORDS)


def damaged(exc: BaseException) -> StoreDamagedError:
    return StoreDamagedError(
        f"the vector store (embedded Chroma) is damaged: {describe(exc)}",
        "run `kb ingest` (or restart `kb watch`): kb moves the damaged store aside and re-embeds "
        "your notes "
        "from their files",
    )


def _default_chroma() -> ChromaSettings:
    from kb.settings import ChromaSettings

    return ChromaSettings()


def _http_client(url: str, server: ChromaSettings, opts: Any) -> Any:
    """``chromadb.HttpClient`` for ``url`` with kb's auth headers, tenant, database and a bounded
    timeout (the client's own session has none: a hung server would hang the writer)."""
    from urllib.parse import urlparse

    import chromadb
    import httpx

    u = urlparse(url if "://" in url else f"http://{url}")
    if u.scheme not in ("http", "https") or not u.hostname:
        raise StoreError(
            f"KB_CHROMA__URL={url!r} is not an http(s) URL", "set it like http://127.0.0.1:8000"
        )
    headers = (
        {"Authorization": f"Bearer {server.token.get_secret_value()}"} if server.token else None
    )
    client = chromadb.HttpClient(
        host=u.hostname,
        port=u.port or (443 if u.scheme == "https" else 8000),
        ssl=u.scheme == "https",
        headers=headers,
        settings=opts,
        tenant=server.tenant,
        database=server.database,
    )
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(server.timeout_s, connect=5.0)
    return client
