from __future__ import annotations

import os
from pathlib import Path

from ingest.scan import Scanner
from kb.settings import load_settings
from tests.support.files import write


def scan(root: Path, max_bytes: int = 10**6) -> dict[str, str | None]:
    ing = load_settings().ingest
    return {
        c.rel: c.skip_reason
        for c in Scanner(root, ing.extensions, ing.ignore_dirs, max_bytes).walk()
    }


def test_ignores_tool_and_hidden_folders_and_kbignore(tmp_path: Path) -> None:
    for rel in [
        "a.md",
        ".git/x.md",
        ".obsidian/w.md",
        ".trash/t.md",
        "node_modules/m.md",
        ".hidden/h.md",
        "sub/.dot.md",
        "drafts/d.md",
        "sub/keep.md",
        "sub/x.tmp.md",
        "image.png",
        "notes.txt",
    ]:
        write(tmp_path / rel, "x")
    write(tmp_path / ".kbignore", "drafts/\n*.tmp.md\n")
    assert set(scan(tmp_path)) == {"a.md", "sub/keep.md", "notes.txt"}


def test_size_limit_records_reason(tmp_path: Path) -> None:
    write(tmp_path / "big.md", "x" * 5000)
    reasons = scan(tmp_path, max_bytes=1000)
    assert reasons["big.md"] is not None and "too large" in reasons["big.md"]


def test_symlinks_outside_root_not_followed_and_loops_safe(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside / "secret.md", "s")
    write(root / "in.md", "i")
    write(root / "sub" / "deep.md", "d")
    os.symlink(outside, root / "link-out")
    os.symlink(outside / "secret.md", root / "file-out.md")
    os.symlink(root, root / "sub" / "loop")  # a loop back to the root
    os.symlink(root / "sub", root / "alias")  # inside: followed, once
    found = scan(root)
    assert "link-out/secret.md" not in found  # not followed: the links are skipped, with the reason
    assert "outside the notes folder" in found["link-out"]
    assert "outside the notes folder" in found["file-out.md"]
    assert "in.md" in found and "sub/deep.md" in found
    assert len([k for k in found if k.endswith("deep.md")]) == 1


def test_unreadable_file_recorded(tmp_path: Path) -> None:
    p = write(tmp_path / "locked.md", "x")
    p.chmod(0)
    try:
        reasons = scan(tmp_path)
        if os.geteuid() == 0:  # root reads anything: nothing to record
            assert reasons["locked.md"] is None
        else:
            assert "unreadable" in (reasons["locked.md"] or "")
    finally:
        p.chmod(0o644)


def test_walk_ignores_exactly_what_is_ignored_says(tmp_path: Path) -> None:
    """The walk's fast per-file check (folders already checked on the way down) agrees with
    `is_ignored`."""
    names = [
        "a.md",
        "UPPER.MD",
        "a.b.md",
        "file.",
        "noext",
        ".dot.md",
        "x.tmp.md",
        "sub/y.tmp.md",
        "sub/ok.txt",
        "sub/.hid.txt",
        "page.html",
        "page.htm",
        "doc.pdf",
        "arc.md.bak",
        "excl/e.md",
        "keep/excl.md",
    ]
    for rel in names:
        write(tmp_path / rel, "x")
    write(tmp_path / ".kbignore", "*.tmp.md\n")
    ing = load_settings().ingest
    scanner = Scanner(
        tmp_path, ing.extensions, ing.ignore_dirs, 10**6, excludes=["excl", "keep/excl.md"]
    )
    walked = {c.rel for c in scanner.walk()}
    expected = {rel for rel in names if not scanner.is_ignored(rel)}
    assert walked == expected
    assert {"a.md", "UPPER.MD", "a.b.md", "sub/ok.txt", "page.html", "doc.pdf"} <= walked
    assert not walked & {
        "file.",
        "noext",
        ".dot.md",
        "x.tmp.md",
        "sub/.hid.txt",
        "excl/e.md",
        "keep/excl.md",
    }


def test_links_out_of_the_folder_are_skipped_with_a_reason(make_kb, tmp_path: Path) -> None:
    """A link to a note or a folder outside the notes folder is not followed — and `kb status`
    says so, instead of the note silently missing."""
    outside = tmp_path / "elsewhere"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.md").write_text("# Secret\n\noutside the vault\n", encoding="utf-8")
    (outside / "sub" / "deep.md").write_text("# Deep\n\noutside too\n", encoding="utf-8")
    root = tmp_path / "vault"
    root.mkdir()
    (root / "a.md").write_text("# A\n\ninside\n", encoding="utf-8")
    (root / "link.md").symlink_to(outside / "secret.md")
    (root / "linked-folder").symlink_to(outside / "sub")
    base = make_kb()
    report = base.ingest([root])
    assert report.added == 1
    problems = {Path(p.path).name: p.reason for p in base.status().problems}
    assert "outside" in problems["link.md"] and "outside" in problems["linked-folder"]
    assert not base.search("outside the vault", k=5) or all(
        h.rel == "a.md" for h in base.search("outside the vault", k=5)
    )
    assert base.verify().ok
