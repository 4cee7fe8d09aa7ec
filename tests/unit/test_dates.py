"""Dates of notes (and of the passages under a dated heading), and dates read from questions, in
English and Russian."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.dates import from_heading, from_path, note_date
from kb.cli.main import app
from kb.focus.when import dates_in, question_range
from tests.support.files import write

runner = CliRunner()
NOW = dt.date(2025, 11, 19)  # a Wednesday


@pytest.mark.parametrize(
    ("rel", "day"),
    [
        ("2024-11-05.md", "2024-11-05"),
        ("journal/2024_11_05.md", "2024-11-05"),  # Logseq
        ("05.11.2024.md", "2024-11-05"),  # as written in Russian
        ("journal.2024.11.05.md", "2024-11-05"),  # Dendron
        ("2024/11/05.md", "2024-11-05"),
        ("2024-11-05 Standup notes.md", "2024-11-05"),
        ("daily/20241105.md", "2024-11-05"),
        ("projects/plan.md", None),
        ("notes/v1.2.3.md", None),
        ("2024-13-45.md", None),  # not a date
    ],
)
def test_dates_in_file_names_and_folders(rel: str, day: str | None) -> None:
    assert from_path(rel) == day


@pytest.mark.parametrize(
    ("meta", "got"),
    [
        ({"date": dt.date(2024, 11, 5)}, ("2024-11-05", "frontmatter date")),
        (
            {"created": 1595952505025, "updated": 1657705364261},
            ("2020-07-28", "frontmatter created"),
        ),
        ({"date": "1:56 pm on 8 May, 2023"}, ("2023-05-08", "frontmatter date")),  # LoCoMo
        ({"Date Created": "2024-11-05T10:00"}, ("2024-11-05", "frontmatter date created")),
        ({"updated": "5 ноября 2024"}, ("2024-11-05", "frontmatter updated")),
        ({"title": "no date"}, None),
    ],
)
def test_dates_in_frontmatter(meta: dict, got: tuple[str, str] | None) -> None:
    assert note_date(meta, "note.md") == got


def test_frontmatter_date_outranks_the_file_name_which_outranks_created() -> None:
    assert note_date({"date": "2024-01-02"}, "2024-11-05.md") == ("2024-01-02", "frontmatter date")
    assert note_date({"created": "2024-01-02"}, "2024-11-05.md") == ("2024-11-05", "file name")


@pytest.mark.parametrize(
    ("heading", "day"),
    [
        ("2024-11-05", "2024-11-05"),
        ("2024-11-05 — standup", "2024-11-05"),
        ("5 ноября 2024", "2024-11-05"),
        ("Tuesday, November 5, 2024", "2024-11-05"),
        ("05.11.2024", "2024-11-05"),
        ("Setup", None),
        ("Version 2.1", None),
        ("Plans for 2025", None),  # a year is not a day
    ],
)
def test_a_heading_that_is_a_date(heading: str, day: str | None) -> None:
    assert from_heading(heading) == day


def test_every_passage_carries_its_date_and_where_it_came_from(make_kb, tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    write(vault / "journal" / "2024-11-05.md", "# Tuesday\n\nRead a book about owls.\n")
    write(vault / "meeting.md", "---\ndate: 2024-10-02\n---\n# Meeting\n\nBudget approved.\n")
    write(
        vault / "log.md",
        "# Log\n\n## 2024-11-04\n\nFixed the backup job.\n\n## 5 ноября 2024\n\nПочинил принтер.\n",
    )
    write(vault / "undated.md", "# Owls\n\nAn undated note about owls.\n")
    old = dt.datetime(2023, 3, 4, 12).timestamp()
    os.utime(vault / "undated.md", (old, old))
    base = make_kb(ingest={"chunk_tokens": 32})
    base.ingest([vault])
    dates = {}
    for rel in ("journal/2024-11-05.md", "meeting.md", "log.md", "undated.md"):
        for c in base.index.manifest.chunks_of(str(vault.resolve()), rel):
            dates[(rel, c.text.split("\n")[-1][:8])] = (c.span.date, c.span.date_source)
    assert dates[("journal/2024-11-05.md", "Read a b")] == ("2024-11-05", "file name")
    assert dates[("meeting.md", "Budget a")] == ("2024-10-02", "frontmatter date")
    assert dates[("log.md", "Fixed th")] == ("2024-11-04", "heading")
    assert dates[("log.md", "Починил ")] == ("2024-11-05", "heading")
    assert dates[("undated.md", "An undat")] == ("2023-03-04", "modified")  # marked as such


@pytest.mark.parametrize(
    ("question", "since", "until"),
    [
        ("what did I do yesterday?", "2025-11-18", "2025-11-18"),
        ("what did I decide last week?", "2025-11-10", "2025-11-16"),
        ("what did I read in November?", "2025-11-01", "2025-11-19"),  # ends today
        ("what did I do this week?", "2025-11-17", "2025-11-19"),
        ("what did I write in October?", "2025-10-01", "2025-10-31"),
        ("what did John tell Tim in August?", "2025-08-01", "2025-08-31"),  # when it was said
        ("what did Sam share on 19 August, 2023?", "2023-08-19", "2023-08-19"),  # the year too
        ("where was Jolene in the last week of August 2023?", "2023-08-25", "2023-08-31"),
        ("what did I plant this spring?", "2025-03-01", "2025-05-31"),
        ("what did I write in 2023?", "2023-01-01", "2023-12-31"),
        ("what did I learn between March and May?", "2025-03-01", "2025-05-31"),
        ("what did I do 3 days ago?", "2025-11-16", "2025-11-16"),
        ("что я делал вчера?", "2025-11-18", "2025-11-18"),
        ("что я решил на прошлой неделе?", "2025-11-10", "2025-11-16"),
        ("что я читал в ноябре?", "2025-11-01", "2025-11-19"),
        ("что Джон рассказал Тиму в августе?", "2025-08-01", "2025-08-31"),
        ("что я сажал прошлой весной?", "2025-03-01", "2025-05-31"),
        ("что я писал в 2023 году?", "2023-01-01", "2023-12-31"),
        ("что я учил с марта по май?", "2025-03-01", "2025-05-31"),
        ("что было в прошлом месяце?", "2025-10-01", "2025-10-31"),
    ],
)
def test_dates_read_from_questions(question: str, since: str, until: str) -> None:
    got = question_range(question, NOW)
    assert got is not None and (str(got.since), str(got.until)) == (since, until)
    plain = " ".join(re.findall(r"[\w-]+", question.lower()))
    assert got.words.lower() in plain  # shown with the words it came from


@pytest.mark.parametrize(
    "question",
    [
        "May I ask what Caroline studies?",  # a name or a verb, not the month
        "How do I run `kb ingest --since 2023-01-01`?",  # inside code
        "Who won the championship in 2000?",  # a date that is what is asked about
        "What was Warsaw's population in 1901?",
        "Whose wall can be seen even today?",
        "How many days are in a week?",
        "What did Melanie and Caroline discuss?",
        "What setback did Melanie face in October 2023?",  # when it happened, not when it was said
        "Which US state was Sam travelling in during October 2023?",  # "US" is not "us"
        "What does a 2013 report on Nigeria suggest its growth has done?",  # a year alone
    ],
)
def test_what_is_not_a_range_of_the_users_time(question: str) -> None:
    assert question_range(question, NOW) is None


def test_a_range_in_the_future_is_not_taken() -> None:
    assert dates_in("what is planned in a week?", NOW) is None


@pytest.fixture
def diary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KB_EMBED_MODEL", "hash-64")
    vault = tmp_path / "diary"
    days = {
        "2025-11-03": "Started reading a novel about sailors.",
        "2025-11-11": "Decided to move the backups to restic.",
        "2025-11-13": "Read half of the sailor novel, slow going.",
        "2025-11-17": "Finished the novel.",
        "2025-10-20": "Decided to keep the old laptop.",
    }
    for day, text in days.items():
        write(vault / "journal" / f"{day}.md", f"# {day}\n\n{text}\n")
    assert runner.invoke(app, ["ingest", str(vault)]).exit_code == 0
    return vault


def dry_run(*args: str) -> dict:
    r = runner.invoke(app, ["ask", *args, "--now", "2025-11-19", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize("question", ["что я делал на прошлой неделе?", "what did I do last week?"])
def test_last_week_keeps_only_the_passages_of_last_week(diary: Path, question: str) -> None:
    ctx = dry_run(question)
    days = {p["date"] for p in ctx["kept"]}
    assert days and days <= {"2025-11-11", "2025-11-13"}  # 2025-11-10 … 2025-11-16 only
    assert ctx["dates"]["since"] == "2025-11-10" and ctx["dates"]["until"] == "2025-11-16"
    assert "from '" in ctx["dates"]["label"]
    assert ctx["kept"] == sorted(ctx["kept"], key=lambda p: p["date"])  # read in date order
    human = runner.invoke(app, ["ask", question, "--now", "2025-11-19", "--dry-run"])
    assert "2025-11-10 … 2025-11-16" in human.stdout and "from '" in human.stdout


def test_in_november_and_a_range_with_nothing_dated(diary: Path) -> None:
    ctx = dry_run("what did I read in November?")
    assert {p["date"] for p in ctx["kept"]} <= {f"2025-11-{d}" for d in ("03", "11", "13", "17")}
    assert ctx["kept"] and "2025-10-20" not in {p["date"] for p in ctx["kept"]}
    empty = dry_run("what did I do in March?")
    assert empty["kept"] == [] and "no notes dated in March" in empty["empty_reason"]
    r = runner.invoke(app, ["ask", "what did I do in March?", "--now", "2025-11-19"])
    assert r.exit_code == 0 and "no notes dated in March" in r.output  # said, no model asked
    explicit = dry_run(
        "decided to keep the old laptop last week?",
        "--since",
        "2025-10-01",
        "--until",
        "2025-10-31",
    )
    assert explicit["dates"] is None  # an explicit range wins
    assert {p["date"] for p in explicit["kept"]} == {"2025-10-20"}


def test_search_reads_a_querys_dates_too(diary: Path) -> None:
    r = runner.invoke(app, ["search", "novel last week", "--now", "2025-11-19", "--json"])
    assert r.exit_code == 0, r.output
    assert {h["date"] for h in json.loads(r.stdout)} <= {"2025-11-11", "2025-11-13"}


def test_the_library_takes_ranges_as_the_cli_does(diary: Path, monkeypatch) -> None:
    import kb
    from kb.errors import UsageError
    from tests.support.fake_vllm import FakeVLLM

    hits = kb.search("novel last week", now=NOW)
    assert hits and {h.date for h in hits} <= {"2025-11-11", "2025-11-13"}
    hits = kb.search("novel", since="2025-11-01", until="2025-11-05")
    assert [h.date for h in hits] == ["2025-11-03"]
    with pytest.raises(UsageError):
        kb.search("novel", since="5 November")
    with FakeVLLM() as fake:
        monkeypatch.setenv("KB_LLM_BASE_URL", fake.url)
        monkeypatch.setenv("KB_LLM_MODEL", fake.model)
        ans = kb.ask("what did I decide last week?", now=NOW)
        sent = fake.chats()[-1]["messages"][-1]["content"]
    assert ans.context.dates["since"] == "2025-11-10"
    assert {p.span.date for p in ans.context.passages} <= {"2025-11-11", "2025-11-13"}
    assert '"last week" means 2025-11-10 to 2025-11-16; today is 2025-11-19.' in sent


def test_the_days_a_question_names_are_where_its_answer_is(diary: Path) -> None:
    """A question about something said on named days keeps the best passage of those days even when
    its words and meaning match weakly (a Russian question over English notes): the date is the
    evidence. The same words without the days find nothing relevant."""
    dated = dry_run("what did I think of the mariners story last week?")
    assert dated["mode"] != "think"  # not a question over the range itself
    assert dated["kept"] and {p["date"] for p in dated["kept"]} <= {"2025-11-11", "2025-11-13"}
    undated = dry_run("what did I think of the mariners story?")
    assert undated["kept"] == [] and "nothing relevant" in undated["dropped"][0]["reason"]
