"""`kb watch` facing hostile files, faults nobody anticipated and a full disk: it keeps indexing the
rest, keeps answering, stops on SIGTERM and resumes by itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon_proc import WatchProcess, found, wait_for
from tests.support.files import hostile_vault

HASH = {"KB_EMBED_MODEL": "hash-64"}


def problems(w: WatchProcess) -> dict[str, str]:
    env = {**os.environ, **HASH, "KB_HOME": str(w.home)}
    r = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["daemon"]["running"]  # the daemon's state can be read (it used to fail to encode)
    return {Path(p["path"]).name: p["reason"] for p in data["problems"]}


def test_hostile_files_under_watch(kb_home: Path, tmp_path: Path) -> None:
    root = tmp_path / "v"
    root.mkdir()
    (root / "seed.md").write_text("# Seed\n\nseed\n", encoding="utf-8")
    w = WatchProcess(kb_home, [root], env=HASH)
    try:
        w.client()
        w.idle()
        hostile_vault(root)
        wait_for(lambda: found(w.search("topic9 gardens", k=3), "good9.md"), 60, "the good notes")
        wait_for(
            lambda: found(w.search("zeppelins legacy archive", k=3), "bad\\xffname.md"),
            60,
            "the odd name",
        )
        p = wait_for(
            lambda: (lambda d: d if "loop.md" in d and "damaged.md" in d else None)(problems(w)),
            60,
            "the problems to be reported",
        )
        assert "symlink loop" in p["loop.md"] and "replacement" in p["damaged.md"]
        (root / "late.md").write_text(
            "# Late\n\nwritten after the bad files: quokka\n", encoding="utf-8"
        )
        wait_for(
            lambda: found(w.search("quokka", k=3), "late.md"), 60, "a later note (nothing is stuck)"
        )
        (root / "loop.md").unlink()
        wait_for(lambda: "loop.md" not in problems(w), 60, "the removed loop to leave the problems")
        v = w.verify()
        assert (v["missing"], v["orphans"], v["duplicates"], v["stale"]) == ([], [], [], [])
        assert w.term() == 0
    finally:
        w.close()


FAULTS = """
import ingest.commit as c
import ingest.sync as s
class Unanticipated(Exception):
    pass
_load, _write = s.load, c.GroupWriter._write
def load(path, data=None, rel=None):
    if path.name == "poison.md":
        raise Unanticipated("load exploded")
    return _load(path, data, rel)
def _w(self, rkey, group, report, tally):
    if any(w.cand.rel == "venom.md" and w.chunks for w in group):  # writing its data explodes
        raise Unanticipated("write exploded")
    return _write(self, rkey, group, report, tally)
s.load, c.GroupWriter._write = load, _w
"""


def test_unanticipated_exceptions_under_watch_stop_only_their_file(
    kb_home: Path, tmp_path: Path
) -> None:
    root = tmp_path / "v"
    root.mkdir()
    w = WatchProcess(kb_home, [root], env=HASH, prelude=FAULTS)
    try:
        (root / "seed.md").write_text("# Seed\n\nseed\n", encoding="utf-8")
        w.client()
        w.idle()
        for name in ("poison.md", "venom.md", "ok1.md", "ok2.md"):
            (root / name).write_text(f"# {name}\n\nbody of {name} wombat\n", encoding="utf-8")
        wait_for(
            lambda: (
                found(w.search("ok2 wombat", k=5), "ok2.md")
                and found(w.search("ok1 wombat", k=5), "ok1.md")
            ),
            60,
            "the healthy files",
        )
        p = wait_for(
            lambda: (lambda d: d if {"poison.md", "venom.md"} <= set(d) else None)(problems(w)),
            60,
            "the failures to be recorded",
        )
        assert "Unanticipated" in p["poison.md"] and "Unanticipated" in p["venom.md"]
        w.idle()  # and it is idle: nothing retries forever
        assert w.term() == 0
    finally:
        w.close()


def bulk_notes(folder: Path, n: int) -> None:
    """``n`` notes of ~60 distinct words each: enough to fill a 12 MB disk past kb's margin."""
    for i in range(n):
        (folder / f"b{i}.md").write_text(
            f"# B{i}\n\n" + " ".join(f"w{i}x{j}" for j in range(60)) + "\n"
        )


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_is_reported_served_stoppable_and_resumed(
    small_disk: Path, tmp_path: Path
) -> None:
    home = small_disk / "home"
    root = tmp_path / "v"
    root.mkdir()
    for i in range(5):
        (root / f"n{i}.md").write_text(f"# N{i}\n\nnote {i} about owls\n", encoding="utf-8")
    env = {**os.environ, **HASH, "KB_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(root)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    w = WatchProcess(home, [root], env=HASH)
    try:
        w.client()
        w.idle()
        bulk = root / "bulk"
        bulk.mkdir()
        bulk_notes(bulk, 3000)
        st = wait_for(
            lambda: (lambda s: s if (s["last_error"] or {}).get("remedy") else None)(w.status()),
            240,
            "the full disk to be reported",
        )
        assert "full" in st["last_error"]["message"] and "free space" in st["last_error"]["remedy"]
        assert found(w.search("owls", k=3), "n1.md")  # still answering reads
        out = subprocess.run(
            [sys.executable, "-m", "kb.cli.main", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert "free space" in out
        subprocess.run(
            ["mount", "-o", "remount,size=128m", str(small_disk)], check=True
        )  # space is freed
        wait_for(
            lambda: w.status()["last_error"]["resolved"], 240, "the daemon to resume by itself"
        )
        w.idle(timeout=300)
        v = w.verify()
        assert (v["missing"], v["orphans"], v["duplicates"], v["stale"]) == ([], [], [], [])
        assert v["chunks"] == 3005
        assert w.term() == 0
    finally:
        w.close()


def test_ingest_on_a_full_disk_is_one_line_and_nonzero(small_disk: Path, tmp_path: Path) -> None:
    home = small_disk / "home"
    root = tmp_path / "v"
    root.mkdir()
    bulk_notes(root, 2000)
    env = {**os.environ, **HASH, "KB_HOME": str(home)}
    r = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "full" in r.stderr and "free space" in r.stderr
    subprocess.run(["mount", "-o", "remount,size=128m", str(small_disk)], check=True)
    subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(root)],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    v = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "status", "--verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert v.returncode == 0, v.stdout + v.stderr


def test_the_endpoint_validates_paths_like_the_cli(kb_home: Path, tmp_path: Path) -> None:
    from kb.errors import KbError, PathNotFoundError

    root = tmp_path / "v"
    root.mkdir()
    (root / "a.md").write_text("# A\n\nowls\n", encoding="utf-8")
    w = WatchProcess(kb_home, [root], env=HASH)
    try:
        c = w.client()
        w.idle()
        for bad, why in (
            ("relative/dir", "not an absolute path"),
            ("/etc/hostname", "is a file"),
            (str(tmp_path / "nope"), "no such folder"),
        ):
            with pytest.raises(PathNotFoundError, match=why) as info:
                c.request("ingest", {"paths": [bad]}, timeout=30)
            assert info.value.exit_code == 3 and info.value.remedy
        with pytest.raises(KbError):
            c.request("ingest", {"paths": "/tmp"}, timeout=30)
        with pytest.raises(PathNotFoundError):
            c.request("forget", {"path": "relative"}, timeout=30)
        assert list(w.status()["roots"]) == [str(root)]  # no bogus roots kept
        assert w.term() == 0
    finally:
        w.close()


def test_read_only_home_is_one_line_that_does_not_point_at_ingest(
    small_disk: Path, tmp_path: Path
) -> None:
    import shutil

    home = small_disk / "home"
    root = tmp_path / "v"
    root.mkdir()
    (root / "a.md").write_text("# A\n\nowls at night\n", encoding="utf-8")
    env = {**os.environ, **HASH, "KB_HOME": str(home)}
    run = [sys.executable, "-m", "kb.cli.main"]
    subprocess.run(
        [*run, "ingest", str(root)], env=env, check=True, capture_output=True, timeout=120
    )
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    r = subprocess.run(
        [*run, "search", "owls"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 4 and "Traceback" not in r.stderr and "read-only" in r.stderr
    assert "kb ingest" not in r.stderr
    st = subprocess.run(
        [*run, "status", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert st.returncode == 0 and json.loads(st.stdout)["chunks"] == 1
    w = subprocess.run(
        [*run, "ingest", str(root)], env=env, capture_output=True, text=True, timeout=120
    )
    assert w.returncode == 4 and "read-only" in w.stderr and "Traceback" not in w.stderr
    w = subprocess.run(  # the daemon too: one line (it made its logs folder with a traceback)
        [*run, "watch", str(root)], env=env, capture_output=True, text=True, timeout=120
    )
    assert w.returncode == 4 and "read-only" in w.stderr and "Traceback" not in w.stderr
    assert len(w.stderr.strip().splitlines()) <= 3, w.stderr
    copy = (
        tmp_path / "home-copy"
    )  # the remedy: copy it to a writable folder and point KB_HOME there
    shutil.copytree(home, copy)
    r = subprocess.run(
        [*run, "search", "owls", "--json"],
        env={**env, "KB_HOME": str(copy)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and json.loads(r.stdout)[0]["path"].endswith("a.md")
