"""Dates in a question: "last week", "in November", «вчера», «с марта по май» → the range of days
the question is about, resolved against a reference "now" (the clock, or ``--now``/``KB_NOW``).

``dateparser`` (maintained, Russian and English) reads the expressions and says how coarse each is
(a day, a week, a month, a year); this module only finds the words to give it, maps an expression
and its coarseness to a range of days, and refuses what is not a date: a bare month that is a word
("May I ask…"), a bare number (a version, a count), anything inside code in the question. Two things
dateparser does not read are added here: seasons ("this spring", «прошлой весной») and the Russian
forms of months after a preposition («в ноябре», «в мае»).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from kb.focus.prompt import language


@dataclass(frozen=True)
class DateRange:
    """The days a question is about, and the words that said so."""

    since: dt.date
    until: dt.date
    words: str  # as written in the question: "last week", «в ноябре»
    now: dt.date  # what "now" was when it was resolved

    def label(self) -> str:
        """``dates 2025-11-10 … 2025-11-16, from 'last week'``: how kb shows where a range came
        from."""
        days = str(self.since) if self.since == self.until else f"{self.since} … {self.until}"
        return f"dates {days}, from '{self.words}'"

    def as_dict(self) -> dict[str, str]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "words": self.words,
            "now": self.now.isoformat(),
            "label": self.label(),
        }


def today(setting: dt.date | None = None) -> dt.date:
    """The reference "now" for a question's dates: KB_NOW (``--now``) when set, else the clock."""
    return setting or dt.date.today()


_CODE = re.compile(r"```.*?(?:```|$)|`[^`]*`", re.S)
_WORD = re.compile(r"[\w-]+", re.UNICODE)

# words that may start or carry a date expression: only n-grams holding one are shown to dateparser
_EN_MONTHS = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
).split()
_RU_MONTH_STEMS = {
    "январ": "январь",
    "феврал": "февраль",
    "март": "март",
    "апрел": "апрель",
    "ма": "май",  # мая, мае, май (checked whole-word below)
    "июн": "июнь",
    "июл": "июль",
    "август": "август",
    "сентябр": "сентябрь",
    "октябр": "октябрь",
    "ноябр": "ноябрь",
    "декабр": "декабрь",
}
_RU_MONTH_FORMS = {
    f"{stem}{end}": name
    for stem, name in _RU_MONTH_STEMS.items()
    for end in ("", "ь", "я", "е", "а")
    if stem != "ма" or end in ("я", "е", "й")
}
_RU_MONTH_FORMS["май"] = "май"
_WEEKDAYS = (
    "monday tuesday wednesday thursday friday saturday sunday понедельник вторник среду среда "
    "четверг пятницу пятница субботу суббота воскресенье"
).split()
_UNITS = (
    "day days week weeks month months year years fortnight today yesterday tonight "
    "день дня дней неделю неделе недели недель месяц месяца месяцев месяце год года лет году "
    "сегодня вчера позавчера"
).split()
_ALONE = frozenset("today yesterday tonight сегодня вчера позавчера".split())
_AGO = frozenset("ago назад".split())
_UNIT_LEADS = frozenset(
    "last this past previous прошлой прошлом прошлую прошлый этой этом эту этот".split()
)
_TRIGGERS = frozenset(_EN_MONTHS + list(_RU_MONTH_FORMS) + _WEEKDAYS + _UNITS)
# before a bare month, weekday or year these make it a date ("in May", «в мае», "last Tuesday")
_LEADS = frozenset(
    "in on during since until till from by last this next early late mid past previous "
    "в во с со по до за к прошлом прошлой прошлый этом этой этот следующем начале конце середине "
    "с".split()
)
_SEASONS = {
    "spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12,
    "весна": 3, "весной": 3, "весну": 3, "весны": 3, "лето": 6, "летом": 6, "лета": 6,
    "осень": 9, "осенью": 9, "осени": 9, "зима": 12, "зимой": 12, "зиму": 12, "зимы": 12,
}  # fmt: skip
_SEASON_PAST = frozenset("last past previous прошлой прошлую прошлым прошлая прошлого".split())
_SEASON_THIS = frozenset("this этой этим эту этого".split())
_RANGE_OPEN = frozenset("between from с со".split())
_RANGE_MID = frozenset("and to till until through по до и".split())


_RELATIVE = frozenset(
    "yesterday ago last this past previous вчера позавчера назад прошлой "
    "прошлом прошлую прошлый прошлым прошлая прошлого этой этом эту этот этим".split()
)
_FIRST_PERSON = frozenset(
    "i me my mine myself we us our ours i've i'd i'm я мне меня мной мой моя моё мое мои моих моим "
    "мы нам нас нами наш наша наше наши наших".split()
)
#: verbs of saying: a date beside them is when something was said or written — the day of the note
#: that holds it ("what did John tell Tim in August?", «как она сказала в июле?»)
_SAID_EN = frozenset(
    "say says said tell tells told mention mentions mentioned share shares shared talk talks "
    "talked "
    "discuss discusses discussed chat chatted call called describe describes described show shows "
    "showed explain explains explained suggest suggests suggested recommend recommends recommended "
    "ask asks asked write writes wrote written note noted".split()
)
_SAID_RU = (
    "сказал", "рассказ", "говорил", "поделил", "упоминал", "упомянул", "обсужд", "обсуди",
    "писал", "написал", "показал", "посовет", "предложил", "спросил", "разговор", "заметил",
    "созвон", "объяснил", "описал",
)  # fmt: skip
#: question words and fillers that say nothing about what is asked for
_GENERIC = frozenset(
    "what which who whom when where why how did do does done was were is are be been have has had "
    "happen happened happening go going went new anything something everything about tell show "
    "list summarize summarise recap write wrote written note notes read decide decided work worked "
    "что какие какой какая кто когда где почему как было были был была делал делала делали сделал "
    "происходило произошло случилось новое нового писал писала записал читал читала решил решила "
    "заметки заметках расскажи покажи перечисли".split()
)


def broad(question: str, found: DateRange) -> bool:
    """Does the question ask about the time range itself ("what did I do in November?", «что я
    читал на прошлой неделе?») rather than about one thing in it? Then the context covers the
    range, in date order."""
    return len(_content(question, found)) <= 1


def _content(question: str, found: DateRange) -> list[str]:
    """The words of a question that say what it is about: not the date, not a question word."""
    from ingest.stem import STOP_EN, STOP_RU

    words = [w.lower() for w in _WORD.findall(re.sub(r"['’]s\b", "", question))]
    phrase = {w.lower() for w in _WORD.findall(found.words)}
    return [
        w
        for w in words
        if w not in phrase
        and w not in _GENERIC
        and w not in _FIRST_PERSON
        and w not in STOP_EN
        and w not in STOP_RU
    ]


def question_range(question: str, now: dt.date) -> DateRange | None:
    """The range a question's dates give to retrieval, or None. A date counts when it is about the
    user's own time: said relative to now ("last week", «вчера»), or with the user in the question
    ("what did I read in November?", «что я читал в ноябре?»), or beside a verb of saying — the day
    something was said or written is the day of its note ("what did John tell Tim in August?"), or
    when it is all the question asks by ("what happened in 2023?"). A date that is part of what is
    asked about — "Who won the championship in 2000?", "What setback did Melanie face in October
    2023?" — is left to retrieval by meaning: filtering notes by when they were written would lose
    the answer."""
    found = dates_in(question, now)
    if found is None:
        return None
    words = [w.lower() for w in _WORD.findall(re.sub(r"['’]s\b", "", question))]
    phrase = {w.lower() for w in _WORD.findall(found.words)}
    if phrase & _RELATIVE or any(w.endswith(("ой", "ом", "ью")) for w in phrase & set(_SEASONS)):
        return found
    if _FIRST_PERSON & {w.lower() for w in _WORD.findall(question) if w != "US"}:
        return found  # "US" is the country
    if _SAID_EN & set(words) or any(w.startswith(_SAID_RU) for w in words):
        return found
    return found if len(_content(question, found)) <= 1 else None


def dates_in(question: str, now: dt.date) -> DateRange | None:
    """The range of days ``question`` asks about, or None. Code in the question is ignored; so is a
    month, weekday or number standing alone without a word that makes it a date. A range ends today
    at the latest: "this week" on a Wednesday is Monday to Wednesday (notes are about what
    happened)."""
    found = _find(question, now)
    if found is None or found.until <= now:
        return found
    return DateRange(found.since, now, found.words, now)


def _find(question: str, now: dt.date) -> DateRange | None:
    text = re.sub(r"['’]s\b", "", _CODE.sub(" ", question))  # "last week's" → "last week"
    words = _WORD.findall(text)
    lowered = [w.lower() for w in words]
    found = (
        _season(lowered, words, now)
        or _span(lowered, words, now)
        or _last_week_of(lowered, words, now)
    )
    if found is not None:
        return found
    for size in (4, 3, 2, 1):
        for i in range(len(words) - size + 1):
            gram = lowered[i : i + size]
            if not any(_trigger(w) for w in gram):
                continue
            got = _parse(" ".join(gram), now, language(question))
            if got is None or _bare(gram, lowered, i):
                continue
            end = i + size
            # "on 19 August, 2023": a year just after the words found belongs to them
            while end < len(words) and end < i + size + 2 and _trigger(lowered[end]):
                longer = _parse(" ".join(lowered[i : end + 1]), now, language(question))
                if longer is None:
                    break
                got, end = longer, end + 1
            since, until = _period(*got)
            if since > now:  # "in a week" from now: notes are about what happened
                continue
            a, b = _tight(lowered, i, end, (since, until), now, language(question))
            return DateRange(since, until, " ".join(words[a:b]), now)
    return None


def _tight(
    lowered: list[str], a: int, b: int, found: tuple[dt.date, dt.date], now: dt.date, lang: str
) -> tuple[int, int]:
    """The fewest words of ``lowered[a:b]`` that still read as the same days (dateparser skips
    words it does not know: "in May 2023 we" → "in May 2023")."""
    shrunk = True
    while shrunk and b - a > 1:
        shrunk = False
        for x, y in ((a + 1, b), (a, b - 1)):
            if x > a and lowered[a] in _LEADS and lowered[a + 1] not in _LEADS:
                continue  # keep "in", «в»: they are part of how it was said
            gram = lowered[x:y]
            if not any(_trigger(w) for w in gram):
                continue
            got = _parse(" ".join(gram), now, lang)
            if got is not None and _period(*got) == found and not _bare(gram, lowered, x):
                a, b, shrunk = x, y, True
                break
    return a, b


def _trigger(word: str) -> bool:
    return word in _TRIGGERS or bool(re.fullmatch(r"(?:19|20)\d\d", word))


def _bare(gram: list[str], lowered: list[str], i: int) -> bool:
    """A month, weekday or year with nothing that makes it a date: no "in"/"last"/«в» before it (in
    the n-gram or just before it), no unit ("days ago", «на неделе»), no day or year beside it ("May
    I", "March on", "version 2023")."""
    if any(w in _ALONE for w in gram):
        return False  # "yesterday", «позавчера»
    # "last week", "3 days ago", «на прошлой неделе»; not "a week"
    if any(w in _UNITS for w in gram):  # "last week", "3 days ago", «на прошлой неделе»
        near = [*gram, lowered[i - 1] if i > 0 else ""]
        return not any(w in _UNIT_LEADS or w in _AGO for w in near)  # not "a week", "3 days"
    if (
        len(gram) >= 2
        and any(w.isdigit() for w in gram)
        and any(not w.isdigit() and _trigger(w) for w in gram)
    ):
        return False  # "8 May", "May 2023" (not "a 2013")
    first = next(k for k, w in enumerate(gram) if _trigger(w))
    leads = [*gram[:first], lowered[i - 1] if i > 0 else ""]
    return not any(w in _LEADS for w in leads)


@functools.lru_cache(maxsize=4096)
def _parse(phrase: str, now: dt.date, lang: str) -> tuple[dt.date, str] | None:
    """(a day inside the expression, its coarseness: day, week, month or year), by dateparser."""
    from dateparser.date import DateDataParser

    text = _russian_forms(phrase) if lang == "ru" else phrase
    order = ["ru", "en"] if lang == "ru" else ["en", "ru"]
    base = dt.datetime.combine(now, dt.time(12))
    settings = {
        "RELATIVE_BASE": base,
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "PREFER_DAY_OF_MONTH": "first",
    }
    parser = DateDataParser(languages=order, settings=settings)
    data = parser.get_date_data(text)
    if data.date_obj is None:
        return None
    day = data.date_obj.date()
    if not 1900 <= day.year <= 2200:
        return None
    period = data.period or "day"
    if period == "time":
        period = "day"
    return day, period


def _russian_forms(phrase: str) -> str:
    """What dateparser reads of a Russian phrase: a month after a preposition in its dictionary form
    («в ноябре» → «ноябрь»), a year without «году» («в 2023 году» → «2023 год»)."""
    words = phrase.split()
    out = []
    for w in words:
        out.append(_RU_MONTH_FORMS.get(w, w))
    text = " ".join(out)
    text = re.sub(r"\bв(?:о)? ((?:январь|февраль|март|апрель|май|июнь|июль|август|сентябрь|октябрь|"
                  r"ноябрь|декабрь))\b", r"\1", text)  # fmt: skip
    text = re.sub(r"\b(?:в |во )?((?:19|20)\d\d)(?:-?м)? год[ау]?\b", r"\1 год", text)
    return text


def _period(day: dt.date, period: str) -> tuple[dt.date, dt.date]:
    if period == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=6)
    if period == "month":
        start = day.replace(day=1)
        nxt = (start + dt.timedelta(days=32)).replace(day=1)
        return start, nxt - dt.timedelta(days=1)
    if period == "year":
        return dt.date(day.year, 1, 1), dt.date(day.year, 12, 31)
    return day, day


def _add_months(day: dt.date, n: int) -> dt.date:
    months = day.year * 12 + day.month - 1 + n
    return dt.date(months // 12, months % 12 + 1, 1)


def _season(lowered: list[str], words: list[str], now: dt.date) -> DateRange | None:
    """ "this spring", "last winter", «прошлой весной», «летом» → the season's three months, the
    most recent that has begun; "last …" takes the one before when we are in it."""
    for i, w in enumerate(lowered):
        first = _SEASONS.get(w)
        if first is None:
            continue
        before = lowered[i - 1] if i > 0 else ""
        modified = before in _SEASON_PAST | _SEASON_THIS | _LEADS
        if not modified and not w.endswith(("ой", "ом", "ью")):  # «весной» is "in spring"
            continue  # a bare noun: "spring cleaning", "the fall of Rome"
        start = dt.date(now.year if first <= now.month else now.year - 1, first, 1)
        end = _period(_add_months(start, 2), "month")[1]
        if before in _SEASON_PAST and start <= now <= end:
            start = dt.date(start.year - 1, first, 1)
            end = _period(_add_months(start, 2), "month")[1]
        phrase = " ".join(words[i - 1 : i + 1]) if modified else words[i]
        return DateRange(start, end, phrase, now)
    return None


def _span(lowered: list[str], words: list[str], now: dt.date) -> DateRange | None:
    """ "between March and May", "from June to August", «с марта по май»: two months (or years)
    joined into one range, from the first's start to the second's end."""
    lang = "ru" if any(re.search("[а-яё]", w) for w in lowered) else "en"
    for i, w in enumerate(lowered):
        if w not in _RANGE_OPEN:
            continue
        for j in range(i + 2, min(i + 5, len(lowered))):
            if lowered[j] not in _RANGE_MID:
                continue
            left = lowered[i + 1 : j]
            a = _coarse(left, now, lang)
            for n in (2, 1):
                right = lowered[j + 1 : j + 1 + n]
                b = _coarse(right, now, lang) if len(right) == n else None
                if a is None or b is None:
                    continue
                start, end = _period(*a)[0], _period(*b)[1]
                if end < start:  # "from November to February": it ends in the next year
                    end = _period(dt.date(end.year + 1, end.month, 1), "month")[1]
                return DateRange(start, end, " ".join(words[i : j + 1 + n]), now)
    return None


_LAST_WEEK_OF = re.compile(
    r"\b(?:the )?(?:last|final) week of (\w+)(?: (\d{4}))?|"
    r"\bпоследн\w* недел\w* (\w+)(?: (\d{4}))?"
)


def _last_week_of(lowered: list[str], words: list[str], now: dt.date) -> DateRange | None:
    """ "the last week of August 2023", «последняя неделя августа»: the month's last seven days."""
    m = _LAST_WEEK_OF.search(" ".join(lowered))
    if m is None:
        return None
    month, year = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    lang = "en" if m.group(1) else "ru"
    got = _parse(f"{_RU_MONTH_FORMS.get(month, month)} {year or ''}".strip(), now, lang)
    if got is None or got[1] != "month":
        return None
    end = _period(*got)[1]
    n = len(m.group(0).split())
    start = len(" ".join(lowered)[: m.start()].split())
    return DateRange(end - dt.timedelta(days=6), end, " ".join(words[start : start + n]), now)


def _coarse(gram: list[str], now: dt.date, lang: str) -> tuple[dt.date, str] | None:
    """A month or a year (not a day or a week) read from ``gram``, for the two ends of a span."""
    if not gram or not any(_trigger(w) for w in gram):
        return None
    got = _parse(" ".join(gram), now, lang)
    return got if got is not None and got[1] in ("month", "year") else None
