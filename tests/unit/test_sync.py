"""Every sync case against real Chroma and real files, with the hash embedder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kb.index.embed import HashEmbedder
from tests.support.files import write
from tests.support.pdfgen import make_pdf

LONG = "\n\n".join(
    f"Paragraph {i} talks about topic{i} and nothing else of note here." for i in range(12)
)


def clean(base) -> None:
    rep = base.verify()
    assert rep.ok, rep.as_dict()


def test_first_ingest_then_noop(make_kb, notes: Path, embedder: HashEmbedder) -> None:
    base = make_kb()
    r = base.ingest([notes])
    assert (r.added, r.updated, r.deleted, r.failed) == (4, 0, 0, 0)
    assert r.embedded == r.chunks > 0
    clean(base)
    before = embedder.embedded
    r2 = base.ingest([notes])
    assert r2.unchanged == 4 and r2.embedded == 0 and embedder.embedded == before
    clean(base)


def test_touch_without_change_is_unchanged(make_kb, notes: Path) -> None:
    base = make_kb()
    base.ingest([notes])
    p = notes / "alpha.md"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5_000_000_000))
    r = base.ingest([notes])
    assert r.unchanged == 4 and r.embedded == 0
    clean(base)


def test_edit_embeds_only_changed_chunks(make_kb, tmp_path: Path, embedder: HashEmbedder) -> None:
    root = tmp_path / "v"
    sections = "\n\n".join(
        f"## Part {i}\n\nBody of part {i} with words w{i}a w{i}b." for i in range(8)
    )
    note = write(root / "n.md", f"# N\n\n{sections}\n")
    base = make_kb()
    first = base.ingest([root])
    assert first.embedded == 8
    note.write_text(
        note.read_text().replace("Body of part 3", "Changed body of part 3"), encoding="utf-8"
    )
    r = base.ingest([root])
    assert r.updated == 1 and r.embedded == 1
    hits = base.search("changed body part 3", k=1)
    assert hits[0].heading.endswith("Part 3") and "Changed" in hits[0].text
    clean(base)


def test_rename_and_move_reuse_vectors(make_kb, notes: Path) -> None:
    base = make_kb()
    base.ingest([notes])
    (notes / "alpha.md").rename(notes / "renamed.md")
    r = base.ingest([notes])
    assert (r.moved, r.embedded, r.added, r.deleted) == (1, 0, 0, 0)
    (notes / "moved").mkdir()
    shutil.move(notes / "sub", notes / "moved" / "sub")
    r = base.ingest([notes])
    assert (r.moved, r.embedded, r.deleted) == (2, 0, 0)
    paths = {h.rel for h in base.search("Сегодня заметки сервер", k=10)}
    assert "moved/sub/заметка.md" in paths and "sub/заметка.md" not in paths
    clean(base)


def test_rename_of_note_without_title_reuses_vectors(make_kb, tmp_path: Path) -> None:
    root = tmp_path / "v"
    write(root / "untitled.md", "just some text without any heading\n")
    base = make_kb()
    base.ingest([root])
    (root / "untitled.md").rename(root / "other-name.md")
    r = base.ingest([root])
    assert r.moved == 1 and r.embedded == 0
    clean(base)


def test_delete(make_kb, notes: Path) -> None:
    base = make_kb()
    base.ingest([notes])
    (notes / "café.txt").unlink()
    r = base.ingest([notes])
    assert r.deleted == 1
    assert all(h.rel != "café.txt" for h in base.search("crème brûlée", k=10))
    clean(base)


def test_no_argument_resyncs_known_roots(make_kb, notes: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write(other / "o.md", "other root\n")
    base = make_kb()
    base.ingest([notes, other])
    write(other / "new.md", "brand new\n")
    r = base.ingest()
    assert r.added == 1 and r.unchanged == 5


def test_bad_files_are_skipped_with_reasons(make_kb, tmp_path: Path, kb_home: Path) -> None:
    root = tmp_path / "v"
    write(root / "good.md", "# Good\n\nfine\n")
    (root / "binary.md").write_bytes(b"\x00\x01\x02" * 100)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    write(root / "big.txt", "x" * 3 * 2**20)
    make_pdf(root / "ok.pdf", ["a real pdf page"])
    (root / "undecodable.txt").write_bytes(
        bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 50 + b"\xff\xfe\xfd" * 40
    )
    base = make_kb(ingest={"max_file_mb": 1})
    r = base.ingest([root])
    reasons = {Path(p["path"]).name: p["reason"] for p in r.problems}
    assert set(reasons) == {"binary.md", "broken.pdf", "big.txt", "undecodable.txt"}
    assert "binary" in reasons["binary.md"] and "too large" in reasons["big.txt"]
    assert r.added == 2 and r.skipped == 4
    status = base.status().as_dict()
    assert status["files"] == {"indexed": 2, "skipped": 4}
    clean(base)
    # a skipped file that is fixed gets indexed; one that turns bad loses its chunks
    (root / "binary.md").write_text("now text\n", encoding="utf-8")
    (root / "good.md").write_bytes(b"\x00bad")
    r = base.ingest([root])
    assert r.added == 0 and r.updated == 1 and r.skipped == 4
    assert all(h.rel != "good.md" for h in base.search("fine good", k=10))
    clean(base)


def test_failed_file_isolated(make_kb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "v"
    write(root / "a.md", "a\n")
    write(root / "boom.md", "b\n")
    import ingest.sync as sync

    real = sync.load

    def flaky(path, data=None, rel=None):
        if path.name == "boom.md":
            raise RuntimeError("parser exploded")
        return real(path, data, rel)

    monkeypatch.setattr(sync, "load", flaky)
    r = make_kb().ingest([root])
    assert r.added == 1 and r.failed == 1
    assert r.problems == [
        {"path": str(root.resolve() / "boom.md"), "reason": "RuntimeError: parser exploded"}
    ]


def test_chunker_change_reembeds_only_changed_text(make_kb, tmp_path: Path) -> None:
    root = tmp_path / "v"
    write(root / "long.md", f"# L\n\n{LONG}\n")
    write(root / "short.md", "# S\n\nshort\n")
    make_kb(ingest={"chunk_tokens": 48}).ingest([root])
    r = make_kb(ingest={"chunk_tokens": 40}).ingest([root])
    assert r.notices and "another model or chunker" in r.notices[0]
    assert r.updated == 2
    assert r.embedded == r.chunks - 1  # short.md's chunk is unchanged text: it keeps its vector


def test_model_change_reembeds_with_notice(tmp_path: Path, notes: Path) -> None:
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(embedder=HashEmbedder(dim=32)) as a:
        first = a.ingest([notes])
    with KnowledgeBase(embedder=HashEmbedder(dim=48)) as b:
        r = b.ingest([notes])
        assert any("model changed" in n for n in r.notices)
        assert r.embedded == first.embedded
        clean(b)
        assert b.index.store().other_collections() == []


def test_search_with_other_model_is_refused(notes: Path) -> None:
    from kb.errors import ModelMismatchError
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(embedder=HashEmbedder(dim=32)) as a:
        a.ingest([notes])
    with KnowledgeBase(embedder=HashEmbedder(dim=48)) as b, pytest.raises(ModelMismatchError):
        b.search("x")


def test_forget(make_kb, notes: Path) -> None:
    base = make_kb()
    base.ingest([notes])
    assert base.forget(notes / "sub") == 2
    assert base.status().as_dict()["files"]["indexed"] == 2
    clean(base)
    r = base.ingest([notes])  # a forgotten folder stays forgotten
    assert r.added == 0 and r.unchanged == 2
    assert base.forget(notes) == 2
    assert base.status().as_dict()["roots"] == []
    assert base.verify().ok


def test_missing_root_is_reported_not_wiped(make_kb, notes: Path, tmp_path: Path) -> None:
    base = make_kb()
    base.ingest([notes])
    moved = tmp_path / "elsewhere"
    notes.rename(moved)
    r = base.ingest()
    assert r.deleted == 0 and "missing" in r.problems[0]["reason"]
    assert base.status().as_dict()["files"]["indexed"] == 4


def test_verify_detects_orphans_missing_and_drift(make_kb, notes: Path) -> None:
    import numpy as np

    base = make_kb()
    base.ingest([notes])
    store = base.index.store()
    store.add(["orphan-id"], np.ones((1, 64), dtype=np.float32), [{"root": "x", "path": "y"}])
    victim = base.index.manifest.all_chunk_ids()[0]
    store.delete([victim])
    write(notes / "new.md", "new\n")
    rep = base.verify()
    assert rep.orphans == ["orphan-id"] and rep.missing == [victim]
    assert any(s["problem"] == "on disk, not in the index" for s in rep.stale)
    assert not rep.ok


CRASH_POINTS = [
    "after_journal",
    "after_vectors",
    "after_manifest",
    "after_delete",
    "delete_after_journal",
    "delete_after_manifest",
    "delete_after_vectors",
]


class Crash(BaseException):
    """Simulates the process dying (not an Exception, so nothing catches it)."""


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_between_write_steps_is_repaired(make_kb, tmp_path: Path, point: str) -> None:
    root = tmp_path / "v"
    write(root / "keep.md", "# Keep\n\nstays the same\n")
    write(root / "edit.md", f"# Edit\n\n{LONG}\n")
    write(root / "gone.md", "# Gone\n\nwill be deleted\n")
    write(root / "mv.md", "# Move\n\nwill be renamed\n")
    base = make_kb()
    base.ingest([root])
    # one sync doing every kind of write
    (root / "edit.md").write_text(
        f"# Edit\n\n{LONG.replace('topic5', 'CHANGED')}\n", encoding="utf-8"
    )
    (root / "gone.md").unlink()
    (root / "mv.md").rename(root / "moved.md")
    write(root / "added.md", "# Added\n\nfresh\n")

    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    base.index.crash_hook = crash
    with pytest.raises(Crash):
        base.ingest([root])
    base.close()

    fresh = make_kb()
    fresh.ingest([root])
    clean(fresh)
    assert {h.rel for h in fresh.search("CHANGED fresh renamed", k=50)} == {
        "keep.md",
        "edit.md",
        "moved.md",
        "added.md",
    }
    ids = fresh.index.manifest.all_chunk_ids()
    assert len(ids) == len(set(ids)) == fresh.index.store().count()


def test_progress_counts_files_as_they_are_done(make_kb, tmp_path: Path) -> None:
    root = tmp_path / "v"
    for i in range(300):
        write(root / f"n{i:03d}.md", f"# N{i}\n\nnote {i} body\n")
    events = []
    make_kb().ingest([root], progress=events.append)
    files = [e.files_done for e in events if e.stage == "embed"]
    assert all(e.files_total == 300 for e in events if e.stage == "embed")
    assert (
        files == sorted(files) and len({f for f in files if 0 < f < 300}) >= 3
    )  # moves while embedding
    assert [e for e in events if e.stage == "done"][-1].files_done == 300


def test_a_first_ingest_killed_midway_keeps_every_group_it_committed(
    make_kb, tmp_path: Path
) -> None:
    """Chunks are committed in groups of ``ingest.group_chunks`` (256 by default): a kill in the
    middle of a big first ingest loses the embedding of the group in flight, not of everything
    before it."""
    root = tmp_path / "v"
    for i in range(40):
        write(root / f"n{i:02}.md", f"# Note {i}\n\nnote {i} about topic{i} and the garden.\n")
    base = make_kb(ingest={"group_chunks": 16})
    commits = 0

    def crash(at: str) -> None:
        nonlocal commits
        commits += at == "after_manifest"
        if commits == 2 and at == "after_manifest":
            raise Crash(at)  # dies after its second commit

    base.index.crash_hook = crash
    with pytest.raises(Crash):
        base.ingest([root])
    base.close()
    again = make_kb(ingest={"group_chunks": 16})
    r = again.ingest([root])
    assert r.embedded == 40 - 2 * 16  # the two committed groups are not embedded again
    assert again.verify().ok


def test_forget_is_visible_and_ingest_of_the_folder_undoes_it(make_kb, tmp_path: Path) -> None:
    """`kb forget DIR` keeps a folder out, `kb status` lists it, and `kb ingest DIR` brings it
    back into its root — no second, nested root indexing the same files twice."""
    root = tmp_path / "v"
    write(root / "a.md", "# A\n\nkeep\n")
    write(root / "private" / "p.md", "# P\n\nprivate note about owls\n")
    base = make_kb()
    base.ingest([root])
    assert base.forget(root / "private") == 1
    assert base.status().roots[0].excluded == ["private"]
    r = base.ingest([root / "private"])
    assert r.added == 1  # back, embedded again (its vectors went with it)
    st = base.status()
    assert [x.root for x in st.roots] == [str(root.resolve())] and st.roots[0].excluded == []
    assert [h.rel for h in base.search("owls", k=1)] == ["private/p.md"]
    assert base.ingest().unchanged == 2  # and it stays in
    assert base.verify().ok
