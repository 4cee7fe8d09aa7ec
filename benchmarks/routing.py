"""Accuracy and confusion matrices of the `auto` router.

    python benchmarks/routing.py [--misses]

Sets: the 170 labelled examples the router votes with (kb/focus/routing.jsonl), measured
leave-one-out, and 44 held-out questions written after the keyword rules were tuned
(tests/data/routing_heldout.jsonl), and the mode labels of kb's real-notes dev sets
(eval/questions/: written with the questions, never voted with).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--misses", action="store_true", help="list every misrouted question")
    args = ap.parse_args()
    from kb.eval.routing import report

    dev = (
        ROOT / "eval" / "questions" / "dendron.jsonl",
        ROOT / "eval" / "questions" / "doka-ru.jsonl",
    )
    for name, r in report(ROOT / "tests" / "data" / "routing_heldout.jsonl", dev).items():
        print(f"\n{name}: accuracy {r['accuracy']} on {r['questions']} questions")
        print("  labelled \\ routed   code  dialog  think")
        for want, row in r["matrix"].items():
            print(f"  {want:<18} {row['code']:>5} {row['dialog']:>7} {row['think']:>6}")
        if args.misses:
            for m in r["misses"]:
                print(f"    {m['want']} → {m['got']}: {m['question']}  ({m['why']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
