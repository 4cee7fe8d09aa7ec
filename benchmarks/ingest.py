"""Ingestion benchmark over a real vault (default: the Dendron docs vault in ../shared/eval).

All figures come from one run on one machine, each as a ratio against a baseline measured in the
same run:

* pipeline efficiency — raw ``SentenceTransformer.encode`` on exactly the chunks kb produced vs kb's
  full ingest (load + chunk + embed + Chroma + manifest); goal ≥ 0.90;
* kb vs a naive llama-index pipeline (SimpleDirectoryReader → VectorStoreIndex.from_documents →
  Chroma, same model object); goal kb ≥ 1.2× faster;
* no-op re-ingest time vs first ingest (goal ≤ 1 %, 0 embeddings);
* one edited note: embeddings computed vs chunks whose text changed (goal: equal);
* one renamed note: moved 1, embedded 0.

Usage:  python benchmarks/ingest.py [--corpus DIR] [--model PATH] [--json OUT]
Needs:  pip install llama-index-vector-stores-chroma  (for the naive baseline only)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the `ingest` package: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "eval" / "corpora" / "dendron" / "vault"


def naive_llama_index(
    corpus: Path,
    st_model: Any,
    workdir: Path,
    name: str = "naive",
    chunk_tokens: int | None = None,
    count: Any = None,
) -> tuple[float, int, list[str]]:
    import chromadb
    from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore
    from pydantic import PrivateAttr

    class STEmbedding(BaseEmbedding):
        _m: Any = PrivateAttr()

        def __init__(self, model: Any) -> None:
            super().__init__(model_name="same-sentence-transformer")
            self._m = model

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._m.encode(text, normalize_embeddings=True).tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._m.encode(texts, normalize_embeddings=True).tolist()

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

    Settings.llm = None
    t0 = time.perf_counter()
    docs = SimpleDirectoryReader(str(corpus), recursive=True, required_exts=[".md"]).load_data()
    client = chromadb.PersistentClient(path=str(workdir / f"{name}-chroma"))
    coll = client.get_or_create_collection(
        name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=coll))
    kwargs: dict[str, Any] = {}
    if chunk_tokens:  # sized by the embedder's tokenizer, so nothing is truncated
        from llama_index.core.node_parser import SentenceSplitter

        kwargs["transformations"] = [
            SentenceSplitter(
                chunk_size=chunk_tokens, chunk_overlap=20, tokenizer=lambda t: ["x"] * count([t])[0]
            )
        ]
    VectorStoreIndex.from_documents(
        docs, storage_context=storage, embed_model=STEmbedding(st_model), **kwargs
    )
    elapsed = time.perf_counter() - t0
    return elapsed, coll.count(), coll.get(include=["documents"])["documents"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--model", default=None, help="embedding model (default: the offline MiniLM)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    ap.add_argument("--skip-naive", action="store_true", help="skip the llama-index baseline")
    args = ap.parse_args()

    from kb.index.embed import SentenceTransformerEmbedder, offline_model_path
    from kb.knowledge import KnowledgeBase

    model = args.model or str(offline_model_path())
    work = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    corpus = work / "vault"
    shutil.copytree(args.corpus, corpus)
    os.environ["KB_HOME"] = str(work / "kb-home")

    emb = SentenceTransformerEmbedder(model, device="cpu")
    captured: list[str] = []
    real_embed = emb.embed_documents

    def recording(texts, progress=None):  # the exact texts kb embeds, for the raw-encode baseline
        captured.extend(texts)
        return real_embed(texts, progress)

    emb.embed_documents = recording  # type: ignore[method-assign]
    emb._model.encode(["warm up"] * 8)
    fig: dict[str, Any] = {
        "corpus": str(args.corpus),
        "model": emb.model_id,
        "cpu_threads": os.cpu_count(),
    }

    with KnowledgeBase(embedder=emb) as base:
        t0 = time.perf_counter()
        first = base.ingest([corpus])
        t_kb = time.perf_counter() - t0
        fig.update(
            files=first.added,
            chunks=first.chunks,
            embedded=first.embedded,
            kb_seconds=round(t_kb, 2),
        )

        texts = [emb.passage_prefix + t for t in captured]
        t0 = time.perf_counter()
        emb._model.encode(texts, batch_size=emb.batch_size, normalize_embeddings=True)
        t_raw = time.perf_counter() - t0
        fig.update(
            raw_encode_seconds=round(t_raw, 2),
            raw_encode_chunks_per_s=round(len(texts) / t_raw, 1),
            kb_chunks_per_s=round(first.embedded / t_kb, 1),
            pipeline_efficiency=round(t_raw / t_kb, 3),
        )
        print(json.dumps(fig), file=sys.stderr, flush=True)  # the long part's figures, kept

        t0 = time.perf_counter()
        noop = base.ingest([corpus])
        t_noop = time.perf_counter() - t0
        fig.update(
            noop_seconds=round(t_noop, 3),
            noop_embedded=noop.embedded,
            noop_fraction=round(t_noop / t_kb, 4),
        )

        rkey = str(corpus.resolve())
        rows = base.index.manifest.files(rkey)
        multi = sorted((len(base.index.manifest.chunks_of(rkey, p)), p) for (_, p) in rows)[-1][1]
        before = {c.hash for c in base.index.manifest.chunks_of(rkey, multi)}
        note = corpus / multi
        text = note.read_text(encoding="utf-8")
        lines = text.split("\n")
        idx = max(
            i
            for i, ln in enumerate(lines)
            if len(ln.split()) > 6 and not ln.startswith(("#", "|", "-"))
        )
        lines[idx] = lines[idx] + " This sentence was added by the benchmark."
        note.write_text("\n".join(lines), encoding="utf-8")
        edit = base.ingest([corpus])
        after = {c.hash for c in base.index.manifest.chunks_of(rkey, multi)}
        fig.update(
            edit_note=multi,
            edit_note_chunks=len(after),
            edit_changed_chunks=len(after - before),
            edit_embedded=edit.embedded,
            edit_updated=edit.updated,
        )

        src = corpus / multi
        src.rename(src.with_name("renamed-by-benchmark.md"))
        mv = base.ingest([corpus])
        fig.update(rename_moved=mv.moved, rename_embedded=mv.embedded)
        fig["verify_ok"] = base.verify().ok

    if not args.skip_naive:
        t_naive, n_naive, texts_naive = naive_llama_index(args.corpus, emb._model, work)
        toks = emb.count_tokens(texts_naive)
        cap = emb.max_text_tokens
        fig.update(
            naive_seconds=round(t_naive, 2),
            naive_chunks=n_naive,
            kb_speedup_vs_naive=round(t_naive / t_kb, 2),
            naive_text_embedded_share=round(sum(min(n, cap) for n in toks) / max(1, sum(toks)), 3),
            naive_chunks_truncated=sum(1 for n in toks if n > cap),
        )
        t_fair, n_fair, _ = naive_llama_index(
            args.corpus, emb._model, work, "fair", cap, emb.count_tokens
        )
        fig.update(
            fair_llama_index_seconds=round(t_fair, 2),
            fair_llama_index_chunks=n_fair,
            kb_speedup_vs_fair_llama_index=round(t_fair / t_kb, 2),
        )

    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(fig, indent=2))
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
