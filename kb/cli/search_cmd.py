"""`kb search`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from kb.cli.common import (
    FolderOpt,
    NowOpt,
    SinceOpt,
    TagOpt,
    UntilOpt,
    dated,
    day,
    filters,
    handled,
    join_query,
    out,
    print_json,
)


def register(app: typer.Typer) -> None:
    app.command()(search)


def search(
    query: Annotated[
        list[str],
        typer.Argument(
            help="What to look for, in your own words (quotes optional).",
            metavar="QUERY",
            show_default=False,
        ),
    ],
    k: Annotated[
        int, typer.Option("-k", help="Number of results.", min=1, max=200, metavar="N")
    ] = 8,
    json_: Annotated[bool, typer.Option("--json", help="Print hits as a JSON list.")] = False,
    folder: FolderOpt = None,
    tag: TagOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    now: NowOpt = None,
) -> None:
    """Search your notes (best first by relevance; each hit with its note, lines and date)."""
    from kb.knowledge import KnowledgeBase

    with handled():
        text = join_query(query)
        chosen = filters(folder, tag, since, until)
        with KnowledgeBase() as base:
            hits = base.search(text, k=k, filters=chosen or None, now=day(now))
    if json_:
        print_json(
            [
                {
                    "path": h.path,
                    "heading": h.heading,
                    "start_line": h.start_line,
                    "end_line": h.end_line,
                    "score": h.score,
                    "relevance": h.relevance,
                    "date": h.date,
                    "date_source": h.span.date_source,
                    "text": h.text,
                }
                for h in hits
            ]
        )
        return
    if not hits:
        out.print("no results (is anything indexed? see `kb status`)")
        return
    for i, h in enumerate(hits, 1):
        out.print(
            f"[bold cyan]{i}.[/] [bold]{escape(h.path)}:{h.start_line}[/]  "
            f"[dim]{escape(h.heading)}[/]  "
            f"[green]relevance {h.relevance:.2f}[/]{dated(h.span)}",
            highlight=False,
        )
        snippet = " ".join(h.text.split())
        out.print(f"   {escape(snippet[:240])}{'…' if len(snippet) > 240 else ''}", highlight=False)
