"""Chroma in server mode (KB_CHROMA__URL): a real `chroma run` started here; ingest, rename, delete,
verify, two homes on one server, kill -9 of the writer, a server restart mid-ingest, and `kb watch`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon_proc import WatchProcess, found, wait_for
from tests.support.files import run_kb as kb
from tests.support.files import write
from tests.support.servers import chroma_server

HASH = {"KB_EMBED_MODEL": "hash-64"}


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory):
    proc, url = chroma_server(tmp_path_factory.mktemp("chroma"))
    proc.start()
    yield proc, url
    proc.stop()


def server_count(url: str, name: str) -> int:
    import chromadb

    host, port = url.split("//")[1].split(":")
    return chromadb.HttpClient(host=host, port=int(port)).get_collection(name).count()


def verified(env: dict[str, str]) -> dict:
    r = kb("status", "--verify", "--json", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    info = json.loads(r.stdout)
    v = info["verify"]
    assert (v["missing"], v["orphans"], v["duplicates"], v["stale"]) == (0, 0, [], [])
    return info


def test_ingest_rename_delete_and_verify_on_a_server(
    chroma, kb_home: Path, tmp_path: Path, monkeypatch
) -> None:
    from kb.knowledge import KnowledgeBase

    _, url = chroma
    monkeypatch.setenv("KB_CHROMA__URL", url)
    vault = tmp_path / "vault"
    write(vault / "alpha.md", "# Alpha\n\nThe router password is on the fridge.\n")
    write(vault / "beta.md", "# Beta\n\nThe backup runs at night.\n")
    with KnowledgeBase(embed_model="hash-64") as base:
        assert base.ingest([vault]).added == 2
        assert base.search("router password", k=1)[0].rel == "alpha.md"
        (vault / "alpha.md").rename(vault / "gamma.md")
        (vault / "beta.md").unlink()
        report = base.ingest([vault])
        assert (report.moved, report.deleted, report.embedded) == (1, 1, 0)
        assert base.search("router password", k=1)[0].rel == "gamma.md"
        v = base.verify()
        assert (v.chunks, v.vectors, v.missing, v.orphans, v.ok) == (1, 1, [], [], True)
        name = base.index.store().name
        assert name.startswith("kb-" + (kb_home / "home-id").read_text().strip() + "-")
        assert base.status().as_dict()["vector_store"] == url
    assert server_count(url, name) == 1  # the vectors are on the server ...
    assert not (kb_home / "chroma").exists()  # ... and nothing of Chroma's is in KB_HOME
    assert (kb_home / "manifest.sqlite3").is_file()  # the manifest and BM25 stay beside the writer


def test_two_homes_share_one_server_without_clashing(chroma, tmp_path: Path) -> None:
    _, url = chroma
    homes = [tmp_path / "laptop", tmp_path / "desktop"]
    vaults = [tmp_path / "v-laptop", tmp_path / "v-desktop"]
    write(vaults[0] / "laptop.md", "# Laptop\n\nlaptop battery notes\n")
    write(vaults[1] / "desktop.md", "# Desktop\n\ndesktop fan notes\n")
    envs = [{**HASH, "KB_HOME": str(h), "KB_CHROMA__URL": url} for h in homes]
    for env, vault in zip(envs, vaults, strict=True):
        assert kb("ingest", str(vault), env=env).returncode == 0
    for env, word, name in zip(envs, ["battery", "fan"], ["laptop.md", "desktop.md"], strict=True):
        r = kb("search", word, "notes", "--json", env=env)
        assert [Path(h["path"]).name for h in json.loads(r.stdout)] == [name]  # only its own notes
    # a model switch in one home removes only that home's old collection
    r = kb("ingest", str(vaults[0]), env={**envs[0], "KB_EMBED_MODEL": "hash-32"})
    assert r.returncode == 0, r.stderr
    assert "switched the index" in r.stdout + r.stderr
    r = kb("search", "fan", "notes", "--json", env=envs[1])
    assert r.returncode == 0 and [Path(h["path"]).name for h in json.loads(r.stdout)] == [
        "desktop.md"
    ]
    verified(envs[1])
    verified({**envs[0], "KB_EMBED_MODEL": "hash-32"})


def bulk(vault: Path, n: int, tag: str) -> None:
    for i in range(n):
        write(
            vault / tag / f"{i // 100:02d}" / f"{tag}{i:04d}.md",
            f"# {tag} {i}\n\n{tag} note number {i}. " * 3,
        )


def indexed(home: Path, tag: str) -> int:
    try:
        with sqlite3.connect(home / "manifest.sqlite3", timeout=30) as db:
            return db.execute(
                "SELECT COUNT(*) FROM files WHERE status='indexed' AND path LIKE ?", (f"{tag}/%",)
            ).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def ingest_until(
    env: dict[str, str], vault: Path, home: Path, tag: str, total: int
) -> subprocess.Popen[str]:
    """Start `kb ingest` and return once part (not all) of ``tag``'s files are committed."""
    run = subprocess.Popen(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(vault)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    wait_for(
        lambda: run.poll() is not None or 0 < indexed(home, tag) < total,
        300,
        f"part of {tag} committed",
    )
    assert run.poll() is None, (
        "the ingest finished before it could be interrupted: make the vault larger"
    )
    return run


def test_kill9_of_the_writer_and_a_server_restart_mid_ingest_are_repaired(
    chroma, kb_home: Path, tmp_path: Path
) -> None:
    proc, url = chroma
    vault = tmp_path / "vault"
    env = {**HASH, "KB_HOME": str(kb_home), "KB_CHROMA__URL": url}
    bulk(vault, 3000, "a")
    run = ingest_until(env, vault, kb_home, "a", 3000)
    run.kill()  # SIGKILL of the kb writer between (or inside) write groups
    run.wait(60)
    r = kb("ingest", str(vault), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["failed"] == 0
    info = verified(env)
    assert info["files"] == {"indexed": 3000}

    bulk(vault, 3000, "b")
    run = ingest_until(env, vault, kb_home, "b", 3000)
    proc.stop()  # the Chroma server dies mid-ingest ...
    try:
        stdout, stderr = run.communicate(timeout=300)
    finally:
        proc.start()  # ... and comes back (same data folder, same port)
    assert run.returncode == 4, stdout + stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and "Traceback" not in stderr
    assert lines[0].startswith(f"error: the Chroma server at {url} did not answer")
    assert "kb repairs the index on the next sync" in lines[1]
    r = kb(
        "ingest", str(vault), "--json", env=env
    )  # the remedy: server back, run the command again
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["failed"] == 0
    info = verified(env)
    assert info["files"] == {"indexed": 6000}


def test_kb_watch_on_a_server_follows_edits_and_survives_a_server_restart(
    chroma, kb_home: Path, tmp_path: Path
) -> None:
    proc, url = chroma
    vault = tmp_path / "vault"
    write(vault / "first.md", "# First\n\nthe first note about herons\n")
    env = {**HASH, "KB_CHROMA__URL": url}
    w = WatchProcess(kb_home, [vault], env=env)
    try:
        w.client()
        wait_for(lambda: found(w.search("herons"), "first.md"), 120, "first.md searchable")
        write(vault / "second.md", "# Second\n\nthe second note about pelicans\n")
        wait_for(lambda: found(w.search("pelicans"), "second.md"), 120, "second.md searchable")
        (vault / "first.md").unlink()
        wait_for(lambda: not found(w.search("herons"), "first.md"), 120, "first.md gone")
        proc.stop()
        write(vault / "third.md", "# Third\n\nthe third note about cormorants\n")
        wait_for(
            lambda: (
                (w.status().get("last_error") or {}).get("message", "").find("Chroma server") >= 0
            ),
            120,
            "the daemon to report the server",
        )
        proc.start()
        wait_for(
            lambda: found(w.search("cormorants"), "third.md"), 180, "third.md after the restart"
        )
        err = w.status()["last_error"]
        assert err["resolved"] is not None
        v = w.verify()
        assert (v["missing"], v["orphans"], v["duplicates"]) == ([], [], [])
        assert v["chunks"] == v["vectors"] == 2
    finally:
        w.close()
        if proc.proc is None:
            proc.start()
