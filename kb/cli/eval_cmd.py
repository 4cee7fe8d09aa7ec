"""`kb eval`: evidence recall and context tokens per mode on a question set; with `--answers`, what
the LLM answers with each context strategy (F1, EM, abstention, citations, tokens, times)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kb.cli.common import err, handled, out, print_json


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)


def eval_(
    questions: Annotated[
        Path, typer.Argument(help="Questions, one JSON object per line (the format: docs/eval.md).")
    ],
    corpus: Annotated[
        Path, typer.Option("--corpus", help="The notes folder the evidence paths refer to.")
    ],
    modes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: auto,code,dialog,think,naive (and with "
            "--answers: max, and NAME+check). Default: auto,naive "
            "(--answers: auto,naive,max)."
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N questions (after --sample).")
    ] = None,
    sample: Annotated[
        int | None, typer.Option(help="A random sample of N questions (see --seed).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --sample.")] = 0,
    misses: Annotated[
        Path | None,
        typer.Option(
            "--misses",
            help="Write each missed question (JSON lines): what "
            "was kept, and where each missing quote's chunk went.",
            metavar="FILE",
        ),
    ] = None,
    answers: Annotated[
        bool,
        typer.Option(
            "--answers",
            help="Ask the configured LLM (KB_LLM_*) with each strategy and score its answers.",
        ),
    ] = False,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="With --answers: the run's results file "
            "(default: one per corpus and model under KB_HOME/eval/); answers "
            "are kept by request, so an interrupted or re-tuned run asks only "
            "what is new.",
            metavar="FILE",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="With --answers: write answer F1 against prompt "
            "tokens as a PNG (needs kb-notes\\[plot]: pip install 'kb-notes\\[plot]').",
            metavar="FILE",
        ),
    ] = None,
) -> None:
    """Index a corpus (into a temporary KB_HOME unless one is set) and measure each mode."""
    from kb.errors import UsageError
    from kb.knowledge import evaluate, load_questions, sample_questions

    def say(m: str) -> None:
        err.print(f"[dim]{escape(m)}[/]", highlight=False)

    with handled():
        qs = sample_questions(load_questions(questions), sample, seed)[:limit]
        if not answers and (results or plot):
            raise UsageError("--results and --plot go with --answers", "add --answers")
        names = [
            m.strip()
            for m in (modes or ("auto,naive,max" if answers else "auto,naive")).split(",")
            if m.strip()
        ]
        if answers:
            from kb.cli.plot import plot_answers, require_matplotlib

            if plot is not None:
                require_matplotlib()
            result = _answers(qs, corpus, names, results, say)
            if plot is not None:
                result["plot"] = str(plot_answers(result, plot))
        else:
            result = evaluate(qs, corpus, names, progress=say, misses=misses)
    if json_:
        print_json(result)
    elif answers:
        _print_answers(result)
    else:
        _print_recall(result, misses)
    if answers:
        with handled():
            _fail_on_errors(result)


def _fail_on_errors(result: dict[str, Any]) -> None:
    """Answers the server failed on are scored 0 above, which skews the comparison: say so and exit
    non-zero."""
    from kb.errors import LLMError

    failed = {n: s for n, s in result["strategies"].items() if s["errors"]}
    if failed:
        name, first = next(iter(failed.items()))
        counts = ", ".join(f"{n} {s['errors']}/{s['questions']}" for n, s in failed.items())
        raise LLMError(
            f"the server failed on some requests ({counts}; scored 0 above), e.g. {name}: "
            f"{first['first_error']}",
            "fix the cause and run the same command again: stored answers "
            "are reused and only the failed requests are asked again",
        )


def _answers(qs, corpus: Path, names: list[str], results: Path | None, say) -> dict[str, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from kb.knowledge import evaluate_answers
    from kb.settings import load_settings

    results_dir = load_settings().data_dir() / "eval"
    if not err.is_terminal:  # a log, not a screen: a line at every tenth, with the ETA
        return evaluate_answers(
            qs, corpus, names, results_dir, results=results, progress=say, tick=_LogTicks(say)
        )
    with Progress(
        TextColumn("answering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("answers", total=None)

        def tick(
            done: int, total: int, asked: int
        ) -> None:  # answers read back are not work: off the bar
            bar.update(task, completed=asked, total=total - (done - asked))

        return evaluate_answers(
            qs, corpus, names, results_dir, results=results, progress=say, tick=tick
        )


class _LogTicks:
    """A progress line at every tenth of the run; the ETA comes from answers asked, not those read
    back."""

    def __init__(self, say, clock=None) -> None:
        import time

        self.say, self.clock = say, clock or time.monotonic
        self.start: tuple[float, int] | None = None
        self.next = 0

    def __call__(self, done: int, total: int, asked: int) -> None:
        if self.start is None or (
            asked == 0 and done
        ):  # the clock starts at the first answer really asked
            self.start = (self.clock(), asked)
        if done < self.next and done != total:
            return
        self.next = done + max(1, total // 10)
        t0, a0 = self.start
        rate = (asked - a0) / max(1e-9, self.clock() - t0)
        eta = ""
        if rate and done < total:
            left = int((total - done) / rate)
            eta = f", ETA {left // 60}m{left % 60:02d}s"
        back = f" ({done - asked} read back)" if done > asked else ""
        self.say(f"answered {done}/{total}{back}{eta}")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _pair(metric: str, p: dict[str, Any]) -> str:
    lo, hi = p["ci95"]
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "not separable on this sample"
    return (
        f"{metric} {p['diff']:+.3f} per question (95% CI {lo:+.3f} … {hi:+.3f}: {verdict}); "
        f"higher on {p['wins']}, lower on {p['losses']}, equal on {p['ties']}"
    )


def _print_answers(result: dict[str, Any]) -> None:
    table = Table(
        "strategy",
        "F1",
        "EM",
        "has",
        "abst✓",
        "abst✗",
        "F1all",
        "cite",
        "tokens",
        "ttft",
        "total",
        box=None,
        padding=(0, 1),
    )
    for name, s in result["strategies"].items():
        table.add_row(
            name,
            _fmt(s["f1"]),
            _fmt(s["em"]),
            _fmt(s.get("contains"), 2),
            _fmt(s["abstain_unanswerable"], 2),
            _fmt(s["false_abstain"], 2),
            _fmt(s["f1_overall"]),
            _fmt(s["citation_precision"], 2),
            _fmt(s["prompt_tokens_mean"], 0),
            _fmt(s["ttft_s_p50"], 2),
            _fmt(s["total_s_p50"], 2),
        )
    first = next(iter(result["strategies"].values()), {})
    out.print(
        f"{result['questions']} questions ({first.get('answerable', 0)} answerable, "
        f"{first.get('unanswerable', 0)} unanswerable) · {escape(str(result['model']))} · context "
        "length "
        f"{result['max_model_len']}",
        highlight=False,
    )
    out.print(table)
    out.print(
        "[dim]F1, EM: answerable questions · has: answers holding a gold answer (number words as "
        'digits) · abst✓: unanswerable ones answered "not in your notes" · abst✗: answerable ones '
        "wrongly abstained on · F1all: unanswerable scores 1 when it abstains · cite: citation "
        "precision · tokens: prompt tokens per question (server usage; evidence check included) · "
        "ttft, total: p50 seconds[/]"
    )
    for name, s in result["strategies"].items():
        p = s.get("paired")
        if p and p["diff"] is not None:  # per question, F1all: is the first strategy better?
            out.print(
                f"{escape(p['against'])} vs {escape(name)}: {_pair('F1all', p)}", highlight=False
            )
    for name, s in result["strategies"].items():
        vs = s.get("vs_max")
        if vs and vs["f1"]["diff"] is not None:  # each strategy against "everything in"
            out.print(f"{escape(name)} vs max: {_pair('F1', vs['f1'])}", highlight=False)
    out.print(f"results: {escape(result['results_file'])}", highlight=False)
    if result.get("plot"):
        out.print(f"plot: {escape(result['plot'])}", highlight=False)


def _print_recall(result: dict[str, Any], misses: Path | None) -> None:
    table = Table(
        "mode",
        "recall",
        "tokens mean",
        "tokens p90",
        "unanswerable ≤300",
        "p50 ms",
        "p95 ms",
        box=None,
    )
    for name, m in result["modes"].items():
        table.add_row(
            name,
            str(m["evidence_recall"]),
            str(m["context_tokens_mean"]),
            str(m["context_tokens_p90"]),
            str(m["unanswerable_small_share"]),
            str(m["latency_ms_p50"]),
            str(m["latency_ms_p95"]),
        )
    out.print(
        f"{result['questions']} questions · {result['chunks']} chunks · query embedding "
        f"{result['query_embed_ms_mean']} ms each (not in latency)"
    )
    out.print(table)
    cats = sorted({c for m in result["modes"].values() for c in m["by_category"]} - {"-"})
    if cats:  # per-category recall (and tokens) when the question set labels categories
        per = Table("mode", *cats, box=None, title="recall / tokens by category")
        for name, m in result["modes"].items():
            cells = [m["by_category"].get(c, {}) for c in cats]
            per.add_row(
                name,
                *(
                    f"{c.get('evidence_recall', '–')} / {c.get('context_tokens_mean', '–')}"
                    if c
                    else "–"
                    for c in cells
                ),
            )
        out.print(per)
    if misses is not None:
        out.print(f"{result['misses']} misses written to {escape(str(misses))}")
