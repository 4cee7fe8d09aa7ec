"""Read one file into text + metadata. Markdown (frontmatter, tags, wikilinks), text, PDF, HTML.

Decoding is strict UTF-8 (BOM handled), then charset detection for legacy encodings such as
cp1251/KOI8-R. There is no silent latin-1 fallback: undecodable files are skipped with a reason.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class LoadError(Exception):
    """The file can't be read as a note; ``str(exc)`` is the reason recorded in the manifest."""


@dataclass
class Document:
    text: str  # body (frontmatter removed); Markdown-ish for md/html
    kind: str  # markdown | text | pdf | html
    title: str
    first_line: int = 1  # file line number of text's first line
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    date: str | None = None  # ISO date from frontmatter, if any
    encoding: str = "utf-8"
    page_lines: list[int] = field(default_factory=list)  # pdf: text line where each page starts

    def page_at(self, line: int) -> int | None:
        """1-based PDF page holding a text line (None for non-PDF)."""
        if not self.page_lines:
            return None
        page = 1
        for i, start in enumerate(self.page_lines, 1):
            if start <= line:
                page = i
        return page


def load(path: Path, data: bytes | None = None) -> Document:
    suffix = path.suffix.lower()
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LoadError(f"unreadable: {exc.strerror or exc}") from None
    if suffix == ".pdf":
        return _load_pdf(data, path)
    text, encoding = decode(data)
    if suffix in (".html", ".htm"):
        doc = _load_html(text, path)
    elif suffix in (".md", ".markdown"):
        doc = _load_markdown(text, path)
    else:
        doc = Document(text=text, kind="text", title=path.stem)
    doc.encoding = encoding
    return doc


# ---------------------------------------------------------------- decoding

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def decode(data: bytes) -> tuple[str, str]:
    """Bytes → (text, encoding). Raises LoadError for binaries and undetectable encodings."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError:
                raise LoadError(f"invalid {enc} despite its byte-order mark") from None
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=None).best()
    if best is None or best.encoding is None:
        raise LoadError("not UTF-8 and no legacy encoding fits; convert the file to UTF-8")
    if best.chaos > 0.2:
        raise LoadError(f"not UTF-8; best guess {best.encoding} looks garbled; convert the file to UTF-8")
    return str(best), best.encoding


# ---------------------------------------------------------------- markdown

_FM = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_WIKILINK = re.compile(r"(!?)\[\[([^\]|#^]*)(?:[#^][^\]|]*)?(?:\|([^\]]*))?\]\]")
_INLINE_TAG = re.compile(r"(?<![\w/#&])#([^\W\d][\w/-]*)", re.UNICODE)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _load_markdown(text: str, path: Path) -> Document:
    meta: dict[str, Any] = {}
    first_line = 1
    m = _FM.match(text)
    if m:
        try:
            loaded = yaml.safe_load(m.group(1))
            meta = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            meta = {}  # broken frontmatter: keep the note, treat the block as data-less
        first_line = text.count("\n", 0, m.end()) + 1
        text = text[m.end() :]
    links: list[str] = []

    def _link(mm: re.Match[str]) -> str:
        target, alias = mm.group(2).strip(), mm.group(3)
        if target:
            links.append(target)
        return (alias or target).strip()

    body = _WIKILINK.sub(_link, text)
    prose = _FENCE.sub("", body)
    tags = _as_list(meta.get("tags")) + _as_list(meta.get("tag"))
    tags += [t for t in _INLINE_TAG.findall(prose) if t not in tags]
    title = str(meta.get("title") or "").strip()
    if not title:
        h1 = _H1.search(prose)
        title = h1.group(1).strip() if h1 else path.stem
    return Document(
        text=body,
        kind="markdown",
        title=title,
        first_line=first_line,
        tags=_dedupe(t.lstrip("#") for t in tags),
        aliases=_as_list(meta.get("aliases")) + _as_list(meta.get("alias")),
        links=_dedupe(links),
        date=_date(meta),
    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"[,\s]+", value) if v]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _dedupe(items) -> list[str]:
    out: list[str] = []
    for i in items:
        if i and i not in out:
            out.append(i)
    return out


def _date(meta: dict[str, Any]) -> str | None:
    for key in ("date", "created", "updated", "modified"):
        v = meta.get(key)
        if v is None or v == "":
            continue
        if isinstance(v, dt.datetime):
            return v.date().isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            seconds = v / 1000 if v > 10**11 else v  # Dendron stores epoch milliseconds
            try:
                return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).date().isoformat()
            except (OverflowError, OSError, ValueError):
                continue
        m = re.match(r"(\d{4}-\d{2}-\d{2})", str(v))
        if m:
            return m.group(1)
    return None


# ---------------------------------------------------------------- html

_HTML_DROP = ("script", "style", "noscript", "template", "svg", "head", "nav")


def _load_html(text: str, path: Path) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(_HTML_DROP):
        tag.decompose()
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    for pre in soup.find_all("pre"):
        pre.replace_with(f"\n\n```\n{pre.get_text()}\n```\n\n")
    for block in soup.find_all(["p", "li", "tr", "div", "br", "table", "section", "article"]):
        block.insert_before("\n")
        block.insert_after("\n")
    raw = soup.get_text()
    lines = [ln.strip() for ln in raw.splitlines()]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
    if not title:
        h1 = _H1.search(body)
        title = h1.group(1) if h1 else path.stem
    return Document(text=body, kind="html", title=title)


# ---------------------------------------------------------------- pdf


def _load_pdf(data: bytes, path: Path) -> Document:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise LoadError("encrypted PDF (needs a password)")
            except Exception as exc:
                raise LoadError("encrypted PDF (needs a password)") from exc
        pages = [(p.extract_text() or "").strip() for p in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PdfReadError, Exception) as exc:  # pypdf raises many types for broken files
        raise LoadError(f"broken PDF: {type(exc).__name__}: {str(exc)[:120]}") from None
    if not any(pages):
        raise LoadError("PDF has no extractable text (scanned? run OCR first)")
    text_parts: list[str] = []
    page_lines: list[int] = []
    line = 1
    for page in pages:
        page_lines.append(line)
        chunk = page + "\n\n"
        text_parts.append(chunk)
        line += chunk.count("\n")
    return Document(
        text="".join(text_parts), kind="pdf", title=str(meta_title).strip() or path.stem, page_lines=page_lines
    )
