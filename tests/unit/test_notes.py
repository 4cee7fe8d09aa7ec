"""Notes as a reader opens them (MCP resources go through this): folder names, a link loop named as
such, and a file name that is not valid UTF-8 readable like any other."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kb.errors import KbError
from tests.support.files import hostile_vault


def test_reading_notes_by_folder_name(make_kb, tmp_path: Path) -> None:
    root = hostile_vault(tmp_path / "vault")
    base = make_kb()
    base.ingest([root])
    listed = {n.rel for n in base.notes()}
    assert "good3.md" in listed and "bad\\xffname.md" in listed
    assert all(n.folder == "vault" for n in base.notes())
    assert "zeppelins" in base.read_note("vault", "bad\\xffname.md")  # not valid UTF-8 on disk
    assert "topic3" in base.read_note("vault", "good3.md")
    with pytest.raises(KbError, match="link loop"):
        base.read_note("vault", "loop.md")
    with pytest.raises(KbError, match="not an indexed note"):
        base.read_note("vault", "../vault/good3.md/../../etc/passwd")
    os.symlink(tmp_path, root / "escape.md")  # a link out of the folder is never read
    with pytest.raises(KbError, match="not an indexed note"):
        base.read_note("vault", "escape.md")
