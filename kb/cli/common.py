"""Shared CLI plumbing: consoles, error rendering, progress rendering."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from kb.errors import KbError

if TYPE_CHECKING:
    from kb.knowledge import SyncEvent

#: the filters `kb search` and `kb ask` take alike (MCP's search and context take the same)
FolderOpt = Annotated[
    str | None,
    typer.Option(
        help="Only notes under this folder (relative to a notes folder).", metavar="FOLDER"
    ),
]
TagOpt = Annotated[str | None, typer.Option(help="Only notes with this tag.", metavar="TAG")]
_DATED = (
    "A passage's date is its note's own (frontmatter, a date in the file name, a date heading "
    "above it), else its file's modification day."
)
SinceOpt = Annotated[
    str | None,
    typer.Option(help=f"Only passages dated on/after DATE (YYYY-MM-DD). {_DATED}", metavar="DATE"),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(help=f"Only passages dated on/before DATE (YYYY-MM-DD). {_DATED}", metavar="DATE"),
]


NowOpt = Annotated[
    str | None,
    typer.Option(
        help='The day the question\'s dates are read against ("last week" is the week before it), '
        "YYYY-MM-DD; default KB_NOW, else today.",
        metavar="DATE",
    ),
]


def day(value: str | None):
    """--now as a date (a usage error when it is not YYYY-MM-DD)."""
    if value is None:
        return None
    import datetime as dt

    from kb.errors import UsageError

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--now {value!r} is not a date", "write it as YYYY-MM-DD") from None


def filters(folder: str | None, tag: str | None, since: str | None, until: str | None):
    """The `Filters` of the command line's options (dates checked: a bad one is a usage error)."""
    from kb.knowledge import Filters

    return Filters.parse(folder=folder, tag=tag, since=since, until=until)


def dated(span: Any) -> str:
    """`` · 2024-11-05`` (`` · 2024-11-05 modified`` for a file's mtime), for a hit or a row."""
    if not getattr(span, "date", None):
        return ""
    how = " modified" if span.date_source == "modified" else ""
    return f"  [dim]{span.date}{how}[/]"


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def handled() -> Iterator[None]:
    """Turn expected failures (`KbError`) into one readable line and a non-zero exit code."""
    try:
        yield
    except KbError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        if exc.remedy:
            err.print(f"[yellow]  fix:[/] {escape(exc.remedy)}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def join_query(words: list[str] | str) -> str:
    """Several words are one query (`kb search how many logs`); an empty one is refused (exit 2)."""
    from kb.errors import UsageError

    text = " ".join(words if isinstance(words, list) else [words]).strip()
    if not text:
        raise UsageError(
            "the query is empty", 'say what to look for, e.g. `kb search "rotate the logs"`'
        )
    return text


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


class ProgressRenderer:
    """Renders `SyncEvent`s as a rich progress bar on stderr (files, chunks, embeddings/s)."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.enabled = enabled and err.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "files · {task.fields[chunks]} chunks · {task.fields[embedded]} embedded · "
                "{task.fields[rate]:.0f}/s"
            ),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not self.enabled,
        )
        self.task = None
        self._t0 = 0.0
        self._offset = 0  # files of roots already synced (one scan event per root)

    def __enter__(self) -> ProgressRenderer:
        import time

        self._t0 = time.perf_counter()
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: SyncEvent) -> None:
        import time

        if event.stage == "notice":
            err.print(f"[cyan]note:[/] {escape(event.message)}", highlight=False)
            return
        if self.task is None:
            self.task = self.progress.add_task(
                "indexing", total=None, chunks=0, embedded=0, rate=0.0
            )
        fields: dict[str, Any] = {}
        if event.stage == "scan":
            self._offset = int(self.progress.tasks[0].total or 0)
            self.progress.update(self.task, total=self._offset + event.files_total)
            self.progress.update(
                self.task, description=event.message.split(" in ")[-1][-40:] or "indexing"
            )
            return
        if event.stage in ("write", "done") or (event.stage == "embed" and event.files_total):
            self.progress.update(self.task, completed=self._offset + event.files_done)
            fields["chunks"] = event.chunks
        if event.stage in ("embed", "write", "done"):
            elapsed = max(1e-6, time.perf_counter() - self._t0)
            fields["embedded"] = event.embedded
            fields["rate"] = event.embedded / elapsed
        self.progress.update(self.task, **fields)
