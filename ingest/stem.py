"""Language-aware normalisation for the lexical index: Russian and English Snowball stemming.

Each word is stemmed by the stemmer of its script (Cyrillic → Russian, Latin → English); CJK runs
become character bigrams. The same function prepares indexed text and queries, so «заметки» matches
«заметкам».
"""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CYR = re.compile(r"[а-яё]")
_LAT = re.compile(r"^[a-z0-9'’]+$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")

STOP_EN = frozenset(
    (
        "a about after all also an and any are as at be been before being both but by can could "
        "did do does "
        "don down each few for from had has have he her here him his how i if in into is it its "
        "just may me "
        "might more most must my no not of off on only or other our out over own s same shall she "
        "should so "
        "some such t than that the their them then there these they this those to too up very was "
        "we were "
        "what when where which who whom whose why will with would you your "
    ).split()
)
STOP_RU = frozenset(
    (
        "where а без более больше будет будто бы был была были было быть в вам вас вдруг ведь во "
        "вот впрочем "
        "все всегда всего всех всю вы где да даже два для до другой его ее ей ему если есть еще "
        "ещё её ж же "
        "за зачем здесь и из или им иногда их к как какая какие каким каких каков какова каковы "
        "какого какое "
        "какой каком какому какую кем когда кого кому конечно которая которого которой котором "
        "которые "
        "который которых кто куда ли лучше между меня мне много может можно мой моя мы на над надо "
        "наконец "
        "нас не него нее ней нельзя нет ни нибудь никогда ним них ничего но ну о об один он она "
        "они опять от "
        "перед по под после потом потому почти при про раз разве с сам свою себе себя сейчас "
        "скольких сколько "
        "со совсем так такой там тебя тем теперь то тогда того тоже только том тот три тут ты у уж "
        "уже хорошо "
        "хоть чего чей чем чему через что чтоб чтобы чуть чье чья чьё эти это этого этой этом этот "
        "эту я "
    ).split()
)

_ru = snowballstemmer.stemmer("russian")
_en = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def stem_word(word: str) -> str:
    if _CYR.search(word):
        return _ru.stemWord(word.replace("ё", "е"))
    if _LAT.match(word):
        return _en.stemWord(word)
    return word


def terms(text: str, drop_stopwords: bool = False) -> list[str]:
    """Normalised terms of a text, in order."""
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if _CJK.search(w):
            chars = [c for c in w if not c.isspace()]
            out.extend(chars[i] + chars[i + 1] for i in range(len(chars) - 1)) if len(
                chars
            ) > 1 else out.extend(chars)
            continue
        if drop_stopwords and (w in STOP_EN or w in STOP_RU):
            continue
        out.append(stem_word(w))
    return out


_PATH_SPLIT = re.compile(r"[/\\._\-\s]+")
_PATH_NOISE = {"index", "readme", "md", "markdown", "txt"}


def path_words(path: str) -> str:
    """A note's path as words: ``dendron.topic.publish.config.assetsPrefix.md`` → "dendron topic
    publish config assetsPrefix", ``js/array-flat/index.md`` → "js array flat". Hierarchical file
    names name their topic."""
    return " ".join(p for p in _PATH_SPLIT.split(path) if p and p.lower() not in _PATH_NOISE)


def lexical_fields(path: str, heading: str, text: str) -> str:
    """The text BM25 and term coverage see for a chunk: the note's path words, its heading path
    (title first), then the passage."""
    return f"{path_words(path)}\n{heading}\n{text}"


def index_text(text: str) -> str:
    """What goes into the FTS5 column: space-separated stems."""
    return " ".join(terms(text))


def match_query(query: str) -> tuple[str, list[str]]:
    """(FTS5 MATCH expression, distinct query terms). Empty expression when nothing is
    searchable."""
    qs = list(dict.fromkeys(t for t in terms(query, drop_stopwords=True) if t))
    if not qs:
        qs = list(dict.fromkeys(terms(query)))
    return match_expr(qs), qs


def match_expr(qterms: list[str]) -> str:
    """An FTS5 MATCH expression for any of ``qterms`` (each quoted as a phrase)."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in qterms)


LATIN_LAST = 0x24F  # the last Latin letter (Latin Extended-B); letters above it are another script


def non_latin_share(text: str) -> float:
    """Share of the letters of ``text`` outside the Latin script (0 English, about 1 Russian; 0 with
    no letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if ord(c) > LATIN_LAST) / len(letters)


# Names and borrowed words cross scripts by sound: «Тесла» is Tesla, «Денвер» Denver, "Manning"
# «Маннинг», «патент» patent. One common romanisation each way (BGN/PCGN-like; Latin → Cyrillic
# reads English digraphs first) is enough for the words that matter: the rarest in a question.
_TO_LATIN = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya".split(),
        strict=True,
    )
)
_TO_CYRILLIC = [
    ("shch", "щ"), ("sch", "ш"), ("sh", "ш"), ("ch", "ч"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"),
    ("th", "т"), ("ph", "ф"), ("ck", "к"), ("ya", "я"), ("yu", "ю"), ("yo", "ё"), ("ey", "ей"),
    ("ay", "ай"), ("oy", "ой"), ("iy", "ий"), ("ee", "и"), ("oo", "у"), ("qu", "кв"), ("a", "а"),
    ("b", "б"), ("c", "к"), ("d", "д"), ("e", "е"), ("f", "ф"), ("g", "г"), ("h", "х"), ("i", "и"),
    ("j", "дж"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"), ("q", "к"),
    ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"), ("v", "в"), ("w", "в"), ("x", "кс"), ("y", "и"),
    ("z", "з"),
]  # fmt: skip


def to_latin(word: str) -> str:
    """A Cyrillic word romanised: «тесла» → "tesla", «щука» → "shchuka"."""
    return "".join(_TO_LATIN.get(ch, ch) for ch in word).replace("-", "")


def to_cyrillic(word: str) -> str:
    """A Latin word as Russian writes its sound, roughly: "tesla" → «тесла», "manning" → «маннинг»;
    a first e is э ("edison" → «эдисон»)."""
    out, i = [], 0
    while i < len(word):
        for latin, cyr in _TO_CYRILLIC:
            if word.startswith(latin, i):
                out.append("э" if latin == "e" and i == 0 else cyr)
                i += len(latin)
                break
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def other_script_terms(query: str) -> dict[str, str]:
    """Each query term (stemmed, as `match_query` gives it) of four letters or more, by the stem of
    its spelling in the other script: {"тесл": "tesla"} for «Тесла», {"tesla": "тесл"} for "Tesla".
    Stop words and numbers have none."""
    out: dict[str, str] = {}
    for w in _WORD.findall(query.lower()):
        if len(w) < 4 or w in STOP_EN or w in STOP_RU or not w.isalpha():
            continue
        if _CYR.search(w):
            alt = to_latin(w.replace("ё", "е"))
        elif _LAT.match(w):
            alt = to_cyrillic(w)
        else:
            continue
        src, other = stem_word(w), stem_word(alt)
        if other and other != src:
            out.setdefault(src, other)
    return out
