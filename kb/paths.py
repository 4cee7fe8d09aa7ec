"""Where kb keeps its data. One function, honouring ``KB_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "kb"
LLM_TOKEN_FILE = "llm.token"  # the bearer token of `kb llm serve --profile tiny|reader`, in KB_HOME


def data_dir() -> Path:
    """The data directory: ``$KB_HOME`` if set, else the platform's user data dir. Created on
    demand."""
    env = os.environ.get("KB_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir(APP_NAME, appauthor=False))
    return ensure_home(path)


def ensure_home(path: Path) -> Path:
    """Create KB_HOME 0700 when it does not exist yet (an existing one keeps its mode; status
    warns)."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # notes are private: only this user may read the index
    return path


def make_private(path: Path) -> None:
    """Files 0600 and folders 0700 under ``path`` (not ``path`` itself: an existing KB_HOME's mode
    is the user's, and `kb status` warns about it), for what kb and its libraries created — SQLite,
    Chroma and log files are created with the process umask. Never raises."""
    try:
        todo = list(path.iterdir())
    except OSError:
        return
    while todo:
        p = todo.pop()
        try:
            st = p.lstat()
            if p.is_symlink():
                continue
            if p.is_dir():
                if st.st_mode & 0o077:
                    os.chmod(p, st.st_mode & 0o700 | 0o700)
                todo.extend(p.iterdir())
            elif st.st_mode & 0o077:
                os.chmod(p, st.st_mode & 0o600)
        except OSError:
            continue


def exposed(path: Path) -> bool:
    """True when other users may read or enter ``path`` (group/world permission bits set)."""
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


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
