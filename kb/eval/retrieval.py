"""`kb eval`: evidence recall and context size per mode on a question set (format:
shared/eval/README.md).

For every question and mode, the context that *would be sent* is built; an evidence quote counts as
recalled when it lies wholly inside a kept passage of its note (whitespace collapsed). `naive` is
the in-run baseline: the top 10 chunks by plain vector similarity, untrimmed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kb.errors import KbError, PathNotFoundError
from kb.eval.strategy import NAIVE
from kb.eval.strategy import parse as parse_strategies

_WS = re.compile(r"\s+")


def collapse(text: str) -> str:
    return _WS.sub(" ", text).strip()


def load_questions(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise PathNotFoundError(f"no such question file: {path}", "pass a .jsonl file of questions")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
            q["question"], q.setdefault("evidence", [])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise KbError(
                f"{path}:{n} is not a question object", 'each line needs at least {"question": ...}'
            ) from None
        out.append(q)
    return out


def question_now(q: dict[str, Any]) -> dt.date | None:
    """The day a question is asked on (its ``now``: what "last week" in it means), None for
    today."""
    value = q.get("now")
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise KbError(
            f"question {q.get('id') or q['question']!r} has now={value!r}, not a date",
            "write it as YYYY-MM-DD",
        ) from None


def sample(questions: list[dict[str, Any]], n: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """A seeded random sample of ``n`` questions, in their file order (all when ``n`` is None)."""
    if n is None:
        return list(questions)
    import random

    picked = random.Random(seed).sample(range(len(questions)), min(n, len(questions)))
    return [questions[i] for i in sorted(picked)]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 for no values), as every kb benchmark reports it."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def as_indexed(quote: str) -> str:
    """A quote as it reads in kb's passages: wikilinks shown as their labels (as the loader renders
    them)."""
    from ingest.load import render_wikilinks

    return collapse(render_wikilinks(quote)[0])


def kept_text(ctx) -> dict[str, str]:
    """Per note path, the whitespace-collapsed text of its kept passages (where evidence quotes are
    looked for)."""
    by_path: dict[str, str] = {}
    for p in ctx.passages:
        by_path[p.span.path] = by_path.get(p.span.path, "") + "\n" + collapse(p.text)
    return by_path


def recalled(ctx, evidence: list[dict[str, str]]) -> int:
    by_path = kept_text(ctx)
    return sum(1 for ev in evidence if as_indexed(ev["quote"]) in by_path.get(ev["path"], ""))


def evaluate(
    questions: list[dict[str, Any]],
    corpus: Path,
    modes: list[str],
    progress: Callable[[str], None] | None = None,
    misses: Path | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Measure each mode; with ``misses``, write every missed question there (JSON lines, see
    `explain_miss`)."""
    from kb.focus.context import ContextBuilder

    say = progress or (lambda m: None)
    modes = parse_strategies(modes, answers=False)
    with indexed(corpus, say, settings) as base:
        builder = ContextBuilder(base)
        emb = base.embedder()
        t0 = time.perf_counter()
        qvecs = list(emb.embed_queries([q["question"] for q in questions]))
        embed_ms = (time.perf_counter() - t0) * 1000 / max(1, len(questions))
        builder.retriever().background()
        result: dict[str, Any] = {
            "corpus": str(corpus),
            "questions": len(questions),
            "chunks": base.manifest.chunk_count(),
            "model": base.model_id,
            "query_embed_ms_mean": round(embed_ms, 2),
            "counter": builder.counter.name,
            "modes": {},
        }
        missed: list[dict[str, Any]] = []
        for mode in modes:
            say(f"mode {mode}")
            result["modes"][mode] = _run_mode(builder, questions, qvecs, mode, missed)
        if misses is not None:
            _write_misses(misses, missed, base.manifest)
            result["misses_file"], result["misses"] = str(misses), len(missed)
        return result


@contextmanager
def indexed(corpus: Path, say: Callable[[str], None], settings: dict[str, Any]) -> Iterator[Any]:
    """An `Index` holding ``corpus`` (synced now): in KB_HOME when one is set, else in a temporary
    home."""
    from kb.index.core import Index

    if not corpus.is_dir():
        raise PathNotFoundError(
            f"no such corpus folder: {corpus}", "pass the folder the question paths refer to"
        )
    tmp = None
    if "home" not in settings and not os.environ.get("KB_HOME"):
        tmp = tempfile.TemporaryDirectory(prefix="kb-eval-")
        settings = {**settings, "home": Path(tmp.name)}
    try:
        with Index(**settings) as base:
            say(f"indexing {corpus} into {base.home}")
            report = base.ingest([corpus])
            say(
                f"index ready: {base.manifest.chunk_count()} chunks ({report.embedded} embedded in "
                "this run)"
            )
            yield base
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run_mode(builder, questions, qvecs, mode: str, missed: list[dict[str, Any]]) -> dict[str, Any]:
    hit = total = 0
    tokens: list[int] = []
    tokens_answerable: list[int] = []
    small_unanswerable: list[bool] = []
    latency: list[float] = []
    passages: list[int] = []
    chosen: dict[str, int] = {}
    by_cat: dict[
        str, list[int]
    ] = {}  # category → [evidence hit, evidence total, questions, tokens]
    for q, vec in zip(questions, qvecs, strict=True):
        t0 = time.perf_counter()
        if mode == NAIVE:
            ctx = builder.naive(q["question"], k=10, qvec=vec)
        else:
            ctx = builder.build(q["question"], mode, qvec=vec, now=question_now(q))
        latency.append((time.perf_counter() - t0) * 1000)
        chosen[ctx.mode] = chosen.get(ctx.mode, 0) + 1
        tokens.append(ctx.tokens)
        passages.append(len(ctx.passages))
        ev = q.get("evidence") or []
        cat = by_cat.setdefault(str(q.get("category") or "-"), [0, 0, 0, 0])
        cat[2] += 1
        cat[3] += ctx.tokens
        if ev:
            total += len(ev)
            got = recalled(ctx, ev)
            if got < len(ev):
                missed.append({"q": q, "ctx": ctx, "asked": mode})
            hit += got
            cat[0] += got
            cat[1] += len(ev)
            tokens_answerable.append(ctx.tokens)
        else:
            small_unanswerable.append(ctx.tokens <= 300)
            if ctx.tokens > 300:
                missed.append({"q": q, "ctx": ctx, "asked": mode})
    return {
        "evidence_recall": round(hit / total, 4) if total else None,
        "context_tokens_mean": round(statistics.fmean(tokens), 1) if tokens else 0.0,
        "context_tokens_p90": percentile(tokens, 0.9),
        "context_tokens_mean_answerable": round(statistics.fmean(tokens_answerable), 1)
        if tokens_answerable
        else None,
        "unanswerable_small_share": (
            round(sum(small_unanswerable) / len(small_unanswerable), 4)
            if small_unanswerable
            else None
        ),
        "passages_mean": round(statistics.fmean(passages), 2) if passages else 0.0,
        "latency_ms_p50": round(percentile(latency, 0.5), 2),
        "latency_ms_p95": round(percentile(latency, 0.95), 2),
        "modes_chosen": chosen,
        "by_category": {
            c: {
                "questions": n,
                "evidence_recall": round(h / t, 4) if t else None,
                "context_tokens_mean": round(tok / n, 1),
            }
            for c, (h, t, n, tok) in sorted(by_cat.items())
        },
    }


def _write_misses(path: Path, missed: list[dict[str, Any]], manifest) -> None:
    lines = [
        json.dumps(
            {"asked": m["asked"], **explain_miss(m["q"], m["ctx"], manifest)}, ensure_ascii=False
        )
        for m in missed
    ]
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
        )  # it quotes your notes: private
        with open(fd, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
    except OSError as exc:
        raise KbError(
            f"cannot write {path}: {exc.strerror}", "pass --misses a path in a writable folder"
        ) from None


def explain_miss(q: dict[str, Any], ctx, manifest) -> dict[str, Any]:
    """One missed question, readable in a minute: what was kept, and for each evidence quote not in
    the context, the chunk(s) holding it and what happened to them (their drop reason, or "not
    retrieved")."""
    kept = [
        {
            "path": p.span.path,
            "heading": p.span.heading,
            "lines": [p.span.start_line, p.span.end_line],
            "score": round(p.score, 3),
            "tokens": p.tokens,
        }
        for p in ctx.passages
    ]
    by_path = kept_text(ctx)
    evidence = []
    for ev in q.get("evidence") or []:
        quote = as_indexed(ev["quote"])
        if quote in by_path.get(ev["path"], ""):
            continue
        rows = manifest.chunks_at_path(ev["path"])
        holders = [
            (r.span.start_line, r.span.end_line, r.span.heading)
            for r in rows
            if quote in collapse(r.text)
        ]
        if not holders:  # the quote spans two chunks: name those that hold its start
            holders = [
                (r.span.start_line, r.span.end_line, r.span.heading)
                for r in rows
                if quote[:40] in collapse(r.text)
            ]
        fates = []
        for a, b, h in holders:
            reasons = [
                d.reason
                for d in ctx.dropped
                if d.span.path == ev["path"] and d.span.start_line <= b and d.span.end_line >= a
            ]
            fates.append(
                {"heading": h, "lines": [a, b], "fate": reasons[0] if reasons else "not retrieved"}
            )
        evidence.append(
            {
                "path": ev["path"],
                "quote": ev["quote"][:160],
                "note_kept": ev["path"] in by_path,
                "chunks": fates or "quote not found in the index",
            }
        )
    return {
        "id": q.get("id"),
        "mode": ctx.mode,
        "category": q.get("category"),
        "question": q["question"],
        "tokens": ctx.tokens,
        "missing": evidence,
        "kept": kept,
    }
