"""`kb ingest`, `kb status`, `kb forget`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kb.cli.common import ProgressRenderer, err, handled, out, print_json
from kb.errors import VerifyError


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(status)
    app.command()(forget)


def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Note folders. Default: every folder indexed before."),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
    embed_model: Annotated[
        str | None, typer.Option(help="Embedding model (overrides KB_EMBED_MODEL).")
    ] = None,
) -> None:
    """Index note folders incrementally: only new or changed text is embedded."""
    from kb.knowledge import KnowledgeBase

    with (
        handled(),
        KnowledgeBase(embed_model=embed_model) as base,
        ProgressRenderer(enabled=True) as bar,
    ):
        report = base.ingest([str(p) for p in paths] if paths else None, progress=bar)
    if json_:
        print_json(report.as_dict())
        return
    out.print(
        f"[bold]{report.added}[/] added, [bold]{report.updated}[/] updated, {report.unchanged} "
        "unchanged, "
        f"{report.moved} moved, {report.deleted} deleted, {report.skipped} skipped, "
        f"{report.failed} failed — "
        f"{report.embedded} chunks embedded, {report.reused} vectors reused, in "
        f"{report.seconds:.1f}s",
        highlight=False,
    )
    for p in report.problems:
        err.print(
            f"[yellow]skipped:[/] {escape(p['path'])}: {escape(p['reason'])}", highlight=False
        )


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def status(
    json_: Annotated[bool, typer.Option("--json", help="Print status as JSON.")] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Compare index and disk; exit non-zero on any "
            "missing, orphan or duplicate chunk or unsynced file.",
        ),
    ] = False,
) -> None:
    """Show what is indexed: folders, files by status, chunks, model, store size, problems."""
    from kb.knowledge import KnowledgeBase

    with handled(), KnowledgeBase() as base:
        report = (
            base.verify(lambda m: err.print(f"[cyan]note:[/] {escape(m)}", highlight=False))
            if verify
            else None
        )
        info = base.status().as_dict()  # after verify: it may have waited for the daemon to write
        if json_:
            if report is not None:
                info["verify"] = report.as_dict()
            print_json(info)
        else:
            _render_status(info)
            if report is not None:
                _render_verify(report)
        if report is not None and not report.ok:
            raise VerifyError(
                f"index and disk disagree: {len(report.missing)} missing, {len(report.orphans)} "
                "orphan, "
                f"{len(report.duplicates)} duplicate, {len(report.stale)} unsynced",
                "run `kb ingest` to re-sync (it repairs interrupted writes)",
            )


def _render_status(info: dict) -> None:
    out.print(f"[bold]home[/]   {escape(info['home'])}", highlight=False)
    out.print(
        f"[bold]model[/]  {escape(info['model'])}"
        + (f"  [dim](embedded by {escape(info['embed_url'])})[/]" if info.get("embed_url") else ""),
        highlight=False,
    )
    if info.get("vector_store", "").startswith(("http://", "https://")):
        out.print(
            f"[bold]vectors[/]  Chroma server {escape(info['vector_store'])} (manifest and BM25 in "
            f"{escape(info['home'])})",
            highlight=False,
        )
    if info["model"] != info["configured_model"]:
        out.print(
            f"[yellow]configured model differs:[/] {escape(info['configured_model'])} "
            "(run `kb ingest` to re-embed)",
            highlight=False,
        )
    files = info["files"]
    out.print(
        f"[bold]files[/]  {files.get('indexed', 0)} indexed, {files.get('skipped', 0)} skipped, "
        f"{files.get('failed', 0)} failed · [bold]chunks[/] {info['chunks']} · "
        f"[bold]store[/] {info['store_bytes'] / 2**20:.1f} MiB · [bold]last sync[/] "
        f"{_ago(info['last_sync'])}",
        highlight=False,
    )
    if info["roots"]:
        table = Table("root", "indexed", "skipped", "failed", "last sync", box=None)
        for r in info["roots"]:
            f = r["files"]
            name = escape(r["root"]) + ("" if r["exists"] else "  [red](missing)[/]")
            table.add_row(
                name,
                str(f.get("indexed", 0)),
                str(f.get("skipped", 0)),
                str(f.get("failed", 0)),
                _ago(r["last_sync"]),
            )
        out.print(table)
        for r in info["roots"]:
            if r.get("excluded"):
                shown = ", ".join(r["excluded"][:10]) + (" …" if len(r["excluded"]) > 10 else "")
                out.print(
                    f"[dim]kept out of {escape(r['root'])} by `kb forget`: {escape(shown)} "
                    "(`kb ingest` on one of them brings it back)[/]",
                    highlight=False,
                )
    else:
        out.print("no folders indexed yet — run `kb ingest PATH`")
    _render_daemon(info["daemon"])
    if info["interrupted_writes"]:
        out.print(
            "[yellow]an interrupted write is pending repair; the next `kb ingest` fixes it[/]"
        )
    for p in info["problems"]:
        out.print(
            f"[yellow]{p['status']}:[/] {escape(p['path'])}: {escape(p['reason'] or '')}",
            highlight=False,
        )
    for w in info.get("warnings", []):
        out.print(
            f"[yellow]warning:[/] {escape(w['message'])} — fix: {escape(w['remedy'])}",
            highlight=False,
        )


def _render_daemon(d: dict) -> None:
    if not d.get("running"):
        out.print(f"[bold]daemon[/] down — {escape(d.get('note', ''))}", highlight=False)
        return
    ev = d.get("last_event") or {}
    last = (
        escape(f"{ev.get('kind')} {ev.get('path')} at {_ago(ev.get('time'))}") if ev else "none yet"
    )
    kinds = ", ".join(f"{k} ({v})" for k, v in d["roots"].items())
    out.print(
        f"[bold]daemon[/] [green]up[/] pid {d['pid']} on {d['endpoint']} · queue {d['queue']}"
        f"{' · busy: ' + escape(d['busy']) if d.get('busy') else ''} · last event: {last}",
        highlight=False,
    )
    out.print(f"       watching {escape(kinds)} · log {escape(d['log'])}", highlight=False)
    err = d.get("last_error")
    if err:
        tail = (
            f" [green](resolved {_ago(err['resolved'])})[/]"
            if err.get("resolved")
            else (f" — fix: {escape(err['remedy'])}" if err.get("remedy") else "")
        )
        out.print(
            f"[red]       last error[/] {_ago(err['time'])}: {escape(err['message'])}{tail}",
            highlight=False,
        )
    for w in d.get("warnings", []):
        out.print(f"[yellow]       warning:[/] {escape(w)}", highlight=False)


def _render_verify(rep) -> None:
    state = "[green]ok[/]" if rep.ok else "[red]problems found[/]"
    out.print(
        f"[bold]verify[/] {state}: {rep.chunks} chunks, {rep.vectors} vectors, {len(rep.missing)} "
        "missing, "
        f"{len(rep.orphans)} orphan, {len(rep.duplicates)} duplicate, {len(rep.stale)} unsynced"
    )
    for s in rep.stale[:20]:
        out.print(f"  {s['problem']}: {escape(s['path'])}", highlight=False)


def forget(
    path: Annotated[Path, typer.Argument(help="A folder or file to remove from the index.")],
) -> None:
    """Remove a folder or file from the index (the files on disk are not touched)."""
    from kb.knowledge import KnowledgeBase

    with handled(), KnowledgeBase() as base:
        n = base.forget(path)
    out.print(f"forgot {n} files under {escape(str(path))}", highlight=False)
