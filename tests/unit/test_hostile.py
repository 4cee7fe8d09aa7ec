"""Files a hostile or unlucky user has: names that are not UTF-8, symlink loops, damaged text, and
exceptions nobody anticipated. Each stays that file's problem; every other note is indexed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.files import hostile_vault, write


def test_hostile_folder_indexes_the_good_notes_and_reports_the_rest(
    make_kb, tmp_path: Path
) -> None:
    root = hostile_vault(tmp_path / "v")
    base = make_kb()
    r = base.ingest([root])
    assert r.added >= 10
    problems = {Path(p["path"]).name: p["reason"] for p in base.status().as_dict()["problems"]}
    assert "symlink loop" in problems["loop.md"]
    assert "replacement characters" in problems["damaged.md"]
    assert base.search("zeppelins legacy archive", k=1)[0].rel == "bad\\xffname.md"
    assert base.search("topic7 gardens", k=1)[0].rel == "good7.md"
    assert base.verify().ok
    r2 = base.ingest([root])  # and again: nothing redone, nothing raises
    assert r2.embedded == 0 and r2.failed == 0
    (root / "loop.md").unlink()
    os.unlink(os.fsencode(root) + b"/bad\xffname.md")
    base.ingest([root])
    names = {Path(p["path"]).name for p in base.status().as_dict()["problems"]}
    assert "loop.md" not in names
    assert not [h for h in base.search("zeppelins legacy archive", k=5) if "bad" in h.rel]
    assert base.verify().ok


class Unanticipated(Exception):
    """An exception type no handler in kb names."""


@pytest.mark.parametrize("where", ["ingest.sync.load", "ingest.sync.safe_rel"])
def test_an_unanticipated_exception_in_one_file_fails_only_that_file(
    make_kb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import ingest.sync as sync

    root = tmp_path / "v"
    for i in range(5):
        write(root / f"n{i}.md", f"# N{i}\n\nnote {i} about subject{i}\n")
    name = where.rsplit(".", 1)[1]
    real = getattr(sync, name)

    def boom(*a, **kw):
        if "n3" in str(a[0]):
            raise Unanticipated("nobody expected this")
        return real(*a, **kw)

    monkeypatch.setattr(sync, name, boom)
    base = make_kb()
    r = base.ingest([root])
    assert r.failed == 1 and r.added == 4
    assert any("Unanticipated" in p["reason"] for p in r.problems)
    assert base.verify().ok


def test_an_unanticipated_exception_while_writing_fails_only_that_file(
    make_kb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write step (vectors + manifest) of a group isolates its files too."""
    import ingest.commit as sync

    root = tmp_path / "v"
    for i in range(6):
        write(root / f"n{i}.md", f"# N{i}\n\nnote {i} about subject{i}\n")
    real = sync._meta

    def boom(c, f):
        if c.span.path == "n2.md":
            raise Unanticipated("metadata exploded")
        return real(c, f)

    monkeypatch.setattr(sync, "_meta", boom)
    base = make_kb()
    r = base.ingest([root])
    assert (r.added, r.failed) == (5, 1)
    assert base.status().as_dict()["problems"][0]["reason"].startswith("Unanticipated")
    assert base.verify().ok
    monkeypatch.setattr(sync, "_meta", real)
    (root / "n2.md").touch()
    r = base.ingest([root])
    assert r.updated == 1 and r.failed == 0 and base.search("subject2", k=1)[0].rel == "n2.md"
    assert base.verify().ok


def test_a_full_disk_is_one_clear_error_not_a_failed_file(
    make_kb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from kb.errors import DiskFullError
    from kb.index.store import VectorStore

    root = tmp_path / "v"
    write(root / "a.md", "# A\n\nalpha\n")

    def full(self, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_add = VectorStore.add
    monkeypatch.setattr(VectorStore, "add", full)
    base = make_kb()
    with pytest.raises(DiskFullError, match="full") as info:
        base.ingest([root])
    assert "free space" in info.value.remedy
    assert base.status().as_dict()["problems"] == []  # the file is not blamed
    monkeypatch.setattr(VectorStore, "add", real_add)
    base.ingest([root])
    assert base.search("alpha", k=1)[0].rel == "a.md" and base.verify().ok
