"""Search through a warm `kb watch` with the standard library only (no typer, rich, pydantic,
torch): `kb search`'s fast path, taken only when it is certainly what the full search would do —
no config file, and the daemon's embedding model is the configured one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kb.daemon.client import DaemonUnavailable, connect


def _home() -> Path | None:
    from kb.paths import config_file

    if config_file() is not None:
        return None  # a config file may set anything: the full CLI reads it
    env = os.environ.get("KB_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("kb", appauthor=False))


def warm_search(query: str, k: int, home: Path | None = None) -> list[dict[str, Any]] | None:
    """The daemon's hits (dicts, as `Hit.as_dict`), or None when the fast path does not apply.
    A `KbError` the daemon raised is raised here (same class, message and remedy)."""
    home = home or _home()
    if home is None:
        return None
    client = connect(home)
    if client is None:
        return None
    env_model = os.environ.get("KB_EMBED_MODEL")
    same = (
        env_model == client.state.get("embed_model")
        if env_model
        else client.state.get("default_model")
    )
    if not same:
        return None
    try:
        return client.request("search", {"query": query, "k": k, "filters": None}, timeout=120)
    except DaemonUnavailable:
        return None
