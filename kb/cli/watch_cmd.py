"""`kb watch` and `kb service install|uninstall|status`."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from kb.cli.common import err, handled, out, print_json


def register(app: typer.Typer) -> None:
    app.command()(watch)
    app.add_typer(service_app, name="service")


def watch(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Folders to watch. Default: every folder indexed before."),
    ] = None,
    polling: Annotated[
        bool, typer.Option("--polling", help="Poll instead of OS events (network drives).")
    ] = False,
) -> None:
    """Keep the index in sync in the foreground: watch the folders, serve searches, exit on
    Ctrl-C/SIGTERM."""
    import logging

    import kb

    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    kb_log = logging.getLogger("kb")
    kb_log.addHandler(console)
    kb_log.propagate = (
        False  # one line per event on the terminal (the root handler would repeat it)
    )
    with handled():
        err.print("[dim]kb watch: loading the model and catching up; Ctrl-C to stop[/]")
        code = kb.watch([str(p) for p in paths] if paths else None, polling=polling)
    raise typer.Exit(code)


service_app = typer.Typer(
    help="Run `kb watch` in the background (systemd user unit; launchd on macOS).",
    no_args_is_help=True,
)


@service_app.command("install")
def service_install(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Folders to watch. Default: every indexed one.")
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the unit instead of installing it.")
    ] = False,
    no_start: Annotated[
        bool, typer.Option("--no-start", help="Write the unit but do not start it.")
    ] = False,
) -> None:
    """Install and start the background service."""
    import kb

    plist = [str(p) for p in paths] if paths else None
    with handled():
        if platform.system() == "Darwin":
            out.print(kb.service_launchd(plist), highlight=False, markup=False)
            return
        if print_only:
            out.print(kb.service_unit(plist), highlight=False, markup=False)
            return
        notes = kb.service_install(plist, start=not no_start)
    for n in notes:
        out.print(n, highlight=False, markup=False)


@service_app.command("uninstall")
def service_uninstall() -> None:
    """Stop and remove the background service."""
    import kb

    with handled():
        for n in kb.service_uninstall():
            out.print(n, highlight=False, markup=False)


@service_app.command("status")
def service_status(
    json_: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Is the service installed and active, and what is the daemon doing?"""
    import kb

    with handled():
        info = kb.service_status()
    if json_:
        print_json(info)
        return
    out.print(
        escape(
            f"unit    {info['unit']} ({'installed' if info['installed'] else 'not installed'}, "
            f"{info['active']})"
        ),
        highlight=False,
    )
    d = info["daemon"]
    out.print(
        f"daemon  {'up, pid ' + str(d['pid']) if d.get('running') else 'down'}"
        f"{'' if d.get('running') else ' — ' + escape(d.get('note', ''))}",
        highlight=False,
    )
