"""Helpers: write a note, run the `kb` CLI in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_kb(
    *args: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The `kb` CLI in a fresh process: this process's environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "kb.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def hostile_vault(root: Path) -> Path:
    """Ten good notes, a file name that is not valid UTF-8, a symlink to itself, damaged UTF-8."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(10):
        write(
            root / f"good{i}.md",
            f"# Good {i}\n\nGood note number {i} about topic{i} and gardens.\n",
        )
    with open(
        os.fsencode(root) + b"/bad\xffname.md", "wb"
    ) as f:  # cp1251-era name, not valid UTF-8
        f.write(b"# Legacy name\n\nThe legacy archive note mentions zeppelins.\n")
    os.symlink("loop.md", root / "loop.md")  # points at itself
    (root / "damaged.md").write_bytes(
        "# Damaged\n\nПривет, мир — a damaged note. ".encode() * 3 + b"\xff end\n"
    )
    return root
