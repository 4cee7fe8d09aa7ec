"""`kb mcp`: serve the notes to assistants and agents over the Model Context Protocol."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from kb.cli.common import err, handled


def register(app: typer.Typer) -> None:
    app.command()(mcp)


def mcp(
    http: Annotated[
        bool,
        typer.Option(
            "--http", help="Serve streamable HTTP on 127.0.0.1 (bearer token) instead of stdio."
        ),
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port for --http (default: KB_MCP__PORT, 8765; 0 = any free port).",
            min=0,
            max=65535,
            metavar="N",
        ),
    ] = None,
) -> None:
    """Serve your notes to assistants over MCP: tools search, context, ask, status; notes as kb://
    resources.

    stdio by default (Claude Desktop, Cursor, Zed start `kb mcp` themselves). Read-only: it uses a
    running `kb watch` when there is one, otherwise it opens the index for reading."""
    from kb.errors import DependencyMissingError
    from kb.knowledge import KnowledgeBase

    with handled():
        try:
            import mcp as _sdk  # noqa: F401
        except ImportError:
            raise DependencyMissingError(
                "`kb mcp` needs the MCP SDK, which is not installed",
                "pip install 'kb-notes[mcp]'  (or: pip install mcp)",
            ) from None
        from kb.cli.mcp_server import build_server

        with KnowledgeBase() as base:
            base.check_readable()  # a model mismatch is told now, not on the first tool call
            server = build_server(base, base.settings.mcp.max_tokens)
            if not http:
                err.print(
                    "[dim]kb mcp: serving on stdio (Ctrl-D or close the client to stop)[/]",
                    highlight=False,
                )
                server.run("stdio")
                return
            _serve_http(server, base, base.settings.mcp.port if port is None else port)


def _serve_http(server, base, port: int) -> None:
    import socket

    import uvicorn

    from kb.cli.mcp_server import BearerGate, http_token

    token = http_token(base.home)
    app = BearerGate(server.streamable_http_app(), token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        from kb.errors import KbError

        raise KbError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror}",
            "pass a free port with --port N (or --port 0 for any free port)",
        ) from None
    sock.listen(128)  # accept (queue) connections from the moment the address is announced
    bound = sock.getsockname()[1]
    err.print(
        f"kb mcp: http://127.0.0.1:{bound}/mcp  (header Authorization: Bearer <token in "
        f"{escape(str(base.home / 'mcp.token'))}>)",
        highlight=False,
    )
    sys.stderr.flush()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
