"""The budgeter: from hybrid candidates to a focused `Context`, recording every decision.

Steps: relevance → adaptive cutoff (an absolute floor, then a gap below the best; zero passages is a
valid result) → merge adjacent chunks of one note → drop near-duplicates → prune sentences unrelated
to the question (never inside code blocks or tables) → pack into the mode's budget, counted with
Qwen3's tokenizer → order. Everything dropped is kept in `Context.dropped` with its reason.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ingest.chunk import sentences
from ingest.span import Span, span_fields
from ingest.stem import terms
from kb.focus.retrieve import Candidate, Retrieval
from kb.focus.tokens import TokenCounter
from kb.settings import ModeSettings

if TYPE_CHECKING:
    from ingest.manifest import ChunkRow

DUPLICATE_JACCARD = 0.85
#: the floor of a best match judged by meaning alone (another language): the default mode floor
MEANING_FLOOR = ModeSettings.model_fields["min_relevance"].default


@dataclass
class Passage:
    """A kept passage: one chunk, or adjacent chunks of one note merged."""

    ids: list[str]
    span: Span
    score: float
    text: str
    tokens: int = 0
    pruned_tokens: int = 0
    n: int = 0
    positions: list[int] = field(default_factory=list, repr=False)

    def header(self) -> str:
        return f"[{self.n}] {self.span.location()}"

    def as_dict(self) -> dict[str, Any]:
        """Flat: the span's fields beside the passage's own (as `kb ask --dry-run --json`
        prints)."""
        d = asdict(self)
        return {**d.pop("span"), **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Passage:
        span, rest = span_fields(d)
        return cls(span=span, **rest)


@dataclass
class Dropped:
    """A candidate left out of the context, and why."""

    span: Span
    score: float
    reason: str
    tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {**d.pop("span"), **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Dropped:
        span, rest = span_fields(d)
        return cls(span=span, **rest)


@dataclass
class Context:
    question: str
    mode: str
    mode_reason: str
    budget: int
    passages: list[Passage] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    tokens: int = 0  # tokens of the notes block as sent
    counter: str = ""
    # the days the question asked about (`kb.focus.when.DateRange.as_dict`, its label included)
    dates: dict[str, str] | None = None
    # why nothing was kept when it is not relevance ("no notes dated last week (…)")
    empty_reason: str = ""

    def notes_block(self) -> str:
        """The notes as they go into the prompt: delimited, numbered, with path, heading and
        lines."""
        return render_notes(self.passages)

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "mode": self.mode,
            "mode_reason": self.mode_reason,
            "budget": self.budget,
            "tokens": self.tokens,
            "counter": self.counter,
            "kept": [p.as_dict() for p in self.passages],
            "dropped": [d.as_dict() for d in self.dropped],
            "dates": self.dates,
            "empty_reason": self.empty_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Context:
        """Inverse of `as_dict` (contexts built by the daemon travel as JSON)."""
        return cls(
            d["question"],
            d["mode"],
            d["mode_reason"],
            d["budget"],
            [Passage.from_dict(p) for p in d["kept"]],
            [Dropped.from_dict(x) for x in d["dropped"]],
            d["tokens"],
            d["counter"],
            d.get("dates"),
            d.get("empty_reason", ""),
        )


_SPECIAL = re.compile(r"<\|([a-z_]+)\|>|<(/?)(think|notes?|tool_call|tool_response)\b", re.I)


def neutralise(text: str) -> str:
    """Notes are data: special-token look-alikes (<|im_end|>, <think>) and our own delimiters are
    defused."""
    return _SPECIAL.sub(
        lambda m: f"<\u200b|{m.group(1)}|>" if m.group(1) else f"<\u200b{m.group(2)}{m.group(3)}",
        text,
    )


def render_notes(passages: list[Passage]) -> str:
    """The notes block: each passage delimited, numbered, with its source and — when the note itself
    gives one — its date (a file's mtime is not a note's date, so it is never sent as one)."""
    if not passages:
        return "<notes>\n(no relevant notes found)\n</notes>"
    parts = []
    for p in passages:
        day = p.span.intrinsic_date
        dated = f' date="{day}"' if day else ""
        source = neutralise(p.span.location())
        parts.append(f'<note id="{p.n}" source="{source}"{dated}>\n{neutralise(p.text)}\n</note>')
    return "<notes>\n" + "\n".join(parts) + "\n</notes>"


NeighbourFn = Callable[[str, str, int], "ChunkRow | None"]


class Budgeter:
    def __init__(self, counter: TokenCounter, neighbour: NeighbourFn | None = None) -> None:
        self.counter = counter
        self.neighbour = neighbour  # (root, path, position) → that chunk, to complete cut sentences

    def build(self, r: Retrieval, mode: ModeSettings, ctx: Context) -> Context:
        cands = r.candidates
        for c in cands:
            c.relevance = r.relevance(c)
        evidence = max(
            (c.relevance for c in cands), default=0.0
        )  # before any preference: is anything relevant?
        for c in cands:
            if mode.code_bonus and c.relevance > 0 and has_code(c.text):
                c.relevance = min(1.0, c.relevance + mode.code_bonus)
        cands = sorted(cands, key=lambda c: c.relevance, reverse=True)
        best = cands[0].relevance if cands else 0.0
        # The floor decides whether anything is relevant at all; once something is, weaker
        # candidates stay while they are within the gap of the best (and above half the floor). With
        # a weak dense side (e.g. a Russian query, English-only embedder) the evidence is thinner:
        # lower the floor rather than declare "nothing relevant" on lexical overlap alone.
        floor = mode.min_relevance * (0.5 + 0.5 * min(1.0, r.dense_weight))
        if cands and r.by_meaning_alone(cands[0]):
            # the best match is in another language: it cannot show the command or API name a
            # stricter mode's floor (code) expects, so that mode's strictness does not apply
            floor = min(floor, MEANING_FLOOR)
        keep_from = max(floor / 2, best - mode.cutoff_gap)
        flat = r.flat(evidence) if evidence >= floor else ""
        kept: list[Candidate] = []
        for c in cands:
            if evidence < floor:
                ctx.dropped.append(
                    _drop(
                        c,
                        f"below cutoff: nothing relevant (best {evidence:.2f} < floor {floor:.2f})",
                    )
                )
            elif flat:
                ctx.dropped.append(_drop(c, f"below cutoff: {flat}"))
            elif c.relevance < keep_from:
                ctx.dropped.append(
                    _drop(
                        c,
                        f"below cutoff (relevance {c.relevance:.2f} < {keep_from:.2f}: "
                        f"best {best:.2f}, gap {mode.cutoff_gap:.2f})",
                    )
                )
            else:
                kept.append(c)
        passages = self._merge(kept)
        if self.neighbour is not None:
            for p in passages:
                self._completesentences(p)
        passages = self._dedupe(passages, ctx)
        costs = self.counter.count_many([p.text for p in passages])
        for p, n in zip(passages, costs, strict=True):
            p.tokens = n
        if mode.prune:
            idf = r.idf
            for p in passages:
                text = prune(p.text, idf, mode.prune_keep, mode.prune_neighbours)
                if text != p.text:
                    n = self.counter.count(text)
                    p.pruned_tokens, p.tokens, p.text = p.tokens - n, n, text
        self._pack(passages, mode, ctx)
        return ctx

    def _merge(self, kept: list[Candidate]) -> list[Passage]:
        """Adjacent chunks of the same note become one passage (in note order)."""
        by_file: dict[tuple[str, str], list[Candidate]] = {}
        for c in kept:
            by_file.setdefault((c.span.root, c.span.path), []).append(c)
        out: list[Passage] = []
        for group in by_file.values():
            group.sort(key=lambda c: c.position)
            run = [group[0]]
            for c in group[1:]:
                if c.position == run[-1].position + 1:
                    run.append(c)
                else:
                    out.append(_passage(run))
                    run = [c]
            out.append(_passage(run))
        out.sort(key=lambda p: p.score, reverse=True)
        return out

    def _completesentences(self, p: Passage) -> None:
        """A chunk cut inside a long sentence gets the rest of that sentence from its neighbour
        chunk."""
        first, last = p.positions[0], p.positions[-1]
        if not _ends_sentence(p.text):
            nxt = self.neighbour(p.span.root, p.span.path, last + 1)
            if nxt is not None and nxt.span.start_line <= p.span.end_line:
                spans = sentences(nxt.text)
                if spans:
                    p.text = join_chunks(p.text, nxt.text[: spans[0][1]], same_paragraph=True)
        prev = self.neighbour(p.span.root, p.span.path, first - 1) if first > 0 else None
        if (
            prev is not None
            and prev.span.end_line >= p.span.start_line
            and not _ends_sentence(prev.text)
        ):
            spans = sentences(prev.text)
            if spans:
                p.text = join_chunks(prev.text[spans[-1][0] :], p.text, same_paragraph=True)

    def _dedupe(self, passages: list[Passage], ctx: Context) -> list[Passage]:
        out: list[tuple[Passage, set[str]]] = []
        for p in passages:
            shingles = set(terms(p.text))
            dup = next(
                (
                    q
                    for q, s in out
                    if shingles and len(shingles & s) / len(shingles | s) >= DUPLICATE_JACCARD
                ),
                None,
            )
            if dup is not None:
                ctx.dropped.append(
                    Dropped(p.span, p.score, f"duplicate of {dup.span.path}:{dup.span.start_line}")
                )
            else:
                out.append((p, shingles))
        return [p for p, _ in out]

    def _pack(self, passages: list[Passage], mode: ModeSettings, ctx: Context) -> None:
        chosen: list[Passage] = []
        for p in diversified(passages):
            trial = render_notes([*chosen, p])
            if len(chosen) >= mode.max_passages:
                ctx.dropped.append(_pdrop(p, f"over the passage limit ({mode.max_passages})"))
            elif self.counter.count(trial) > mode.budget:
                ctx.dropped.append(
                    _pdrop(p, f"over budget ({p.tokens} tokens; budget {mode.budget})")
                )
            else:
                chosen.append(p)
        chosen.sort(key=lambda p: p.score, reverse=True)  # chosen for diversity, shown best first
        if mode.order == "edges" and len(chosen) > 2:
            # strongest at both ends, weakest in the middle (Lost in the Middle)
            chosen = chosen[0::2] + chosen[1::2][::-1]
        elif mode.order == "document":
            chosen.sort(key=lambda p: (p.span.path, p.span.start_line))
        elif mode.order == "date":  # a question over a time range reads the notes as they came
            chosen.sort(key=lambda p: (p.span.date or "", p.span.path, p.span.start_line))
        for i, p in enumerate(chosen, 1):
            p.n = i
            if p.pruned_tokens:
                reason = f"sentences pruned inside kept passage [{i}]"
                ctx.dropped.append(Dropped(p.span, p.score, reason, p.pruned_tokens))
        ctx.passages = chosen
        ctx.tokens = self.counter.count(render_notes(chosen)) if chosen else 0
        ctx.counter = self.counter.name


_CODE = re.compile(
    r"^\s*(?:```|~~~)|^ {0,6}[\w.\-\[\]]+:(?:\s|$)(?!.*[.!?]\s*$)|^\s*[$>] \S|^(?: {4}|\t)\S", re.M
)


def has_code(text: str) -> bool:
    """A fenced or indented code block, YAML-ish ``key: value`` config lines, or a shell prompt
    line."""
    return bool(_CODE.search(text))


def diversified(passages: list[Passage]) -> list[Passage]:
    """Packing order: the best passage of every note first (by score), then second passages, and so
    on — a question that needs two notes gets both before the budget goes to more of the first."""
    seen: dict[tuple[str, str], int] = {}
    ranked = []
    for i, p in enumerate(passages):  # passages arrive best first
        n = seen.get((p.span.root, p.span.path), 0)
        seen[(p.span.root, p.span.path)] = n + 1
        ranked.append((n, i, p))
    return [p for *_, p in sorted(ranked, key=lambda t: (t[0], t[1]))]


def _passage(run: list[Candidate]) -> Passage:
    text = run[0].text
    for prev, c in itertools.pairwise(run):
        text = join_chunks(text, c.text, same_paragraph=c.span.start_line <= prev.span.end_line)
    return Passage(
        [c.id for c in run],
        run[0].span.through(run[-1].span),
        max(c.relevance for c in run),
        text,
        positions=[c.position for c in run],
    )


def _ends_sentence(text: str) -> bool:
    return bool(re.search(r"[.!?…。！？:][\"»”')\]]*\s*$", text)) or text.rstrip().endswith("```")


def join_chunks(a: str, b: str, same_paragraph: bool) -> str:
    """Join consecutive chunks of a note, dropping the overlap the chunker repeated at b's start."""
    max_k = min(len(a), len(b), 2000)
    for k in range(max_k, 8, -1):
        if a.endswith(b[:k]):
            b = b[k:]
            break
    if not b.strip():
        return a
    return a + (" " if same_paragraph else "\n\n") + b.lstrip()


def _drop(c: Candidate, reason: str) -> Dropped:
    return Dropped(c.span, round(c.relevance, 3), reason)


def _pdrop(p: Passage, reason: str) -> Dropped:
    return Dropped(p.span, round(p.score, 3), reason, p.tokens)


# ---------------------------------------------------------------------------- sentence pruning

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
_SENT_END = re.compile(r"(?<=[.!?…])[\"»”')\]]*\s+(?=[\"«“(\[]?[A-ZА-ЯЁ0-9])")
_SPEAKER = re.compile(r"^\s*(?:\*\*[^*\n]{1,40}:\*\*|[A-ZА-ЯЁ][\w .-]{0,30}:)\s")
_LINE_ITEM = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|\*\*[^*]+:\*\*|[A-ZА-ЯЁ][\w .-]{0,30}:\s)")


def units(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, atomic) spans covering the prunable parts of a passage. Code fences and tables
    are single atomic units; list items and chat turns are one unit per line; prose is split into
    sentences."""
    spans: list[tuple[int, int, bool]] = []
    pos = 0
    for m in _FENCE.finditer(text):
        spans += _prose_units(text, pos, m.start())
        spans.append((m.start(), m.end(), True))
        pos = m.end()
    spans += _prose_units(text, pos, len(text))
    return spans


def _prose_units(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    out: list[tuple[int, int, bool]] = []
    offset = start
    block_lines: list[tuple[int, int]] = []
    for line in text[start:end].split("\n"):
        block_lines.append((offset, offset + len(line)))
        offset += len(line) + 1
    i = 0
    while i < len(block_lines):
        s, e = block_lines[i]
        line = text[s:e]
        if not line.strip():
            i += 1
            continue
        if line.lstrip().startswith("|"):  # a table: atomic
            j = i
            while j + 1 < len(block_lines) and text[slice(*block_lines[j + 1])].lstrip().startswith(
                "|"
            ):
                j += 1
            out.append((s, block_lines[j][1], True))
            i = j + 1
            continue
        if _LINE_ITEM.match(line) or line.lstrip().startswith("#"):
            out.append((s, e, False))
            i += 1
            continue
        j = i  # a paragraph: consecutive non-empty, non-item lines, split into sentences
        while j + 1 < len(block_lines):
            nxt = text[slice(*block_lines[j + 1])]
            if not nxt.strip() or _LINE_ITEM.match(nxt) or nxt.lstrip().startswith(("|", "#")):
                break
            j += 1
        ps, pe = s, block_lines[j][1]
        cut = ps
        for m in _SENT_END.finditer(text, ps, pe):
            out.append((cut, m.start(), False))
            cut = m.end()
        out.append((cut, pe, False))
        i = j + 1
    return [(s, e, a) for s, e, a in out if text[s:e].strip()]


def prune(text: str, idf: dict[str, float], keep_share: float, neighbours: int = 1) -> str:
    """Keep the units most related to the query (IDF-weighted term overlap) and their neighbours.
    Kept neighbours are re-joined with their original separators; gaps become ' … '."""
    spans = units(text)
    if len(spans) <= 2 or not idf:
        return text
    total = sum(idf.values()) or 1.0
    scores = []
    for s, e, _atomic in spans:
        have = set(
            terms(_SPEAKER.sub("", text[s:e], count=1))
        )  # a chat turn's label isn't its content
        scores.append(sum(w for t, w in idf.items() if t in have) / total)
    top = max(scores)
    if top <= 0:
        return text  # no lexical anchor (passage kept on meaning alone): don't guess, keep it whole
    keep = {i for i, sc in enumerate(scores) if sc >= keep_share * top}
    keep |= {
        j for i in keep for j in range(i - neighbours, i + neighbours + 1) if 0 <= j < len(spans)
    }
    runs: list[list[int]] = []  # [first, last] unit index of each run of kept units
    for i in sorted(keep):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    pieces = [text[spans[first][0] : spans[last][1]] for first, last in runs]
    lead = "… " if min(keep) > 0 else ""
    tail = " …" if max(keep) < len(spans) - 1 else ""
    return lead + " … ".join(p.strip() for p in pieces) + tail
