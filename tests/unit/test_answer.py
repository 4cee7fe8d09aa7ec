"""Answers: the LLM client against a fake vLLM server, citations, chat, serve profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.span import Span
from kb.answers.answer import Chat, answer, cite
from kb.answers.llm import Delta, OpenAICompatLLM, ScriptedLLM, ThinkSplitter
from kb.cli.main import app
from kb.serve.profiles import build_command
from tests.support.fake_vllm import FakeVLLM
from tests.support.files import write

runner = CliRunner()


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    write(
        root / "server.md",
        "# Server\n\nJellyfin logs rotate daily and seven copies are kept.\n\n"
        "## Python\n\nRead files with `open(path, encoding='utf-8')` to avoid mojibake.\n",
    )
    write(root / "trip.md", "# Trip\n\nWe drove to the lake in May and swam every morning.\n")
    (root / ".obsidian").mkdir()
    return root


@pytest.fixture
def indexed(vault: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KB_EMBED_MODEL", "hash-64")
    assert runner.invoke(app, ["ingest", str(vault)]).exit_code == 0
    return vault


def test_think_splitter_handles_tags_split_across_chunks() -> None:
    s = ThinkSplitter()
    out = []
    for piece in ["<thi", "nk>plan", " it</th", "ink>Answer", " [1]"]:
        out += s.feed(Delta(text=piece))
    assert "".join(d.text for d in out) == "Answer [1]"
    assert "".join(d.reasoning for d in out) == "plan it"


def test_answer_with_scripted_llm_verifies_citations(make_kb, vault: Path) -> None:
    base = make_kb()
    base.ingest([vault])
    llm = ScriptedLLM(["Seven copies are kept [1]. See also [7]."])
    ans = answer(base, "how many jellyfin log copies are kept", mode="dialog", llm=llm)
    assert ans.citations and ans.citations[0].n == 1 and ans.citations[0].path.endswith("server.md")
    assert ans.citations[0].link and ans.citations[0].link.startswith(
        "obsidian://open?vault=notes&file=server"
    )
    assert ans.invalid_citations == [7]
    msgs, params = llm.requests[0]
    assert params.thinking is False and params.max_tokens > 0
    assert "<notes>" in msgs[1]["content"] and "seven copies" in msgs[1]["content"]
    assert ans.usage.prompt_tokens > 0


def test_chat_rewrites_follow_ups_and_keeps_no_thinking(make_kb, vault: Path) -> None:
    base = make_kb()
    base.ingest([vault])
    llm = ScriptedLLM(
        ["We swam every morning [1].", "lake trip swimming month", "In May [1]."],
        reasoning="secret thoughts",
    )
    chat = Chat(base, llm=llm, mode="think")
    chat.ask("What did we do at the lake?")
    second = chat.ask("And when was that?")
    rewrite_msgs, rewrite_params = llm.requests[1]
    assert rewrite_params.thinking is False and "And when was that?" in rewrite_msgs[1]["content"]
    assert second.rewritten == "lake trip swimming month"
    assert all("secret" not in m["content"] for m in chat.history)
    assert [m["role"] for m in chat.history] == ["user", "assistant", "user", "assistant"]


def test_chat_routes_a_follow_up_by_what_was_typed_and_shows_the_rewrite(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A five-word follow-up is a direct question, whatever its rewrite looks like (a long
    standalone query read as a 'long question' and went to think); the rewrite is shown."""
    rewrite = "what did we do at the lake " + "and how was the weather and the water " * 6
    with FakeVLLM() as fake:
        fake.responder = lambda body: (
            rewrite.strip()
            if "Rewrite the user's last question" in body["messages"][0]["content"]
            else "We swam [1]."
        )
        _env(monkeypatch, fake)
        r = runner.invoke(app, ["chat"], input="What did we do at the lake?\nAnd then?\n\n")
    assert r.exit_code == 0, r.output
    assert "(searched as: what did we do at the lake" in r.output
    modes = [line for line in r.output.splitlines() if line.startswith("mode ")]
    assert modes and all(line.startswith("mode dialog") for line in modes), modes
    asked = [c for c in fake.chats() if "Rewrite" not in c["messages"][0]["content"]]
    assert asked[-1]["chat_template_kwargs"]["enable_thinking"] is False  # dialog, not think


def test_chat_history_trimmed_to_budget(make_kb, vault: Path) -> None:
    base = make_kb()
    base.ingest([vault])
    long, query = "word " * 300, "drove to the lake in May"
    chat = Chat(base, llm=ScriptedLLM([long, query, long, query, long]), history_budget=500)
    answers = [chat.ask("What did we do at the lake?") for _ in range(3)]
    assert not any(
        a.abstained for a in answers
    )  # every turn reached the model (the notes answer it)
    assert len(chat.history) == 2  # only the latest exchange fits


def test_cite_only_counts_passages_in_context(make_kb, vault: Path) -> None:
    base = make_kb()
    base.ingest([vault])
    ctx = base.context("jellyfin logs copies", mode="dialog")
    good, bad = cite("[1] and [2] and [1]", ctx)
    assert [c.n for c in good] == [p.n for p in ctx.passages][:2] or bad


def _env(monkeypatch: pytest.MonkeyPatch, fake: FakeVLLM) -> None:
    monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
    monkeypatch.setenv("KB_LLM_MODEL", fake.model)


def test_cli_ask_json_against_fake_vllm_modes(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeVLLM() as fake:
        _env(monkeypatch, fake)
        r = runner.invoke(
            app, ["ask", "how do I open a file in python", "--mode", "code", "--json"]
        )
        assert r.exit_code == 0, r.output
        data = json.loads(r.stdout)
        assert data["answer"].startswith("The logs are kept") and data["mode"] == "code"
        assert data["citations"][0]["n"] == 1
        assert data["usage"]["prompt_tokens"] > 0 and data["usage"]["source"] == "server"
        code_req = fake.chats()[-1]
        assert code_req["chat_template_kwargs"] == {"enable_thinking": False}
        assert (
            code_req["max_tokens"] > 0
            and code_req["top_k"] == 20
            and code_req["temperature"] == 0.7
        )
        assert data["request"]["prompt_tokens_counted"] + code_req["max_tokens"] <= 40960

        r = runner.invoke(
            app, ["ask", "compare the lake trip and the server", "--mode", "think", "--json"]
        )
        data = json.loads(r.stdout)
        think_req = fake.chats()[-1]
        assert think_req["chat_template_kwargs"] == {"enable_thinking": True}
        assert think_req["temperature"] == 0.6 and think_req["top_p"] == 0.95
        assert data["reasoning"].strip() == "Let me look at note 1."
        assert "Let me" not in data["answer"]


def test_reasoning_content_field_of_older_vllm(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeVLLM(reasoning_field="reasoning_content") as fake:
        _env(monkeypatch, fake)
        data = json.loads(
            runner.invoke(app, ["ask", "why the lake", "--mode", "think", "--json"]).stdout
        )
        assert data["reasoning"].strip() == "Let me look at note 1."


def test_streaming_output_lists_sources(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeVLLM() as fake:
        _env(monkeypatch, fake)
        r = runner.invoke(app, ["ask", "how many jellyfin log copies are kept"])
        assert r.exit_code == 0, r.output
        assert "The logs are kept for 7 days [1]." in r.stdout
        assert "sources" in r.stdout and "server.md:" in r.stdout and "obsidian://open" in r.stdout


def test_small_max_model_len_is_respected(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeVLLM(max_model_len=700) as fake:
        _env(monkeypatch, fake)
        r = runner.invoke(app, ["ask", "jellyfin logs python lake", "--mode", "think", "--json"])
        assert r.exit_code == 0, r.output
        req = fake.chats()[-1]
        data = json.loads(r.stdout)
        assert data["request"]["prompt_tokens_counted"] + req["max_tokens"] <= 700


def test_too_long_400_shrinks_and_retries_once(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeVLLM() as fake:
        _env(monkeypatch, fake)
        fake.reject_next_as_too_long = 1
        r = runner.invoke(app, ["ask", "jellyfin logs copies", "--json"])
        assert r.exit_code == 0, r.output
        assert len(fake.chats()) == 2
        fake.reject_next_as_too_long = 5
        r = runner.invoke(app, ["ask", "jellyfin logs copies"])
        assert r.exit_code == 9 and "too long" in r.output and "Traceback" not in r.output


def test_model_not_served_lists_models(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeVLLM() as fake:
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        monkeypatch.setenv("KB_LLM_MODEL", "some/other-model")
        r = runner.invoke(app, ["ask", "how many jellyfin log copies are kept"])
        assert r.exit_code == 9 and "Qwen/Qwen3-30B-A3B" in r.output and "KB_LLM_MODEL" in r.output


def test_no_server_is_one_line_with_remedy_and_dry_run_still_works(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KB_LLM_BASE_URL", f"http://127.0.0.1:{port}/v1")
    r = runner.invoke(app, ["ask", "how many jellyfin log copies are kept"])
    assert r.exit_code == 9
    assert (
        f"127.0.0.1:{port}" in r.output
        and "kb llm serve" in r.output
        and "kb-notes[vllm]" in r.output
    )
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["ask", "how many jellyfin log copies are kept", "--dry-run"])
    assert r.exit_code == 0 and "messages that would be sent" in r.output


def test_server_token_counter_uses_tokenize() -> None:
    from kb.focus.tokens import ServerCounter, vocab_counter

    with FakeVLLM() as fake:
        c = ServerCounter(fake.url, fake.model, vocab_counter())
        assert c.count("Hello world") == 2 and c.ok
        assert fake.requests[-1]["path"] == "/tokenize"
    assert c.count("Hello world") == 2  # server gone: falls back to the vocabulary
    assert not c.ok


def test_llm_serve_print(monkeypatch: pytest.MonkeyPatch) -> None:
    r = runner.invoke(app, ["llm", "serve", "--print", "--long", "--experts", "4"])
    assert r.exit_code == 0, r.output
    cmd = r.stdout
    assert (
        "--reasoning-parser qwen3" in cmd
        and "num_experts_per_tok" in cmd
        and '"factor": 4.0' in cmd
    )
    assert "--max-model-len 131072" in cmd and "static YaRN" in r.output


def test_profiles() -> None:
    argv, _ = build_command("rtx6000-96gb")
    assert (
        argv[:3] == ["vllm", "serve", "Qwen/Qwen3-30B-A3B"]
        and "40960" in argv
        and "bfloat16" in argv
    )
    assert "Qwen/Qwen3-30B-A3B-FP8" in build_command("fp8")[0]
    gptq = build_command("24gb")[0]
    assert (
        "Qwen/Qwen3-30B-A3B-GPTQ-Int4" in gptq
        and gptq[gptq.index("--quantization") + 1] == "gptq_marlin"
    )
    for cpu in ("tiny", "reader"):  # llama.cpp from the prebuilt wheel, run by kb itself
        argv, _ = build_command(cpu, port=8123)
        assert argv[1:] == ["-m", "kb.serve.llamacpp", "--profile", cpu, "--port", "8123"]


def test_serve_without_vllm_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    r = runner.invoke(app, ["llm", "serve"])
    assert r.exit_code != 0 and "kb-notes[vllm]" in r.output and "Traceback" not in r.output


def test_openai_client_request_shape() -> None:
    from kb.answers.llm import GenParams

    llm = OpenAICompatLLM("http://127.0.0.1:1/v1", "m")
    body = llm.request([{"role": "user", "content": "x"}], GenParams(max_tokens=55, thinking=True))
    assert body["max_tokens"] == 55 and body["stream_options"] == {"include_usage": True}
    assert body["extra_body"]["chat_template_kwargs"] == {"enable_thinking": True}


def test_public_api_ask(make_kb, vault: Path) -> None:
    import kb

    base = make_kb()
    base.ingest([vault])
    ans = base.ask("how many jellyfin log copies are kept", llm=ScriptedLLM(["Seven [1]."]))
    assert isinstance(ans, kb.Answer) and ans.text == "Seven [1]." and ans.citations
    assert {"ask", "search", "ingest", "KnowledgeBase", "Answer", "Chat"} <= set(kb.__all__)


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("models500", "HTTP 500"),
        ("models_junk", "malformed"),
        ("chat500", "HTTP 500"),
        ("chat_junk", "malformed"),
        ("midstream_junk", "cut off"),  # a malformed chunk after text: the answer is cut
        ("hang", "sent nothing for 2s"),
        ("midstream_stall", "sent nothing"),
    ],
)
def test_every_server_fault_is_one_line_exit_9(
    indexed: Path, monkeypatch: pytest.MonkeyPatch, fault: str, says: str
) -> None:
    with FakeVLLM() as fake:
        fake.fault = fault
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        monkeypatch.setenv("KB_LLM_TIMEOUT", "2")
        r = runner.invoke(app, ["ask", "how many jellyfin log copies are kept"])
        assert r.exit_code == 9, r.output
        assert "Traceback" not in r.output and says in r.output and "fix" in r.output.lower()
        if fault in (
            "hang",
            "midstream_stall",
        ):  # a stalled request is abandoned, not retried blindly
            assert "no LLM server answers" not in r.output
            assert len(fake.chats()) == 1 if fault == "midstream_stall" else fake.connections == 1


def test_a_prompt_too_long_for_a_llamacpp_server_names_the_setting_that_fixes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """llama.cpp reports no context window and ends the stream without a chunk when the prompt
    overflows it: kb says which setting fixes that, and with it set the same context is cut to fit
    and answered."""
    from kb.answers.answer import llm_from_settings, respond
    from kb.errors import LLMError
    from kb.focus.budget import Context, Passage, render_notes
    from kb.focus.tokens import vocab_counter
    from kb.settings import ModesSettings, load_settings

    counter = vocab_counter()

    def context() -> Context:
        ps = [
            Passage(
                [f"c{i}"],
                Span("r", f"host{i}.md", "Logs", 1, 9),
                1.0 - i / 100,
                f"Host {i} rotates the jellyfin logs daily. " * 30 + "Seven copies are kept.",
                n=i + 1,
            )
            for i in range(8)
        ]
        for p in ps:
            p.tokens = counter.count(p.text)
        ctx = Context("How many jellyfin log copies are kept?", "think", "asked", 20000, ps)
        ctx.tokens = counter.count(render_notes(ps))
        return ctx

    with FakeVLLM(max_model_len=1400) as fake:
        fake.like_llamacpp = True
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        monkeypatch.setenv("KB_LLM_MODEL", fake.model)
        with pytest.raises(LLMError) as exc:
            respond(
                context(), llm_from_settings(load_settings()), counter, ModesSettings().get("think")
            )
        assert "not a single chunk" in exc.value.message and "KB_LLM_CONTEXT_LENGTH" in (
            exc.value.remedy or ""
        )
        monkeypatch.setenv("KB_LLM_CONTEXT_LENGTH", "1400")  # the remedy, followed
        ans = respond(
            context(), llm_from_settings(load_settings()), counter, ModesSettings().get("think")
        )
    assert (
        ans.text.startswith("The logs")
        and ans.context.passages
        and ans.request["max_model_len"] == 1400
    )
    assert len(ans.context.passages) < 8  # cut to fit


def test_busy_server_is_retried(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeVLLM() as fake:
        fake.fault = "busy_once"
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        r = runner.invoke(app, ["ask", "how many jellyfin log copies are kept", "--json"])
        assert r.exit_code == 0, r.output
        assert len(fake.chats()) == 2


@pytest.mark.parametrize("lib", ["httpx", "httpx2"])
def test_a_connect_timeout_is_told_from_a_stalled_answer_whichever_http_library_openai_uses(
    lib: str,
) -> None:
    """openai < 3 is built on httpx, openai >= 3 on httpx2: a connect timeout (nobody there:
    retried, "no server answers") must be told from a read timeout (a stalled answer: never
    repeated) with either."""
    import openai

    from kb.answers.llm import _connect_phase

    http = pytest.importorskip(lib)
    for cause, connecting in (
        (http.ConnectTimeout("connect"), True),
        (http.PoolTimeout("pool"), True),
        (http.ReadTimeout("read"), False),
    ):
        exc = openai.APITimeoutError(
            request=http.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
        )
        exc.__cause__ = cause
        assert _connect_phase(exc) is connecting, cause


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("cut", "cut off"),
        ("no_finish", "cut off"),
        ("wrong_schema", "cannot read"),
    ],
)
def test_a_broken_answer_stream_is_a_fault_not_an_answer(
    indexed: Path, monkeypatch: pytest.MonkeyPatch, fault: str, says: str
) -> None:
    """Two chunks then half a JSON line then the connection closes; every word but no
    finish_reason; chunks in another schema: none of them is a complete answer. kb shows what came,
    says in one line that it was cut, and exits 9 — never "context used" and exit 0."""
    with FakeVLLM() as fake:
        fake.fault = fault
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        r = runner.invoke(app, ["ask", "how many jellyfin log copies are kept"])
        assert r.exit_code == 9, r.output
        assert says in r.output and "Traceback" not in r.output and "AttributeError" not in r.output
        assert "fix" in r.output.lower()


def test_an_answer_cut_short_is_marked_on_the_answer(make_kb, vault: Path) -> None:
    from kb.answers.answer import llm_from_settings

    base = make_kb()
    base.ingest([vault])
    with FakeVLLM(model=base.settings.llm_model) as fake:
        fake.fault = "cut"
        llm = llm_from_settings(base.settings.model_copy(update={"llm_base_url": fake.url}))
        ans = base.ask("how many jellyfin log copies are kept", "dialog", llm=llm)
    assert ans.cut and "cut off" in ans.cut and ans.text.startswith("The logs")
    assert not ans.abstained and ans.as_dict()["cut"] == ans.cut


@pytest.mark.parametrize("fault", ["drip", "flood"])
def test_an_answer_has_an_overall_bound(
    indexed: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """A server that drips a token every half second, or ignores max_tokens and streams without
    end: the answer stops at its deadline (KB_LLM_DEADLINE) or at what max_tokens allows, with one
    line and exit 9 — bounded by the deadline, whatever the server does."""
    with FakeVLLM() as fake:
        fake.fault = fault
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        monkeypatch.setenv("KB_LLM_DEADLINE", "3")
        monkeypatch.setenv("KB_MODES__DIALOG__MAX_OUTPUT_TOKENS", "64")
        r = runner.invoke(app, ["ask", "how many jellyfin log copies are kept", "-m", "dialog"])
        assert r.exit_code == 9, r.output
        assert "Traceback" not in r.output
        if fault == "drip":
            assert "deadline" in r.output and "KB_LLM_DEADLINE" in r.output
        else:
            assert "max_tokens" in r.output and fake.sent_bytes < 10_000_000
