"""Real embedding models where a unit test would need one: MiniLM's tokenizer sizing chunks, and
a model that cannot load (sentence-transformers and torch are imported for real)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.chunk import Chunker
from kb.cli.main import app


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_real_tokenizer_limits(minilm: str) -> None:
    from kb.index.embed import SentenceTransformerEmbedder

    e = SentenceTransformerEmbedder(minilm, device="cpu")
    assert e.max_seq_length == 256
    c = Chunker(e.count_tokens, e.max_text_tokens, target_tokens=384, overlap=32)
    assert c.limit == 254  # 256 minus [CLS] and [SEP]
    text = "# Длинная заметка\n\n" + " ".join(
        ["Разнообразные русские слова и english words, 東京."] * 400
    )
    chunks = c.chunk(text, "Длинная заметка")
    assert len(chunks) > 5
    ids = e._tokenizer([ch.embed_text for ch in chunks], add_special_tokens=True)["input_ids"]
    assert max(len(i) for i in ids) <= 256


def test_unloadable_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, notes: Path) -> None:
    monkeypatch.setenv("KB_EMBED_MODEL", str(notes / "not-a-model"))
    r = run("ingest", str(notes))
    assert (
        r.exit_code == 5
        and "cannot load embedding model" in r.output
        and "KB_EMBED_MODEL" in r.output
    )
