"""`kb eval --answers` end to end: scores that reflect exactly what the context held, the evidence
check, abstaining without a model call, failed requests, and resumable runs — against a scripted
server that reads the context it is sent and answers only from it (the scoring functions themselves:
tests/test_scoring.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ingest.span import Span
from kb.answers.answer import answer
from kb.answers.check import CHECK_SYSTEM
from kb.answers.llm import ScriptedLLM
from kb.cli.main import app
from kb.errors import KbError
from kb.eval.answers import evaluate_answers
from kb.eval.scoring import normalize
from kb.focus.prompt import ABSTAIN, abstention
from tests.support.fake_vllm import FakeVLLM
from tests.support.files import write

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

QUESTIONS = [
    {
        "id": "q1",
        "question": "How many copies of the jellyfin logs are kept?",
        "answer": "seven copies",
        "evidence": [{"path": "server.md", "quote": "seven copies are kept"}],
    },
    {
        "id": "q2",
        "question": "When did we drive to the lake?",
        "answer": "in May",
        "evidence": [{"path": "trip.md", "quote": "We drove to the lake in May"}],
    },
    {
        "id": "q3",
        "question": "Какой пароль от роутера на даче?",
        "answer": "сова42",
        "evidence": [{"path": "дача.md", "quote": "Пароль от роутера на даче: сова42."}],
    },
    {
        "id": "q4",
        "question": "Which Kubernetes version runs on the office cluster?",
        "answer": None,
        "evidence": [],
    },
    {"id": "q5", "question": "Какой номер паспорта у Маши?", "answer": None, "evidence": []},
]


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KB_EMBED_MODEL", "hash-64")
    root = tmp_path / "notes"
    write(root / "server.md", "# Server\n\nJellyfin logs rotate daily and seven copies are kept.\n")
    write(root / "trip.md", "# Trip\n\nWe drove to the lake in May and swam every morning.\n")
    write(root / "дача.md", "# Дача\n\nПароль от роутера на даче: сова42. Ключи у соседки.\n")
    write(root / "bread.md", "# Bread\n\nRye bread needs a sourdough starter fed twice a day.\n")
    return root


class Reader:
    """A scripted server that reads: it answers a question with its gold answer, citing the note
    that holds it, when (and only when) that answer is in the notes it was sent; otherwise it
    abstains. It answers the evidence check with the ids of the notes holding the answer."""

    def __init__(self, questions: list[dict[str, Any]]) -> None:
        self.gold = {q["question"]: q["answer"] for q in questions}
        self.answered: list[
            tuple[str, bool]
        ] = []  # (question, gold was in the notes) per answer call

    def __call__(self, body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        question = user.rsplit("Question: ", 1)[1].removesuffix("\n\nJSON:")
        gold = self.gold[question]
        notes = re.findall(r'<note id="(\d+)"[^>]*>\n(.*?)\n</note>', user, re.S)
        holders = [n for n, text in notes if gold and gold in text]
        if body["messages"][0]["content"] == CHECK_SYSTEM:
            return json.dumps({"relevant": [int(n) for n in holders]})
        self.answered.append((question, bool(holders)))
        return f"{gold} [{holders[0]}]" if holders else abstention(question)


def test_empty_context_abstains_without_calling_the_model(make_kb, vault: Path) -> None:
    base = make_kb()
    base.ingest([vault])
    for mode in ("auto", "code", "dialog", "think"):
        llm = ScriptedLLM(["should never be said"])
        ans = answer(base, "Какой номер паспорта у Маши?", mode, llm=llm)
        assert ans.abstained and ans.text == ABSTAIN["ru"] and "not asked" in ans.abstain_reason
        assert llm.requests == [] and not ans.context.passages and ans.usage.source == "none"
    said = answer(
        base, "How many jellyfin log copies are kept?", "dialog", llm=ScriptedLLM([ABSTAIN["en"]])
    )
    assert said.abstained and said.abstain_reason == "the model found no answer in the notes"


def _run(
    vault: Path, fake: FakeVLLM, strategies: list[str], results: Path, **kw: Any
) -> dict[str, Any]:
    from kb.answers.llm import OpenAICompatLLM

    return evaluate_answers(
        QUESTIONS,
        vault,
        strategies,
        results.parent,
        results=results,
        llm=OpenAICompatLLM(fake.url, fake.model),
        **kw,
    )


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def test_scores_reflect_exactly_what_the_context_held(vault: Path, tmp_path: Path) -> None:
    reader = Reader(QUESTIONS)
    with FakeVLLM() as fake:
        fake.responder = reader
        result = _run(vault, fake, ["auto", "naive", "max"], tmp_path / "r.jsonl")
    rows = _rows(
        tmp_path / "r.jsonl"
    )  # one line per request asked: strategies sending the same one share it
    assert len(rows) == len({r["key"] for r in rows}) <= len(QUESTIONS) * 3
    by_key = {r["key"]: r for r in rows}
    assert len(result["answers"]) == len(QUESTIONS) * 3 and {
        a["key"] for a in result["answers"]
    } == set(by_key)
    asked = iter(reader.answered)
    for row in rows:  # question-major order; a row kb abstained on without a call has no request
        if row["kb_abstained"]:
            assert row["abstained"] and row["prompt_tokens"] == 0
            continue
        question, held = next(asked)
        assert question == next(q["question"] for q in QUESTIONS if q["id"] == row["qid"])
        if row["answerable"]:
            assert row["f1"] == row["em"] == (1.0 if held else 0.0)
            assert row["abstained"] is (not held)
            assert row["citation_precision"] == (1.0 if held else None)
        else:
            assert row["abstained"] and row["f1"] is None
    assert next(asked, None) is None  # every request is accounted for
    everything = result["strategies"][
        "max"
    ]  # the whole (tiny) vault fits: every answer is in the context
    assert everything["f1"] == everything["em"] == everything["citation_precision"] == 1.0
    assert everything["abstain_unanswerable"] == 1.0 and everything["false_abstain"] == 0.0
    assert (
        everything["f1_overall"] == 1.0
        and everything["questions"] == 5
        and everything["answerable"] == 3
    )
    for name, s in result["strategies"].items():  # the summary is the mean of the rows
        mine = [by_key[a["key"]] for a in result["answers"] if a["strategy"] == name]
        f1s = [r["f1"] for r in mine if r["answerable"]]
        assert s["f1"] == pytest.approx(sum(f1s) / len(f1s), abs=1e-4)
        assert s["prompt_tokens_mean"] == pytest.approx(
            sum(r["prompt_tokens"] for r in mine) / len(mine), abs=1e-3
        )
    assert result["strategies"]["auto"]["context_tokens_mean"] < everything["context_tokens_mean"]
    assert (
        "paired" not in result["strategies"]["auto"]
    )  # the first strategy is what the others are paired with
    for name in ("naive", "max"):  # per question: auto's overall F1 against this strategy's
        p = result["strategies"][name]["paired"]
        mine = {a["qid"]: by_key[a["key"]] for a in result["answers"] if a["strategy"] == name}
        auto = {a["qid"]: by_key[a["key"]] for a in result["answers"] if a["strategy"] == "auto"}

        def overall(r: dict) -> float:
            return r["f1"] if r["answerable"] else float(r["abstained"])

        diffs = [overall(auto[q]) - overall(mine[q]) for q in auto]
        assert p["against"] == "auto" and p["questions"] == len(QUESTIONS)
        assert (p["wins"], p["losses"]) == (sum(d > 0 for d in diffs), sum(d < 0 for d in diffs))
        assert p["diff"] == pytest.approx(sum(diffs) / len(diffs), abs=1e-4)
        assert p["ci95"][0] <= p["diff"] <= p["ci95"][1]


def test_evidence_check_keeps_only_answering_passages_and_is_counted(
    vault: Path, tmp_path: Path
) -> None:
    reader = Reader(QUESTIONS)
    with FakeVLLM() as fake:
        fake.responder = reader
        result = _run(vault, fake, ["max", "max+check"], tmp_path / "r.jsonl")
        checks = [r for r in fake.chats() if r["messages"][0]["content"] == CHECK_SYSTEM]
    rows = {(r["qid"], r["strategy"]): r for r in _rows(tmp_path / "r.jsonl")}
    assert len(checks) == len(QUESTIONS)  # one check per question, thinking off, short
    assert all(
        c["chat_template_kwargs"] == {"enable_thinking": False} and c["max_tokens"] <= 64
        for c in checks
    )
    assert all(
        c["temperature"] == 0 and c["top_k"] >= 0 for c in checks
    )  # greedy, in llama.cpp's bounds too
    for q in QUESTIONS:
        plain, checked = rows[(q["id"], "max")], rows[(q["id"], "max+check")]
        assert checked["check_tokens"] > 0 and checked["check_s"] is not None
        if q["answer"] is None:  # the check found nothing: kb abstains without an answer call
            assert (
                checked["abstained"] and checked["kb_abstained"] and checked["context_tokens"] == 0
            )
        else:
            assert checked["f1"] == 1.0 and checked["passages"] == 1
            assert checked["context_tokens"] < plain["context_tokens"]
            assert checked["prompt_tokens"] > checked["check_tokens"]  # both calls are in the cost
    s = result["strategies"]["max+check"]
    assert s["check_tokens_mean"] > 0 and s["f1"] == 1.0 and s["abstain_unanswerable"] == 1.0


def test_the_evidence_check_sees_only_notes_that_fit_the_server() -> None:
    """A context larger than the server's window is cut to fit before the evidence check, not only
    before the answer: the check once sent all of a `think` context (11,761 tokens to an 8,192-token
    llama.cpp server)."""
    from kb.answers.answer import respond
    from kb.answers.llm import OpenAICompatLLM
    from kb.focus.budget import Context, Passage, render_notes
    from kb.focus.tokens import vocab_counter
    from kb.settings import ModesSettings

    counter = vocab_counter()
    passages = [
        Passage(
            [f"c{i}"],
            Span("r", f"host{i}.md", "Logs", 1, 9),
            1.0 - i / 100,
            f"Host {i} rotates the jellyfin logs daily. " * 40
            + f"Seven copies are kept on host {i}.",
            n=i + 1,
        )
        for i in range(12)
    ]
    for p in passages:
        p.tokens = counter.count(p.text)
    ctx = Context(
        "How many copies of the jellyfin logs are kept?", "think", "asked", 20000, passages
    )
    ctx.tokens = counter.count(render_notes(passages))
    limit = 2048
    assert ctx.tokens > limit  # the context as built does not fit the server
    with FakeVLLM(max_model_len=limit) as fake:
        fake.responder = lambda body: (
            '{"relevant": [1]}'
            if body["messages"][0]["content"] == CHECK_SYSTEM
            else "Seven copies [1]"
        )
        ans = respond(
            ctx,
            OpenAICompatLLM(fake.url, fake.model),
            counter,
            ModesSettings().get("think"),
            evidence_check=True,
        )
        sent = fake.chats()
    assert [c["messages"][0]["content"] == CHECK_SYSTEM for c in sent] == [
        True,
        False,
    ]  # refused: none
    for (
        c
    ) in sent:  # as the fake counts a request: within the server's window, with the reply's room
        assert (
            sum(fake.counter.count(m["content"]) + 5 for m in c["messages"]) + c["max_tokens"]
            <= limit
        )
    assert (
        ans.check["keep"] == [1]
        and len(ans.context.passages) == 1
        and ans.text.startswith("Seven copies")
    )


def test_an_interrupted_run_continues_where_it_stopped(vault: Path, tmp_path: Path) -> None:
    reader = Reader(QUESTIONS)
    results = tmp_path / "r.jsonl"

    def stop_after_four(done: int, total: int, asked: int) -> None:
        if done == 4:
            raise KeyboardInterrupt

    with FakeVLLM() as fake:
        fake.responder = reader
        with pytest.raises(KeyboardInterrupt):
            _run(vault, fake, ["naive", "max"], results, tick=stop_after_four)
        first = _rows(results)
        assert 1 <= len(first) <= 4  # (strategies that send the same request share one answer)
        with results.open("a", encoding="utf-8") as f:
            f.write('{"qid": "q5", "strat')  # a line torn by a kill mid-write
        calls_before = len(fake.chats())
        ticks: list[tuple[int, int, int]] = []
        result = _run(vault, fake, ["naive", "max"], results, tick=lambda *t: ticks.append(t))
        rows = _rows(results)
        new_calls = len(fake.chats()) - calls_before
    assert len(result["answers"]) == len(QUESTIONS) * 2
    assert len(rows) == len({r["key"] for r in rows}) == len({a["key"] for a in result["answers"]})
    assert rows[: len(first)] == first  # nothing redone
    assert new_calls == sum(1 for r in rows[len(first) :] if not r["kb_abstained"])
    done, total, asked = ticks[-1]
    assert done == total == len(QUESTIONS) * 2 and asked == len(rows) - len(
        first
    )  # the read-back are not "asked"
    assert result["strategies"]["max"]["questions"] == len(QUESTIONS)
    assert oct(results.stat().st_mode & 0o777) == "0o600"


def test_the_eta_of_a_resumed_run_comes_from_answers_asked_not_read_back() -> None:
    from kb.cli.eval_cmd import _LogTicks

    now = [0.0]
    lines: list[str] = []
    ticks = _LogTicks(lines.append, clock=lambda: now[0])
    for done in range(0, 61):  # 60 answers read back from the results file, in a blink
        ticks(done, 100, 0)
        now[0] += 0.001
    for asked in range(1, 41):  # then 40 asked, 10 s each
        now[0] += 10
        ticks(60 + asked, 100, asked)
    assert lines[-1] == "answered 100/100 (60 read back)"
    assert "answered 70/100 (60 read back), ETA 5m00s" in lines  # 30 left at 10 s each, not "0m00s"
    assert all(
        "ETA" not in line for line in lines if line.startswith(("answered 0/", "answered 60/"))
    )


def test_results_of_another_run_are_refused_with_a_remedy_that_works(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "r.jsonl"
    with FakeVLLM() as fake:
        fake.responder = Reader(QUESTIONS)
        _run(vault, fake, ["naive"], results)
        monkeypatch.setenv("KB_EMBED_MODEL", "hash-32")  # another embedding model: another run
        with pytest.raises(KbError) as exc:
            _run(vault, fake, ["naive"], results)
        assert "another run" in exc.value.message and "--results a new file" in (
            exc.value.remedy or ""
        )
        fresh = _run(vault, fake, ["naive"], tmp_path / "new.jsonl")  # following the remedy
    assert fresh["strategies"]["naive"]["questions"] == len(QUESTIONS)


def test_a_focus_change_asks_again_only_the_requests_it_changed(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "r.jsonl"
    with FakeVLLM() as fake:
        fake.responder = Reader(QUESTIONS)
        before = _run(vault, fake, ["auto", "naive", "max"], results)
        saved = {r["key"] for r in _rows(results)}
        for mode in ("CODE", "DIALOG", "THINK"):  # every mode keeps all it can, in note order
            monkeypatch.setenv(f"KB_MODES__{mode}__MIN_RELEVANCE", "0")
            monkeypatch.setenv(f"KB_MODES__{mode}__CUTOFF_GAP", "1")
            monkeypatch.setenv(f"KB_MODES__{mode}__ORDER", "document")
        calls = len(fake.chats())
        after = _run(vault, fake, ["auto", "naive", "max"], results)
        new = _rows(results)[len(saved) :]
        asked = len(fake.chats()) - calls
    keys = {(a["qid"], a["strategy"]): a["key"] for a in before["answers"]}
    changed = [a for a in after["answers"] if a["key"] != keys[(a["qid"], a["strategy"])]]
    assert {a["strategy"] for a in changed} == {"auto"} and len(changed) == len(QUESTIONS)
    assert new and {r["strategy"] for r in new} == {
        "auto"
    }  # naive and max were read back, not asked
    assert {r["key"] for r in new} == {a["key"] for a in changed} - saved
    assert asked == sum(1 for r in new if not r["kb_abstained"]) and all(
        r["passages"] > 1 for r in new
    )
    for s in (
        "naive",
        "max",
    ):  # their own answers are unchanged (their pairing with auto is auto's news)
        assert {**after["strategies"][s], "paired": None} == {
            **before["strategies"][s],
            "paired": None,
        }
    assert after["strategies"]["auto"]["questions"] == len(QUESTIONS)


def test_cli_answers_table_json_and_plot(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in QUESTIONS), encoding="utf-8"
    )
    png = tmp_path / "plot.png"
    with FakeVLLM() as fake:
        fake.responder = Reader(QUESTIONS)
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        monkeypatch.setenv("KB_LLM_MODEL", fake.model)
        r = runner.invoke(
            app,
            ["eval", str(qfile), "--corpus", str(vault), "--answers", "--json", "--plot", str(png)],
        )
        assert r.exit_code == 0, r.output
        data = json.loads(r.stdout)
        assert "answered 15/15" in r.output  # progress, as log lines when stderr is not a terminal
        assert (
            list(data["strategies"]) == ["auto", "naive", "max"]
            and data["max_model_len"] == fake.max_model_len
        )
        for s in data["strategies"].values():
            assert {
                "f1",
                "em",
                "abstain_unanswerable",
                "false_abstain",
                "prompt_tokens_mean",
                "ttft_s_p50",
                "total_s_p50",
                "citation_precision",
            } <= set(s)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert (
            Path(data["results_file"]).parent.name == "eval"
        )  # one results file per run, under KB_HOME
        r = runner.invoke(
            app,
            [
                "eval",
                str(qfile),
                "--corpus",
                str(vault),
                "--answers",
                "--sample",
                "2",
                "--seed",
                "3",
            ],
        )
        assert r.exit_code == 0, r.output
        assert "resuming" in r.output and "strategy" in r.stdout and "max" in r.stdout
        assert "auto vs max: F1all" in r.stdout and "95% CI" in r.stdout
    r = runner.invoke(
        app, ["eval", str(qfile), "--corpus", str(vault), "--answers"]
    )  # the server is gone
    assert r.exit_code == 9 and "no LLM server answers" in r.output and "Traceback" not in r.output
    r = runner.invoke(
        app, ["eval", str(qfile), "--corpus", str(vault), "--modes", "auto,everything", "--answers"]
    )
    assert r.exit_code != 0 and "unknown strategy" in r.output


def test_requests_the_server_refuses_fail_the_run_with_a_remedy_that_works(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that refuses some requests (here: the evidence check's, as llama.cpp refused top_k
    -1): the run still scores and prints everything, names the failure and exits non-zero; once the
    cause is gone, the same command asks only the failed requests and succeeds."""
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in QUESTIONS), encoding="utf-8"
    )
    results = tmp_path / "r.jsonl"
    argv = [
        "eval",
        str(qfile),
        "--corpus",
        str(vault),
        "--answers",
        "--modes",
        "naive,naive+check",
        "--results",
        str(results),
    ]
    with FakeVLLM() as fake:
        fake.responder = Reader(QUESTIONS)
        fake.reject = lambda body: (
            "1 validation error: top_k should be >= 0"
            if body["messages"][0]["content"] == CHECK_SYSTEM
            else None
        )
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        monkeypatch.setenv("KB_LLM_MODEL", fake.model)
        r = runner.invoke(app, [*argv, "--json"])
        assert r.exit_code == 9 and "Traceback" not in r.output
        assert "naive+check 5/5" in r.stderr and "top_k should be >= 0" in r.stderr
        assert "run the same command again" in r.stderr
        data = json.loads(
            r.stdout
        )  # the result is still printed, the failures counted and scored 0
        assert (
            data["strategies"]["naive"]["errors"] == 0 and data["strategies"]["naive"]["f1"] == 1.0
        )
        assert (
            data["strategies"]["naive+check"]["errors"] == 5
            and data["strategies"]["naive+check"]["f1"] == 0.0
        )
        fake.reject = None  # the cause fixed: the remedy, followed
        calls = len(fake.chats())
        r = runner.invoke(app, argv)
        assert r.exit_code == 0, r.output
        asked = fake.chats()[calls:]
    assert (
        sum(c["messages"][0]["content"] == CHECK_SYSTEM for c in asked) == 5
    )  # only the failed ones, again
    assert len(asked) == 5 + 3  # the checks, then the answer calls for the 3 answerable questions
    assert "naive+check" in r.stdout and "failed" not in r.output


def test_demo_question_set_quotes_and_answers_are_in_the_example_notes() -> None:
    from kb.eval.retrieval import as_indexed, collapse, load_questions

    qs = load_questions(ROOT / "examples" / "questions.jsonl")
    assert len(qs) >= 12 and sum(q["answer"] is None for q in qs) >= 3
    assert {q["lang"] for q in qs} == {"en", "ru"}
    for q in qs:
        for ev in q["evidence"]:
            note = (ROOT / "examples" / "notes" / ev["path"]).read_text(encoding="utf-8")
            assert collapse(ev["quote"]) in collapse(note) and as_indexed(ev["quote"])
            assert normalize(q["answer"]) in normalize(note)


def test_one_writer_per_results_file(tmp_path: Path) -> None:
    from kb.eval.answers import Results

    first = Results(tmp_path / "r.jsonl", "run-a", {})
    try:
        with pytest.raises(KbError) as exc:
            Results(tmp_path / "r.jsonl", "run-a", {})
        assert "another `kb eval --answers`" in exc.value.message
    finally:
        first.close()
    Results(tmp_path / "r.jsonl", "run-a", {}).close()  # free again once the first one is done


def test_cli_ask_says_not_in_your_notes_without_a_server(vault: Path) -> None:
    assert runner.invoke(app, ["ingest", str(vault)]).exit_code == 0
    r = runner.invoke(app, ["ask", "Какой номер паспорта у Маши?"])  # no LLM server runs at all
    assert r.exit_code == 0, r.output
    assert (
        ABSTAIN["ru"] in r.stdout
        and "abstained:" in r.output
        and "the model was not asked" in r.output
    )
    r = runner.invoke(app, ["ask", "Какой номер паспорта у Маши?", "--json"])
    data = json.loads(r.stdout)
    assert (
        data["abstained"] is True
        and data["answer"] == ABSTAIN["ru"]
        and data["usage"]["source"] == "none"
    )


def test_an_answer_cut_short_counts_as_a_failure_not_an_answer(vault: Path, tmp_path: Path) -> None:
    """A stream that breaks off is not scored as an answer: the run names it as failed (and the
    next run asks it again)."""
    with FakeVLLM() as fake:
        fake.fault = "cut"
        result = _run(vault, fake, ["auto"], tmp_path / "r.jsonl")
    rows = _rows(tmp_path / "r.jsonl")
    cut = [r for r in rows if r.get("error")]
    assert cut and all("cut off" in r["error"] for r in cut)
    assert result["strategies"]["auto"]["errors"] == len(cut)
