"""Hybrid retrieval: dense (Chroma) + lexical (SQLite FTS5 BM25 over stemmed text), fused by
weighted reciprocal rank fusion, with folder / tag / date filters applied on both sides.

Every candidate keeps the evidence the budgeter needs to decide: its cosine and that cosine's
z-score against a background sample of the index (bge-style scores are compressed, so raw cosines
are not comparable across models), its BM25 rank, and the IDF-weighted share of the query's terms it
contains. Fusion knows which side to trust: when the query is mostly in a script the embedder wasn't
trained on (Russian with an English-only model), the dense side's weight drops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ingest.span import Span
from ingest.stem import (
    LATIN_LAST,
    lexical_fields,
    match_expr,
    match_query,
    non_latin_share,
    other_script_terms,
    path_words,
    terms,
)
from kb.settings import RetrievalSettings

if TYPE_CHECKING:
    from ingest.manifest import Manifest
    from kb.index.embed import Embedder
    from kb.index.store import VectorStore
    from kb.settings import Settings

RRF_K = 60
BACKGROUND_SAMPLE = 512
PEAK_RANK = 10  # a flat top: the best vector match against this one
SAME_SCRIPT_MIN = 100  # background passages in the question's script needed to use them alone


@dataclass
class Filters:
    folder: str | None = None  # path prefix relative to a root, e.g. "projects" or "journal/2025"
    tag: str | None = None
    since: str | None = None  # ISO date, inclusive (the passage's date, else its file's mtime day)
    until: str | None = None

    def __bool__(self) -> bool:
        return any((self.folder, self.tag, self.since, self.until))

    @classmethod
    def parse(
        cls,
        folder: str | None = None,
        tag: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Filters:
        """Filters as a person gives them; `UsageError` for a date that is not YYYY-MM-DD or a
        range that ends before it starts."""
        import datetime as dt

        from kb.errors import UsageError

        for name, value in (("--since", since), ("--until", until)):
            if value is not None:
                try:
                    dt.date.fromisoformat(value)
                except ValueError:
                    raise UsageError(
                        f"{name} {value!r} is not a date",
                        f"write it as YYYY-MM-DD, e.g. {name} 2025-11-01",
                    ) from None
        if since and until and until < since:
            raise UsageError(f"--until {until} is before --since {since}", "swap the two dates")
        return cls(folder or None, (tag or "").lstrip("#") or None, since, until)

    def as_dict(self) -> dict[str, str | None]:
        """As the daemon's requests carry it."""
        return {"folder": self.folder, "tag": self.tag, "since": self.since, "until": self.until}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Filters | None:
        return cls(**{k: d.get(k) for k in ("folder", "tag", "since", "until")}) if d else None


@dataclass
class Candidate:
    id: str
    span: Span
    position: int  # the chunk's place in its note
    text: str
    cosine: float | None = None
    z: float | None = None
    dense_rank: int | None = None
    bm25: float | None = None
    lex_rank: int | None = None
    coverage: float = 0.0
    fused: float = 0.0
    relevance: float = 0.0
    reranked: float | None = None
    cross: tuple[float, float] = (0.0, 0.0)  # in another script than the query: `cross_coverage`
    named: float = 0.0  # share of the query's terms in the note's name (its path words)
    notes: list[str] = field(default_factory=list)

    @cached_property
    def script(self) -> float:
        """Share of non-Latin letters in the passage (0 English, about 1 Russian)."""
        return non_latin_share(self.text)

    def other_script_than(self, query_script: float | None) -> bool:
        """Is the passage in another script than a question of this `non_latin_share` (None: no
        per-passage script rule, as with an English-only embedder)?"""
        return query_script is not None and abs(query_script - self.script) > 0.5


@dataclass
class Retrieval:
    query: str
    candidates: list[Candidate]
    query_terms: list[str]
    idf: dict[str, float]
    dense_weight: float
    background: tuple[float, float]  # mean, std of background cosines
    lexical_weight: float = (
        1.0  # 0 when the question's words are not in the notes (another language)
    )
    z_floor: float = 1.0  # dense z-score where evidence starts (RetrievalSettings.dense_z_floor)
    z_span: float = 4.0
    peak: float | None = (
        None  # z of the best vector match minus the 10th's (None: too few matches to tell)
    )
    query_script: float | None = (
        None  # the question's non-Latin letter share (None: no per-passage check)
    )
    flat_peak: float = 0.0  # RetrievalSettings.flat_peak / flat_relevance (0 = no flat-top check)
    flat_relevance: float = 0.0
    name_weight: float = 0.0  # RetrievalSettings.name_weight

    def flat(self, best: float) -> str:
        """Why the best relevance ``best`` is not to be trusted ("" = it is): nothing stands out of
        a flat top. Only where the dense side is fully trusted and no cross-encoder has read the
        passages."""
        if (
            self.peak is None
            or not self.flat_peak
            or self.dense_weight < 1.0
            or best >= self.flat_relevance
            or self.peak >= self.flat_peak
            or (self.candidates and self.candidates[0].reranked is not None)
        ):
            return ""
        return (
            f"nothing stands out: best {best:.2f} < {self.flat_relevance:.2f} and the best vector "
            "match is only "
            f"{self.peak:.2f} z above the {PEAK_RANK}th (< {self.flat_peak:.2f})"
        )

    def by_meaning_alone(self, c: Candidate) -> bool:
        """Is ``c`` judged by meaning alone — asked in another language (no question word occurs in
        the notes), or a passage in another script that could share none of the question's terms?
        Such a passage cannot show the words a strict floor looks for."""
        if c.reranked is not None:
            return False
        if self.lexical_weight == 0:
            return True
        return c.other_script_than(self.query_script) and c.cross[0] == 0

    def relevance(self, c: Candidate) -> float:
        """0..1 evidence that ``c`` answers the query: dense z-score and IDF-weighted term coverage,
        weighted by how far each side can be trusted for this query (a cross-encoder's score, when
        one ran, replaces both)."""
        if c.reranked is not None:
            return 1.0 / (1.0 + math.exp(-c.reranked))
        d = 0.0 if c.z is None else min(1.0, max(0.0, (c.z - self.z_floor) / self.z_span))
        lexical = self.lexical_weight
        coverage = c.coverage
        if c.other_script_than(self.query_script):
            # a passage in another script can share only the question's numbers and the words
            # written in its script (names, commands): they are judged as words are, weighted by
            # their share of the question; a question with none of them leaves the passage to
            # meaning alone
            lexical, coverage = c.cross
        wd = self.dense_weight / (self.dense_weight + lexical)
        # a note named for what is asked ("renamed-delete-note.md" for "shortcut to delete a note")
        # is about it: its name weighs beyond the words it adds to coverage
        return min(1.0, wd * d + (1.0 - wd) * coverage + self.name_weight * c.named)


def writable(term: str, latin: bool) -> bool:
    """Can the query term ``term`` occur in a passage of this script (Latin when ``latin``, else
    Cyrillic and the like)? Numbers occur in any."""
    letters = [ch for ch in term if ch.isalpha()]
    if not letters:
        return True  # numbers
    return all(ord(ch) <= LATIN_LAST for ch in letters) == latin


def cross_coverage(
    idf: dict[str, float], have: set[str], latin: bool, alts: dict[str, str] | None = None
) -> tuple[float, float]:
    """For a passage in another script than the question: the idf share of the question's terms that
    can occur in the passage's script (numbers; names and commands in its alphabet; words whose
    spelling in that script the notes hold, ``alts``), and the idf share of those it holds."""
    alts = alts or {}
    wr = {
        t: w
        for t, w in idf.items()
        if writable(t, latin) or (t in alts and writable(alts[t], latin))
    }
    wsum = sum(wr.values())
    if not wsum:
        return 0.0, 0.0
    return wsum / (sum(idf.values()) or 1.0), sum(w for t, w in wr.items() if t in have) / wsum


def dense_peak(cands: list[Candidate]) -> float | None:
    """How far the best vector match stands out from the 10th (in background z-scores): a question
    the notes answer has a match that stands out; one they don't has a flat top, however on-topic (a
    query-performance predictor in the spirit of NQC/WIG, Shtok et al. 2012)."""
    zs = sorted((c.z for c in cands if c.dense_rank is not None and c.z is not None), reverse=True)
    return zs[0] - zs[PEAK_RANK - 1] if len(zs) >= PEAK_RANK else None


def baseline(
    sims: np.ndarray, scripts: np.ndarray | None, query_script: float | None
) -> tuple[float, float]:
    """Mean and spread of the question's cosines against the background sample, the z-score
    baseline. With a multilingual embedder only background passages in the question's script count
    (when there are enough): a Russian question is closer to every Russian passage than to English
    code, and that closeness is language, not relevance — against a mixed background every Russian
    passage looked like evidence."""
    if scripts is not None and query_script is not None:
        same = np.abs(scripts - query_script) <= 0.5
        if int(same.sum()) >= SAME_SCRIPT_MIN:
            sims = sims[same]
    return float(sims.mean()), float(sims.std()) or 1e-6


def other_script(query_script: float, cands: list[Candidate]) -> bool:
    """Is a question of this `non_latin_share` in another script (Latin vs Cyrillic and the like)
    than the best candidates?"""
    notes = sum(c.script for c in cands) / max(1, len(cands))
    return abs(query_script - notes) > 0.5


class IndexView(Protocol):
    """What focus needs from an index (`kb.index.Index` is one): nothing that writes."""

    settings: Settings
    manifest: Manifest

    def store(self) -> VectorStore: ...

    def embedder(self) -> Embedder: ...


class Retriever:
    """Hybrid retrieval over an index. It asks the index for its manifest and store at each query,
    so an index that reopened its store (another process committed; a model switch) is followed."""

    def __init__(
        self,
        index: IndexView,
        embedder: Embedder,
        english_only: bool,
        reranker: Any = None,
        calibration: RetrievalSettings | None = None,
    ) -> None:
        self.calibration = calibration or RetrievalSettings()
        self.index = index
        self.embedder = embedder
        self.english_only = english_only
        self.reranker = reranker
        self._bg: np.ndarray | None = None
        self._bg_script = np.zeros(0)
        self._bg_count = -1

    @property
    def manifest(self) -> Manifest:
        return self.index.manifest

    @property
    def store(self) -> VectorStore:
        return self.index.store()

    # ------------------------------------------------------------------ calibration
    def background(self) -> np.ndarray:
        """A random sample of stored vectors; per-query cosines against it give the z-score
        baseline."""
        n = self.manifest.chunk_count()
        if self._bg is None or abs(n - self._bg_count) > max(50, self._bg_count // 10):
            # chunk ids are content hashes: the first N in id order are a spread-out sample that is
            # the same on every run (a random() sample made evaluation figures move by about ±0.01
            # between runs)
            ids = self.manifest.first_chunk_ids(BACKGROUND_SAMPLE)
            vecs = self.store.vectors(ids)
            self._bg = (
                np.vstack(list(vecs.values())) if vecs else np.zeros((0, 1), dtype=np.float32)
            )
            rows = self.manifest.chunks_by_id(list(vecs))
            self._bg_script = np.array(
                [non_latin_share(rows[i].text) if i in rows else 0.0 for i in vecs]
            )
            self._bg_count = n
        return self._bg

    def idf(self, qterms: list[str], df: dict[str, int]) -> dict[str, float]:
        n = max(1, self.manifest.chunk_count())
        return {t: math.log(1 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in qterms}

    def _selective(self, expr: str, qterms: list[str], df: dict[str, int]) -> str:
        """The BM25 MATCH of `selective_terms` (the whole query in all but very large indexes)."""
        keep = selective_terms(qterms, df, self.manifest.chunk_count())
        return expr if len(keep) == len(qterms) else match_expr(keep)

    # ------------------------------------------------------------------ search
    def retrieve(
        self,
        query: str,
        k: int = 40,
        filters: Filters | None = None,
        qvec: np.ndarray | None = None,
    ) -> Retrieval:
        filters = filters or Filters()
        cal = self.calibration
        expr, qterms = match_query(query)
        alts = other_script_terms(query) if cal.cross_script_names else {}
        df = self.manifest.doc_freq(list(dict.fromkeys([*qterms, *alts.values()])))
        # a term's other-script spelling counts only where the notes hold it
        alts = {t: a for t, a in alts.items() if t in qterms and df.get(a, 0) > 0}
        idf = self.idf(qterms, df)
        if alts:
            expr = match_expr([*qterms, *alts.values()])
        qscript = non_latin_share(query)
        dense_weight = 1.0
        if self.english_only and qscript > 0.5:
            dense_weight = (
                cal.english_only_dense_weight
            )  # an English-only embedder is a weak judge of Russian
        if qvec is None:
            qvec = self.embedder.embed_query(query)
        dense = (
            self.store.query(qvec, k, where=self._where(filters))
            if self.manifest.chunk_count()
            else []
        )
        lexical = (
            self._lexical(self._selective(expr, [*qterms, *alts.values()], df), k, filters)
            if expr
            else []
        )

        ids = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in lexical]))
        rows = self.manifest.chunks_by_id(ids)
        bg = self.background()
        sims = (
            bg @ qvec if len(bg) and bg.shape[1] == qvec.shape[0] else np.zeros(1, dtype=np.float32)
        )
        mu, sd = baseline(
            sims,
            self._bg_script if len(sims) == len(self._bg_script) else None,
            None if self.english_only else qscript,
        )
        cands: dict[str, Candidate] = {}
        for cid in ids:
            r = rows.get(cid)
            if r is not None:
                cands[cid] = Candidate(cid, r.span, r.position, r.text)
        for rank, (cid, cos) in enumerate(dense, 1):
            if cid in cands:
                c = cands[cid]
                c.cosine, c.dense_rank, c.z = cos, rank, (cos - mu) / sd
                c.fused += dense_weight / (RRF_K + rank)
        for rank, (cid, score) in enumerate(lexical, 1):
            if cid in cands:
                c = cands[cid]
                c.bm25, c.lex_rank = score, rank
                c.fused += 1.0 / (RRF_K + rank)
        if cal.expand_notes:
            self._expand(cands, qvec, mu, sd)
        total_idf = sum(idf.values()) or 1.0
        indexed = (
            self.manifest.stems_by_id(list(cands)) if idf else {}
        )  # stemmed once, at index time
        per_script = (
            None if self.english_only else qscript
        )  # the script rule `Retrieval.relevance` applies
        names: dict[str, set[str]] = {}
        for c in cands.values():
            if cal.name_weight and qterms:
                name = names.get(c.span.path)
                if name is None:
                    name = names[c.span.path] = set(terms(path_words(c.span.path)))
                c.named = sum(1 for t in qterms if t in name) / len(qterms)
            have = indexed.get(c.id)
            if have is None:
                have = set(terms(lexical_fields(c.span.path, c.span.heading, c.text)))
            if alts:  # «тесл» is held by a passage that says "Tesla"
                have = have | {t for t, a in alts.items() if a in have}
            c.coverage = sum(w for t, w in idf.items() if t in have) / total_idf
            if c.other_script_than(per_script):
                c.cross = cross_coverage(idf, have, latin=c.script < 0.5, alts=alts)
        out = sorted(cands.values(), key=lambda c: c.fused, reverse=True)
        if self.reranker is not None and out:
            out = self.reranker.rerank(query, out)
        # With a multilingual dense side, a question asked in another script than the notes (a
        # Russian question over English notes) shares no words with them: term coverage would call
        # every candidate irrelevant, so relevance rests on the dense side alone. In the notes' own
        # script, no shared words is evidence that the notes don't hold the answer ("how do I cook
        # borscht?" over web-development notes).
        lexical_weight = 1.0
        if (
            not self.english_only
            and out
            and max(c.coverage for c in out) < cal.lexical_absent
            and other_script(qscript, out[:10])
        ):
            lexical_weight = 0.0
        return Retrieval(
            query,
            out,
            qterms,
            idf,
            dense_weight,
            (mu, sd),
            lexical_weight,
            cal.dense_z_floor,
            cal.dense_z_span,
            dense_peak(out),
            per_script,
            cal.flat_peak,
            cal.flat_relevance,
            cal.name_weight,
        )

    def _expand(self, cands: dict[str, Candidate], qvec: np.ndarray, mu: float, sd: float) -> None:
        """Add the other chunks of the best notes, each with its own cosine: the chunk that surfaced
        a note is often not the one holding the answer (another section, the code block after the
        prose)."""
        cal = self.calibration
        notes: list[tuple[str, str]] = []
        for c in sorted(cands.values(), key=lambda c: c.fused, reverse=True):
            if (c.span.root, c.span.path) not in notes:
                notes.append((c.span.root, c.span.path))
            if len(notes) == cal.expand_notes:
                break
        rows = []
        for root, path in notes:
            siblings = self.manifest.chunks_of(root, path)
            if len(siblings) <= cal.expand_max_chunks:
                rows += [r for r in siblings if r.id not in cands]
        if not rows:
            return
        vecs = self.store.vectors([r.id for r in rows])
        for r in rows:
            v = vecs.get(r.id)
            if v is None or v.shape != qvec.shape:
                continue
            cos = float(v @ qvec)
            cands[r.id] = Candidate(
                r.id,
                r.span,
                r.position,
                r.text,
                cosine=cos,
                z=(cos - mu) / sd,
                notes=["another chunk of a top note"],
            )

    def _where(self, f: Filters) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if f.folder:
            clauses.append({"dirs": {"$contains": f.folder.strip("/")}})
        if f.tag:
            clauses.append({"tags": {"$contains": f.tag.lstrip("#")}})
        if f.since:
            clauses.append({"date": {"$gte": int(f.since.replace("-", ""))}})
        if f.until:
            clauses.append({"date": {"$lte": int(f.until.replace("-", ""))}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def _lexical(self, expr: str, k: int, f: Filters) -> list[tuple[str, float]]:
        return self.manifest.bm25(expr, k, f.folder, f.tag, f.since, f.until)


LARGE_INDEX_CHUNKS = 50_000
POSTINGS_BUDGET = 40_000


def selective_terms(qterms: list[str], df: dict[str, int], chunks: int) -> list[str]:
    """The query terms BM25 matches on. FTS5 scores every row a MATCH term holds (≈0.75 µs each): in
    a million-chunk index a word in 4 % of the chunks costs 40 ms while it weighs least (idf ≈ 3 vs
    ≈ 7-10 for a rare one). So in an index of at least LARGE_INDEX_CHUNKS, terms are taken rarest
    first while their rows stay within POSTINGS_BUDGET (the rarest present term always). Terms left
    out still count where every candidate is scored: term coverage and idf see the whole query, and
    the dense side is untouched. Smaller indexes (every evaluation set) match the whole query."""
    if chunks < LARGE_INDEX_CHUNKS or len(qterms) < 2:
        return qterms
    keep: list[str] = []
    total = 0
    for t in sorted(qterms, key=lambda t: df.get(t, 0)):
        rows = df.get(t, 0)
        if (
            rows and total and total + rows > POSTINGS_BUDGET
        ):  # `total`: a present term is already kept
            break
        keep.append(t)
        total += rows
    return [t for t in qterms if t in keep]


class CrossEncoderReranker:
    """Optional second stage: a sentence-transformers `CrossEncoder` (default
    BAAI/bge-reranker-v2-m3)."""

    def __init__(
        self, model: str = "BAAI/bge-reranker-v2-m3", device: str = "cpu", top: int = 30
    ) -> None:
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(model, device=device)
        self.top = top

    def scores(self, query: str, texts: list[str]) -> list[float]:
        return [float(s) for s in self.model.predict([(query, t) for t in texts])]

    def rerank(self, query: str, cands: list[Candidate]) -> list[Candidate]:
        return rerank_with(self.scores, query, cands, self.top)


def rerank_with(score_fn: Any, query: str, cands: list[Candidate], top: int) -> list[Candidate]:
    """Re-order the first ``top`` candidates by ``score_fn(query, texts)``; the rest keep their
    order."""
    head, tail = cands[:top], cands[top:]
    scores = score_fn(query, [f"{c.span.heading}\n{c.text}" for c in head])
    for c, s in zip(head, scores, strict=True):
        c.reranked = s
    return sorted(head, key=lambda c: c.reranked or 0.0, reverse=True) + tail
