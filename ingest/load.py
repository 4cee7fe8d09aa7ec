"""Read one file into text + metadata. Markdown (frontmatter, tags, wikilinks), text, PDF, HTML.

Decoding is strict UTF-8 (BOM handled). A file that is mostly UTF-8 with a few damaged bytes is
decoded with replacement characters, and that is recorded. A legacy encoding (cp1251, KOI8-R,
cp1252, ...) is accepted only when detection is confident and the decoded text is plausible for it
(letters, not the "Ã©"/"Ð¿" symbol soup of misread UTF-8). Anything else is decoded with replacement
and recorded too: never a silent guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ingest.dates import note_date


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
    date: str | None = None  # ISO date of the whole note (`ingest.dates.note_date`), if it has one
    date_source: str | None = None  # where that date came from
    frontmatter: dict[str, Any] = field(default_factory=dict, repr=False)
    encoding: str = "utf-8"
    page_lines: list[int] = field(default_factory=list)  # pdf: text line where each page starts
    warning: str | None = (
        None  # recorded in the file's status (e.g. decoded with replacement characters)
    )

    def page_at(self, line: int) -> int | None:
        """1-based PDF page holding a text line (None for non-PDF)."""
        if not self.page_lines:
            return None
        page = 1
        for i, start in enumerate(self.page_lines, 1):
            if start <= line:
                page = i
        return page


def load(path: Path, data: bytes | None = None, rel: str | None = None) -> Document:
    """Read a note. ``rel``: its path inside its notes folder (a date in a folder name counts,
    `ingest.dates.from_path`); default: the file name alone."""
    doc = _load(path, data)
    dated = note_date(doc.frontmatter, rel or path.name, doc.title)
    if dated is not None:
        doc.date, doc.date_source = dated
    return doc


def _load(path: Path, data: bytes | None) -> Document:
    suffix = path.suffix.lower()
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LoadError(f"unreadable: {exc.strerror or exc}") from None
    if suffix == ".pdf":
        return _load_pdf(data, path)
    text, encoding = decode(data)
    warning = None
    if encoding.endswith(REPLACED):
        warning = f"decoded with replacement characters ({text.count(chr(0xFFFD))} invalid bytes)"
    if suffix in (".html", ".htm"):
        doc = _load_html(text, path)
    elif suffix in (".md", ".markdown"):
        doc = _load_markdown(text, path)
    else:
        doc = Document(text=text, kind="text", title=path.stem)
    doc.encoding = encoding
    doc.warning = warning
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
    # Line by line: a file may mix encodings (a cp1251 note appended to in UTF-8, a damaged byte or
    # two).
    lines = data.splitlines(keepends=True)
    out: list[str | None] = []
    legacy: list[int] = []
    replaced = False
    for i, line in enumerate(lines):
        try:
            out.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        lenient = line.decode("utf-8", errors="replace")
        bad = lenient.count("\ufffd")
        if (
            sum(1 for ch in lenient if ord(ch) > 0x7F) - bad >= bad
        ):  # mostly real UTF-8: a damaged line
            out.append(lenient)
            replaced = True
        else:
            out.append(None)
            legacy.append(i)
    enc = None
    if legacy:
        enc = _legacy_encoding(b"".join(lines[i] for i in legacy))
        for i in legacy:
            if enc is not None:
                out[i] = lines[i].decode(enc)
            else:
                out[i] = lines[i].decode("utf-8", errors="replace")
                replaced = True
        if enc is not None and not replaced and len(legacy) == len(lines):
            return "".join(s for s in out if s is not None), enc
    text = "".join(s for s in out if s is not None)
    if replaced:
        bad = text.count("\ufffd")
        readable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
        if readable - bad < 0.7 * len(text):  # mostly broken bytes: not a text file kb can read
            raise LoadError("not UTF-8 and no legacy encoding fits; convert the file to UTF-8")
        return text, "utf-8" + REPLACED
    return (
        text,
        f"utf-8+{enc}",
    )  # UTF-8 lines and lines in one legacy encoding, each decoded as written


def _legacy_encoding(data: bytes) -> str | None:
    """A legacy encoding for bytes that are not UTF-8, only when detection is confident and
    plausible."""
    from charset_normalizer import from_bytes

    results = list(from_bytes(data, cp_isolation=None))
    best = results[0] if results else None
    if best is None or best.encoding is None or best.chaos > 0.1:
        return None
    text = str(best)
    rivals = [
        r
        for r in results[1:6]
        if r.chaos <= best.chaos + 0.15 and str(r) != text and plausible(str(r), strict=True)
    ]
    if rivals or not plausible(text):  # not confident: a near-equal reading says something else
        return None
    return best.encoding


REPLACED = "+replace"
_MOJIBAKE = re.compile(r"[ÃÂÐÑâ][\x80-\xbf€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ¡-¿]")


def plausible(text: str, strict: bool = False) -> bool:
    """True when the non-ASCII characters of a legacy-decoded text look like words: mostly letters
    of one script, and none of the byte-pair patterns that UTF-8 read as cp1252/latin-1 produces."""
    rest = [c for c in text if ord(c) > 0x7F and not c.isspace()]
    if not rest:
        return True
    if _MOJIBAKE.search(text):
        return False
    letters = sum(1 for c in rest if c.isalpha())
    return letters / len(rest) >= (0.999 if strict else 0.9)


# ---------------------------------------------------------------- markdown

_FM = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_WIKILINK = re.compile(r"(!?)\[\[([^\]|#^]*)(?:[#^][^\]|]*)?(?:\|([^\]]*))?\]\]")
_INLINE_TAG = re.compile(r"(?<![\w/#&])#([^\W\d][\w/-]*)", re.UNICODE)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
# Dendron writes [[alias|note.name]] (the target second, a dotted hierarchy name, maybe with a vault
# prefix and an anchor); Obsidian writes [[note|alias]]. A second part shaped like a Dendron target
# means the first is the label.
_DENDRON_TARGET = re.compile(r"^(?:dendron://[^/\s]+/)?[^\s/|#]+(?:\.[^\s/|#]+)+(?:#\S*)?$")


def render_wikilinks(text: str) -> tuple[str, list[str]]:
    """Wikilinks become their label (``[[a|b]]`` → the alias, ``[[note]]`` → note); returns (text,
    link targets). Both the Obsidian (``[[note|alias]]``) and the Dendron (``[[alias|note.name]]``)
    orders are understood."""
    links: list[str] = []

    def _link(mm: re.Match[str]) -> str:
        first, second = mm.group(2).strip(), (mm.group(3) or "").strip()
        if (
            first
            and _DENDRON_TARGET.match(second)
            and (second.startswith("dendron://") or not _DENDRON_TARGET.match(first))
        ):
            target = second.split("#", 1)[0].rsplit("/", 1)[-1]
            links.append(target)
            return first
        if first:
            links.append(first)
        return second or first

    return _WIKILINK.sub(_link, text), links


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
    body, links = render_wikilinks(text)
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
        frontmatter=meta,
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
        text="".join(text_parts),
        kind="pdf",
        title=str(meta_title).strip() or path.stem,
        page_lines=page_lines,
    )
