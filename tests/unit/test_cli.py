from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kb.cli.main import app
from tests.support.files import write

runner = CliRunner()


@pytest.fixture
def hash_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_EMBED_MODEL", "hash-64")


def run(*args: str):
    return runner.invoke(app, list(args))


def test_ingest_json_search_status(hash_env, notes: Path) -> None:
    r = run("ingest", str(notes), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    for key in (
        "added",
        "updated",
        "unchanged",
        "moved",
        "deleted",
        "skipped",
        "failed",
        "embedded",
    ):
        assert isinstance(data[key], int)
    assert data["added"] == 4 and isinstance(data["problems"], list)
    again = json.loads(run("ingest", "--json").stdout)
    assert again["embedded"] == 0 and again["unchanged"] == 4

    r = run("search", "bananas paragraph", "-k", "2", "--json")
    hits = json.loads(r.stdout)
    assert len(hits) == 2
    assert set(hits[0]) == {
        "path",
        "heading",
        "start_line",
        "end_line",
        "score",
        "relevance",
        "date",
        "date_source",
        "text",
    }
    assert hits[0]["path"].endswith("alpha.md")

    r = run("status", "--json", "--verify")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["files"]["indexed"] == 4 and info["verify"]["ok"] is True
    assert info["model"] == "hash-64" and info["chunks"] > 0


def test_verify_exits_nonzero_on_drift(hash_env, notes: Path) -> None:
    assert run("ingest", str(notes)).exit_code == 0
    (notes / "new.md").write_text("unsynced\n", encoding="utf-8")
    r = run("status", "--verify")
    assert r.exit_code != 0
    assert "unsynced" in r.output and "Traceback" not in r.output


def test_missing_path_is_one_readable_line(hash_env, tmp_path: Path) -> None:
    r = run("ingest", str(tmp_path / "nope"))
    assert r.exit_code == 3
    assert "no such folder" in r.output and "fix:" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_bad_config_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_INGEST__MAX_FILE_MB", "lots")
    r = run("status")
    assert r.exit_code == 2 and "ingest.max_file_mb" in r.output


def test_nothing_indexed_yet(hash_env) -> None:
    r = run("ingest")
    assert r.exit_code == 1 and "kb ingest PATH" in r.output


def test_forget_cli(hash_env, notes: Path) -> None:
    run("ingest", str(notes))
    r = run("forget", str(notes / "café.txt"))
    assert r.exit_code == 0 and "forgot 1" in r.output
    assert run("forget", "/definitely/not/indexed").exit_code == 3


def test_config_show_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_LLM_MODEL", "qwen-test")
    data = json.loads(run("config", "show", "--json").stdout)
    assert data["llm_model"] == {"value": "qwen-test", "source": "env KB_LLM_MODEL"}
    assert data["embed_model"]["source"] == "default"


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from kb.cli.main import app; from typer.testing import CliRunner;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'llama_index', 'chromadb', "
        "'transformers')"
        " if m in sys.modules]; print(heavy); assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_missing_sentence_transformers_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import kb.index.embed as embed
    from kb.errors import DependencyMissingError

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # simulates "not installed"
    monkeypatch.setattr(embed, "_CACHE", {})
    with pytest.raises(DependencyMissingError, match="pip install"):
        embed._load("some/model", "cpu")


# ------------------------------------------------------------- what a new user hit
def test_note_text_with_brackets_is_printed_verbatim(hash_env, tmp_path: Path) -> None:
    root = tmp_path / "v"
    root.mkdir()
    (root / "code [draft].md").write_text(
        "# Types [beta]\n\n```python\ndef f() -> list[str]:\n    return []\n```\n\n"
        "See [the docs](https://example.org/x) and [bold]not markup[/bold].\n",
        encoding="utf-8",
    )
    assert run("ingest", str(root)).exit_code == 0
    out = " ".join(run("search", "list str docs", "-k", "3").output.split())
    assert "def f() -> list[str]:" in out and "[the docs](https://example.org/x)" in out
    assert "[bold]not markup[/bold]" in out and "code [draft].md" in out and "Types [beta]" in out
    dry = " ".join(run("ask", "what does f return as list[str]", "--dry-run").output.split())
    assert "list[str]" in dry and "code [draft].md" in dry


def test_empty_query_is_refused_and_words_need_no_quotes(hash_env, notes: Path) -> None:
    assert run("ingest", str(notes)).exit_code == 0
    for empty in ("", "   "):
        r = run("search", empty)
        assert r.exit_code == 2 and "empty" in r.output
    r = run("ask", "", "--dry-run")
    assert r.exit_code == 2
    many = json.loads(run("search", "second", "paragraph", "about", "bananas", "--json").stdout)
    one = json.loads(run("search", "second paragraph about bananas", "--json").stdout)
    assert many == one and many[0]["path"].endswith("alpha.md")
    r = run("ask", "what", "about", "bananas", "--dry-run", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["question"] == "what about bananas"


def test_version_and_readable_help() -> None:
    r = run("--version")
    assert r.exit_code == 0 and r.output.startswith("kb ") and "kb-notes" in r.output
    for cmd in ("search", "ask", "ingest", "status", "watch", "eval"):
        h = run(cmd, "--help").output
        assert "<bool>" not in h and "<list" not in h and "<path>" not in h and "<int>" not in h, (
            cmd,
            h,
        )


def test_dry_run_table_shows_the_best_dropped_and_all_on_request(hash_env, tmp_path: Path) -> None:
    root = tmp_path / "v"
    root.mkdir()
    for i in range(40):
        (root / f"n{i}.md").write_text(
            f"# Note {i}\n\nGardening tip {i}: water the tomatoes early.\n", encoding="utf-8"
        )
    assert run("ingest", str(root)).exit_code == 0
    short = run("ask", "when should I water the tomatoes", "--dry-run", "--mode", "dialog").output
    full = run(
        "ask", "when should I water the tomatoes", "--dry-run", "--mode", "dialog", "--all"
    ).output
    n_short, n_full = short.count("dropped:"), full.count("dropped:")
    assert n_short <= 5 < n_full and "--all lists them" in short


def test_search_takes_the_filters_ask_takes_and_shows_each_hits_date(
    hash_env, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    write(vault / "journal" / "2024-11-05.md", "# Tuesday\n\nRead a book about owls.\n")
    write(vault / "meeting.md", "---\ndate: 2024-10-02\n---\n# Meeting\n\nOwls were discussed.\n")
    write(vault / "undated.md", "# Owls\n\nAn undated note about owls.\n")
    assert run("ingest", str(vault)).exit_code == 0
    r = run("search", "owls", "--since", "2024-11-01", "--until", "2024-11-30", "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)
    assert [Path(h["path"]).name for h in hits] == ["2024-11-05.md"]
    assert hits[0]["date"] == "2024-11-05" and hits[0]["date_source"] == "file name"
    everything = {
        Path(h["path"]).name: h for h in json.loads(run("search", "owls", "--json").stdout)
    }
    assert everything["meeting.md"]["date_source"] == "frontmatter date"
    assert everything["undated.md"]["date_source"] == "modified"  # its file's mtime, said so
    assert run("search", "owls", "--folder", "journal", "--json").stdout.count('"path"') == 1
    r = run("ask", "owls", "--dry-run", "--mode", "dialog", "--all")
    assert "(modified)" in r.stdout and "2024-10-02" in r.stdout
    bad = run("search", "owls", "--since", "last week")
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_status_lists_what_forget_keeps_out(hash_env, notes: Path) -> None:
    assert run("ingest", str(notes)).exit_code == 0
    assert run("forget", str(notes / "sub")).exit_code == 0
    r = run("status")
    assert "kept out" in r.output and "sub" in r.output
    assert run("ingest", str(notes / "sub")).exit_code == 0  # what status says brings it back
    assert "kept out" not in run("status").output


def test_help_names_the_extras_it_needs() -> None:
    """Square brackets are markup to the help renderer: `kb-notes[plot]` must survive it."""
    out = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200"}).output
    assert "pip install 'kb-notes[plot]'" in out and "docs/eval.md" in out
