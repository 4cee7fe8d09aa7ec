"""The whole loop against a real OpenAI-compatible server: llama-cpp-python serving
SmolLM2-135M-Instruct (`kb llm serve --profile tiny`). The tiny model's wording can't be asserted;
the plumbing can."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from kb.serve.profiles import TINY_ALIAS
from tests.support.files import run_kb
from tests.support.servers import llm_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "notes"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory):
    """The tiny model served by kb's own launcher, as `kb llm serve --profile tiny` runs it: its
    base URL and the token it requires."""
    proc, url, token = llm_server(tmp_path_factory.mktemp("llama"), "tiny")
    yield url, token
    proc.stop(signal.SIGTERM)


def llm_env(server: tuple[str, str], kb_home: Path, model: str) -> dict[str, str]:
    url, token = server
    return {
        **os.environ,
        "KB_HOME": str(kb_home),
        "KB_EMBED_MODEL": model,
        "KB_LLM_BASE_URL": url,
        "KB_LLM_MODEL": TINY_ALIAS,
        "KB_LLM_API_KEY": token,
    }


def test_kb_ask_end_to_end_with_real_server(
    tiny_server: tuple[str, str], multilingual: str, kb_home: Path, tmp_path: Path
) -> None:
    vault = tmp_path / "notes"
    shutil.copytree(EXAMPLES, vault)
    env = llm_env(tiny_server, kb_home, multilingual)
    assert run_kb("ingest", str(vault), env=env).returncode == 0

    r = run_kb("ask", "How many daily Jellyfin logs are kept?", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["answer"].strip()
    assert data["mode"] == "dialog" and data["request"]["enable_thinking"] is False
    assert data["usage"]["prompt_tokens"] > 0 and data["usage"]["completion_tokens"] > 0
    assert data["request"]["max_tokens"] > 0
    kept = {(p["path"], p["start_line"]) for p in data["context"]["kept"]}
    assert ("projects/home-server.md", 33) in kept
    for c in data["citations"]:  # whatever the model cites must point at a passage it was given
        assert any(c["path"].endswith(p) and c["start_line"] == line for p, line in kept)

    r = run_kb("ask", "How many daily Jellyfin logs are kept?", env=env)  # streamed, human output
    assert r.returncode == 0, r.stderr
    assert "home-server.md:33" in r.stdout
    assert "prompt" in r.stderr and "completion" in r.stderr


def test_mcp_ask_answers_with_the_served_model(
    tiny_server: tuple[str, str], multilingual: str, kb_home: Path, tmp_path: Path
) -> None:
    """`kb mcp`'s `ask` tool, driven by the MCP SDK's client, answers from the real server with
    citations."""
    import asyncio

    mcp = pytest.importorskip("mcp")
    from mcp.client.stdio import StdioServerParameters

    vault = tmp_path / "notes"
    shutil.copytree(EXAMPLES, vault)
    env = llm_env(tiny_server, kb_home, multilingual)
    assert run_kb("ingest", str(vault), env=env).returncode == 0

    async def ask() -> dict:
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "kb.cli.main", "mcp"], env=env
        )
        async with mcp.Client(params, read_timeout_seconds=600) as client:
            r = await client.call_tool(
                "ask", {"question": "How many daily Jellyfin logs are kept?"}
            )
            assert not r.is_error, r.content
            return r.structured_content

    data = asyncio.run(ask())
    assert data["answer"].strip() and data["mode"] == "dialog"
    for c in data["citations"]:  # whatever it cites is a note of the vault, as a kb:// resource
        assert (
            c["uri"].startswith("kb://notes/")
            and (vault / c["uri"][len("kb://notes/") :]).is_file()
        )


def test_answers_evaluation_against_the_real_server(
    tiny_server: tuple[str, str], multilingual: str, kb_home: Path, tmp_path: Path
) -> None:
    """`kb eval --answers` end to end on the example vault: real server, real usage and timings,
    every number derived from the rows in the results file (the tiny model's answers themselves
    can't be asserted)."""
    env = llm_env(tiny_server, kb_home, multilingual)  # the window comes from /v1/models
    questions = EXAMPLES.parent / "questions.jsonl"
    results = tmp_path / "results.jsonl"
    r = run_kb(
        "eval",
        str(questions),
        "--corpus",
        str(EXAMPLES),
        "--answers",
        "--modes",
        "auto,max,auto+check",
        "--limit",
        "2",
        "--results",
        str(results),
        "--json",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()[1:]]
    assert len(rows) == 6 and data["max_model_len"] == 8192
    assert [x["error"] for x in rows] == [
        None
    ] * 6  # the server took every request (evidence check included)
    checked = [x for x in rows if x["strategy"] == "auto+check" and x["context_tokens"]]
    assert checked and all(x["check_tokens"] > 0 and x["check_s"] > 0 for x in checked)
    for name in ("auto", "max"):
        mine = [x for x in rows if x["strategy"] == name]
        s = data["strategies"][name]
        assert s["questions"] == 2 and s["f1"] == pytest.approx(
            sum(x["f1"] for x in mine) / 2, abs=1e-4
        )
        assert all(
            x["prompt_tokens"] > 0 and x["total_s"] > 0 for x in mine if not x["kb_abstained"]
        )
    auto = [x for x in rows if x["strategy"] == "auto"]
    most = [x for x in rows if x["strategy"] == "max"]
    assert sum(x["context_tokens"] for x in auto) < sum(x["context_tokens"] for x in most)
    assert all(
        x["context_tokens"] + 1024 <= 8192 for x in most
    )  # "everything in" still leaves room to answer
