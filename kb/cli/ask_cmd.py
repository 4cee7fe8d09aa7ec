"""`kb ask` (with `--dry-run`: the focused context and the exact messages, no LLM needed)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kb.cli.common import (
    FolderOpt,
    NowOpt,
    SinceOpt,
    TagOpt,
    UntilOpt,
    day,
    err,
    handled,
    join_query,
    out,
    print_json,
)
from kb.cli.common import filters as make_filters

MODE_HELP = "Task mode: auto (pick from the question), code, dialog or think."


def register(app: typer.Typer) -> None:
    app.command()(ask)
    app.command()(chat)


def chat(
    mode: Annotated[str, typer.Option("--mode", "-m", help=MODE_HELP, metavar="MODE")] = "auto",
    show_thinking: Annotated[
        bool, typer.Option("--show-thinking", help="Stream the model's reasoning too.")
    ] = False,
    now: NowOpt = None,
) -> None:
    """Talk with your notes (follow-ups are understood; empty line or Ctrl-D to quit)."""
    from kb.knowledge import KnowledgeBase

    with handled(), KnowledgeBase() as base:
        session = base.chat(mode, now=day(now))
        while True:
            try:
                question = input("you › ").strip()
            except EOFError:
                break
            if not question:
                break

            def on_delta(d) -> None:
                if d.reasoning and show_thinking:
                    err.print(d.reasoning, end="", style="dim", markup=False, highlight=False)
                if d.text:
                    out.print(d.text, end="", markup=False, highlight=False)

            out.print("kb › ", end="")
            ans = session.ask(question, on_delta=on_delta)
            if ans.rewritten:  # what the follow-up was searched as: inspectable, every turn
                err.print(f"[dim](searched as: {escape(ans.rewritten)})[/]", highlight=False)
            out.print()
            render_sources(ans)
            if ans.cut:  # the conversation goes on; this answer is marked
                err.print(f"[bold red]cut:[/] {escape(ans.cut)}", highlight=False)


def ask(
    question: Annotated[
        list[str],
        typer.Argument(
            help="Your question, in your own words (Russian or English; quotes optional).",
            metavar="QUESTION",
            show_default=False,
        ),
    ],
    mode: Annotated[str, typer.Option("--mode", "-m", help=MODE_HELP, metavar="MODE")] = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the context and messages; don't call the LLM.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    show_thinking: Annotated[
        bool, typer.Option("--show-thinking", help="Stream the model's reasoning too.")
    ] = False,
    folder: FolderOpt = None,
    tag: TagOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    now: NowOpt = None,
    all_: Annotated[
        bool,
        typer.Option(
            "--all", help="With --dry-run: list every dropped candidate, not just the best few."
        ),
    ] = False,
) -> None:
    """Answer a question from your notes (`--dry-run` shows exactly what would be sent)."""
    from kb.knowledge import KnowledgeBase
    from kb.settings import Mode

    with handled(), KnowledgeBase() as base:
        question = join_query(question)
        mode = Mode.parse(mode)
        filters = make_filters(folder, tag, since, until)
        when = day(now)
        if not dry_run:
            _answer(base, question, mode, filters, json_, show_thinking, when)
            return
        plan = base.plan(question, mode, filters, when)
    if json_:
        print_json(
            {
                **plan.context.as_dict(),
                "prompt_tokens": plan.prompt_tokens,
                "messages": plan.messages,
            }
        )
        return
    render_context(plan.context, plan.prompt_tokens, show_all=all_)
    out.rule("messages that would be sent")
    for m in plan.messages:
        out.print(f"[bold magenta]{m['role']}[/]", highlight=False)
        out.print(m["content"], markup=False, highlight=False)


def _answer(base, question: str, mode: str, filters, json_: bool, show_thinking: bool, now) -> None:
    state = {"thinking": False}

    def on_delta(d) -> None:
        if json_:
            return
        if d.reasoning and show_thinking:
            if not state["thinking"]:
                err.print("[dim]thinking…[/]")
                state["thinking"] = True
            err.print(d.reasoning, end="", style="dim", markup=False, highlight=False)
        if d.text:
            if state["thinking"]:
                err.print()
                state["thinking"] = False
            out.print(d.text, end="", markup=False, highlight=False)

    ans = base.ask(question, mode, filters, on_delta=on_delta, now=now)
    if json_:
        print_json(ans.as_dict())
    else:
        out.print()
        render_sources(ans)
    if ans.cut:  # what came was shown; it is not a complete answer: one line, exit 9
        from kb.errors import AnswerCutError

        raise AnswerCutError(ans.cut, ans.cut_remedy)


def render_abstention(ans) -> None:
    """ "Not in your notes" stands apart from an answer: kb's own (no model call) or the model's."""
    if not ans.abstained:
        return
    if ans.by_kb:  # kb abstained itself: nothing was streamed
        out.print(f"[bold yellow]{escape(ans.text)}[/]", highlight=False)
    err.print(f"[yellow]abstained:[/] {escape(ans.abstain_reason)}", highlight=False)
    if ans.check and ans.check.get("keep") == []:
        err.print(
            "[dim]tip: the evidence check is a mode setting "
            "(KB_MODES__<MODE>__EVIDENCE_CHECK=false turns "
            "it off); `kb ask --dry-run` shows what was retrieved[/]"
        )
    elif not ans.context.passages:
        err.print(
            "[dim]tip: `kb ask --dry-run` shows the candidates and why each was dropped; `kb "
            "search` shows "
            "the nearest passages regardless of relevance[/]"
        )


def render_sources(ans) -> None:
    render_abstention(ans)
    if ans.by_kb or ans.cut:  # nothing was asked, or what came is not an answer to source
        return
    u = ans.usage
    err.print(
        f"[dim]mode {ans.mode} ({escape(ans.mode_reason)}) · context {ans.context.tokens} tokens "
        "in "
        f"{len(ans.context.passages)} passages · prompt {u.prompt_tokens}, completion "
        f"{u.completion_tokens}"
        f"{f', reasoning {u.reasoning_tokens}' if u.reasoning_tokens else ''} tokens ({u.source}) "
        "· "
        f"first token {ans.timings.get('ttft_s')}s, total {ans.timings.get('total_s')}s[/]",
        highlight=False,
    )
    if ans.check:
        c = ans.check
        kept = c["keep"] if c["keep"] is not None else "all (its reply was not readable)"
        err.print(
            f"[dim]evidence check: kept passages {kept} · {c['usage']['prompt_tokens']} + "
            f"{c['usage']['completion_tokens']} tokens · {c['seconds']}s[/]",
            highlight=False,
        )
    if ans.citations:
        out.print("[bold]sources[/]")
        for c in ans.citations:
            link = f"  {c.link}" if c.link else ""
            out.print(
                f"  [{c.n}] {c.path}:{c.start_line}  {c.heading}{link}",
                markup=False,
                highlight=False,
            )
    elif ans.context.passages:
        out.print("[bold]context used[/] (the answer cites none)")
        for p in ans.context.passages:
            out.print(
                f"  [{p.n}] {p.span.file}:{p.span.start_line}  {p.span.heading}",
                markup=False,
                highlight=False,
            )
    if ans.invalid_citations:
        err.print(
            f"[yellow]note:[/] the answer cites {ans.invalid_citations}, which were not in the "
            "context"
        )


def date_cell(span) -> str:
    """The date a passage is dated by, and "(modified)" when it is only its file's mtime: what
    --since/--until and a question's dates filter on."""
    if not span.date:
        return ""
    return f"{span.date} (modified)" if span.date_source == "modified" else span.date


def render_context(ctx, prompt_tokens: int, show_all: bool = False, best_dropped: int = 5) -> None:
    """Kept passages, then the few best dropped candidates with their reason (``show_all``: every
    one)."""
    out.print(f"[bold]mode[/] {ctx.mode} — {escape(ctx.mode_reason)}", highlight=False)
    out.print(
        f"[bold]context[/] {ctx.tokens} / {ctx.budget} tokens ({ctx.counter}) in "
        f"{len(ctx.passages)} "
        f"passages · prompt {prompt_tokens} tokens",
        highlight=False,
    )
    if ctx.dates:
        out.print(f"[bold]dates[/] {escape(ctx.dates['label'][len('dates ') :])}", highlight=False)
    if not ctx.passages and ctx.empty_reason:
        out.print(f"[yellow]{escape(ctx.empty_reason)}: the context is empty[/]", highlight=False)
    elif not ctx.passages:
        out.print("[yellow]nothing in your notes looks relevant: the context is empty[/]")
    table = Table("", "note", "lines", "date", "score", "tokens", "decision", box=None)
    for p in ctx.passages:
        table.add_row(
            f"\\[{p.n}]",
            escape(f"{p.span.path} › {p.span.heading}"),
            f"{p.span.start_line}-{p.span.end_line}",
            date_cell(p.span),
            f"{p.score:.2f}",
            str(p.tokens),
            "[green]kept[/]" + (f" (−{p.pruned_tokens} pruned)" if p.pruned_tokens else ""),
        )
    dropped = sorted(
        (d for d in ctx.dropped if not d.reason.startswith("sentences pruned")),
        key=lambda d: -d.score,
    )
    shown = dropped if show_all else dropped[:best_dropped]
    for d in shown:
        table.add_row(
            "",
            escape(f"{d.span.path} › {d.span.heading}"),
            f"{d.span.start_line}-{d.span.end_line}",
            date_cell(d.span),
            f"{d.score:.2f}",
            str(d.tokens or ""),
            f"[dim]dropped: {escape(d.reason)}[/]",
        )
    out.print(table)
    if len(dropped) > len(shown):
        out.print(
            f"[dim]… and {len(dropped) - len(shown)} more dropped candidates (--all lists them)[/]"
        )
    if not ctx.passages and ctx.dropped:
        err.print("[dim]tip: `kb search` shows the nearest passages regardless of relevance[/]")
