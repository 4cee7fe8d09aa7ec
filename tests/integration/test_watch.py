"""`kb watch` with real watchdog events on real files, in a real daemon process."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.watch import ChangeQueue, RootHandler, start_observer
from kb.daemon.client import connect, state_path
from tests.support.daemon_proc import WatchProcess, found, wait_for

HASH = {"KB_EMBED_MODEL": "hash"}


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    (root / "projects").mkdir(parents=True)
    (root / "start.md").write_text(
        "# Start\n\nThe first note mentions lighthouses.\n", encoding="utf-8"
    )
    (root / "projects" / "plan.md").write_text(
        "# Plan\n\nA plan about gardening.\n", encoding="utf-8"
    )
    return root


@pytest.fixture
def daemon(kb_home: Path, vault: Path):
    w = WatchProcess(kb_home, [vault], env=HASH)
    w.client()
    w.idle()
    yield w
    w.close()


def indexed_paths(w: WatchProcess) -> set[str]:
    from ingest.manifest import Manifest

    m = Manifest(w.home / "manifest.sqlite3")
    try:
        return {p for (_, p), f in m.files().items() if f.status == "indexed"}
    finally:
        m.close()


# ---------------------------------------------------------------- the queue and observers, in
# process
def test_change_queue_coalesces_and_waits_for_quiet(tmp_path: Path) -> None:
    q = ChangeQueue(debounce=0.3)
    f = tmp_path / "a.md"
    f.write_text("x")
    os.utime(f, (time.time() - 10, time.time() - 10))
    for _ in range(20):
        q.add(str(tmp_path), "a.md", False)
    assert len(q) == 1 and q.ready() == []  # still inside the debounce window
    assert wait_for(q.ready, 5, "the path to become due")[0].rel == "a.md"
    assert len(q) == 0


def test_change_queue_holds_a_file_that_is_still_being_written(tmp_path: Path) -> None:
    q = ChangeQueue(debounce=0.2)
    f = tmp_path / "big.md"
    f.write_text("partial")
    q.add(str(tmp_path), "big.md", False)
    time.sleep(0.25)
    os.utime(f)  # the writer is still at it, but its events were lost
    assert q.ready() == []
    os.utime(f, (time.time() - 10, time.time() - 10))
    assert wait_for(q.ready, 5, "the file to settle")


def test_watch_limit_falls_back_to_polling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from watchdog.observers import Observer

    def exhausted(self, *a, **kw):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(type(Observer()), "start", exhausted)
    q = ChangeQueue(debounce=0.05)
    obs, warning = start_observer(tmp_path, RootHandler(tmp_path, q), poll_interval=0.1)
    try:
        assert type(obs).__name__ == "PollingObserver"
        assert "watch limit" in warning and "max_user_watches" in warning
        (tmp_path / "new.md").write_text("hello")
        wait_for(
            lambda: any(c.rel == "new.md" for c in q.ready()),
            10,
            "the polling observer to see the file",
        )
    finally:
        obs.stop()


# ---------------------------------------------------------------- the daemon, end to end
def test_create_modify_delete_rename_and_atomic_save(daemon: WatchProcess, vault: Path) -> None:
    note = vault / "fresh.md"
    note.write_text("# Fresh\n\nquokkaword appears here.\n", encoding="utf-8")
    wait_for(
        lambda: found(daemon.search("quokkaword"), "fresh.md"), 10, "a new note to be searchable"
    )

    note.write_text("# Fresh\n\nnow it says zebrafinch instead.\n", encoding="utf-8")
    wait_for(lambda: "zebrafinch" in daemon.search("zebrafinch")[0]["text"], 10, "an edit")
    assert not any("quokkaword" in h["text"] for h in daemon.search("quokkaword"))

    note.rename(vault / "renamed.md")
    wait_for(lambda: found(daemon.search("zebrafinch"), "renamed.md"), 10, "a rename")
    assert not found(daemon.search("zebrafinch"), "fresh.md")

    # atomic save: write a temp file beside the note, then rename it over the note
    tmp = vault / ".renamed.md.tmp123"
    tmp.write_text("# Fresh\n\natomically saved narwhalword.\n", encoding="utf-8")
    os.replace(tmp, vault / "renamed.md")
    wait_for(lambda: "narwhalword" in daemon.search("narwhalword")[0]["text"], 10, "an atomic save")

    (vault / "renamed.md").unlink()
    wait_for(lambda: not found(daemon.search("narwhalword"), "renamed.md"), 10, "a delete")
    last = daemon.status()["last_sync"]
    assert last["deleted"] == 1 and last["embedded"] == 0


def test_editor_artifacts_are_ignored_and_case_rename_follows(
    daemon: WatchProcess, vault: Path
) -> None:
    for junk in (
        ".start.md.swp",
        "start.md~",
        "4913",
        ".#start.md",
        "start.md.tmp",
        "~$start.md.bak",
    ):
        (vault / junk).write_text("junk junkword", encoding="utf-8")
    (vault / "Case.md").write_text("# Case\n\ncapybaraword\n", encoding="utf-8")
    wait_for(lambda: found(daemon.search("capybaraword"), "Case.md"), 10, "the note")
    (vault / "Case.md").rename(vault / "case.md")
    wait_for(lambda: "case.md" in indexed_paths(daemon), 10, "a case-only rename")
    daemon.idle()
    assert indexed_paths(daemon) == {"start.md", "projects/plan.md", "case.md"}
    assert daemon.verify()["stale"] == []


def test_folder_create_move_delete(daemon: WatchProcess, vault: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    for i in range(5):
        (outside / "deep" / f"n{i}.md").write_text(
            f"# N{i}\n\nfolderword{i} text\n", encoding="utf-8"
        )
    shutil.move(str(outside), str(vault / "moved-in"))  # a whole folder appears at once
    wait_for(
        lambda: {f"moved-in/deep/n{i}.md" for i in range(5)} <= indexed_paths(daemon),
        15,
        "a moved-in folder",
    )

    (vault / "moved-in").rename(
        vault / "archive"
    )  # a folder moves inside the root: vectors are reused
    wait_for(
        lambda: (
            {f"archive/deep/n{i}.md" for i in range(5)} <= indexed_paths(daemon)
            and not any(p.startswith("moved-in/") for p in indexed_paths(daemon))
        ),
        15,
        "a folder move",
    )
    assert daemon.status()["last_sync"]["embedded"] == 0

    (vault / "newdir" / "sub").mkdir(parents=True)
    (vault / "newdir" / "sub" / "x.md").write_text("# X\n\nnewdirword\n", encoding="utf-8")
    wait_for(lambda: "newdir/sub/x.md" in indexed_paths(daemon), 15, "a note in a new folder")

    shutil.rmtree(vault / "archive")
    wait_for(
        lambda: not any(p.startswith("archive/") for p in indexed_paths(daemon)),
        15,
        "a folder delete",
    )
    daemon.idle()
    v = daemon.verify()
    assert v["missing"] == [] and v["orphans"] == [] and v["duplicates"] == [] and v["stale"] == []


def test_edit_storm_final_index_equals_final_disk(daemon: WatchProcess, vault: Path) -> None:
    files = [vault / "storm" / f"s{i:02d}.md" for i in range(50)]
    files[0].parent.mkdir()
    for rnd in range(10):  # 500 saves as fast as the machine writes them (no timing asserted)
        for i, f in enumerate(files):
            f.write_text(f"# S{i}\n\nstorm file {i} save {rnd} token{i}x{rnd}\n", encoding="utf-8")
    daemon.idle()

    def settled() -> bool:
        from ingest.manifest import Manifest

        m = Manifest(daemon.home / "manifest.sqlite3")
        try:
            texts = {
                p: "".join(c.text for c in m.chunks_of(str(vault), p))
                for p in (f.relative_to(vault).as_posix() for f in files)
            }
        finally:
            m.close()
        return all(f"token{i}x9" in texts[f"storm/s{i:02d}.md"] for i in range(50))

    wait_for(settled, 30, "every file's last save to be indexed")
    v = daemon.verify()
    assert (v["missing"], v["orphans"], v["duplicates"], v["stale"]) == ([], [], [], [])


def test_bad_files_appear_and_vanish(daemon: WatchProcess, vault: Path) -> None:
    (vault / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (vault / "binary.md").write_bytes(bytes(range(256)) * 50)
    (vault / "fine.md").write_text("# Fine\n\nwombatword\n", encoding="utf-8")
    wait_for(
        lambda: found(daemon.search("wombatword"), "fine.md"), 10, "the good file next to bad ones"
    )

    def problems() -> dict[str, str]:
        out = subprocess.run(
            [sys.executable, "-m", "kb.cli.main", "status", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, **HASH},
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["daemon"]["running"] is True
        return {Path(p["path"]).name: p["reason"] for p in info["problems"]}

    got = wait_for(
        lambda: (p := problems()) and "broken.pdf" in p and p, 15, "the bad PDF to be reported"
    )
    assert got["broken.pdf"]
    (vault / "broken.pdf").unlink()
    (vault / "binary.md").unlink()
    wait_for(
        lambda: "broken.pdf" not in problems(), 15, "the vanished bad file to leave the report"
    )
    assert daemon.proc.poll() is None
    assert found(daemon.search("wombatword"), "fine.md")


def test_sigterm_exits_cleanly(daemon: WatchProcess) -> None:
    assert state_path(daemon.home).exists()
    assert stat.S_IMODE(state_path(daemon.home).stat().st_mode) == 0o600
    assert daemon.term() == 0
    assert not state_path(daemon.home).exists()
    assert connect(daemon.home) is None
    assert "stopped cleanly" in (daemon.home / "logs" / "watch.log").read_text()


def test_ingest_and_status_go_through_the_daemon(
    daemon: WatchProcess, vault: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.md").write_text("# O\n\notterword\n", encoding="utf-8")
    env = {**os.environ, **HASH}
    r = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(other), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 1
    assert "is running: it does the sync" in r.stderr
    assert found(daemon.search("otterword"), "o.md")
    assert str(other) in daemon.status()["roots"]  # the new folder is watched from now on
    (other / "o2.md").write_text("# O2\n\nsealword\n", encoding="utf-8")
    wait_for(
        lambda: found(daemon.search("sealword"), "o2.md"), 10, "a note in the newly watched folder"
    )
    r = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "status", "--verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "daemon up" in r.stdout


def test_cli_search_fast_path_matches_full_cli(daemon: WatchProcess) -> None:
    env = {**os.environ, **HASH}
    fast = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from kb.cli.fast import main; sys.argv[0]='kb'; main()",
            "search",
            "lighthouses",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    full = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "search", "lighthouses", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert fast.returncode == full.returncode == 0, fast.stderr + full.stderr
    assert json.loads(fast.stdout) == json.loads(full.stdout)
    assert Path(json.loads(fast.stdout)[0]["path"]).name == "start.md"
    code = (
        "import sys; from kb.cli.fast import main; sys.argv=['kb','search','lighthouses']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('typer', 'rich', 'pydantic', 'torch', 'chromadb') if m in "
        "sys.modules))"
    )
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert mods.stdout.strip().splitlines()[-1] == "[]", mods.stdout + mods.stderr


def test_catches_up_at_start_and_reconciles_periodically(kb_home: Path, vault: Path) -> None:
    w = WatchProcess(kb_home, [vault], env=HASH)
    w.client()
    w.idle()
    assert w.term() == 0
    # while the daemon is down: an edit, a delete, a new note, a rename
    (vault / "start.md").write_text(
        "# Start\n\nrewritten offline with puffinword\n", encoding="utf-8"
    )
    (vault / "projects" / "plan.md").rename(vault / "projects" / "plan-2025.md")
    (vault / "offline.md").write_text("# Offline\n\nstoatword\n", encoding="utf-8")
    w = WatchProcess(
        kb_home,
        [],
        env={
            **HASH,
            "KB_WATCH__RECONCILE_MINUTES": "0.02",  # every 1.2 s
            "KB_WATCH__LOG_MB": "0.001",
        },
    )  # rotate at ~1 KB
    try:
        w.client()
        w.idle()
        assert indexed_paths(w) == {"start.md", "projects/plan-2025.md", "offline.md"}
        assert found(w.search("puffinword"), "start.md") and found(
            w.search("stoatword"), "offline.md"
        )
        log = kb_home / "logs" / "watch.log"
        logs = lambda: "".join(f.read_text() for f in log.parent.glob("watch.log*"))  # noqa: E731
        wait_for(lambda: "synced periodic reconcile" in logs(), 20, "a periodic reconcile")
        wait_for(lambda: (kb_home / "logs" / "watch.log.1").exists(), 20, "the log to rotate")
        assert log.stat().st_size <= 2048 and not (kb_home / "logs" / "watch.log.4").exists()
        v = w.verify()
        assert (v["missing"], v["orphans"], v["duplicates"], v["stale"]) == ([], [], [], [])
    finally:
        w.close()


def test_second_writer_waits_and_clear_errors(daemon: WatchProcess, vault: Path) -> None:
    env = {**os.environ, **HASH}
    second = WatchProcess(daemon.home, [vault], env=HASH)
    try:
        wait_for(
            lambda: "waiting for it to finish" in second.output(), 60, "the second daemon to wait"
        )
        assert second.proc.poll() is None and connect(daemon.home).state["pid"] == daemon.proc.pid
    finally:
        second.close()
    other = {**env, "KB_EMBED_MODEL": "hash-32"}
    r = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "search", "lighthouses"],
        capture_output=True,
        text=True,
        env=other,
        timeout=60,
    )
    assert r.returncode == 4 and "hash-256" in r.stderr and "Traceback" not in r.stderr


def test_ask_and_forget_through_the_daemon(daemon: WatchProcess, vault: Path) -> None:
    from tests.support.fake_vllm import FakeVLLM

    env = {**os.environ, **HASH}
    cmd = [sys.executable, "-m", "kb.cli.main"]
    dry = subprocess.run(
        [*cmd, "ask", "what does the first note mention about lighthouses", "--dry-run", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert dry.returncode == 0, dry.stderr
    ctx = json.loads(dry.stdout)
    kept = ctx["kept"]
    assert kept and Path(kept[0]["path"]).name == "start.md"
    with FakeVLLM() as fake:
        r = subprocess.run(
            [*cmd, "ask", "what does the first note mention about lighthouses", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "KB_LLM_BASE_URL": fake.url, "KB_LLM_MODEL": fake.model},
        )
        assert r.returncode == 0, r.stderr
        assert (
            json.loads(r.stdout)["answer"]
            and "lighthouses" in fake.chats()[-1]["messages"][-1]["content"]
        )
    r = subprocess.run(
        [*cmd, "forget", str(vault / "projects")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert indexed_paths(daemon) == {"start.md"}
    (vault / "projects" / "later.md").write_text("# Later\n\nforgottenword\n", encoding="utf-8")
    (vault / "after.md").write_text("# After\n\nrememberedword\n", encoding="utf-8")
    wait_for(lambda: "after.md" in indexed_paths(daemon), 10, "a note outside the forgotten folder")
    daemon.idle()
    assert indexed_paths(daemon) == {"start.md", "after.md"}  # the forgotten folder stays out


def test_root_that_vanishes_and_returns_is_watched_again(
    daemon: WatchProcess, vault: Path, tmp_path: Path
) -> None:
    vault.rename(tmp_path / "unmounted")
    wait_for(
        lambda: "missing" in daemon.status()["roots"][str(vault)],
        15,
        "the daemon to notice the root is gone",
    )
    assert daemon.proc.poll() is None
    vault.mkdir()  # a new folder (new inode) at the same path, like a re-mounted disk
    (vault / "back.md").write_text("# Back\n\nreturnword\n", encoding="utf-8")
    wait_for(
        lambda: found(daemon.search("returnword"), "back.md"), 20, "a note in the returned root"
    )
    (vault / "later.md").write_text(
        "# Later\n\nlaterword\n", encoding="utf-8"
    )  # live events work again
    wait_for(
        lambda: found(daemon.search("laterword"), "later.md"), 10, "an event in the returned root"
    )
    daemon.idle()
    assert indexed_paths(daemon) == {"back.md", "later.md"}


def test_the_endpoint_is_bounded_and_keeps_serving_its_user(daemon: WatchProcess) -> None:
    """Hundreds of connections that never send a token (and one that sends a byte a second) hold
    neither threads nor memory: idle and unauthenticated connections are dropped within seconds,
    over a cap they are closed at once, and the user's searches are answered throughout."""
    import socket

    def threads() -> int:
        text = Path(f"/proc/{daemon.proc.pid}/status").read_text()
        return int(
            next(line.split()[1] for line in text.splitlines() if line.startswith("Threads"))
        )

    before = threads()
    state = json.loads(state_path(daemon.home).read_text())
    idle: list[socket.socket] = []
    for _ in range(400):
        try:
            idle.append(socket.create_connection(("127.0.0.1", state["port"]), timeout=5))
        except OSError:
            break  # the backlog is full: that is the kernel refusing, not the daemon holding
    slow = socket.create_connection(("127.0.0.1", state["port"]), timeout=5)
    try:
        for _ in range(3):  # the user is served while they are all open
            assert found(daemon.search("gardening plan"), "plan.md")
        peak = threads()
        for _ in range(6):  # a slowloris: a byte a second never makes a request
            with contextlib.suppress(OSError):
                slow.sendall(b"{")
            time.sleep(1)
        assert found(daemon.search("gardening plan"), "plan.md")
        wait_for(lambda: threads() <= before + 4, 60, "the idle connections to be dropped")
        assert peak - before <= 70, (before, peak)  # bounded by the cap, not by the attackers
    finally:
        for s in [*idle, slow]:
            s.close()
