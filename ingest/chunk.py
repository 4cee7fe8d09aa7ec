"""Structure-aware chunking sized by the embedder's own tokenizer.

Markdown is split into sections by headings; every chunk carries its heading path
(``Note › Setup › Linux``) and its line range in the file. Inside a section, blocks
(paragraphs, lists, fenced code, tables) are packed greedily up to the token limit; code blocks and
tables stay whole when they fit, and only oversized blocks are split (prose by sentences with
llama-index's `SentenceSplitter`, code and tables by lines). No chunk exceeds the model's maximum
sequence length, heading line included.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

CHUNKER_VERSION = "md-blocks-4"  # 4: passages carry their date (re-chunked, not re-embedded)
SEP = " › "

Counter = Callable[[Sequence[str]], list[int]]


@dataclass
class Chunk:
    position: int
    heading: str
    text: str
    start_line: int
    end_line: int
    embed_heading: str = ""
    hash: str = ""

    @property
    def embed_text(self) -> str:
        """What gets embedded: the heading path (without a file-name title), then the passage.

        Nothing here depends on the file's path, so a renamed note keeps its vectors."""
        return f"{self.embed_heading}\n\n{self.text}" if self.embed_heading else self.text


@dataclass
class _Block:
    kind: str  # para | code | table | heading
    lines: list[str]
    start: int  # 0-based line index within the text
    level: int = 0
    title: str = ""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def end(self) -> int:
        return self.start + len(self.lines) - 1


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE_OPEN = re.compile(r"^\s*(```+|~~~+)")


def parse_blocks(text: str, markdown: bool = True) -> list[_Block]:
    lines = text.split("\n")
    blocks: list[_Block] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if markdown:
            m = _FENCE_OPEN.match(line)
            if m:
                fence = m.group(1)
                j = i + 1
                while j < n and not lines[j].strip().startswith(fence[:3]):
                    j += 1
                j = min(j, n - 1)
                blocks.append(_Block("code", lines[i : j + 1], i))
                i = j + 1
                continue
            h = _HEADING.match(line)
            if h:
                blocks.append(
                    _Block("heading", [line], i, level=len(h.group(1)), title=h.group(2).strip())
                )
                i += 1
                continue
            if line.lstrip().startswith("|"):
                j = i
                while j + 1 < n and lines[j + 1].lstrip().startswith("|"):
                    j += 1
                blocks.append(_Block("table", lines[i : j + 1], i))
                i = j + 1
                continue
        j = i
        while j + 1 < n and lines[j + 1].strip():
            nxt = lines[j + 1]
            if markdown and (
                _HEADING.match(nxt) or _FENCE_OPEN.match(nxt) or nxt.lstrip().startswith("|")
            ):
                break
            j += 1
        blocks.append(_Block("para", lines[i : j + 1], i))
        i = j + 1
    return blocks


class Chunker:
    """Chunks documents for one embedder. ``count`` is the embedder's token counter."""

    def __init__(
        self, count: Counter, max_tokens: int, target_tokens: int = 384, overlap: int = 32
    ) -> None:
        self.count = count
        self.limit = max(16, min(target_tokens, max_tokens))
        self.overlap = min(overlap, self.limit // 4)
        self.version = f"{CHUNKER_VERSION}/{self.limit}/{self.overlap}"

    def chunk(
        self,
        text: str,
        title: str,
        first_line: int = 1,
        markdown: bool = True,
        title_in_embed: bool = True,
    ) -> list[Chunk]:
        """Chunk a document body. ``title_in_embed=False`` when the title is only the file name."""
        blocks = parse_blocks(text, markdown)
        path: list[tuple[int, str]] = []  # (level, title)
        sections: list[tuple[str, str, list[_Block]]] = []
        current: list[_Block] = []
        embed_title = title if title_in_embed else ""
        heading, embed_heading = title, embed_title

        def flush() -> None:
            if current:
                sections.append((heading, embed_heading, list(current)))
                current.clear()

        for b in blocks:
            if b.kind == "heading":
                flush()
                while path and path[-1][0] >= b.level:
                    path.pop()
                path.append((b.level, b.title))
                names = [t for _, t in path]
                if names and names[0] == title:
                    names = names[1:]
                heading = SEP.join([t for t in (title, *names) if t])
                embed_heading = SEP.join([t for t in (embed_title, *names) if t])
            else:
                current.append(b)
        flush()

        heads = sorted({eh for _, eh, _ in sections})
        head_cost = dict(
            zip(heads, self.count([h + "\n\n" if h else "" for h in heads]), strict=True)
        )
        all_blocks = [b for *_, bs in sections for b in bs]
        costs = dict(
            zip((id(b) for b in all_blocks), self.count([b.text for b in all_blocks]), strict=True)
        )

        chunks: list[Chunk] = []
        for head, ehead, bs in sections:
            budget = self.limit - head_cost[ehead]
            pieces: list[tuple[str, int, int, int]] = []  # text, start, end, tokens
            for b in bs:
                cost = costs[id(b)]
                if cost <= budget:
                    pieces.append((b.text, b.start, b.end, cost))
                else:
                    pieces.extend(self._split(b, budget))
            for text, start, end in self._pack(pieces, budget):
                chunks.append(
                    Chunk(len(chunks), head, text, start + first_line, end + first_line, ehead)
                )
        for c in chunks:
            c.hash = hashlib.sha256(c.embed_text.encode("utf-8")).hexdigest()[:32]
        return chunks

    def _pack(
        self, pieces: list[tuple[str, int, int, int]], budget: int
    ) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        buf: list[tuple[str, int, int, int]] = []
        used = 0
        for p in pieces:
            sep = 1 if buf else 0  # the blank line between blocks costs about one token
            if buf and used + sep + p[3] > budget:
                out.append(("\n\n".join(t for t, *_ in buf), buf[0][1], buf[-1][2]))
                buf, used, sep = [], 0, 0
            buf.append(p)
            used += sep + p[3]
        if buf:
            out.append(("\n\n".join(t for t, *_ in buf), buf[0][1], buf[-1][2]))
        return out

    def _split(self, b: _Block, budget: int) -> list[tuple[str, int, int, int]]:
        if b.kind in ("code", "table"):
            return self._split_lines(b, budget)
        return self._split_prose(b, budget)

    def _split_lines(self, b: _Block, budget: int) -> list[tuple[str, int, int, int]]:
        costs = self.count(b.lines)
        out: list[tuple[str, int, int, int]] = []
        buf: list[str] = []
        start = b.start
        used = 0
        for i, (line, c) in enumerate(zip(b.lines, costs, strict=True)):
            if c + 1 > budget:  # a single monster line: split it like prose
                if buf:
                    out.append(("\n".join(buf), start, b.start + i - 1, used))
                    buf, used = [], 0
                out.extend(self._split_prose(_Block("para", [line], b.start + i), budget))
                start = b.start + i + 1
                continue
            if buf and used + c + 1 > budget:
                out.append(("\n".join(buf), start, b.start + i - 1, used))
                buf, used, start = [], 0, b.start + i
            buf.append(line)
            used += c + 1
        if buf:
            out.append(("\n".join(buf), start, b.end, used))
        return out

    def _split_prose(self, b: _Block, budget: int) -> list[tuple[str, int, int, int]]:
        """Pack whole sentences into pieces of at most ``budget`` tokens; the last sentence of a
        piece is repeated at the start of the next when it fits the overlap. Only a sentence longer
        than the budget is cut (by llama-index's `SentenceSplitter`, then by tokens)."""
        text = b.text
        offsets = _line_starts(text)
        spans = sentences(text)
        costs = self.count([text[s:e] for s, e in spans])
        out: list[tuple[str, int, int, int]] = []
        cur: list[int] = []  # indexes into spans
        used = 0

        def emit() -> None:
            s, e = spans[cur[0]][0], spans[cur[-1]][1]
            piece = text[s:e]
            out.append(
                (piece, b.start + _line_of(offsets, s), b.start + _line_of(offsets, e - 1), used)
            )

        for i, cost in enumerate(costs):
            if cost > budget:
                if cur:
                    emit()
                    cur, used = [], 0
                s, e = spans[i]
                for piece, _, _, n in self._split_long_sentence(text[s:e], budget):
                    line = b.start + _line_of(offsets, s)
                    out.append((piece, line, b.start + _line_of(offsets, e - 1), n))
                continue
            if cur and used + 1 + cost > budget:
                emit()
                last = cur[-1]
                cur, used = ([last], costs[last]) if costs[last] <= self.overlap else ([], 0)
            used += (1 if cur else 0) + cost
            cur.append(i)
        if cur:
            emit()
        return [(t, s, e, self.count([t])[0]) for t, s, e, _ in out]

    def _split_long_sentence(self, sentence: str, budget: int) -> list[tuple[str, int, int, int]]:
        from llama_index.core.node_parser import SentenceSplitter

        def tokens(text: str) -> list[str]:
            return ["x"] * self.count([text])[0]

        size = max(8, budget - 4)
        splitter = SentenceSplitter(
            chunk_size=size, chunk_overlap=min(self.overlap, size // 4), tokenizer=tokens
        )
        out: list[tuple[str, int, int, int]] = []
        for part in splitter.split_text(sentence):
            if not part.strip():
                continue
            n = self.count([part])[0]
            out.extend(self._hard_split(part, 0, budget) if n > budget else [(part, 0, 0, n)])
        return out

    def _hard_split(self, text: str, start: int, budget: int) -> list[tuple[str, int, int, int]]:
        """Split text with no usable break points into pieces of at most ``budget`` tokens; loses
        nothing."""
        out: list[tuple[str, int, int, int]] = []
        rest = text
        while rest.strip():
            if self.count([rest])[0] <= budget:
                take = len(rest)
            else:
                lo, hi = 1, len(rest)
                while lo < hi:  # largest prefix that fits
                    mid = (lo + hi + 1) // 2
                    if self.count([rest[:mid]])[0] <= budget:
                        lo = mid
                    else:
                        hi = mid - 1
                take = lo
                space = rest.rfind(" ", 0, take)
                if space > take // 2:
                    take = space + 1
            piece = rest[:take].strip()
            if piece:
                out.append((piece, start, start, self.count([piece])[0]))
            rest = rest[take:]
        return out


_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"»”')\]]*\s+")


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence; whitespace between sentences belongs to neither."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        if text[pos : m.start()].strip():
            spans.append((pos, m.start() + len(m.group(0).rstrip())))
        pos = m.end()
    if text[pos:].strip():
        spans.append((pos, len(text.rstrip())))
    return spans


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    return starts


def _line_of(starts: list[int], offset: int) -> int:
    import bisect

    return max(0, bisect.bisect_right(starts, offset) - 1)
