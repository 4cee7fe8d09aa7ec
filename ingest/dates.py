"""The date of a note, and of the passages under a dated heading — and where each came from.

A note's date is, in this order: a ``date`` in its frontmatter; a date in its file name or folders
(daily and journal notes: ``2024-11-05.md``, ``2024_11_05.md``, ``05.11.2024.md``,
``journal.2024.11.05.md``, ``2024/11/05.md``); another date key of the frontmatter (``created``,
``updated``, Dendron's epoch milliseconds, Obsidian's and Logseq's usual keys); a title that is a
date. A heading that is a date (``## 2024-11-05``, ``## 5 ноября 2024``, ``## Tuesday, November 5,
2024``) dates the passages under it. A note with none of these is dated by its file's modification
time at search time — and says so: that date is when the file was last written (a copy, a sync, a
checkout all change it), not when what it describes happened.

Numeric dates are read by pattern (they are unambiguous in these places: year first, or day first
with dots as written in Russian); dates in words, in Russian and English, by ``dateparser``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: frontmatter keys that date a note, best first (``date`` outranks a date in the file name)
FIRST_KEYS = ("date",)
OTHER_KEYS = (
    "day",
    "journal-date",
    "created",
    "created_at",
    "createdat",
    "creation date",
    "creation_date",
    "date created",
    "date-created",
    "published",
    "updated",
    "updated_at",
    "modified",
    "last_modified",
    "last-modified",
    "lastmod",
    "date modified",
    "date-modified",
)
YEARS = range(1900, 2201)

_YMD = re.compile(r"(?<![\d])(\d{4})[-_./](\d{1,2})[-_./](\d{1,2})(?![\d])")
_DMY = re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})(?![\d])")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?![\d])")
_YEAR = re.compile(r"(?<!\d)(1[9]\d\d|2[01]\d\d)(?!\d)")
_HEADING_ISO = re.compile(r"^\W*(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_HEADING_DMY = re.compile(r"^\W*(\d{1,2})\.(\d{1,2})\.(\d{4})(?!\d)")


def _day(y: str | int, m: str | int, d: str | int) -> dt.date | None:
    try:
        day = dt.date(int(y), int(m), int(d))
    except ValueError:
        return None
    return day if day.year in YEARS else None


def from_path(rel: str) -> str | None:
    """The ISO date in a note's file name or folders (``journal.2024.11.05.md``, ``2024/11/05.md``),
    or None. The file name wins over its folders."""
    parts = rel.split("/")
    stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
    for rx in (_YMD, _DMY):
        m = rx.search(stem)
        if m:
            y, mo, d = m.groups() if rx is _YMD else m.groups()[::-1]
            day = _day(y, mo, d)
            if day is not None:
                return day.isoformat()
    m = _COMPACT.match(stem)
    if m and (day := _day(*m.groups())) is not None:
        return day.isoformat()
    if len(parts) >= 3:  # 2024/11/05.md, 2024/11/05/notes.md
        for i in range(len(parts) - 1, 1, -1):
            tail = [p.rsplit(".", 1)[0] for p in parts[i - 2 : i + 1]]
            if all(t.isdigit() for t in tail) and len(tail[0]) == 4:
                day = _day(*tail)
                if day is not None:
                    return day.isoformat()
    return None


def _from_value(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 10**11 else value  # Dendron: epoch milliseconds
        try:
            day = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
        return day.isoformat() if day.year in YEARS else None
    if isinstance(value, (list, tuple)):
        return next((d for d in map(_from_value, value) if d), None)
    return from_text(str(value))


def from_frontmatter(meta: Mapping[str, Any], keys: Iterable[str]) -> tuple[str, str] | None:
    """(ISO date, "frontmatter KEY") of the first of ``keys`` (case-insensitive) that holds a
    date."""
    lowered = {str(k).strip().lower(): v for k, v in meta.items()}
    for key in keys:
        day = _from_value(lowered.get(key))
        if day:
            return day, f"frontmatter {key}"
    return None


def from_text(text: str) -> str | None:
    """A whole date written as text — ``2024-11-05``, ``05.11.2024``, ``5 ноября 2024``, ``1:56 pm
    on 8 May, 2023`` — as an ISO date; None unless day, month and year are all there."""
    text = text.strip()
    if not text or len(text) > 80 or not _YEAR.search(text):
        return None
    m = _YMD.search(text)
    if m and (day := _day(*m.groups())) is not None:
        return day.isoformat()
    m = _DMY.search(text)
    if m and (day := _day(*m.groups()[::-1])) is not None:
        return day.isoformat()
    return _words(text)


@functools.lru_cache(maxsize=8192)
def _words(text: str) -> str | None:
    """A date in words (Russian or English), by dateparser; cached (headings and keys repeat)."""
    try:
        import dateparser
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    got = dateparser.parse(
        text,
        languages=["en", "ru"],
        settings={
            "REQUIRE_PARTS": ["day", "month", "year"],
            "DATE_ORDER": "DMY",
            "PREFER_DATES_FROM": "past",
            "RETURN_AS_TIMEZONE_AWARE": False,
        },
    )
    if got is None or got.year not in YEARS:
        return None
    return got.date().isoformat()


def from_heading(title: str) -> str | None:
    """The date a heading stands for, when the heading is a date (``2024-11-05``, ``2024-11-05 —
    standup``, ``5 ноября 2024``, ``Tuesday, November 5, 2024``); None for other headings."""
    m = _HEADING_ISO.match(title) or _HEADING_DMY.match(title)
    if m:
        y, mo, d = m.groups() if m.re is _HEADING_ISO else m.groups()[::-1]
        day = _day(y, mo, d)
        return day.isoformat() if day else None
    if not _YEAR.search(title) or len(title) > 60:
        return None
    return _words(title)


def note_date(meta: Mapping[str, Any], rel: str, title: str = "") -> tuple[str, str] | None:
    """(ISO date, where it came from) for a whole note, or None (then its mtime dates it)."""
    got = from_frontmatter(meta, FIRST_KEYS)
    if got:
        return got
    day = from_path(rel)
    if day:
        return day, "file name"
    got = from_frontmatter(meta, OTHER_KEYS)
    if got:
        return got
    day = from_heading(title) if title else None
    return (day, "title") if day else None


def passage_date(
    heading_path: str, note: tuple[str, str] | None, sep: str
) -> tuple[str, str] | None:
    """(ISO date, source) of a passage: the deepest heading of its path that is a date (the first
    element, the note's title, counts only through ``note``), else its note's date."""
    for title in reversed(heading_path.split(sep)[1:]):
        day = from_heading(title)
        if day:
            return day, "heading"
    return note
