"""Notes are private by default: KB_HOME 0700, every file kb (or Chroma/SQLite for it) creates 0600,
whatever the umask; a KB_HOME other users can read is warned about, and the printed fix works."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.daemon_proc import WatchProcess, found, wait_for
from tests.support.files import write

LIBRARY = """
import os, sys
os.umask(0o022)
import kb
kb.ingest([sys.argv[1]])
print(len(kb.search("owls")))
"""


def loose(home: Path) -> list[str]:
    bad = []
    for p in [home, *home.rglob("*")]:
        if p.is_symlink():
            continue
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            bad.append(f"{oct(mode)} {p.relative_to(home.parent)}")
    return bad


def test_home_and_files_are_private_under_umask_022(tmp_path: Path) -> None:
    root = write(tmp_path / "v" / "a.md", "# A\n\nowls at night\n").parent
    home = tmp_path / "fresh-home"  # does not exist yet: kb creates it
    env = {**os.environ, "KB_HOME": str(home), "KB_EMBED_MODEL": "hash-64"}
    r = subprocess.run(
        [sys.executable, "-c", LIBRARY, str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert loose(home) == []
    home2 = tmp_path / "cli-home"
    env2 = {**env, "KB_HOME": str(home2)}
    subprocess.run(
        f"umask 022; {shlex.quote(sys.executable)} -m kb.cli.main ingest {shlex.quote(str(root))}",
        shell=True,
        env=env2,
        check=True,
        capture_output=True,
        timeout=300,
    )
    w = WatchProcess(home2, [root], env={"KB_EMBED_MODEL": "hash-64"})
    try:
        w.client()
        (root / "b.md").write_text("# B\n\nbadgers\n", encoding="utf-8")
        wait_for(lambda: found(w.search("badgers"), "b.md"), 60, "the daemon to index b.md")
        assert (home2 / "logs" / "watch.log").exists() and (home2 / "daemon.json").exists()
        assert loose(home2) == []
    finally:
        w.close()


def test_status_warns_about_a_readable_home_and_its_fix_works(
    tmp_path: Path, kb_home: Path
) -> None:
    root = write(tmp_path / "v" / "a.md", "# A\n\nowls\n").parent
    env = {**os.environ, "KB_EMBED_MODEL": "hash-64"}
    run = [sys.executable, "-m", "kb.cli.main"]
    subprocess.run(
        [*run, "ingest", str(root)], env=env, check=True, capture_output=True, timeout=300
    )
    os.chmod(kb_home, 0o755)
    (kb_home / "manifest.sqlite3").chmod(0o644)
    st = json.loads(
        subprocess.run(
            [*run, "status", "--json"], env=env, capture_output=True, text=True, timeout=120
        ).stdout
    )
    assert len(st["warnings"]) == 1
    fix = st["warnings"][0]["remedy"]
    human = subprocess.run(
        [*run, "status"], env=env, capture_output=True, text=True, timeout=120
    ).stdout
    assert fix in human.replace("\n", "")
    subprocess.run(fix, shell=True, check=True)  # follow the remedy exactly as printed
    st = json.loads(
        subprocess.run(
            [*run, "status", "--json"], env=env, capture_output=True, text=True, timeout=120
        ).stdout
    )
    assert st["warnings"] == [] and loose(kb_home) == []
