from __future__ import annotations

from ingest.chunk import SEP, Chunker
from kb.index.embed import HashEmbedder

MD = """# Note

Intro paragraph.

## Setup

### Linux

Install it:

```bash
sudo apt-get install foo
echo done
```

| a | b |
|---|---|
| 1 | 2 |

## Usage

Run it.
"""


def make(limit: int = 64, overlap: int = 8) -> Chunker:
    e = HashEmbedder(max_seq_length=limit)
    return Chunker(e.count_tokens, e.max_text_tokens, target_tokens=limit, overlap=overlap)


def test_heading_paths_and_lines() -> None:
    chunks = make().chunk(MD, "Note", first_line=1)
    heads = [c.heading for c in chunks]
    assert heads == ["Note", f"Note{SEP}Setup{SEP}Linux", f"Note{SEP}Usage"]
    linux = chunks[1]
    assert linux.start_line == 9 and linux.end_line == 18
    lines = MD.split("\n")
    assert lines[linux.start_line - 1] == "Install it:"
    assert "```bash" in linux.text and "echo done\n```" in linux.text  # code block whole
    assert "| 1 | 2 |" in linux.text  # table whole


def test_first_line_offset_applied() -> None:
    chunks = make().chunk("para one\n\npara two\n", "T", first_line=10, markdown=False)
    assert chunks[0].start_line == 10 and chunks[0].end_line == 12


def test_no_chunk_exceeds_limit_and_nothing_lost() -> None:
    words = [f"w{i}" for i in range(2000)]
    text = "# T\n\n" + ". ".join(" ".join(words[i : i + 7]) for i in range(0, 2000, 7)) + ".\n\n"
    text += "```\n" + "\n".join(f"line_{i} = {i}" for i in range(300)) + "\n```\n"
    text += "x" * 3000 + "\n"  # one giant token-less-break word
    c = make(limit=50, overlap=5)
    chunks = c.chunk(text, "T")
    e = HashEmbedder(max_seq_length=50)
    assert all(n <= 50 for n in e.count_tokens([ch.embed_text for ch in chunks]))
    joined = " ".join(ch.text for ch in chunks)
    for w in ("w0", "w999", "w1999", "line_0", "line_299"):
        assert w in joined
    assert sum(ch.text.count("x") for ch in chunks) >= 3000


def test_filename_title_not_in_embedded_text() -> None:
    a = make().chunk("same text\n", "old-name", title_in_embed=False)[0]
    b = make().chunk("same text\n", "new-name", title_in_embed=False)[0]
    assert a.hash == b.hash
    assert a.heading == "old-name"


def test_unicode_text() -> None:
    text = "# Заметка\n\nСегодня 東京 crème brûlée.\n"
    [c] = make().chunk(text, "Заметка")
    assert "東京" in c.text and c.heading == "Заметка"
