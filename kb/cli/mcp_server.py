"""`kb mcp`: the notes for assistants and agents, over the Model Context Protocol (the official
`mcp` SDK).

Tools: ``search``, ``context`` (the focused context kb would send — for agents with their own
model), ``ask`` (only when an LLM server answers) and ``status``. Resources: every indexed note as
``kb://<root>/<path>``, read-only, nothing outside the roots. Everything goes through
`KnowledgeBase`, so a running `kb watch` answers warm and otherwise the index is opened for reading;
the server never writes to the index. Results are bounded by ``KB_MCP__MAX_TOKENS`` per call.

stdio is the default transport (desktop clients start ``kb mcp`` themselves); ``--http`` serves
streamable HTTP on 127.0.0.1 and requires ``Authorization: Bearer <token>`` (the token is kept in
``KB_HOME/mcp.token``, 0600).
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from kb.errors import KbError, one_line

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from kb.knowledge import KnowledgeBase

_DATED = (
    "A passage's date is its note's own (frontmatter, a date in the file name, a date heading "
    "above it), else its file's modification day."
)
FolderArg = Annotated[
    str | None,
    Field(
        description="Only notes under this folder, relative to a notes root, e.g. 'projects' "
        "or 'journal/2025'."
    ),
]
TagArg = Annotated[str | None, Field(description="Only notes with this tag (frontmatter or #tag).")]
SinceArg = Annotated[
    str | None,
    Field(description=f"Only passages dated on or after this day (YYYY-MM-DD). {_DATED}"),
]
UntilArg = Annotated[
    str | None,
    Field(description=f"Only passages dated on or before this day (YYYY-MM-DD). {_DATED}"),
]

SCHEME = "kb"
INSTRUCTIONS = (
    "kb is the user's personal notes (Markdown, text, PDF, HTML; Russian and English). Use "
    "`context` to get the "
    "passages that answer a question, already focused and sized for a prompt; `search` to look "
    "notes up; "
    "`ask` for an answer with citations from the user's own LLM; read `kb://` resources to open a "
    "cited note."
)


def build_server(base: KnowledgeBase, max_tokens: int = 4000) -> MCPServer:
    """The MCP server over an open `KnowledgeBase` (its daemon routing included)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError
    from mcp_types import Resource, ToolAnnotations

    from kb.knowledge import Filters, TokenBound

    bound = TokenBound(max_tokens)
    # one index handle: calls are serialised (a daemon answers each in milliseconds)
    lock = threading.Lock()

    def uri_for() -> Callable[[str, str], str]:
        """(root, relative path) → ``kb://`` uri, over the folders as they are now."""
        names = base.folders()
        return lambda root, rel: f"{SCHEME}://{names.get(root, Path(root).name)}/{rel}"

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)

    class KbServer(MCPServer):
        async def list_resources(self) -> list[Resource]:
            with lock:
                listed = base.notes()
            return [
                *await super().list_resources(),
                *(
                    Resource(
                        uri=f"{SCHEME}://{n.folder}/{n.rel}",
                        name=n.rel,
                        title=n.title,
                        mime_type=_mime(n.kind),
                        description=f"note in {n.folder}"
                        + (f", tags {', '.join(n.tags)}" if n.tags else ""),
                    )
                    for n in listed
                ),
            ]

    server = KbServer(
        name="kb", title="kb — your notes", instructions=INSTRUCTIONS, version=_version()
    )

    def fail(exc: KbError) -> ToolError:
        return ToolError(one_line(exc))  # "what went wrong — the remedy", one line

    @server.tool(annotations=read_only)
    def search(
        query: Annotated[
            str, Field(description="What to look for, in the user's words (Russian or English).")
        ],
        k: Annotated[int, Field(description="How many passages to return.", ge=1, le=50)] = 8,
        folder: FolderArg = None,
        tag: TagArg = None,
        since: SinceArg = None,
        until: UntilArg = None,
    ) -> dict[str, Any]:
        """Hybrid search (meaning + keywords) over the user's notes. Returns the best passages, best
        first, each with its note's `kb://` resource uri, heading, line range, relevance (0..1,
        calibrated: below ~0.3 means not relevant) and text. Use it to look things up; use `context`
        to get what answers a question."""
        with lock:
            try:
                chosen = Filters.parse(folder=folder, tag=tag, since=since, until=until)
                hits = base.search(query, k=k, filters=chosen or None)
                uri = uri_for()
                items = [
                    {
                        "uri": uri(h.root, h.rel),
                        "path": h.path,
                        "heading": h.heading,
                        "lines": [h.start_line, h.end_line],
                        "relevance": h.relevance,
                        "text": h.text,
                    }
                    for h in hits
                ]
            except KbError as exc:
                raise fail(exc) from None
        kept, left = bound.take(items)
        return {"hits": kept, "left_out_over_token_limit": left}

    @server.tool(annotations=read_only)
    def context(
        question: Annotated[str, Field(description="The question to answer from the notes.")],
        mode: Annotated[
            str,
            Field(
                description="auto (kb picks and says why), code (commands, config, code), "
                "dialog (a direct question) or think (compare, plan, analyse: more context)."
            ),
        ] = "auto",
        folder: FolderArg = None,
        tag: TagArg = None,
        since: SinceArg = None,
        until: UntilArg = None,
    ) -> dict[str, Any]:
        """The focused context kb would send to its own model for this question: the passages that
        hold the evidence (only those above kb's relevance cutoff, sized to the task's token
        budget), with the mode chosen and why, the token count, and the passages left out with their
        reasons. An empty `passages` list means the notes do not hold an answer. This is the main
        tool for an agent with its own model."""
        with lock:
            try:
                chosen = Filters.parse(folder=folder, tag=tag, since=since, until=until)
                ctx = base.context(question, mode=mode, filters=chosen or None)
                uri = uri_for()
                passages = [
                    {
                        "n": p.n,
                        "uri": uri(p.span.root, p.span.path),
                        "heading": p.span.heading,
                        "lines": [p.span.start_line, p.span.end_line],
                        "relevance": round(p.score, 3),
                        "text": p.text,
                    }
                    for p in ctx.passages
                ]
            except KbError as exc:  # an unknown mode too
                raise fail(exc) from None
        kept, left = bound.take(passages)
        return {
            "mode": ctx.mode,
            "mode_reason": ctx.mode_reason,
            "tokens": ctx.tokens,
            "budget": ctx.budget,
            "passages": kept,
            "left_out_over_token_limit": left,
            "dropped": [
                {
                    "path": d.span.path,
                    "lines": [d.span.start_line, d.span.end_line],
                    "reason": d.reason,
                }
                for d in ctx.dropped[:20]
            ],
        }

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def ask(
        question: Annotated[str, Field(description="The question to answer from the notes.")],
        mode: Annotated[
            str, Field(description="auto, code, dialog or think (see `context`).")
        ] = "auto",
    ) -> dict[str, Any]:
        """An answer from the user's own local LLM (configured in kb), grounded in the notes, with
        citations (`kb://` uris of the notes it used). Only works when that LLM server is running;
        otherwise it says so. `cut` is set when the server stopped before finishing the answer
        (then `answer` is only what came)."""
        with lock:
            try:
                a = base.ask(question, mode=mode)
            except KbError as exc:
                raise fail(exc) from None
            uri = uri_for()
            cites = [
                {
                    "n": c.n,
                    "uri": uri(c.span.root, c.span.path),
                    "heading": c.span.heading,
                    "lines": [c.span.start_line, c.span.end_line],
                }
                for c in a.citations
            ]
        return {
            "answer": a.text,
            "abstained": a.abstained,
            "mode": a.context.mode,
            "citations": cites,
            # the server stopped before finishing: `answer` holds what came, not a whole answer
            "cut": a.cut or None,
        }

    @server.tool(annotations=read_only)
    def status() -> dict[str, Any]:
        """What kb has indexed: note folders with file counts, chunks, the embedding model, whether
        the `kb watch` daemon is running, and files that could not be indexed (with the reason)."""
        with lock:
            info = base.status().as_dict()
        info["problems"] = info["problems"][:50]
        return info

    @server.resource(
        f"{SCHEME}://{{root}}/{{+path}}",
        name="note",
        mime_type="text/markdown",
        description="An indexed note, by its notes folder's name and its path inside it.",
    )
    def note(root: str, path: str) -> str:
        with lock:
            try:
                return base.read_note(root, path)
            except KbError as exc:
                raise ResourceError(one_line(exc)) from None

    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kb-notes")
    except PackageNotFoundError:
        return ""


def _mime(kind: str | None) -> str:
    return {"markdown": "text/markdown", "html": "text/markdown", "pdf": "text/plain"}.get(
        kind or "", "text/plain"
    )


def http_token(home: Path) -> str:
    """The bearer token for `kb mcp --http`, created once (0600) and kept, so client configurations
    last."""
    path = home / "mcp.token"
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    tmp.replace(path)
    return token


class BearerGate:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>`` (compared in
    constant time)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = (
                    b'{"error": "unauthorized: send Authorization: Bearer '
                    b'<token from KB_HOME/mcp.token>"}'
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
