"""`kb service`: run `kb watch` in the background under the OS service manager.

Linux: a systemd *user* unit (no root needed; restarts on failure; `loginctl enable-linger` keeps it
running without a login session). macOS: a launchd agent plist, printed with the commands to load
it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from kb.errors import DependencyMissingError, KbError


class ServiceError(KbError):
    """The service manager could not start `kb watch`."""


UNIT_NAME = "kb-watch.service"
LAUNCHD_LABEL = "io.kb.watch"


def kb_command() -> list[str]:
    """How to start kb from a service: this interpreter running the installed CLI module."""
    return [sys.executable, "-m", "kb.cli.main"]


def _env_lines() -> list[str]:
    keep = sorted(k for k in os.environ if k.startswith("KB_"))
    return [f"Environment={shlex.quote(f'{k}={os.environ[k]}')}" for k in keep]


def systemd_unit(paths: list[str] | None = None) -> str:
    """The unit file text (paths empty: watch every indexed folder)."""
    cmd = [*kb_command(), "watch", *(str(Path(p).expanduser().resolve()) for p in paths or [])]
    lines = [
        "[Unit]",
        "Description=kb watch: keep the personal knowledge index in sync with your notes",
        "After=default.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={shlex.join(cmd)}",
        *_env_lines(),
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=5",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=60",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def unit_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


def launchd_plist(paths: list[str] | None = None) -> str:
    args = [*kb_command(), "watch", *(str(Path(p).expanduser().resolve()) for p in paths or [])]
    arg_xml = "\n".join(f"    <string>{a}</string>" for a in args)
    env = "\n".join(
        f"    <key>{k}</key><string>{os.environ[k]}</string>"
        for k in sorted(os.environ)
        if k.startswith("KB_")
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>{LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
{arg_xml}
  </array>
  <key>EnvironmentVariables</key>
  <dict>
{env}
  </dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
</dict>
</plist>
"""


def launchd_instructions(paths: list[str] | None = None) -> str:
    target = f"~/Library/LaunchAgents/{LAUNCHD_LABEL}.plist"
    return (
        f"Save this as {target}, then run:\n  launchctl load -w {target}\n"
        f"(stop and remove: launchctl unload -w {target} && rm {target})\n\n{launchd_plist(paths)}"
    )


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemctl")
    if exe is None:
        raise DependencyMissingError(
            "systemctl is not available on this machine",
            "run `kb watch` in a terminal (or under your own supervisor) instead",
        )
    return subprocess.run([exe, "--user", *args], capture_output=True, text=True, timeout=30)


def install(paths: list[str] | None = None, start: bool = True) -> tuple[Path, list[str]]:
    """Write the unit; enable and start it when a user systemd is reachable. Returns (path,
    messages)."""
    path = unit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(systemd_unit(paths))
    notes = [f"wrote {path}"]
    if not start:
        return path, notes
    try:
        for args in (("daemon-reload",), ("enable", "--now", UNIT_NAME)):
            r = systemctl(*args)
            if r.returncode != 0:
                why = " ".join((r.stderr.strip() or r.stdout.strip()).split())
                raise ServiceError(
                    f"wrote {path}, but `systemctl --user {' '.join(args)}` failed, so nothing "
                    f"runs: {why}",
                    "a user service manager must be running (a login session, or `loginctl "
                    "enable-linger $USER` for one without a login); then run `kb service install` "
                    "again — or run `kb watch` in a terminal instead",
                )
    except DependencyMissingError as exc:
        raise ServiceError(
            f"wrote {path}, but {exc.message}: nothing runs",
            "run `kb watch` in a terminal (or under your own supervisor) instead; "
            "`kb service install --no-start` only writes the unit",
        ) from None
    notes.append(
        f"enabled and started {UNIT_NAME} (logs: journalctl --user -u {UNIT_NAME}, "
        "and KB_HOME/logs/watch.log)"
    )
    return path, notes


def uninstall() -> list[str]:
    path = unit_path()
    notes = []
    if shutil.which("systemctl"):
        r = systemctl("disable", "--now", UNIT_NAME)
        if r.returncode == 0:
            notes.append(f"stopped and disabled {UNIT_NAME}")
    if path.exists():
        path.unlink()
        notes.append(f"removed {path}")
        if shutil.which("systemctl"):
            systemctl("daemon-reload")
    else:
        notes.append(f"{path} was not installed")
    return notes


def status() -> dict[str, object]:
    path = unit_path()
    info: dict[str, object] = {"unit": str(path), "installed": path.exists()}
    if shutil.which("systemctl"):
        r = systemctl("is-active", UNIT_NAME)
        info["active"] = r.stdout.strip() or r.stderr.strip()
    else:
        info["active"] = "unknown (no systemctl)"
    return info
