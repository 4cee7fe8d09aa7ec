"""Scale curve: what kb itself costs as a vault grows to 100k notes (hash embedder: the model is not
measured).

For each size (default 1k, 10k, 100k notes of ~10 chunks each, synthetic, Zipf-distributed words so
BM25 sees realistic postings), in one run:

* first ingest: seconds per note **excluding embedding** (time inside the embedder is subtracted);
* no-op re-sync (`ingest` again, nothing changed) and one-edit sync (one note rewritten),
  in-process;
* `search` p50/p95 in-process (direct reads) and through the `kb watch` daemon (its socket
  protocol);
* edit → searchable through the daemon (the clock starts after the file is closed; polled every 20
  ms);
* peak RSS of the daemon (VmHWM) after those, and the size of KB_HOME.

Goals at 100k notes: no-op re-sync ≤ 2 s, one edit searchable ≤ 1 s, search p50 ≤ 60 ms, daemon RSS
≤ 2 GB.

Usage: python benchmarks/scale.py [--sizes 1000,10000,100000] [--dim 64] [--work DIR] [--json OUT]
        [--reuse]

--work keeps the vaults and homes; --reuse measures again on them, keeping the first-ingest figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

CHUNKS_PER_NOTE = 10
WORDS_PER_SECTION = 70
NOTES_PER_FOLDER = 100


def vocabulary(n: int, rng: random.Random) -> list[str]:
    syll = [
        "ka",
        "lo",
        "mi",
        "ne",
        "ru",
        "sa",
        "to",
        "vi",
        "dre",
        "pla",
        "ston",
        "ker",
        "mun",
        "zel",
        "bor",
        "fin",
        "gra",
        "hul",
        "jor",
        "qua",
        "wex",
        "yon",
        "cli",
        "spa",
    ]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def make_vault(vault: Path, notes: int, seed: int = 0) -> list[str]:
    """Write ``notes`` Markdown notes of CHUNKS_PER_NOTE sections; returns the vocabulary
    (Zipf-ranked)."""
    rng = random.Random(seed)
    vocab = vocabulary(20000, rng)
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    if (vault / ".complete").exists() and int((vault / ".complete").read_text()) == notes:
        return vocab
    shutil.rmtree(vault, ignore_errors=True)
    for i in range(notes):
        folder = vault / f"f{i // NOTES_PER_FOLDER:04d}"
        if i % NOTES_PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        words = rng.choices(vocab, weights, k=CHUNKS_PER_NOTE * WORDS_PER_SECTION)
        parts = [f"# Note {i}\n"]
        for s in range(CHUNKS_PER_NOTE):
            body = " ".join(words[s * WORDS_PER_SECTION : (s + 1) * WORDS_PER_SECTION])
            parts.append(f"\n## Section {s}\n\n{body}.\n")
        (folder / f"n{i:06d}.md").write_text("".join(parts), encoding="utf-8")
    (vault / ".complete").write_text(str(notes))
    return vocab


class TimedHash:
    """kb's hash embedder with the time spent inside it counted (subtracted from ingest times)."""

    def __init__(self, dim: int) -> None:
        from kb.index.embed import HashEmbedder

        self.inner = HashEmbedder(dim=dim)
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed_documents(self, texts: Sequence[str], progress: Any = None) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner.embed_documents(texts, progress)
        finally:
            self.seconds += time.perf_counter() - t0

    def embed_query(self, text: str) -> Any:
        return self.inner.embed_query(text)


def pct(values: list[float], p: float) -> float:
    from kb.eval.retrieval import percentile

    return percentile(values, p / 100)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def queries(vocab: list[str], n: int, rng: random.Random) -> list[str]:
    # mixed: one common word and two from the long tail, like a person's question's content words
    return [
        " ".join([rng.choice(vocab[:200]), rng.choice(vocab[200:5000]), rng.choice(vocab[5000:])])
        for _ in range(n)
    ]


def measure(
    notes: int, work: Path, dim: int, nq: int, reuse: dict[str, Any] | None = None
) -> dict[str, Any]:
    from kb.daemon.client import connect
    from kb.knowledge import KnowledgeBase

    rng = random.Random(notes)
    vault = work / f"vault-{notes}"
    home = work / f"home-{notes}"
    t0 = time.perf_counter()
    if (
        reuse is not None
    ):  # the vault and index of an earlier run (the daemon phase synced its edits)
        vocab = vocabulary(20000, random.Random(0))
    else:
        vocab = make_vault(vault, notes)
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
    gen_s = time.perf_counter() - t0
    for k in [k for k in os.environ if k.startswith("KB_")]:
        del os.environ[k]
    os.environ["KB_HOME"] = str(home)
    row: dict[str, Any] = {"notes": notes, "vault_gen_s": round(gen_s, 1)}
    emb = TimedHash(dim)
    with KnowledgeBase(embedder=emb, use_daemon=False) as base:  # type: ignore[arg-type]
        t0 = time.perf_counter()
        rep = base.ingest([vault])
        total = time.perf_counter() - t0
        if reuse is not None:
            row.update(
                {
                    k: reuse[k]
                    for k in ("ingest_s", "embed_s", "ingest_ms_per_note_excl_embed", "added")
                    if k in reuse
                },
                reused_index=True,
            )
        else:
            row.update(
                ingest_s=round(total, 1),
                embed_s=round(emb.seconds, 1),
                ingest_ms_per_note_excl_embed=round((total - emb.seconds) / notes * 1000, 3),
                added=rep.added,
            )
        row["chunks"] = base.index.manifest.chunk_count()
        t0 = time.perf_counter()
        rep = base.ingest([vault])
        row["noop_resync_s"] = round(time.perf_counter() - t0, 3)
        assert rep.unchanged >= notes and rep.embedded == 0, rep.as_dict()
        target = vault / "f0000" / "n000000.md"
        target.write_text(
            target.read_text(encoding="utf-8") + "\nedited once more\n", encoding="utf-8"
        )
        t0 = time.perf_counter()
        rep = base.ingest([vault])
        row["one_edit_sync_s"] = round(time.perf_counter() - t0, 3)
        assert rep.updated == 1, rep.as_dict()
        qs = queries(vocab, nq, rng)
        base.search(qs[0])  # opens the store and FTS once; what follows is the steady state
        lat = []
        for q in qs:
            t0 = time.perf_counter()
            base.search(q, k=8)
            lat.append((time.perf_counter() - t0) * 1000)
        row.update(search_ms_p50=round(pct(lat, 50), 1), search_ms_p95=round(pct(lat, 95), 1))

    env = {**os.environ, "KB_HOME": str(home), "KB_EMBED_MODEL": f"hash-{dim}"}
    log = (work / f"watch-{notes}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kb.cli.main", "watch", str(vault)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        t0 = time.perf_counter()
        client = None
        while client is None or client.state.get("pid") != proc.pid:
            if proc.poll() is not None:
                raise SystemExit(
                    f"kb watch exited: {(work / f'watch-{notes}.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
            client = connect(home)
        while True:
            s = client.request("status", timeout=60)
            if s["queue"] == 0 and s["busy"] is None and s["last_sync"] is not None:
                break
            time.sleep(0.5)
        row["daemon_ready_s"] = round(time.perf_counter() - t0, 1)
        lat = []
        for q in queries(vocab, nq, rng):
            t0 = time.perf_counter()
            client.request("search", {"query": q, "k": 8}, timeout=60)
            lat.append((time.perf_counter() - t0) * 1000)
        row.update(
            daemon_search_ms_p50=round(pct(lat, 50), 1), daemon_search_ms_p95=round(pct(lat, 95), 1)
        )
        fresh = []
        for e in range(10):
            word = f"zqfresh{time.time_ns()}x{e}"  # never in the index before (reruns reuse it)
            note = vault / f"f{rng.randrange(notes // NOTES_PER_FOLDER):04d}" / "edit.md"
            with note.open("a", encoding="utf-8") as f:
                f.write(f"\n## Edit {e}\n\nthe unique word {word} lands here\n")
            t0 = time.perf_counter()
            deadline = t0 + 60
            while time.perf_counter() < deadline:
                hits = client.request("search", {"query": word, "k": 3}, timeout=60)
                if any(word in h["text"] for h in hits):
                    break
                time.sleep(0.02)
            fresh.append(time.perf_counter() - t0)
            time.sleep(0.3)
        row.update(
            edit_searchable_s_p50=round(pct(fresh, 50), 2),
            edit_searchable_s_max=round(max(fresh), 2),
        )
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
        row["daemon_peak_rss_mb"] = round(hwm / 1024)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(120)
    (vault / ".complete").unlink(
        missing_ok=True
    )  # the edits changed the vault: a fresh run rewrites it
    row["kb_home_mb"] = round(dir_bytes(home) / 2**20)
    row["vault_mb"] = round(dir_bytes(vault) / 2**20)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--dim", type=int, default=64, help="hash embedder dimension")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="measure again on the vaults and indexes of an earlier run "
        "with the same --work (first-ingest figures are taken from its --json)",
    )
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kb-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    earlier = (
        {r["notes"]: r for r in json.loads(args.json.read_text())}
        if args.reuse and args.json and args.json.exists()
        else {}
    )
    for n in (int(x) for x in args.sizes.split(",")):
        row = measure(n, work, args.dim, args.queries, earlier.get(n, {}) if args.reuse else None)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    keys = [
        "notes",
        "chunks",
        "ingest_ms_per_note_excl_embed",
        "noop_resync_s",
        "one_edit_sync_s",
        "search_ms_p50",
        "search_ms_p95",
        "daemon_search_ms_p50",
        "daemon_search_ms_p95",
        "edit_searchable_s_p50",
        "edit_searchable_s_max",
        "daemon_peak_rss_mb",
        "kb_home_mb",
    ]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
