"""Measuring the `auto` router on labelled questions: accuracy and a confusion matrix, for the
examples themselves (leave-one-out: each question routed with itself out of the vote) and for a
held-out set."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from kb.focus.modes import choose_mode
from kb.focus.route import EXAMPLES
from kb.settings import Mode


def measure(path: Path, leave_one_out: bool = False, examples: bool = True) -> dict[str, Any]:
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    matrix: Counter[tuple[str, str]] = Counter()
    misses = []
    for i, r in enumerate(rows):
        got = choose_mode(r["question"], examples=examples, exclude=i if leave_one_out else None)
        matrix[(r["mode"], got.mode)] += 1
        if got.mode != r["mode"]:
            misses.append(
                {"question": r["question"], "want": r["mode"], "got": got.mode, "why": got.reason}
            )
    right = sum(v for (a, b), v in matrix.items() if a == b)
    return {
        "questions": len(rows),
        "accuracy": round(right / max(1, len(rows)), 3),
        "matrix": {
            want: {got: matrix[(want, got)] for got in Mode.tasks()} for want in Mode.tasks()
        },
        "misses": misses,
    }


def report(heldout: Path, dev_sets: tuple[Path, ...] = ()) -> dict[str, Any]:
    """``dev_sets``: question files with a ``mode`` label per question (kb's real-notes dev
    sets)."""
    out = {
        "examples (leave-one-out)": measure(EXAMPLES, leave_one_out=True),
        "examples, rules only": measure(EXAMPLES, examples=False),
        "held-out": measure(heldout),
        "held-out, rules only": measure(heldout, examples=False),
    }
    for path in dev_sets:
        out[f"dev set {path.stem} (labels written with the questions)"] = measure(path)
    return out
