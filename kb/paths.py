"""Where kb keeps its data. One function, honouring ``KB_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "kb"


def data_dir() -> Path:
    """The data directory: ``$KB_HOME`` if set, else the platform's user data dir. Created on demand."""
    env = os.environ.get("KB_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_candidates() -> list[Path]:
    """TOML config files in precedence order: ``$KB_HOME/config.toml``, then the user config dir."""
    from platformdirs import user_config_dir

    out = []
    env = os.environ.get("KB_HOME")
    if env:
        out.append(Path(env).expanduser() / "config.toml")
    else:
        from platformdirs import user_data_dir

        out.append(Path(user_data_dir(APP_NAME, appauthor=False)) / "config.toml")
    out.append(Path(user_config_dir(APP_NAME, appauthor=False)) / "config.toml")
    return out


def config_file() -> Path | None:
    """The first existing TOML config file, or None."""
    for p in config_candidates():
        if p.is_file():
            return p
    return None
