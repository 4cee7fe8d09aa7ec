"""`kb config show`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from kb.cli.common import handled, out, print_json

app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@app.command("show")
def show(json_: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Print every effective setting and where it came from (argument, env, file, default)."""
    from kb.settings import explain, load_settings

    with handled():
        rows = explain(load_settings())
    if json_:
        print_json({k: {"value": v, "source": s} for k, v, s in rows})
        return
    table = Table("setting", "value", "source", box=None)
    for key, value, source in rows:
        table.add_row(key, str(value), source)
    out.print(table)
