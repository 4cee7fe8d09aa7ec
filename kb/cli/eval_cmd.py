"""`kb eval`: evidence recall and context tokens per mode on a question set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kb.cli.common import err, handled, out, print_json


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)


def eval_(
    questions: Annotated[Path, typer.Argument(help="Questions, one JSON object per line (shared/eval format).")],
    corpus: Annotated[Path, typer.Option("--corpus", help="The notes folder the evidence paths refer to.")],
    modes: Annotated[str, typer.Option(help="Comma-separated: auto,code,dialog,think,naive.")] = "auto,naive",
    json_: Annotated[bool, typer.Option("--json", help='Print {"modes": {...}} as JSON.')] = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    misses: Annotated[Path | None, typer.Option("--misses", help="Write each missed question (JSON lines): what "
                                                "was kept, and where each missing quote's chunk went.",
                                                metavar="FILE")] = None,
) -> None:
    """Index a corpus (into a temporary KB_HOME unless one is set) and measure each mode."""
    from kb.answers.evaluate import evaluate, load_questions

    with handled():
        qs = load_questions(questions)[:limit]
        result = evaluate(qs, corpus, [m.strip() for m in modes.split(",") if m.strip()],
                          progress=lambda m: err.print(f"[dim]{escape(m)}[/]", highlight=False), misses=misses)
    if json_:
        print_json(result)
        return
    table = Table("mode", "recall", "tokens mean", "tokens p90", "unanswerable ≤300", "p50 ms", "p95 ms", box=None)
    for name, m in result["modes"].items():
        table.add_row(name, str(m["evidence_recall"]), str(m["context_tokens_mean"]), str(m["context_tokens_p90"]),
                      str(m["unanswerable_small_share"]), str(m["latency_ms_p50"]), str(m["latency_ms_p95"]))
    out.print(f"{result['questions']} questions · {result['chunks']} chunks · query embedding "
              f"{result['query_embed_ms_mean']} ms each (not in latency)")
    out.print(table)
    cats = sorted({c for m in result["modes"].values() for c in m["by_category"]} - {"-"})
    if cats:  # per-category recall (and tokens) when the question set labels categories
        per = Table("mode", *cats, box=None, title="recall / tokens by category")
        for name, m in result["modes"].items():
            cells = [m["by_category"].get(c, {}) for c in cats]
            per.add_row(name, *(f"{c.get('evidence_recall', '–')} / {c.get('context_tokens_mean', '–')}" if c
                                 else "–" for c in cells))
        out.print(per)
    if misses is not None:
        out.print(f"{result['misses']} misses written to {escape(str(misses))}")
