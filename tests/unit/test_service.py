"""`kb service`: the generated systemd user unit and launchd plist, install/uninstall without a
systemd."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from pathlib import Path

from kb.daemon import service


def test_systemd_unit_text(kb_home: Path, tmp_path: Path) -> None:
    os.environ["KB_EMBED_MODEL"] = "some model/with space"
    try:
        unit = service.systemd_unit([str(tmp_path / "notes")])
    finally:
        del os.environ["KB_EMBED_MODEL"]
    lines = unit.splitlines()
    assert lines[0] == "[Unit]" and "[Service]" in lines and "[Install]" in lines
    exec_line = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_line == f"ExecStart={sys.executable} -m kb.cli.main watch {tmp_path / 'notes'}"
    assert "Restart=on-failure" in lines and "WantedBy=default.target" in lines
    assert f"Environment=KB_HOME={kb_home}" in lines
    assert "Environment='KB_EMBED_MODEL=some model/with space'" in lines
    assert "KillSignal=SIGTERM" in lines


def test_unit_command_runs_this_kb() -> None:
    r = subprocess.run(
        [*service.kb_command(), "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "watch" in r.stdout


def test_launchd_plist_is_valid(tmp_path: Path) -> None:
    data = plistlib.loads(service.launchd_plist([str(tmp_path)]).encode())
    assert data["Label"] == service.LAUNCHD_LABEL
    assert data["ProgramArguments"][-2:] == ["watch", str(tmp_path)]
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert "launchctl load -w" in service.launchd_instructions()


def test_install_and_uninstall_write_and_remove_the_unit(kb_home: Path) -> None:
    env = {**os.environ, "PATH": "/nonexistent"}  # no systemctl: the unit is written, not started
    cmd = [sys.executable, "-m", "kb.cli.main", "service"]
    r = subprocess.run(
        [*cmd, "install", "--no-start"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "kb-watch.service"
    assert unit.read_text() == service.systemd_unit()
    r = subprocess.run(
        [*cmd, "status", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0 and '"installed": true' in r.stdout and '"running": false' in r.stdout
    r = subprocess.run([*cmd, "uninstall"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and not unit.exists()


def test_install_that_cannot_start_fails_with_the_reason_and_its_remedy_works(
    kb_home: Path, tmp_path: Path
) -> None:
    """No user service manager (a session bus): `kb service install` writes the unit but says that
    nothing runs and exits non-zero; once one runs, doing what it says — install again — works."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ -f "{tmp_path}/bus" ]; then echo "$@" >> "{tmp_path}/calls"; exit 0; fi\n'
        'echo "Failed to connect to bus: No medium found" >&2; exit 1\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "kb.cli.main", "service", "install"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "Failed to connect to bus" in r.stderr
    assert "nothing runs" in r.stderr and "kb service install" in r.stderr
    assert "Traceback" not in r.stderr
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "kb-watch.service"
    assert unit.is_file() and "Documentation=" not in unit.read_text()  # no placeholder URL
    (tmp_path / "bus").touch()  # a user service manager now runs
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "enable --now kb-watch.service" in (tmp_path / "calls").read_text()
