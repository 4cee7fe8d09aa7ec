"""What a measurement compares: kb's task modes (``auto`` and each mode) against two baselines —
``naive`` (the top 10 chunks by vector similarity, untrimmed) and ``max`` (as many chunks as fit the
model's window: "everything in"); in answer runs any of them may end in ``+check`` (the served
model's evidence check first)."""

from __future__ import annotations

from kb.errors import UsageError
from kb.settings import Mode

NAIVE = "naive"
MAX = "max"
CHECK = "+check"


def names(answers: bool) -> tuple[str, ...]:
    """Every strategy a run may name (``max`` needs a model's window: answer runs only)."""
    return (*(m.value for m in Mode), NAIVE, *((MAX,) if answers else ()))


def parse(given: list[str], answers: bool) -> list[str]:
    """The strategies named, in order, without repeats; `UsageError` naming the valid ones."""
    valid = names(answers)
    bad = [n for n in given if (n.removesuffix(CHECK) if answers else n) not in valid]
    if bad:
        more = f" (each may end in {CHECK}, e.g. auto{CHECK})" if answers else ""
        raise UsageError(
            f"unknown strategy(s): {', '.join(bad)}", f"choose from {', '.join(valid)}{more}"
        )
    return list(dict.fromkeys(given))
