"""`kb` — the command line. Each command group lives in its own module; this one wires them up."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from kb.cli import ask_cmd, config_cmd, eval_cmd, index_cmd, llm_cmd, mcp_cmd, search_cmd, watch_cmd


def _readable_help() -> None:
    """Typer prints Python types in help (``<list[str]>``, ``<bool>``, ``<path>``); show metavars
    instead: the option's own metavar (``N``, ``MODE``), nothing for flags and arguments (their name
    says it)."""
    from typer import core

    def option_type(self, ctx):
        if self.metavar is not None:
            return self.metavar
        if self.is_flag or self.count:
            return None
        return self.name.upper() if self.name else None

    core.TyperOption.display_type_rich = option_type
    core.TyperArgument.display_type_rich = lambda self, ctx: None


_readable_help()

app = typer.Typer(
    name="kb",
    help="kb — a private, local knowledge assistant over your notes (Markdown, text, PDF, HTML).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


# the distribution name on PyPI (`kb` there is an unrelated project); the import stays `kb`
DIST = "kb-notes"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version(DIST)
        except PackageNotFoundError:  # running from a source tree that was never installed
            v = "unknown (not installed)"
        typer.echo(f"kb {v} ({DIST})")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="-v info, -vv debug logging.")
    ] = 0,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "openai", "chromadb", "sentence_transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(
            max(level, logging.WARNING if verbose < 2 else logging.DEBUG)
        )


index_cmd.register(app)
search_cmd.register(app)
ask_cmd.register(app)
eval_cmd.register(app)
watch_cmd.register(app)
mcp_cmd.register(app)
app.add_typer(config_cmd.app, name="config")
app.add_typer(llm_cmd.app, name="llm")


def main() -> None:
    os.umask(0o077)  # whatever the kb command creates (index, logs, state) is the user's alone
    app()


if __name__ == "__main__":
    main()
