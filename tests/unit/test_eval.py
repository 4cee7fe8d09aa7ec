"""`kb eval`: evidence recall per mode and per question category; the repo's own dev sets stay
exact."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ingest.load import render_wikilinks
from kb.eval.retrieval import as_indexed, collapse, evaluate, load_questions
from tests.support.files import write

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "eval" / "corpora"
DEV_SETS = {
    "dendron.jsonl": (SHARED / "dendron" / "vault", 100),
    "doka-ru.jsonl": (SHARED / "doka-ru", 60),
}


def test_every_dev_set_is_checked() -> None:
    names = {p.name for p in (ROOT / "eval" / "questions").glob("*.jsonl")}
    assert names == {*DEV_SETS, "dates.jsonl"}


def test_the_dates_set_is_exact_and_its_ranges_hold_the_evidence() -> None:
    """eval/questions/dates.jsonl: relative-date questions over LoCoMo's dated sessions, each with
    the day it is asked on and the range a person means; the evidence session lies in that range,
    on or before that day."""
    import datetime as dt

    from ingest.load import load

    corpus = SHARED / "locomo"
    if not corpus.is_dir():
        pytest.skip(f"{corpus} is not beside the checkout")
    qs = load_questions(ROOT / "eval" / "questions" / "dates.jsonl")
    assert len({q["id"] for q in qs}) == len(qs) >= 60
    assert sum(q["lang"] == "ru" for q in qs) >= 25
    ws = re.compile(r"\s+")
    for q in qs:
        now = dt.date.fromisoformat(q["now"])
        since, until = (dt.date.fromisoformat(q["range"][k]) for k in ("since", "until"))
        assert since <= until <= now
        assert q["range"]["words"].lower() in q["question"].lower()
        assert q["evidence"] and q["answer"]
        for ev in q["evidence"]:
            path = corpus / ev["path"]
            text = path.read_text(encoding="utf-8")
            assert ws.sub(" ", ev["quote"]).strip() in ws.sub(" ", text), q["id"]
            day = dt.date.fromisoformat(load(path, rel=ev["path"]).date)
            assert since <= day <= until and day <= now, q["id"]


def test_recall_is_reported_per_category(tmp_path: Path) -> None:
    corpus = tmp_path / "notes"
    write(
        corpus / "backup.md",
        "# Backups\n\nrestic backs up the laptop to the NAS every night at 02:00.\n",
    )
    write(
        corpus / "garden.md", "# Garden\n\nTomatoes go into the greenhouse in the middle of May.\n"
    )
    qs = [
        {
            "question": "when does restic back up the laptop",
            "category": "single-note",
            "evidence": [{"path": "backup.md", "quote": "every night at 02:00"}],
        },
        {
            "question": "when do tomatoes go into the greenhouse",
            "category": "single-note",
            "evidence": [{"path": "garden.md", "quote": "in the middle of May"}],
        },
        {
            "question": "restic backup schedule and tomato planting",
            "category": "multi-note",
            "evidence": [
                {"path": "backup.md", "quote": "every night at 02:00"},
                {"path": "garden.md", "quote": "in the middle of May"},
            ],
        },
        {"question": "what is the capital of Peru", "category": "unanswerable", "evidence": []},
    ]
    r = evaluate(qs, corpus, ["dialog", "naive"], home=tmp_path / "home", embed_model="hash-64")
    for mode in ("dialog", "naive"):
        m = r["modes"][mode]
        cats = m["by_category"]
        assert set(cats) == {"single-note", "multi-note", "unanswerable"}
        assert (
            cats["single-note"]["questions"] == 2
            and cats["unanswerable"]["evidence_recall"] is None
        )
        hits = sum(
            round(c["evidence_recall"] * n)
            for c, n in ((cats["single-note"], 2), (cats["multi-note"], 2))
        )
        assert hits == round(
            m["evidence_recall"] * 4
        )  # the categories add up to the overall figure
    assert (
        r["modes"]["naive"]["by_category"]["single-note"]["evidence_recall"] == 1.0
    )  # two notes, top 10


@pytest.mark.parametrize("name", sorted(DEV_SETS))
def test_dev_set_quotes_are_exact(name: str) -> None:
    corpus, at_least = DEV_SETS[name]
    if not corpus.is_dir():
        pytest.skip(f"{corpus} is not beside the checkout")
    qs = load_questions(ROOT / "eval" / "questions" / name)
    ws = re.compile(r"\s+")
    assert len({q["id"] for q in qs}) == len(qs) >= at_least
    assert {q["category"] for q in qs} == {
        "single-note",
        "code-config",
        "multi-note",
        "broad",
        "unanswerable",
    }
    for q in qs:
        assert q["category"] in {
            "single-note",
            "code-config",
            "multi-note",
            "broad",
            "unanswerable",
        }
        assert q["mode"] in {"code", "dialog", "think"}
        assert (q["answer"] is None) == (not q["evidence"]) == (q["category"] == "unanswerable")
        for ev in q["evidence"]:
            text = (corpus / ev["path"]).read_text(encoding="utf-8")
            assert ws.sub(" ", ev["quote"]).strip() in ws.sub(" ", text), (
                q["id"],
                ev["quote"][:60],
            )
            assert as_indexed(ev["quote"]) in collapse(render_wikilinks(text)[0]), q[
                "id"
            ]  # as kb shows it
    share = sum(q["category"] == "unanswerable" for q in qs) / len(qs)
    assert share >= 0.15, f"{name}: {share:.0%} unanswerable"
    json.dumps(qs)  # plain JSON all the way


def test_misses_file_says_what_was_kept_and_where_the_evidence_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat

    from typer.testing import CliRunner

    from kb.cli.main import app

    corpus = tmp_path / "notes"
    write(
        corpus / "backup.md",
        "# Backups\n\nrestic backs up the laptop to the NAS every night at 02:00.\n",
    )
    write(
        corpus / "garden.md", "# Garden\n\nTomatoes go into the greenhouse in the middle of May.\n"
    )
    qs = tmp_path / "q.jsonl"
    qs.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {
                    "id": "hit",
                    "question": "when does restic back up the laptop",
                    "evidence": [{"path": "backup.md", "quote": "every night at 02:00"}],
                },
                {
                    "id": "miss",
                    "question": "when does restic back up the laptop to the NAS",
                    "category": "single-note",
                    "evidence": [{"path": "garden.md", "quote": "in the middle of May"}],
                },
            ]
        )
        + "\n"
    )
    monkeypatch.setenv("KB_EMBED_MODEL", "hash-64")
    monkeypatch.setenv("KB_HOME", str(tmp_path / "home"))
    out = tmp_path / "misses.jsonl"
    r = CliRunner().invoke(
        app, ["eval", str(qs), "--corpus", str(corpus), "--modes", "dialog", "--misses", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "1 misses written" in r.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    (m,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (
        m["id"] == "miss" and m["asked"] == m["mode"] == "dialog" and m["category"] == "single-note"
    )
    assert [k["path"] for k in m["kept"]] == ["backup.md"]
    (ev,) = m["missing"]
    assert ev["path"] == "garden.md" and ev["note_kept"] is False
    assert (
        ev["chunks"][0]["lines"] == [3, 3] and ev["chunks"][0]["fate"]
    )  # a drop reason, or "not retrieved"

    r = CliRunner().invoke(
        app,
        [
            "eval",
            str(qs),
            "--corpus",
            str(corpus),
            "--modes",
            "dialog",
            "--misses",
            str(tmp_path / "no" / "such" / "dir" / "m.jsonl"),
        ],
    )
    assert r.exit_code != 0 and "--misses" in r.output
