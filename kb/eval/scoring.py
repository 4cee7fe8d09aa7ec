"""Answer scoring for `kb eval --answers`: SQuAD-style normalisation, token F1 and exact match
(Russian and English), abstention and citation precision.

Normalisation: Unicode NFKC, lower case, ё → е, citation marks ``[n]`` removed, punctuation and
symbols removed, the English articles a / an / the dropped (Russian has none), whitespace collapsed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from kb.focus.prompt import fold

_ARTICLES = frozenset({"a", "an", "the"})


def normalize(text: str) -> str:
    return " ".join(w for w in fold(text).split() if w not in _ARTICLES)


_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "ноль": 0, "один": 1, "одна": 1, "одно": 1, "два": 2, "две": 2, "три": 3, "четыре": 4,
    "пять": 5, "шесть": 6, "семь": 7, "восемь": 8, "девять": 9, "десять": 10, "одиннадцать": 11,
    "двенадцать": 12, "тринадцать": 13, "четырнадцать": 14, "пятнадцать": 15, "шестнадцать": 16,
    "семнадцать": 17, "восемнадцать": 18, "девятнадцать": 19, "двадцать": 20, "тридцать": 30,
    "сорок": 40, "пятьдесят": 50, "шестьдесят": 60, "семьдесят": 70, "восемьдесят": 80,
    "девяносто": 90, "сто": 100, "двести": 200, "триста": 300, "четыреста": 400, "пятьсот": 500,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "тысяча": 1000, "тысячи": 1000,
           "тысяч": 1000, "миллион": 10**6, "миллиона": 10**6, "миллионов": 10**6}  # fmt: skip


def numbers_as_digits(words: list[str]) -> list[str]:
    """Runs of number words as one number in digits ("twenty one" → "21", «две тысячи» → "2000"), so
    "four" and "4" are the same answer. Other words are kept."""
    out: list[str] = []
    total = current = 0
    run = False
    for w in [*words, ""]:
        if w in _UNITS or (w in _SCALES and run):
            run = True
            if w in _UNITS:
                current += _UNITS[w]
            elif _SCALES[w] == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * _SCALES[w]
                current = 0
            continue
        if run:
            out.append(str(total + current))
            total = current = 0
            run = False
        if w:
            out.append(w)
    return out


def contains(prediction: str, answers: list[str]) -> float:
    """1.0 when the answer holds a gold answer (normalised as for F1, number words as digits) as
    a run of words, else 0.0: a reader that answers in a sentence is not penalised for the
    sentence."""
    pred = numbers_as_digits(normalize(prediction).split())
    for gold in answers:
        ref = numbers_as_digits(normalize(gold).split())
        if ref and any(pred[i : i + len(ref)] == ref for i in range(len(pred) - len(ref) + 1)):
            return 1.0
    return 0.0


def golds(answer: object) -> list[str]:
    """A question's gold answers: ``answer`` may be a string, a number, or a list of acceptable
    answers."""
    if answer is None:
        return []
    items: Iterable[object] = answer if isinstance(answer, list) else [answer]
    return [str(a) for a in items if a is not None and str(a).strip()]


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def best(prediction: str, answers: list[str]) -> tuple[float, float]:
    """(F1, EM) of a prediction against the best-matching gold answer."""
    if not answers:
        return 0.0, 0.0
    return max(token_f1(prediction, a) for a in answers), max(
        exact_match(prediction, a) for a in answers
    )


def citation_precision(cited: Iterable[str], evidence: Iterable[str]) -> float | None:
    """The share of cited notes that are evidence notes; None when nothing was cited (or there is no
    evidence)."""
    cited_set, evidence_set = set(cited), set(evidence)
    if not cited_set or not evidence_set:
        return None
    return len(cited_set & evidence_set) / len(cited_set)


def paired(
    a: list[float], b: list[float], seed: int = 0, resamples: int = 2000
) -> dict[str, object]:
    """Strategy A against B on the same questions (scores in the same order): how often A scores
    higher, lower or the same, the mean difference A − B and its 95 % bootstrap interval (questions
    resampled with replacement, seeded: the same scores give the same interval). An interval that
    contains 0 means the sample cannot tell the two apart."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("paired scores need the same questions")
    if not a:
        return {"questions": 0, "wins": 0, "losses": 0, "ties": 0, "diff": None, "ci95": None}
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))
    means = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {
        "questions": len(d),
        "wins": int((d > 0).sum()),
        "losses": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
        "diff": round(float(d.mean()), 4),
        "ci95": [round(float(lo), 4), round(float(hi), 4)],
    }
