"""Focused context: retrieval, cutoff, pruning, packing, modes — with the hash embedder and real
Chroma."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.span import Span
from ingest.stem import match_query, terms
from kb.focus.budget import prune, units
from kb.focus.modes import choose_mode
from kb.focus.retrieve import (
    LARGE_INDEX_CHUNKS,
    POSTINGS_BUDGET,
    Candidate,
    Filters,
    Retrieval,
    rerank_with,
    selective_terms,
)
from kb.focus.tokens import vocab_counter
from kb.settings import ModeSettings
from tests.support.files import write


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "v"
    write(
        root / "projects" / "server.md",
        "---\ntags: [linux]\ndate: 2025-03-01\n---\n# Server\n\n"
        "The backup job runs restic every night. Snapshots are pruned weekly.\n\n"
        "## Logs\n\nJellyfin logs rotate daily and seven copies are kept.\n",
    )
    write(
        root / "journal" / "day.md",
        "---\ndate: 2025-10-14\ntags: [diary]\n---\n# Day\n\n"
        "Я читал заметки о сервере и пил чай. Погода была хорошая.\n",
    )
    write(
        root / "code.md",
        "# Python\n\nUse a context manager to read files.\n\n```python\n"
        "with open(path) as fh:\n    data = fh.read()\n```\n\nAlways pass an encoding.\n",
    )
    return root


def test_unrelated_question_gets_empty_context(make_kb, vault: Path) -> None:
    base = make_kb()
    base.ingest([vault])
    ctx = base.context("quantum chromodynamics of gluon plasma")
    assert ctx.passages == [] and ctx.tokens == 0
    assert ctx.dropped and all("cutoff" in d.reason for d in ctx.dropped)


def test_related_question_keeps_evidence(make_kb, vault: Path) -> None:
    base = make_kb()
    base.ingest([vault])
    ctx = base.context("how many jellyfin log copies are kept", mode="dialog")
    assert ctx.passages and "seven copies" in ctx.passages[0].text
    assert ctx.passages[0].span.path == "projects/server.md"


def test_russian_morphology_matches(make_kb, vault: Path) -> None:
    assert terms("заметки") == terms("заметкам") == terms("заметок")[:0] + terms("заметки")
    base = make_kb()
    base.ingest([vault])
    ctx = base.context("что я писал по заметкам?", mode="dialog")
    assert ctx.passages and ctx.passages[0].span.path == "journal/day.md"


def test_file_name_hierarchy_is_a_lexical_field(make_kb, tmp_path: Path) -> None:
    """A config key that only the note's file name names (Dendron: one note per key) is found by
    name; a manifest indexed before the field existed is re-indexed lexically on open, without
    re-embedding."""
    from ingest.manifest import LEXICAL_FIELDS, Manifest

    root = tmp_path / "vault"
    write(
        root / "dendron.topic.publish.config.assetsPrefix.md",
        "---\ntitle: Prefix\n---\n\n"
        "Assets are served from the root by default; a prefix changes the url pages are served "
        "from.\n",
    )
    write(root / "other.md", "# Other\n\nServed from the root of the kitchen.\n")
    base = make_kb()
    base.ingest([root])
    hits = base.contexts().retriever().retrieve("assetsPrefix").candidates
    assert (
        hits
        and hits[0].span.path == "dendron.topic.publish.config.assetsPrefix.md"
        and hits[0].lex_rank == 1
    )
    base.close()

    home = base.home
    m = Manifest(home / "manifest.sqlite3")
    m.set_meta("lexical", "heading+text/0")  # as left by an older kb
    m.db.execute("DELETE FROM chunks_fts")
    m.db.execute("INSERT INTO chunks_fts(rowid, stems) SELECT rowid, 'old' FROM chunks")
    m.close()
    again = make_kb()
    assert again.contexts().retriever().retrieve("assetsPrefix").candidates[0].lex_rank == 1
    assert again.index.manifest.get_meta("lexical") == LEXICAL_FIELDS


def test_retrieval_settings_reach_the_retriever(
    make_kb, vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_RETRIEVAL__EXPAND_NOTES", "0")
    monkeypatch.setenv("KB_RETRIEVAL__DENSE_Z_FLOOR", "1.7")
    base = make_kb()
    base.ingest([vault])
    r = base.contexts().retriever()
    assert r.calibration.expand_notes == 0 and r.retrieve("restic backup").z_floor == 1.7


def test_filters_apply_on_both_sides(make_kb, vault: Path) -> None:
    base = make_kb()
    base.ingest([vault])
    r = base.contexts().retriever()
    q = "backup restic chai заметки python"
    everything = {c.span.path for c in r.retrieve(q).candidates}
    assert everything == {"projects/server.md", "journal/day.md", "code.md"}
    assert {c.span.path for c in r.retrieve(q, filters=Filters(folder="projects")).candidates} == {
        "projects/server.md"
    }
    assert {c.span.path for c in r.retrieve(q, filters=Filters(tag="diary")).candidates} == {
        "journal/day.md"
    }
    dated = {
        c.span.path
        for c in r.retrieve(q, filters=Filters(since="2025-06-01", until="2025-12-31")).candidates
    }
    assert "journal/day.md" in dated and "projects/server.md" not in dated


def test_budget_never_exceeded_with_real_tokenizer(make_kb, tmp_path: Path) -> None:
    root = tmp_path / "many"
    for i in range(30):
        filler = " ".join(f"word{i}x{j}" for j in range(60))
        write(
            root / f"n{i}.md",
            f"# Note {i}\n\nBackups and restic snapshots matter a lot. {filler}.\n",
        )
    base = make_kb()
    base.ingest([root])
    counter = vocab_counter()
    for budget in (50, 300, 1000):
        base.settings.modes.dialog.budget = budget
        ctx = base.context("restic backups snapshots", mode="dialog")
        assert ctx.tokens <= budget
        assert counter.count(ctx.notes_block()) == ctx.tokens or not ctx.passages
        assert any("over budget" in d.reason or "passage limit" in d.reason for d in ctx.dropped)


def test_pruning_never_breaks_code_blocks_or_tables() -> None:
    text = (
        "Intro sentence about nothing. Another filler sentence here.\n\n```python\ndef restic():\n"
        "    return 'backup'\n```\n\nMore filler text. Unrelated words again.\n\n| a | b "
        "|\n|---|---|\n"
        "| backup | 1 |\n\nFinal unrelated sentence. And one more."
    )
    idf = {t: 1.0 for t in terms("restic backup")}
    out = prune(text, idf, 0.5)
    assert "```python\ndef restic():\n    return 'backup'\n```" in out
    assert "| a | b |\n|---|---|\n| backup | 1 |" in out
    assert "And one more" not in out and "…" in out  # neighbours of kept units stay, the rest goes
    spans = units(text)
    assert sum(1 for s, e, atomic in spans if atomic) == 2


def test_pruning_keeps_neighbours_and_original_text() -> None:
    text = "Alpha one. Beta two. Gamma restic three. Delta four. Epsilon five. Zeta six."
    out = prune(text, {"restic": 1.0}, 0.5)
    assert "Beta two. Gamma restic three. Delta four." in out
    assert "Zeta" not in out and "Alpha" not in out


def test_chat_turns_are_units() -> None:
    text = (
        "**Anna:** I bought a bike.\n**Bob:** Nice!\n**Anna:** It is red.\n"
        "**Bob:** Cool.\n**Anna:** Bye."
    )
    out = prune(text, {t: 1.0 for t in terms("bike")}, 0.5)
    assert out.startswith("**Anna:** I bought a bike.\n**Bob:** Nice!")
    assert "Bye" not in out


def test_passage_order_edges() -> None:
    from kb.focus.budget import Budgeter, Context
    from kb.focus.retrieve import Retrieval

    cands = [
        Candidate(
            str(i),
            Span("r", f"n{i}.md", "h", 1, 1, None),
            0,
            f"restic fact number {i}.",
            coverage=1 - i / 10,
        )
        for i in range(5)
    ]
    mode = ModeSettings(
        budget=5000, max_passages=10, order="edges", prune=False, min_relevance=0.0, cutoff_gap=1
    )
    ctx = Budgeter(vocab_counter()).build(
        Retrieval("q", cands, ["restic"], {"restic": 1.0}, 1.0, (0, 1)),
        mode,
        Context("q", "think", "", 5000),
    )
    order = [p.span.path for p in ctx.passages]
    assert order[0] == "n0.md" and order[-1] == "n1.md"  # strongest first and last


def test_best_passage_of_each_note_before_a_second_of_the_first() -> None:
    from kb.focus.budget import Budgeter, Context

    def cand(cid: str, path: str, pos: int, cov: float) -> Candidate:
        return Candidate(
            cid,
            Span("r", path, "h", pos * 10, pos * 10 + 5, None),
            pos,
            f"restic fact {cid} " * 30,
            coverage=cov,
        )

    cands = [cand("a0", "a.md", 0, 0.9), cand("a5", "a.md", 5, 0.85), cand("b0", "b.md", 0, 0.8)]
    one = Budgeter(vocab_counter()).counter.count("restic fact a0 " * 30)
    mode = ModeSettings(
        budget=2 * one + 60,
        max_passages=10,
        order="score",
        prune=False,
        min_relevance=0.0,
        cutoff_gap=1,
    )
    ctx = Budgeter(vocab_counter()).build(
        Retrieval("q", cands, ["restic"], {"restic": 1.0}, 1.0, (0, 1)),
        mode,
        Context("q", "dialog", "", mode.budget),
    )
    assert [p.ids for p in ctx.passages] == [["a0"], ["b0"]]  # room for two: one from each note
    assert [d.span.start_line for d in ctx.dropped if "over budget" in d.reason] == [50]


def test_code_questions_prefer_config_and_commands_over_prose() -> None:
    from kb.focus.budget import Budgeter, Context, has_code

    prose = Candidate(
        "p",
        Span("r", "a.md", "h", 1, 2, None),
        0,
        "The assetsPrefix setting changes where pages are served.",
        coverage=0.8,
    )
    code = Candidate(
        "c",
        Span("r", "a.md", "h", 9, 12, None),
        3,
        "```yml\npublishing:\n  assetsPrefix: foo\n```",
        coverage=0.7,
    )
    assert has_code(code.text) and not has_code(prose.text)
    first = {}
    for name, bonus in (("dialog", 0.0), ("code", 0.08)):
        mode = ModeSettings(
            budget=5000,
            max_passages=1,
            prune=False,
            min_relevance=0.1,
            cutoff_gap=1,
            code_bonus=bonus,
        )
        ctx = Budgeter(vocab_counter()).build(
            Retrieval("q", [prose, code], ["x"], {"x": 1.0}, 1.0, (0, 1)),
            mode,
            Context("q", name, "", 5000),
        )
        first[name] = ctx.passages[0].ids
    assert first == {"dialog": ["p"], "code": ["c"]}


def test_a_flat_top_of_weak_matches_means_not_in_the_notes() -> None:
    """On-topic but unanswerable questions get weak matches none of which stands out (their vector
    z-scores are flat); an answerable one with the same weak best relevance has a match that stands
    out and keeps it."""
    from kb.focus.budget import Budgeter, Context
    from kb.focus.retrieve import dense_peak

    def retrieval(zs: list[float], coverage: float) -> Retrieval:
        cands = [
            Candidate(
                str(i),
                Span("r", f"n{i}.md", "h", 1, 1, None),
                0,
                f"dendron fact {i}.",
                z=z,
                dense_rank=i + 1,
                coverage=coverage if i == 0 else coverage / 2,
            )
            for i, z in enumerate(zs)
        ]
        return Retrieval(
            "q",
            cands,
            ["dendron"],
            {"dendron": 1.0},
            1.0,
            (0, 1),
            1.0,
            1.0,
            4.0,
            dense_peak(cands),
            flat_peak=0.5,
            flat_relevance=0.42,
        )

    mode = ModeSettings(budget=5000, max_passages=8, prune=False, min_relevance=0.3, cutoff_gap=0.2)
    flat = retrieval(
        [2.4 - 0.03 * i for i in range(12)], 0.4
    )  # best relevance 0.35 / 2 + 0.4 / 2 = 0.375
    peaked = retrieval(
        [2.9] + [2.2 - 0.03 * i for i in range(11)], 0.3
    )  # 0.475 / 2 + 0.3 / 2 ≈ 0.39
    assert flat.peak is not None and flat.peak < 0.5 <= (peaked.peak or 0)
    outcomes = {}
    for name, r in (("flat", flat), ("peaked", peaked)):
        best = max(r.relevance(c) for c in r.candidates)
        assert 0.3 <= best < 0.42  # above the floor: only the flat top can tell them apart
        ctx = Budgeter(vocab_counter()).build(r, mode, Context("q", "dialog", "", 5000))
        outcomes[name] = [p.span.path for p in ctx.passages][:1]
        if name == "flat":
            assert all("nothing stands out" in d.reason for d in ctx.dropped)
    assert outcomes == {"flat": [], "peaked": ["n0.md"]}
    off = retrieval([2.4 - 0.03 * i for i in range(12)], 0.4)
    off.flat_peak = 0.0  # the setting at 0 turns the check off
    assert Budgeter(vocab_counter()).build(off, mode, Context("q", "dialog", "", 5000)).passages
    assert dense_peak(off.candidates[:9]) is None  # fewer than 10 vector matches: no judgement


def test_a_weak_best_match_is_evidence_for_dialog_but_not_for_code() -> None:
    """A code question names its API, key or command: a best match at relevance 0.35 is "not in your
    notes" in code mode (floor 0.4) and still evidence in dialog mode (floor 0.3)."""
    from kb.focus.budget import Budgeter, Context
    from kb.settings import ModesSettings

    def weak() -> Retrieval:
        cands = [
            Candidate(
                str(i),
                Span("r", f"n{i}.md", "h", 1, 1, None),
                0,
                f"plain prose {i}.",
                z=z,
                dense_rank=i + 1,
                coverage=0.3,
            )
            for i, z in enumerate([2.6, 1.5, 1.4])
        ]
        return Retrieval("q", cands, ["q"], {"q": 1.0}, 1.0, (0, 1), 1.0, 1.0, 4.0, None)

    modes = ModesSettings()
    assert abs(max(weak().relevance(c) for c in weak().candidates) - 0.35) < 1e-9
    kept = {}
    for name in ("code", "dialog"):
        ctx = Budgeter(vocab_counter()).build(weak(), modes.get(name), Context("q", name, "", 3000))
        kept[name] = [p.span.path for p in ctx.passages]
        if name == "code":
            assert all("nothing relevant" in d.reason for d in ctx.dropped)
    assert kept["code"] == [] and kept["dialog"][:1] == ["n0.md"]


def test_term_coverage_counts_only_between_texts_in_the_same_script() -> None:
    """A Russian question can share no words with an English passage: that passage is judged by
    meaning alone. A passage in the question's own script that shares none of its words is weak
    evidence (not "judge by meaning")."""
    from kb.focus.retrieve import other_script

    en = Candidate(
        "e", Span("r", "a.md", "h", 1, 1, None), 0, "The backup job runs restic every night.", z=4.0
    )
    ru = Candidate(
        "r",
        Span("r", "b.md", "h", 1, 1, None),
        0,
        "Резервное копирование запускается каждую ночь.",
        z=4.0,
    )
    query = "Когда запускается резервное копирование?"
    r = Retrieval(
        query, [en, ru], ["запуска"], {"запуска": 1.0}, 1.0, (0, 1), 1.0, 1.0, 4.0, query_script=1.0
    )
    assert r.relevance(en) == pytest.approx(0.75)  # (4 - 1) / 4 from the dense side alone
    assert r.relevance(ru) == pytest.approx(
        0.375
    )  # coverage 0 counts against a same-script passage
    assert other_script(1.0, [en]) and not other_script(1.0, [ru])
    r.query_script = None  # an English-only embedder: no per-passage rule
    assert r.relevance(en) == pytest.approx(0.375)


def test_a_passage_in_another_script_is_judged_on_the_question_terms_it_could_share() -> None:
    """A Russian question's numbers and Latin names can occur in an English passage: they count as
    words do, weighted by their share of the question; the Russian words, which it can't hold, don't
    count against it."""
    from kb.focus.retrieve import cross_coverage, writable

    assert (
        writable("restic", latin=True)
        and writable("2019", latin=True)
        and writable("2019", latin=False)
    )
    assert (
        not writable("бэкап", latin=True)
        and writable("бэкап", latin=False)
        and not writable("restic", False)
    )
    idf = {"restic": 2.0, "2019": 2.0, "запуска": 1.0, "бэкап": 3.0}
    assert cross_coverage(idf, {"restic", "2019"}, latin=True) == pytest.approx((0.5, 1.0))
    assert cross_coverage(idf, {"restic"}, latin=True) == pytest.approx((0.5, 0.5))
    assert cross_coverage(idf, {"бэкап"}, latin=False) == pytest.approx(
        (0.75, 0.5)
    )  # Cyrillic words, numbers
    assert cross_coverage({"бэкап": 1.0}, set(), latin=True) == (0.0, 0.0)  # nothing it could share

    holds = Candidate(
        "e",
        Span("r", "a.md", "h", 1, 1, None),
        0,
        "restic runs nightly since 2019.",
        z=4.0,
        cross=cross_coverage(idf, {"restic", "2019"}, latin=True),
    )
    lacks = Candidate(
        "f",
        Span("r", "b.md", "h", 1, 1, None),
        0,
        "The backup job runs every night.",
        z=4.0,
        cross=cross_coverage(idf, set(), latin=True),
    )
    r = Retrieval(
        "Когда restic запускает бэкап в 2019?",
        [holds, lacks],
        list(idf),
        idf,
        1.0,
        (0, 1),
        0.0,
        1.0,
        4.0,
        query_script=0.7,
    )
    # dense (4 - 1) / 4 = 0.75 for both; lexical weight 0.5 (the writable share), whatever the
    # global weight
    assert r.relevance(holds) == pytest.approx(2 / 3 * 0.75 + 1 / 3 * 1.0)
    assert r.relevance(lacks) == pytest.approx(2 / 3 * 0.75)


def test_z_baseline_uses_background_in_the_questions_script() -> None:
    import numpy as np

    from kb.focus.retrieve import SAME_SCRIPT_MIN, baseline

    n = SAME_SCRIPT_MIN
    sims = np.array(
        [0.80] * n + [0.70] * n, dtype=np.float32
    )  # Russian passages are closer: language, not topic
    scripts = np.array([1.0] * n + [0.0] * n)
    assert baseline(sims, scripts, 1.0)[0] == pytest.approx(
        0.80
    )  # a Russian question: the Russian background
    assert baseline(sims, scripts, 0.0)[0] == pytest.approx(0.70)
    assert baseline(sims, scripts, None)[0] == pytest.approx(
        0.75
    )  # English-only embedder: the whole sample
    few = np.array([1.0] * (n - 1) + [0.0] * (n + 1))
    assert baseline(sims, few, 1.0)[0] == pytest.approx(
        0.75
    )  # too few in that script: the whole sample


def test_reranker_logic_with_fake() -> None:
    texts = ["apple", "banana", "cherry"]
    cands = [
        Candidate(str(i), Span("r", f"{i}.md", "h", 1, 1, None), 0, t) for i, t in enumerate(texts)
    ]
    out = rerank_with(
        lambda q, texts: [float("cherry" in t) * 5 - 1 for t in texts], "q", cands, top=3
    )
    assert next(c.text for c in out) == "cherry"
    r = Retrieval("q", out, [], {}, 1.0, (0.0, 1.0))
    assert r.relevance(out[0]) > 0.95 and r.relevance(out[1]) < 0.3


LABELLED = [
    ("How do I fix `ModuleNotFoundError` in my script?", "code"),
    ("write a bash one-liner to find large files", "code"),
    ("Как исправить ошибку в функции парсинга?", "code"),
    ("Покажи скрипт для бэкапа", "code"),
    ("Compare restic and borg for my backups: pros and cons?", "think"),
    ("Why did the server keep crashing last month?", "think"),
    ("Сравни два варианта хранения заметок и порекомендуй", "think"),
    ("Почему я перестал бегать осенью?", "think"),
    ("When did I have lunch with Anna?", "dialog"),
    ("What book did Anna recommend?", "dialog"),
    ("Когда мы ездили на дачу?", "dialog"),
    ("Что я читал в ноябре?", "dialog"),
]


@pytest.mark.parametrize(("question", "mode"), LABELLED)
def test_auto_mode_on_labelled_examples(question: str, mode: str) -> None:
    choice = choose_mode(question)
    assert choice.mode == mode, choice.reason
    assert choice.reason


def test_forced_mode() -> None:
    assert choose_mode("anything", "think").forced


def test_qwen3_vocabulary_matches_qwen_tokenizer() -> None:
    """Reference ids produced by Qwen's own tokenizer (Qwen2.5/Qwen3 share the vocabulary)."""
    enc = vocab_counter()
    assert enc.encode("Hello world") == [9707, 1879]
    assert enc.encode("user") == [872]
    import quicktok

    assert quicktok.get_encoding("qwen3").encode_with_special_tokens("<|im_start|>user\n") == [
        151644,
        872,
        198,
    ]
    for text in (
        "Привет, мир! Заметки о сервере.",
        "東京は日本の首都です。",
        "def f(x):\n    return x**2\n",
    ):
        ids = enc.encode(text)
        assert quicktok.get_encoding("qwen3").decode(ids) == text and enc.count(text) == len(ids)


def test_match_query_drops_stopwords() -> None:
    expr, qs = match_query("What is the restic retention?")
    assert qs == ["restic", "retent"] and expr == '"restic" OR "retent"'


def test_large_indexes_match_rare_terms_within_a_postings_budget() -> None:
    q = ["common", "medium", "rare", "absent"]
    df = {"common": 400_000, "medium": POSTINGS_BUDGET // 2, "rare": 300}
    assert (
        selective_terms(q, df, LARGE_INDEX_CHUNKS - 1) == q
    )  # small indexes: the whole query, always
    big = 1_000_000
    assert selective_terms(q, df, big) == [
        "medium",
        "rare",
        "absent",
    ]  # query order kept, common left out
    assert selective_terms(q, {**df, "medium": POSTINGS_BUDGET}, big) == ["rare", "absent"]
    # the rarest present term stays even when it alone is over budget (else nothing would match)
    assert selective_terms(["common", "absent"], df, big) == ["common", "absent"]
    assert selective_terms(["common"], df, big) == ["common"]


def test_a_stricter_floor_never_refuses_the_best_match_in_another_language() -> None:
    """An English question whose best match is a Russian note (judged by meaning alone, 0.37):
    code mode's floor (0.40) expects the command or API name a note in another language cannot
    show, so it does not refuse that match — the context is not empty."""
    from kb.focus.budget import Budgeter, Context
    from kb.focus.retrieve import Retrieval
    from kb.settings import CodeMode

    ru = Candidate(
        "r", Span("v", "ru.md", "Сервер", 1, 3), 0, "Журналы хранятся семь дней.", z=2.48
    )
    en = Candidate("e", Span("v", "en.md", "Trip", 1, 2), 0, "We drove to the lake.", z=0.2)
    en.coverage = 0.2
    r = Retrieval("how long are the logs kept?", [ru, en], ["log"], {"log": 1.0}, 1.0, (0, 1),
                  query_script=0.0)  # fmt: skip
    assert r.by_meaning_alone(ru) and not r.by_meaning_alone(en)
    assert abs(r.relevance(ru) - 0.37) < 0.001
    ctx = Budgeter(vocab_counter()).build(r, CodeMode(), Context("q", "code", "", 3000))
    assert [p.span.path for p in ctx.passages] == ["ru.md"]


def test_names_cross_scripts_by_sound() -> None:
    """«Тесла» is Tesla and "Manning" «Маннинг»: one romanisation each way, for the words a question
    names; stop words and short words have none."""
    from ingest.stem import other_script_terms, stem_word, to_cyrillic, to_latin

    assert to_latin("тесла") == "tesla" and to_latin("щука") == "shchuka"
    assert to_cyrillic("tesla") == "тесла" and to_cyrillic("manning") == "маннинг"
    assert to_cyrillic("edison") == "эдисон"
    alts = other_script_terms("Что изобрёл Тесла в 1888 году?")
    assert alts[stem_word("тесла")] == stem_word("tesla")
    assert not any(a.isdigit() for a in alts.values())
    assert "what" not in other_script_terms("What did Tesla invent?")


def test_a_russian_question_naming_a_person_finds_the_english_note_about_them(
    make_kb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name, matched in the other script, is the only word the question shares with the note
    (the hash embedder knows no meaning): with `cross_script_names` off nothing finds it by
    words."""
    root = tmp_path / "v"
    write(root / "inventor.md", "# Inventor\n\nTesla designed the induction motor in 1887.\n")
    write(root / "steam.md", "# Steam\n\nA steam turbine drives a rotor with blades.\n")
    base = make_kb()
    base.ingest([root])
    r = base.contexts().retriever().retrieve("Что изобрёл Тесла?")
    tesla = next(c for c in r.candidates if c.span.path == "inventor.md")
    steam = next(c for c in r.candidates if c.span.path == "steam.md")
    assert tesla.lex_rank == 1 and tesla.coverage > 0 and steam.lex_rank is None
    base.close()

    monkeypatch.setenv("KB_RETRIEVAL__CROSS_SCRIPT_NAMES", "false")
    off = make_kb().contexts().retriever().retrieve("Что изобрёл Тесла?")
    assert all(c.lex_rank is None for c in off.candidates)


def test_a_note_named_for_the_question_gains_relevance_by_its_name() -> None:
    """Two passages equal in meaning and words: the one whose note's name holds the question's terms
    comes first by ``name_weight`` × the share of terms its name holds (capped at 1)."""
    span = Span("r", "a.md", "h", 1, 1, None)
    named = Candidate("n", span, 0, "x", z=4.0, coverage=0.5, named=0.5)
    plain = Candidate("p", span, 0, "x", z=4.0, coverage=0.5)

    def relevance(weight: float, c: Candidate) -> float:
        r = Retrieval("q", [named, plain], ["q"], {"q": 1.0}, 1.0, (0, 1), 0.0, 1.0, 4.0)
        r.name_weight = weight
        return r.relevance(c)

    assert relevance(0.0, named) == relevance(0.0, plain)
    assert relevance(0.2, named) == pytest.approx(relevance(0.2, plain) + 0.1)
    assert relevance(1.0, Candidate("c", span, 0, "x", z=9.0, coverage=1.0, named=1.0)) == 1.0
