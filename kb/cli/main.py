"""`kb` — the command line. Each command group lives in its own module; this one wires them up."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from kb.cli import ask_cmd, config_cmd, eval_cmd, index_cmd, llm_cmd, search_cmd, watch_cmd

app = typer.Typer(
    name="kb",
    help="kb — a private, local knowledge assistant over your notes (Markdown, text, PDF, HTML).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="-v info, -vv debug logging.")] = 0,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "openai", "chromadb", "sentence_transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING if verbose < 2 else logging.DEBUG))


index_cmd.register(app)
search_cmd.register(app)
ask_cmd.register(app)
eval_cmd.register(app)
watch_cmd.register(app)
app.add_typer(config_cmd.app, name="config")
app.add_typer(llm_cmd.app, name="llm")


def main() -> None:
    os.umask(0o077)  # whatever the kb command creates (index, logs, state) is the user's alone
    app()


if __name__ == "__main__":
    main()
