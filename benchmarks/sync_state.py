"""Run the stateful sync property test (tests/test_sync_state.py) long, and report what it did.

    python benchmarks/sync_state.py --examples 400 --steps 60

CI runs the same machine briefly (12 examples × 30 steps). Prints steps, syncs and injected crashes,
and the falsifying sequence if hypothesis finds one (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    os.environ["KB_STATE_EXAMPLES"] = str(args.examples)
    os.environ["KB_STATE_STEPS"] = str(args.steps)
    sys.path.insert(0, str(ROOT))
    import pytest

    t0 = time.perf_counter()
    rc = pytest.main(["-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_sync_state.py")])
    from tests.test_sync_state import TOTALS

    print(
        f"stateful sync test: {args.examples} examples × up to {args.steps} steps → "
        f"{TOTALS['steps']} steps, "
        f"{TOTALS['syncs']} completed syncs, {TOTALS['crashes']} injected crashes, "
        f"{time.perf_counter() - t0:.0f} s; result: "
        f"{'no failure found' if rc == 0 else 'FAILED (see above)'}"
    )
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
