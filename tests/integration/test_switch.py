"""Switching embedding models never empties the index: the new one is built beside the old one."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kb.errors import EmbedderError
from tests.support.files import write


def kb_cli(
    *args: str, model: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    env = {**os.environ, "KB_EMBED_MODEL": model}
    p = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p


def test_an_unloadable_model_leaves_the_index_alone(make_kb, notes: Path) -> None:
    base = make_kb()
    base.ingest([notes])
    chunks = base.index.manifest.chunk_count()
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(embed_model="BAAI/bge-large-en-v1.5") as other, pytest.raises(EmbedderError):
        other.ingest([notes])
    again = make_kb()
    assert again.index.manifest.chunk_count() == chunks
    assert again.search("bananas", k=1)[0].rel == "alpha.md"
    assert again.verify().ok


def test_a_switch_builds_beside_and_swaps(make_kb, notes: Path, kb_home: Path) -> None:
    from kb.index.embed import HashEmbedder
    from kb.knowledge import KnowledgeBase

    base = make_kb()
    base.ingest([notes])
    with KnowledgeBase(embedder=HashEmbedder(dim=32)) as new:
        r = new.ingest([notes])
        assert r.added == 4 and any("beside the old one" in n for n in r.notices)
        assert new.search("bananas", k=1)[0].rel == "alpha.md" and new.verify().ok
        live = json.loads((kb_home / "index.json").read_text())["manifest"]
        assert live != "manifest.sqlite3" and not (kb_home / "manifest.sqlite3").exists()
        assert new.index.store().other_collections() == []


def test_kill9_during_a_switch_keeps_the_old_index_searchable(
    tmp_path: Path, kb_home: Path
) -> None:
    root = tmp_path / "v"
    for i in range(3000):
        write(
            root / f"d{i // 100}" / f"n{i}.md",
            f"# Note {i}\n\nword{i} shared text about the garden {i}.\n",
        )
    kb_cli("ingest", str(root), model="hash-64")
    before = json.loads(kb_cli("search", "word17 garden", "--json", model="hash-64").stdout)
    env = {**os.environ, "KB_EMBED_MODEL": "hash-32"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = list(kb_home.glob("manifest.*.sqlite3"))
    deadline = time.monotonic() + 300
    written = 0
    while time.monotonic() < deadline and proc.poll() is None:
        staging = list(kb_home.glob("manifest.*.sqlite3"))
        if staging:
            try:
                with sqlite3.connect(staging[0], timeout=1) as db:
                    written = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
            except sqlite3.Error:
                written = 0
            if written >= 500:
                break
        time.sleep(0.05)
    assert proc.poll() is None, (
        "the switch finished before it could be killed: make the vault bigger"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < written < 3000
    after = json.loads(kb_cli("search", "word17 garden", "--json", model="hash-64").stdout)
    assert [h["path"] for h in after] == [h["path"] for h in before]
    kb_cli("status", "--verify", model="hash-64")
    wrong = kb_cli("search", "word17", model="hash-32", check=False)
    assert wrong.returncode == 4 and "KB_EMBED_MODEL=hash-64" in wrong.stderr + wrong.stdout
    done = json.loads(kb_cli("ingest", "--json", model="hash-32").stdout)  # resumes, then swaps
    assert done["added"] < 3000  # what the killed run wrote was kept
    kb_cli("status", "--verify", model="hash-32")
    hits = json.loads(kb_cli("search", "word17 garden", "--json", model="hash-32").stdout)
    assert any(h["path"].endswith("d0/n17.md") for h in hits)
