"""Freshness and read latency with `kb watch` (default corpus: the Dendron vault in ../shared/eval).

Measured in one run:

* save → searchable: 100 edits to a copy of the vault, each appending a paragraph with a unique word
  to a random note; the clock starts after the file is closed and stops when a search through the
  daemon returns that paragraph (polled every 20 ms). Goal p50 ≤ 1 s, p95 ≤ 2 s.
* `kb search` CLI wall time (a fresh process per query, as a user types it) with the daemon warm vs
  the same command without a daemon (the baseline: import torch, load the model, open Chroma). Goal
  warm p50 ≤ 150 ms.

Usage: python benchmarks/watch_latency.py [--corpus DIR] [--model PATH] [--edits 100] [--home DIR]
        [--json OUT]

--home reuses an index from an earlier run; the first ingest of the vault is not part of the
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "eval" / "corpora" / "dendron" / "vault"
QUERIES = [
    "keyboard shortcut to delete a note",
    "how do I publish my vault",
    "what is a schema",
    "rename a note and update links",
    "lookup bar",
    "workspace configuration",
    "backlinks",
]


def kb_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("kb")
    return [str(exe) if exe.exists() else "kb", *args]


def timed_cli(query: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(
        kb_cmd("search", query, "--json", "-k", "5"), capture_output=True, text=True, env=env
    )
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"kb search failed: {r.stderr}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument(
        "--model", default=None, help="embedding model (default: the offline MiniLM package)"
    )
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--cli-runs", type=int, default=20)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument(
        "--home", type=Path, default=None, help="KB_HOME to (re)use; the vault copy lives inside it"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from kb.daemon.client import connect
    from kb.eval.retrieval import percentile as pct
    from kb.index.embed import offline_model_path

    model = args.model or str(offline_model_path())
    home = args.home or Path(tempfile.mkdtemp(prefix="kb-watch-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    vault = home / "vault"
    if not vault.exists():
        shutil.copytree(args.corpus, vault)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(KB_HOME=str(home), KB_EMBED_MODEL=model, HF_HUB_OFFLINE="1")

    t0 = time.perf_counter()
    r = subprocess.run(
        kb_cmd("ingest", str(vault), "--json"), capture_output=True, text=True, env=env
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    print(
        f"setup ingest (not measured): {json.loads(r.stdout)['embedded']} embedded in "
        f"{time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )

    log = (home / "watch-bench.out").open("wb")
    proc = subprocess.Popen(kb_cmd("watch"), stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        client = None
        deadline = time.monotonic() + 300
        while client is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"kb watch exited: {(home / 'watch-bench.out').read_text()}")
            client = connect(home)
            time.sleep(0.1)
        while client.request("status")["busy"] or client.request("status")["last_sync"] is None:
            time.sleep(0.2)

        rng = random.Random(args.seed)
        notes = sorted(p for p in vault.rglob("*.md") if p.stat().st_size < 20_000)
        lat: list[float] = []
        for i in range(args.edits):
            note = rng.choice(notes)
            word = f"wlat{i}q{rng.randrange(10**6)}z"
            with note.open("a", encoding="utf-8") as f:
                f.write(f"\n\nBenchmark edit {i}: the marker {word} was added here.\n")
            saved = time.perf_counter()
            while True:
                hits = client.request("search", {"query": word, "k": 3})
                if any(word in h["text"] for h in hits):
                    lat.append(time.perf_counter() - saved)
                    break
                if time.perf_counter() - saved > 30:
                    raise SystemExit(f"edit {i} to {note} not searchable after 30 s")
                time.sleep(0.02)
            time.sleep(rng.uniform(0.05, 0.3))

        warm = [timed_cli(QUERIES[i % len(QUERIES)], env) for i in range(args.cli_runs)]
        status = client.request("status")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    cold = [timed_cli(QUERIES[i % len(QUERIES)], env) for i in range(args.cold_runs)]

    res: dict[str, Any] = {
        "corpus": str(args.corpus),
        "model": model,
        "edits": len(lat),
        "files": len(notes),
        "save_to_searchable_s": {
            "p50": round(pct(lat, 0.5), 3),
            "p95": round(pct(lat, 0.95), 3),
            "max": round(max(lat), 3),
            "mean": round(statistics.mean(lat), 3),
        },
        "cli_search_s": {
            "warm_p50": round(pct(warm, 0.5), 3),
            "warm_p95": round(pct(warm, 0.95), 3),
            "no_daemon_p50": round(pct(cold, 0.5), 3),
            "speedup": round(pct(cold, 0.5) / pct(warm, 0.5), 1),
        },
        "debounce_s": 0.5,
        "daemon_exit_code": code,
        "daemon_events": status["events"],
        "machine": f"{os.cpu_count()} cores, {sys.platform}",
    }
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
