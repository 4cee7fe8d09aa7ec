"""The vector store's own configuration: the HNSW search breadth kb asks of Chroma
(`KB_CHROMA__EF_SEARCH`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kb.index.store import VectorStore, collection_name
from kb.settings import ChromaSettings

MAKE_OLD = """
import sys, chromadb
c = chromadb.PersistentClient(path=sys.argv[1])
c.get_or_create_collection(
    sys.argv[2], configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
)
"""
READ_EF = """
import sys, chromadb
print(chromadb.PersistentClient(path=sys.argv[1]).list_collections()[0].configuration["hnsw"]["ef_search"])
"""


def ef_in_another_process(path: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", READ_EF, str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_stores_search_with_kbs_hnsw_breadth_old_ones_included(tmp_path: Path) -> None:
    """At Chroma's default breadth (100) the 40 nearest chunks came back in another order from one
    process to the next; kb creates its collections with 400 and moves a store made before that to
    it on open."""
    old = tmp_path / "old" / "chroma"
    subprocess.run(
        [sys.executable, "-c", MAKE_OLD, str(old), collection_name("m1", "")], check=True
    )
    assert ef_in_another_process(old) == "100"  # what an earlier kb made: Chroma's default

    assert VectorStore(old, "m1").ef_search == 400
    assert ef_in_another_process(old) == "400"  # kept in the store, not only in this process

    assert VectorStore(tmp_path / "new" / "chroma", "m1").ef_search == 400
    assert (
        VectorStore(tmp_path / "own" / "chroma", "m1", ChromaSettings(ef_search=200)).ef_search
        == 200
    )
