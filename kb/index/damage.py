"""A damaged embedded vector store, found and rebuilt.

Chroma's embedded store is not crash-safe: a kill -9 or power loss in the middle of its own HNSW
write can leave a segment it can no longer load ("Error loading hnsw index", "Failed to apply logs
to the hnsw segment writer") — every read and write of the collection then fails — or one that
crashes the process (SIGSEGV) when queried. Measured: 2 of 38 kills of a plain upsert loop. kb's own
files (manifest, journal, FTS5) are SQLite and survive; the vectors are derived data, so a writer
rebuilds them:

* after a writer died holding the lock (``WriterLock.unclean_before``) the store is opened in a
  child process first (`probe`), so a segment that would crash or hang kb is found without crashing
  it;
* any Chroma error naming a damaged segment is a `StoreDamagedError` (`kb.index.store.is_damage`);
* either way the store folder is moved aside (`quarantine`), a fresh one is opened, every chunk the
  manifest lists is dropped and its file marked for re-indexing, and the sync that follows re-embeds
  them; the damaged folder is then deleted.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from kb.index.store import damage_words

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 600.0

_PROBE = """
import sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
if sys.argv[2] in [c.name for c in client.list_collections()]:
    col = client.get_collection(sys.argv[2], embedding_function=None)
    n = col.count()
    if n:
        vec = col.get(limit=1, include=["embeddings"])["embeddings"][0]
        col.query(query_embeddings=[vec], n_results=min(10, n), include=["distances"])
print("kb-probe-ok")
"""


def probe(path: Path, collection: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Open the embedded store at ``path`` in a child process and read ``collection``: what shows it
    damaged (a Chroma error naming its segment, a crash by signal, a hang), else None."""
    if not path.exists():
        return None
    try:
        r = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path), collection],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
    except subprocess.TimeoutExpired:
        return f"reading it did not finish within {timeout:g}s"
    if r.returncode == 0 and "kb-probe-ok" in r.stdout:
        return None
    if r.returncode < 0:
        return f"reading it crashed the reader (signal {-r.returncode})"
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if last.startswith("chromadb.errors.InternalError") and damage_words(last):
        return last.split(":", 1)[-1].strip()[:300]
    log.warning(
        "checking the vector store in a child process failed for another reason (exit %d): %s",
        r.returncode,
        last[:300],
    )
    # not a damaged segment (a broken install, say): the store itself will say what is wrong
    return None


def quarantine(path: Path) -> Path | None:
    """Move the store folder aside (same file system: one rename); returns where it went."""
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    path.rename(aside)
    return aside
