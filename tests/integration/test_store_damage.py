"""A damaged embedded Chroma store (what a kill -9 in the middle of Chroma's own HNSW write leaves
behind): found, moved aside and rebuilt from the notes — by `kb ingest`, and by `kb watch` after a
kill -9 — and the remedies printed meanwhile work when followed."""

from __future__ import annotations

import json
from pathlib import Path

from kb.index.damage import probe
from kb.index.store import collection_name
from tests.support.daemon_proc import WatchProcess, found
from tests.support.files import run_kb, write

HASH = {"KB_EMBED_MODEL": "hash-64"}
NOTES = 300  # × 4 sections: over Chroma's 1,000-vector threshold, so its HNSW segment is on disk


def make_vault(root: Path) -> Path:
    for i in range(NOTES):
        body = "\n\n".join(
            f"## Part {j}\n\nNote {i} part {j} is about topic{i}x{j}." for j in range(4)
        )
        write(root / f"d{i // 50}" / f"n{i:03d}.md", f"# Note {i}\n\n{body}\n")
    return root


def segment(home: Path) -> Path:
    dirs = [d for d in (home / "chroma").iterdir() if d.is_dir() and (d / "header.bin").exists()]
    assert len(dirs) == 1, f"expected one persisted HNSW segment, found {dirs}"
    return dirs[0]


def zero_header(home: Path) -> None:
    """Chroma then fails every read and write: 'Error loading hnsw index'."""
    header = segment(home) / "header.bin"
    header.write_bytes(b"\0" * header.stat().st_size)


def scramble_vectors(home: Path) -> None:
    """Chroma then crashes its process (SIGSEGV) on a query: only a child process may read this
    store."""
    data = segment(home) / "data_level0.bin"
    raw = bytearray(data.read_bytes())
    raw[: len(raw) // 2] = b"\xff" * (len(raw) // 2)
    data.write_bytes(bytes(raw))


def verify_clean(env: dict[str, str]) -> dict:
    r = run_kb("status", "--verify", "--json", env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    info = json.loads(r.stdout)
    v = info["verify"]
    assert (v["ok"], v["missing"], v["orphans"], v["duplicates"], v["stale"]) == (
        True,
        0,
        0,
        [],
        [],
    )
    assert info["files"] == {"indexed": NOTES}
    assert v["chunks"] == v["vectors"] >= NOTES * 4
    return info


def test_damaged_store_search_says_so_and_kb_ingest_rebuilds_it(
    kb_home: Path, tmp_path: Path
) -> None:
    vault = make_vault(tmp_path / "vault")
    env = {**HASH, "KB_HOME": str(kb_home)}
    assert run_kb("ingest", str(vault), env=env).returncode == 0
    zero_header(kb_home)

    r = run_kb("search", "topic7x2", env=env)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "damaged" in r.stderr and "Traceback" not in r.stderr
    assert "run `kb ingest`" in r.stderr  # the remedy, followed next

    r = run_kb("ingest", env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "damaged" in r.stdout + r.stderr and "re-embedded" in r.stdout + r.stderr
    verify_clean(env)
    assert not list(kb_home.glob("chroma.damaged-*"))  # moved aside, then deleted once rebuilt
    r = run_kb("search", "topic7x2", "--json", env=env)
    assert r.returncode == 0 and "n007.md" in r.stdout


def test_a_store_folder_moved_away_is_rebuilt_by_kb_ingest(kb_home: Path, tmp_path: Path) -> None:
    """The remedy kb prints when the store can't be opened at all: move the folder away, run `kb
    ingest`."""
    vault = make_vault(tmp_path / "vault")
    env = {**HASH, "KB_HOME": str(kb_home)}
    assert run_kb("ingest", str(vault), env=env).returncode == 0
    (kb_home / "chroma").rename(kb_home / "chroma.old")
    r = run_kb("ingest", env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "holds no vectors" in r.stdout + r.stderr
    verify_clean(env)


def test_probe_finds_a_store_that_crashes_its_reader(kb_home: Path, tmp_path: Path) -> None:
    vault = make_vault(tmp_path / "vault")
    env = {**HASH, "KB_HOME": str(kb_home)}
    assert run_kb("ingest", str(vault), env=env).returncode == 0
    name = collection_name("hash-64")
    assert probe(kb_home / "chroma", name) is None  # a healthy store passes
    scramble_vectors(kb_home)
    problem = probe(kb_home / "chroma", name)
    assert problem is not None and ("signal" in problem or "embedding" in problem.lower()), problem


def test_kb_watch_rebuilds_a_store_damaged_when_it_was_killed(
    kb_home: Path, tmp_path: Path
) -> None:
    vault = make_vault(tmp_path / "vault")
    w = WatchProcess(kb_home, [vault], env=HASH)
    try:
        w.client()
        w.idle(timeout=300)
    finally:
        # dies holding the writer lock: the next writer checks the store in a child process
        w.kill9()
    scramble_vectors(
        kb_home
    )  # what a kill in the middle of Chroma's write can leave: a reader would crash
    write(vault / "new.md", "# New\n\nWritten while kb watch was down: zebracorn.\n")
    w = WatchProcess(kb_home, [vault], env=HASH)
    try:
        w.client()
        w.idle(timeout=300)
        log = (kb_home / "logs" / "watch.log").read_text()
        assert "damaged" in log and "re-embedded" in log
        assert found(w.search("zebracorn"), "new.md") and found(w.search("topic7x2"), "n007.md")
        v = w.verify()
        assert (v["missing"], v["orphans"], v["duplicates"], v["stale"]) == ([], [], [], [])
        assert v["chunks"] == v["vectors"] >= NOTES * 4 + 1
    finally:
        w.close()
