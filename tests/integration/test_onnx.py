"""The quantized CPU path (KB_EMBED__BACKEND=onnx-int8): exported offline from the local MiniLM
folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kb.errors import DependencyMissingError, EmbedderError
from tests.support.files import run_kb, write

pytest.importorskip("onnxruntime", reason="pip install 'kb-notes[onnx]'")

TEXTS = [
    "The backup runs every night at 02:00 via cron.",
    "How do I rotate the nginx logs?",
    "A much longer passage about the home server, its disks, the RAID layout and the monthly "
    "scrub. " * 4,
    "short",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, minilm: str):
    from kb.index.onnx import OnnxEmbedder

    cache = tmp_path_factory.mktemp("models")
    return OnnxEmbedder(minilm, cache, batch_size=2), cache


def test_int8_export_agrees_with_fp32_and_is_cached_private(exported, minilm: str) -> None:
    from kb.index.embed import SentenceTransformerEmbedder
    from kb.index.onnx import OnnxEmbedder

    emb, cache = exported
    ref = SentenceTransformerEmbedder(minilm, device="cpu")
    assert emb.model_id == ref.model_id + "#onnx-int8"  # other vectors, other index
    assert emb.count_tokens(TEXTS) == ref.count_tokens(TEXTS)
    assert emb.max_text_tokens == ref.max_text_tokens
    a, b = emb.embed_documents(TEXTS), ref.embed_documents(TEXTS)
    # int8 kernels round differently on different CPUs, so no cosine threshold here (agreement is
    # measured in benchmarks/quantized.py): what holds on any CPU is that each text's int8 vector
    # is nearest its own fp32 vector, embedded alone or in a batch
    assert list(np.argmax(a @ b.T, axis=1)) == list(range(len(TEXTS)))
    single = np.vstack([emb.embed_documents([t]) for t in TEXTS])
    assert list(np.argmax(single @ a.T, axis=1)) == list(range(len(TEXTS)))
    q = emb.embed_query("when does the backup run")
    assert int(np.argmax(a @ q)) == 0
    files = list(cache.rglob("*.onnx"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    stamp = files[0].stat().st_mtime_ns
    OnnxEmbedder(minilm, cache)  # the second use loads the export instead of redoing it
    assert files[0].stat().st_mtime_ns == stamp and list(cache.rglob("*.onnx")) == files


def test_kb_ingest_and_search_on_the_int8_path_and_back(
    minilm: str, kb_home: Path, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    write(vault / "backup.md", "# Backup\n\nThe backup runs every night at 02:00 via cron.\n")
    write(vault / "logs.md", "# Logs\n\nRotate nginx logs with logrotate weekly.\n")
    env = {"KB_HOME": str(kb_home), "KB_EMBED_MODEL": minilm, "KB_EMBED__BACKEND": "onnx-int8"}

    def kb(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_kb(*args, env={**env, **extra})

    r = kb("ingest", str(vault), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["embedded"] == 2
    assert (kb_home / "models").is_dir()
    r = kb(
        "search", "backup", KB_EMBED__BACKEND="torch"
    )  # same model, other vectors: refused, remedy named
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "set KB_EMBED__BACKEND=onnx-int8 again" in r.stderr, r.stderr
    r = kb(
        "search", "when", "does", "the", "backup", "run", "--json"
    )  # the remedy followed (env has int8)
    assert r.returncode == 0, r.stderr
    assert Path(json.loads(r.stdout)[0]["path"]).name == "backup.md"
    r = kb(
        "ingest", str(vault), "--json", KB_EMBED__BACKEND="torch"
    )  # fp32 vectors: a new index, swapped in
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["embedded"] == 2
    assert "switched the index" in r.stderr + r.stdout
    r = kb(
        "search", "backup"
    )  # the index is fp32 now: the int8 setting is refused the other way round
    assert r.returncode != 0 and "set KB_EMBED__BACKEND=torch again" in r.stderr, r.stderr
    r = kb(
        "search", "when", "does", "the", "backup", "run", "--json", KB_EMBED__BACKEND="torch"
    )  # followed
    assert r.returncode == 0, r.stderr
    assert Path(json.loads(r.stdout)[0]["path"]).name == "backup.md"


def test_missing_onnxruntime_and_a_model_not_on_this_machine_are_clear(
    monkeypatch, tmp_path: Path, minilm: str
) -> None:
    from kb.index.onnx import OnnxEmbedder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(DependencyMissingError) as err:
        OnnxEmbedder(minilm, tmp_path)
    assert "kb-notes[onnx]" in (err.value.remedy or "")
    monkeypatch.delitem(sys.modules, "onnxruntime")
    with pytest.raises(EmbedderError) as err2:
        OnnxEmbedder(
            "BAAI/bge-large-en-v1.5", tmp_path
        )  # not in the HF cache here, and HF_HUB_OFFLINE=1
    assert "not on this machine" in err2.value.message and "local sentence-transformers folder" in (
        err2.value.remedy or ""
    )
