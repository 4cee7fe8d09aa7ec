from __future__ import annotations

from pathlib import Path

import pytest

from ingest.load import LoadError, decode, load
from tests.support.files import write
from tests.support.pdfgen import make_pdf

RU = "Съешь же ещё этих мягких французских булок, да выпей чаю. Заметки о домашнем сервере."


def test_markdown_frontmatter_tags_aliases_dates_wikilinks(tmp_path: Path) -> None:
    p = write(
        tmp_path / "n.md",
        "---\ntitle: My Note\ntags: [a, b]\naliases: [Alias]\ncreated: 1610000000000\n---\n"
        "# Heading\n\nSee [[other note|the other]] and [[plain]] "
        "#inline-tag.\n\n```\n#not-a-tag\n```\n",
    )
    doc = load(p)
    assert doc.title == "My Note"
    assert doc.tags == ["a", "b", "inline-tag"]
    assert doc.aliases == ["Alias"]
    assert doc.date == "2021-01-07"  # epoch milliseconds (Dendron)
    assert "the other" in doc.text and "plain" in doc.text and "[[" not in doc.text
    assert "title:" not in doc.text
    assert doc.first_line == 7  # body starts after the frontmatter
    assert doc.links == ["other note", "plain"]


def test_dendron_and_obsidian_wikilink_orders(tmp_path: Path) -> None:
    """Dendron puts the label first ([[label|note.name]]), Obsidian second ([[note|label]]); both
    read as the label."""
    p = write(
        tmp_path / "d.md",
        "Use [[tags|dendron.topic.tags]], see [[Schema Templates|dendron://site/dendron.topic."
        "templates.schema-template]] and [[children links|dendron.topic.links#children-links]]; "
        "set "
        "[[dendron.logLevel|dendron://site/dendron.ref.config#loglevel]]; Obsidian "
        "[[Folder/Note|my label]].\n",
    )
    doc = load(p)
    assert doc.text == (
        "Use tags, see Schema Templates and children links; set dendron.logLevel; Obsidian my "
        "label.\n"
    )
    assert doc.links == [
        "dendron.topic.tags",
        "dendron.topic.templates.schema-template",
        "dendron.topic.links",
        "dendron.ref.config",
        "Folder/Note",
    ]


def test_markdown_title_falls_back_to_h1_then_stem(tmp_path: Path) -> None:
    assert load(write(tmp_path / "x.md", "# From H1\n\ntext\n")).title == "From H1"
    assert load(write(tmp_path / "stem-name.md", "just text\n")).title == "stem-name"


def test_broken_frontmatter_keeps_note(tmp_path: Path) -> None:
    doc = load(write(tmp_path / "b.md", "---\ntitle: [unclosed\n---\nbody text\n"))
    assert "body text" in doc.text


def test_utf8_bom_and_cyrillic(tmp_path: Path) -> None:
    p = tmp_path / "bom.md"
    p.write_bytes(b"\xef\xbb\xbf" + f"# Заголовок\n\n{RU}\n".encode())
    doc = load(p)
    assert doc.title == "Заголовок"
    assert RU in doc.text


@pytest.mark.parametrize("encoding", ["cp1251", "koi8-r"])
def test_legacy_cyrillic_encodings_are_detected_not_garbled(tmp_path: Path, encoding: str) -> None:
    text = (RU + "\n") * 3
    p = tmp_path / "legacy.txt"
    p.write_bytes(text.encode(encoding))
    doc = load(p)
    assert doc.text == text
    assert doc.encoding != "latin-1"


def test_utf16_with_bom(tmp_path: Path) -> None:
    p = tmp_path / "u16.txt"
    p.write_bytes("привет, 世界".encode("utf-16"))
    assert load(p).text == "привет, 世界"


def test_binary_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "bin.md"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(LoadError, match="binary"):
        load(p)


def test_undecodable_bytes_are_rejected_not_latin1(tmp_path: Path) -> None:
    with pytest.raises(LoadError):
        decode(bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 50 + b"\xff\xfe\xfd" * 40)


def test_html_visible_text_and_headings(tmp_path: Path) -> None:
    p = write(
        tmp_path / "p.html",
        "<html><head><title>T</title><script>var x=1</script><style>p{}</style></head>"
        "<body><nav>menu</nav><h1>Big</h1><p>Visible <b>text</b> "
        "here.</p><h2>Sub</h2><p>Более</p></body></html>",
    )
    doc = load(p)
    assert doc.title == "T"
    assert "# Big" in doc.text and "## Sub" in doc.text
    assert "Visible text here." in doc.text and "Более" in doc.text
    assert "var x" not in doc.text and "p{}" not in doc.text and "menu" not in doc.text


def test_pdf_pages_kept(tmp_path: Path) -> None:
    p = make_pdf(tmp_path / "doc.pdf", ["First page about kittens", "Second page about puppies"])
    doc = load(p)
    assert doc.kind == "pdf"
    assert len(doc.page_lines) == 2
    lines = doc.text.split("\n")
    second = next(i for i, ln in enumerate(lines, 1) if "puppies" in ln)
    assert doc.page_at(second) == 2
    assert doc.page_at(1) == 1


def test_broken_pdf(tmp_path: Path) -> None:
    p = tmp_path / "broken.pdf"
    p.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(LoadError, match="PDF"):
        load(p)


def test_invalid_utf8_is_not_decoded_as_cp1252(tmp_path: Path) -> None:
    """A UTF-8 note with one damaged byte used to be read as cp1252 (mojibake, no reason
    recorded)."""
    body = "# Заметка\n\nCafé, naïve — Привет, мир. " * 4
    p = tmp_path / "damaged.md"
    p.write_bytes(body.encode() + b"\xff tail\n")
    doc = load(p)
    assert "Привет, мир" in doc.text and "Ã" not in doc.text and "Ð" not in doc.text
    assert doc.text.count("\ufffd") == 1
    assert doc.warning is not None and "replacement characters" in doc.warning


def test_cp1252_mojibake_is_not_plausible() -> None:
    from ingest.load import plausible

    assert not plausible("CafÃ© naÃ¯ve â€” ÐŸÑ€Ð¸Ð²ÐµÑ‚")
    assert plausible("Café naïve façade") and plausible("Привет, мир")


def test_ambiguous_legacy_text_is_never_a_silent_guess(tmp_path: Path) -> None:
    """cp1252 French is also valid cp1257 (Baltic): when readings disagree, kb either gets it
    exactly right or decodes with replacement and says so — never a plausible-looking wrong text
    with no reason."""
    text = "Crème brûlée à la française, naïve façade, déjà vu.\n" * 5
    p = tmp_path / "fr.txt"
    p.write_bytes(text.encode("cp1252"))
    doc = load(p)
    assert doc.text == text or (doc.warning and "replacement" in doc.warning)


def test_mixed_encodings_decode_line_by_line(tmp_path: Path) -> None:
    """Found by the stateful sync test: a cp1251 note appended to in UTF-8 was read wholly as
    cp1251."""
    legacy = ("Съешь же ещё этих мягких французских булок, да выпей чаю.\n" * 3).encode("cp1251")
    p = tmp_path / "mixed.md"
    p.write_bytes(legacy + "Дописано позже в UTF-8: яблоко и река.\n".encode())
    doc = load(p)
    assert "яблоко и река" in doc.text and "французских булок" in doc.text and "Р" not in doc.text
