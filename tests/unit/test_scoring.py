"""`kb eval --answers`'s scoring, as pure functions: answer normalisation in both languages (F1,
exact match), abstention detection, citation precision, the paired comparison, and reading the
evidence check's reply."""

from __future__ import annotations

import pytest

from kb.answers.check import parse_ids
from kb.eval.scoring import best, citation_precision, exact_match, normalize, token_f1
from kb.focus.prompt import ABSTAIN, abstention, is_abstention, language


def test_normalisation_in_both_languages() -> None:
    assert normalize("The  Quick, brown fox!") == "quick brown fox"
    assert normalize("«Ёлка» — зелёная [2].") == "елка зеленая"
    assert exact_match("The Denver Broncos.", "denver broncos") == 1.0
    assert exact_match("Ёж", "еж") == 1.0 and exact_match("a cat", "cats") == 0.0
    assert token_f1("in May 2021", "May 2021") == pytest.approx(0.8)
    assert token_f1("два часа [1]", "Два часа.") == 1.0
    assert token_f1("nothing shared", "other words") == 0.0
    assert best("it was 7", ["seven", "7"]) == (0.5, 0.0)  # p 1/3, r 1 against "7"


def test_abstention_detection_and_language() -> None:
    assert language("Какой пароль?") == "ru" and language("What is it?") == "en"
    assert language("Как настроить nginx?") == "ru" and language("How do I use Ёлка?") == "en"
    assert abstention("Где ключи?") == ABSTAIN["ru"] and abstention("Where?") == ABSTAIN["en"]
    for said in [
        "Not in your notes.",
        "not in your notes",
        "**Not in your notes.** They cover backups only.",
        "В заметках этого нет.",
        "в заметках этого нет!",
        "«В заметках этого нет»",
    ]:
        assert is_abstention(said), said
    for said in [
        "The answer is 7 [1].",
        "It is not in your notes folder but in the wiki.",
        "Notes: 7",
        "",
    ]:
        assert not is_abstention(said), said


def test_citation_precision() -> None:
    assert citation_precision(["a.md", "b.md"], ["a.md"]) == 0.5
    assert citation_precision(["a.md", "a.md"], ["a.md", "c.md"]) == 1.0
    assert citation_precision([], ["a.md"]) is None and citation_precision(["a.md"], []) is None


def test_paired_comparison_counts_and_bootstraps_the_difference() -> None:
    from kb.eval.scoring import paired

    same = paired([0.5, 1.0, 0.0], [0.5, 1.0, 0.0])
    assert (same["wins"], same["losses"], same["ties"], same["diff"], same["ci95"]) == (
        0,
        0,
        3,
        0.0,
        [0.0, 0.0],
    )
    better = paired([1.0] * 40, [0.0] * 40)
    assert better["wins"] == 40 and better["diff"] == 1.0 and better["ci95"] == [1.0, 1.0]
    mixed = paired(
        [1.0, 0.0] * 20, [0.0, 1.0] * 20
    )  # as often better as worse: the interval straddles 0
    assert mixed["wins"] == mixed["losses"] == 20 and mixed["diff"] == 0.0
    assert mixed["ci95"][0] < 0 < mixed["ci95"][1]
    assert mixed == paired(
        [1.0, 0.0] * 20, [0.0, 1.0] * 20
    )  # seeded: the same scores, the same interval
    one = paired(
        [1.0] + [0.0] * 39, [0.0] * 40
    )  # one win in 40: a positive mean, not separable from 0
    assert one["diff"] == 0.025 and one["ci95"][0] == 0.0 < one["ci95"][1]
    assert paired([], [])["diff"] is None
    with pytest.raises(ValueError):
        paired([1.0], [])


def test_parse_evidence_check_reply() -> None:
    assert parse_ids('```json\n{"relevant": [2, "3", 9]}\n```', {1, 2, 3}) == [2, 3]
    assert parse_ids("Sure: [1, 1, 3]", {1, 2, 3}) == [1, 3]
    assert parse_ids('{"relevant": []}', {1, 2}) == []
    assert parse_ids("None of them.", {1, 2}) is None


def test_plot_labels_step_aside_from_a_neighbouring_point() -> None:
    """xquad-en's 150: auto (569 tokens) and auto+check (1,082) sit close; auto's label goes below
    left."""
    from kb.cli.plot import crowded

    points = [
        ("auto", 569, 0.073),
        ("naive", 3107, 0.033),
        ("max", 6923, 0.034),
        ("auto+check", 1082, 0.078),
    ]
    assert crowded(points, log=False) == {"auto"}
    assert (
        crowded([("auto", 569, 0.073), ("naive", 3107, 0.033), ("max", 6923, 0.034)], log=False)
        == set()
    )
    assert (
        crowded([("a", 10, 0.5), ("b", 40, 0.5), ("c", 10_000, 0.1)], log=True) == set()
    )  # far apart on log x
    assert crowded([("a", 10, 0.5), ("b", 12, 0.52), ("c", 10_000, 0.1)], log=True) == {"a"}


def test_contains_the_gold_answer_with_number_words_as_digits() -> None:
    from kb.eval.scoring import contains, numbers_as_digits

    assert contains("The answer is: 4 [1]", ["four"]) == 1.0  # "4" vs "four": the same answer
    assert contains("The Denver Broncos represented the AFC.", ["Denver Broncos"]) == 1.0
    assert contains("Их было двадцать одна", ["21"]) == 1.0
    assert contains("Broncos", ["Denver Broncos"]) == 0.0  # the whole gold, in order
    assert contains("It happened in 1995", ["1996"]) == 0.0
    assert numbers_as_digits("one hundred and five".split()) == ["100", "and", "5"]
    assert numbers_as_digits("две тысячи".split()) == ["2000"]
