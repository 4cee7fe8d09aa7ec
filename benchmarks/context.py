"""Retrieval + budget latency on a large index (goal: p50 ≤ 40 ms in-process for ≥ 10k chunks).

Indexes a corpus (default: the Dendron vault with 128-token chunks, ≈ 10k+ chunks) with the offline
MiniLM, then times `ContextBuilder.build` for a question set with the query vectors computed
beforehand (query embedding is reported separately), next to naive top-10 on the same index.

Usage: python benchmarks/context.py [--corpus DIR] [--questions FILE] [--chunk-tokens 128] [--home
DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "eval"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "dendron" / "vault")
    ap.add_argument(
        "--questions",
        type=Path,
        default=SHARED / "questions" / "xquad-en.jsonl",
        help="only the question texts are used",
    )
    ap.add_argument("--chunk-tokens", type=int, default=128)
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=400)
    args = ap.parse_args()

    from kb.eval.retrieval import load_questions
    from kb.eval.retrieval import percentile as pct
    from kb.index.embed import offline_model_path
    from kb.knowledge import KnowledgeBase

    home = args.home or Path(tempfile.mkdtemp(prefix="kb-ctx-bench-"))
    with KnowledgeBase(
        home=home, embed_model=str(offline_model_path()), ingest={"chunk_tokens": args.chunk_tokens}
    ) as base:
        base.ingest([args.corpus])
        chunks = base.index.manifest.chunk_count()
        qs = [q["question"] for q in load_questions(args.questions)][: args.limit]
        emb = base.embedder()
        t0 = time.perf_counter()
        vecs = [emb.embed_query(q) for q in qs]
        embed_ms = (time.perf_counter() - t0) * 1000 / len(qs)
        cb = base.contexts()
        cb.build(qs[0], "auto", qvec=vecs[0])  # warm caches (background sample, SQLite pages)
        lat, naive, tokens = [], [], []
        for q, v in zip(qs, vecs, strict=True):
            t0 = time.perf_counter()
            ctx = cb.build(q, "auto", qvec=v)
            lat.append((time.perf_counter() - t0) * 1000)
            tokens.append(ctx.tokens)
            t0 = time.perf_counter()
            cb.naive(q, qvec=v)
            naive.append((time.perf_counter() - t0) * 1000)
    print(
        json.dumps(
            {
                "corpus": str(args.corpus),
                "chunks": chunks,
                "questions": len(qs),
                "query_embed_ms_mean": round(embed_ms, 2),
                "retrieval_budget_ms_p50": round(pct(lat, 0.5), 2),
                "retrieval_budget_ms_p95": round(pct(lat, 0.95), 2),
                "naive_top10_ms_p50": round(pct(naive, 0.5), 2),
                "context_tokens_mean": round(statistics.fmean(tokens), 1),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
