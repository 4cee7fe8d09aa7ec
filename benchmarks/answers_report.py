"""Tables, paired intervals, speeds and a plot from the reader benchmark's results files.

    python benchmarks/answers_report.py [--results benchmarks/results] [--plot answers.png]
        [--json FILE]

For each set that `benchmarks/answers.py` has run, it reads the run's summary (which answer each
question got under each strategy: ``answers-SET.summary.json``) and the answers themselves
(``answers-SET.jsonl``), and scores them again with the current scoring code (`kb.eval.answers.
summarise`): F1, EM, "contains the gold answer", abstention on unanswerable questions and false
abstention, prompt tokens, time to first token and total time, and each strategy against ``max``
question by question with a 95 % bootstrap interval. Only questions every strategy answered count,
so a set still running is reported on the part that is done. Speeds come from the answers' own
usage and times: prompt tokens ÷ time to first token, answer tokens ÷ the rest of the time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/ingest.py must not shadow the ingest package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
ORDER = ["auto", "naive", "max", "code", "dialog", "think"]


def sets() -> dict[str, tuple[Path, Path]]:
    """The sets and their question files, as `benchmarks/answers.py` runs them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("answers", ROOT / "benchmarks" / "answers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SETS


def load_set(results: Path, name: str) -> dict | None:
    """One set's answers under each strategy, re-scored: None when the set has not run."""
    from kb.eval.answers import summarise
    from kb.eval.retrieval import load_questions

    summary_path = results / f"answers-{name}.summary.json"
    rows_path = results / f"answers-{name}.jsonl"
    if not rows_path.is_file():
        return None
    by_key = {}
    for line in rows_path.read_text(encoding="utf-8").splitlines()[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line torn by a kill
        by_key[row["key"]] = row
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    current = {}
    for a in summary.get("answers", []):  # which answer each (question, strategy) got
        row = by_key.get(a["key"])
        if row is not None:
            current[(a["qid"], a["strategy"])] = {**row, "qid": a["qid"], "strategy": a["strategy"]}
    # answers of a run still going (its summary is written at the end): each row is its asker's;
    # a mode that `auto` chose sent `auto`'s request, so it shares that answer
    for row in by_key.values():
        current.setdefault((row["qid"], row["strategy"]), row)
    for (qid, strategy), row in list(current.items()):
        if strategy == "auto":
            current.setdefault((qid, row["mode"]), {**row, "strategy": row["mode"]})
    # the strategies the run asked for (a mode only `auto` chose, in a run without that mode, is
    # not a column: it would hold only the questions routed to it)
    asked = {a["strategy"] for a in summary.get("answers", [])} | {
        r["strategy"] for r in by_key.values()
    }
    strategies = [s for s in ORDER if s in asked] + sorted(asked - set(ORDER))
    ids = {qid for qid, _ in current}
    complete = {qid for qid in ids if all((qid, s) in current for s in strategies)}
    questions = [q for q in load_questions(sets()[name][0]) if q["id"] in complete]
    if not questions:
        return None
    scored = summarise(current, questions, strategies)
    rows = [current[(q["id"], s)] for q in questions for s in strategies]
    return {
        "questions": len(questions),
        "unanswerable": sum(1 for q in questions if not q.get("evidence")),
        "strategies": scored,
        "speed": speeds(rows),
        "command": summary.get("command", "(running)"),
    }


def speeds(rows: list[dict]) -> dict:
    """Prompt and answer speeds (tokens/s, medians) over the answers the model wrote (kb's own
    abstentions and failed requests have none)."""
    prompt, write = [], []
    for r in rows:
        if r.get("error") or r.get("kb_abstained") or not r.get("ttft_s"):
            continue
        if r.get("prompt_tokens") and r["ttft_s"] > 0:
            prompt.append(r["prompt_tokens"] / r["ttft_s"])
        rest = (r.get("total_s") or 0) - r["ttft_s"]
        if r.get("completion_tokens", 0) > 4 and rest > 0:
            write.append(r["completion_tokens"] / rest)
    med = lambda xs: round(statistics.median(xs), 1) if xs else None  # noqa: E731
    return {"prompt_tok_s": med(prompt), "write_tok_s": med(write), "answers": len(prompt)}


def ci(p: dict | None) -> str:
    if not p or p.get("ci95") is None:
        return "–"
    lo, hi = p["ci95"]
    return f"{p['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def table(name: str, got: dict) -> str:
    s = got["strategies"]
    mx = s.get("max", {})
    lines = [
        f"**{name}** — {got['questions']} questions ({got['unanswerable']} unanswerable)",
        "",
        "| strategy | F1 | EM | contains | abstain (unans.) | false abstain | prompt tokens | "
        "× max | TTFT p50 s | total mean s | × max | F1 − max [95 % CI] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name_, r in s.items():

        def f(v, digits=3):
            return "–" if v is None else f"{v:.{digits}f}"

        tok_ratio = (
            f"{r['prompt_tokens_mean'] / mx['prompt_tokens_mean']:.2f}"
            if mx.get("prompt_tokens_mean") and name_ != "max"
            else "–"
        )
        time_ratio = (
            f"{r['total_s_mean'] / mx['total_s_mean']:.2f}"
            if mx.get("total_s_mean") and r.get("total_s_mean") is not None and name_ != "max"
            else "–"
        )
        lines.append(
            f"| {name_} | {f(r['f1'])} | {f(r['em'])} | {f(r['contains'])} | "
            f"{f(r['abstain_unanswerable'], 2)} | {f(r['false_abstain'], 2)} | "
            f"{f(r['prompt_tokens_mean'], 0)} | {tok_ratio} | {f(r['ttft_s_p50'], 1)} | "
            f"{f(r['total_s_mean'], 1)} | {time_ratio} | "
            f"{ci((r.get('vs_max') or {}).get('f1'))} |"
        )
    sp = got["speed"]
    lines += [
        "",
        f"Speed over its {sp['answers']} model answers: prompt {sp['prompt_tok_s']} tokens/s, "
        f"writing {sp['write_tok_s']} tokens/s (medians).",
    ]
    return "\n".join(lines)


def plot(sets: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.8), squeeze=False)
    for ax, (name, got) in zip(axes[0], sets.items(), strict=True):
        for s, r in got["strategies"].items():
            if r["prompt_tokens_mean"] is None or r["f1"] is None:
                continue
            ax.scatter(r["prompt_tokens_mean"], r["f1"], s=30)
            ax.annotate(s, (r["prompt_tokens_mean"], r["f1"]), fontsize=8, xytext=(4, 3),
                        textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"{name} ({got['questions']} q)", fontsize=10)
        ax.set_xlabel("prompt tokens (mean, log)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("answer F1 (answerable)")
    fig.suptitle("Qwen2.5-Coder-1.5B reader: answer F1 against prompt tokens", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    got = {name: r for name in sets() if (r := load_set(args.results, name)) is not None}
    if not got:
        print(f"no results in {args.results}: run benchmarks/answers.py first", file=sys.stderr)
        return 1
    for name, r in got.items():
        print(table(name, r), end="\n\n")
    held = [
        name
        for name, r in got.items()
        if ((r["strategies"].get("auto", {}).get("vs_max") or {}).get("f1") or {}).get("ci95")
        and r["strategies"]["auto"]["vs_max"]["f1"]["ci95"][0] > 0
    ]
    print(f"auto's F1 above max's with the interval's lower bound above 0: {len(held)} of "
          f"{len(got)} sets ({', '.join(held) or 'none'})")  # fmt: skip
    if args.plot:
        plot(got, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(got, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
