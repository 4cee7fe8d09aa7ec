"""`kb eval --answers`: what the model answers with each context strategy, scored against the gold
answers.

Strategies, all run on the same questions in one run:
- a task mode (``auto``, ``code``, ``dialog``, ``think``): kb's focused context and that mode's
  generation settings;
- ``naive``: the top 10 chunks by vector similarity, untrimmed;
- ``max``: as many chunks (best by vector similarity first) as fit the server's context length minus
  the prompt and the answer — the "everything in" configuration;
- any of them with ``+check`` (``auto+check``): the served model's evidence check runs first
  (kb.answers.check). ``naive`` and ``max`` answer with the generation settings of the mode ``auto``
  picks for the question, so the context is the only thing that differs from ``auto``.

Each answer is appended to a results file as soon as it exists, under the key of the request that
produced it: the prompt sent (question, notes, system prompt), the generation settings, the
evidence-check switch, the model and its context length. Running the command again — after an
interruption, or after changing a focus setting or kb's code — asks the model only for the requests
that are new; everything else is read back. (A focus change that alters only `auto`'s contexts
re-asks only `auto`: `max`, the costly one, is reused.)
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kb.errors import KbError, LLMError, LLMTimeoutError, LLMUnavailableError, ModelNotServedError
from kb.eval.retrieval import indexed, percentile
from kb.eval.scoring import best, citation_precision, contains, golds, paired
from kb.eval.strategy import CHECK, MAX, NAIVE
from kb.eval.strategy import parse as parse_strategies

Tick = Callable[[int, int, int], None]  # (done, total, asked): asked excludes answers read back


def question_ids(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every question an id (its own, else its line number) so results can be matched on
    resume."""
    return [{**q, "id": str(q.get("id") or f"#{i}")} for i, q in enumerate(questions, 1)]


def question_hash(q: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps([q["question"], q.get("answer")], ensure_ascii=False).encode()
    ).hexdigest()[:16]


def fingerprint(corpus: Path, settings: Any, llm: Any) -> tuple[str, dict]:
    """What makes a results file one run's: the corpus, the embedding model and the LLM. Focus
    settings are not part of it (each answer is keyed by its request, see `request_key`), nor are
    the questions: an answer is reused for the same question (text and gold answer) whatever subset
    or sample asks it again."""
    config = {
        "corpus": str(corpus.resolve()),
        "llm_base_url": getattr(llm, "base_url", ""),
        "llm_model": getattr(llm, "model", ""),
        "embed_model": settings.embed_model,
    }
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16], config


GENERATION = (
    "thinking",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
)


def request_key(ctx: Any, mset: Any, check: bool, llm: Any) -> str:
    """Everything that decides what the model is asked: the messages built from the context (system
    prompt, notes, question), the mode's generation settings, the evidence check (and its prompt),
    the model and its context length. Two strategies or two runs that would send the same request
    share one answer."""
    from kb.answers.check import CHECK_SYSTEM
    from kb.focus.prompt import messages

    key = {
        "messages": messages(ctx),
        "generation": {f: getattr(mset, f) for f in GENERATION},
        "check": CHECK_SYSTEM if check else None,
        "model": getattr(llm, "model", ""),
        "base_url": getattr(llm, "base_url", ""),
        "max_model_len": getattr(llm, "max_model_len", None),
    }
    return hashlib.sha256(json.dumps(key, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[
        :24
    ]


class Results:
    """The results file of one run (JSON lines, 0600: it quotes your notes): a header naming the
    run, then one line per answer asked, keyed by its request. A line torn by a kill is dropped on
    reopening."""

    def __init__(self, path: Path, run: str, config: dict[str, Any]) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}  # request key -> answer
        self._lock = _lock(path)
        good = 0
        if path.is_file() and path.stat().st_size:
            raw = path.read_bytes()
            lines = raw.split(b"\n")
            try:
                header = json.loads(lines[0])
            except json.JSONDecodeError:
                header = {}
            if header.get("run") != run:
                os.close(self._lock)
                raise KbError(
                    f"{path} holds the results of another run (another corpus, model or settings)",
                    "pass --results a new file, or delete that one to start over",
                )
            good = len(lines[0]) + 1
            for line in lines[1:]:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break  # the torn tail of an interrupted write
                self.rows[row["key"]] = row
                good += len(line) + 1
            good = min(good, len(raw))
        try:  # (the folder exists: taking the lock made it)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.ftruncate(fd, good)
            self.file = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:
            os.close(self._lock)
            raise KbError(
                f"cannot write {path}: {exc.strerror}", "pass --results a path in a writable folder"
            ) from None
        if not good:
            self._write(
                {"run": run, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": config}
            )

    def _write(self, obj: dict[str, Any]) -> None:
        self.file.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def add(self, row: dict[str, Any]) -> None:
        self._write(row)
        self.rows[row["key"]] = row

    def find(self, key: str, qhash: str) -> dict[str, Any] | None:
        """The answer to this request for this question, unless it failed on the server (then it is
        asked again)."""
        row = self.rows.get(key)
        return (
            row if row is not None and row.get("qhash") == qhash and not row.get("error") else None
        )

    def close(self) -> None:
        self.file.close()
        os.close(self._lock)


def _lock(path: Path) -> int:
    """One writer per results file (a second `kb eval` on it would interleave lines)."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise KbError(
            f"cannot write beside {path}: {exc.strerror}",
            "pass --results a path in a writable folder",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise KbError(
            f"another `kb eval --answers` is writing {path}",
            "wait for it to finish, or pass --results another file",
        ) from None
    return fd


def evaluate_answers(
    questions: list[dict[str, Any]],
    corpus: Path,
    strategies: list[str],
    results_dir: Path,
    *,
    results: Path | None = None,
    llm: Any = None,
    progress: Callable[[str], None] | None = None,
    tick: Tick | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Answer every question with every strategy and score it; returns the per-strategy summary."""
    from kb.answers.answer import llm_from_settings
    from kb.focus.context import ContextBuilder
    from kb.settings import load_settings

    say = progress or (lambda m: None)
    strategies = parse_strategies(strategies, answers=True)
    questions = question_ids(questions)
    resolved = load_settings(**settings)
    if llm is None:
        llm = llm_from_settings(resolved)
    if hasattr(llm, "check_model"):
        # fails fast (with the remedy) when no server answers; learns max_model_len
        llm.check_model()
    run, config = fingerprint(corpus, resolved, llm)
    path = results or results_dir / f"answers-{run}.jsonl"
    log = Results(path, run, config)
    pairs = [(q, s) for q in questions for s in strategies]
    total = len(pairs)
    if log.rows:
        say(
            f"resuming {path}: {len(log.rows)} answers saved; each request already asked is read "
            "back"
        )
    current: dict[tuple[str, str], dict[str, Any]] = {}
    asked = 0
    try:
        with indexed(corpus, say, settings) as base:
            builder = ContextBuilder(base)
            builder.retriever().background()
            qvecs = dict(
                zip(
                    (q["id"] for q in questions),
                    base.embedder().embed_queries([q["question"] for q in questions]),
                    strict=True,
                )
            )
            if tick:
                tick(0, total, 0)
            for done, (q, strategy) in enumerate(pairs, 1):
                t0 = time.perf_counter()
                ctx, mset = _context(builder, llm, q, strategy, qvecs[q["id"]])
                key = request_key(ctx, mset, strategy.endswith(CHECK), llm)
                row = log.find(key, question_hash(q))
                if row is None:
                    row = {"key": key, **_answer(builder, llm, q, strategy, ctx, mset, t0)}
                    log.add(row)
                    asked += 1
                current[(q["id"], strategy)] = {**row, "qid": q["id"], "strategy": strategy}
                if tick:
                    tick(done, total, asked)
            if asked < total:
                say(f"{total - asked} of {total} answers read back from {path}, {asked} asked")
            summary = summarise(current, questions, strategies)
    except KbError as exc:
        exc.remedy = (
            f"{exc.remedy}; " if exc.remedy else ""
        ) + f"{len(log.rows)} answers are saved in {path}: run the same command again to continue"
        raise
    finally:
        log.close()
    return {
        "corpus": str(corpus),
        "questions": len(questions),
        "model": getattr(llm, "model", ""),
        "max_model_len": getattr(llm, "max_model_len", None),
        "results_file": str(path),
        "strategies": summary,
        "answers": [
            {"qid": qid, "strategy": s, "key": r["key"]} for (qid, s), r in current.items()
        ],
    }


def _context(builder, llm, q: dict[str, Any], strategy: str, qvec) -> tuple[Any, Any]:
    """The context a strategy gives the model for a question, and the mode settings it answers
    with."""
    from kb.answers.answer import DEFAULT_CONTEXT_LEN
    from kb.eval.retrieval import question_now
    from kb.focus.budget import Context
    from kb.focus.prompt import messages

    name = strategy.removesuffix(CHECK)
    modes = builder.index.settings.modes
    if name not in (NAIVE, MAX):
        ctx = builder.build(q["question"], name, qvec=qvec, now=question_now(q))
        return ctx, modes.get(ctx.mode)
    choice, qvec = builder.route(q["question"], "auto", qvec)
    mset = modes.get(choice.mode)
    if name == NAIVE:
        return builder.naive(q["question"], k=10, qvec=qvec), mset
    limit = llm.max_model_len or DEFAULT_CONTEXT_LEN
    empty = Context(q["question"], MAX, "", 0)  # the prompt without notes
    overhead = builder.counter.chat_tokens(messages(empty), thinking=mset.thinking) + 64
    return builder.maximal(
        q["question"], max(0, limit - overhead - min(mset.max_output_tokens, 1024)), qvec
    ), mset


def _answer(builder, llm, q: dict[str, Any], strategy: str, ctx, mset, t0: float) -> dict[str, Any]:
    from kb.answers.answer import respond

    row: dict[str, Any] = {
        "qid": q["id"],
        "qhash": question_hash(q),
        "strategy": strategy,
        "lang": q.get("lang"),
        "category": q.get("category"),
        "answerable": q.get("answer") is not None,
        "gold": golds(q.get("answer")),
    }
    try:
        ans = respond(
            ctx, llm, builder.counter, mset, evidence_check=strategy.endswith(CHECK), started=t0
        )
    except (LLMUnavailableError, LLMTimeoutError, ModelNotServedError):
        raise  # the server is gone: stop (the run resumes later)
    except LLMError as exc:  # this question failed on the server: record it, go on
        return _failed(row, exc.message, ctx.tokens, t0)
    if ans.cut:  # what came is not an answer: a failure (asked again next run), with its text
        return {**_failed(row, ans.cut, ctx.tokens, t0), "answer": ans.text[:2000]}
    by_n = {p.n: p.span.path for p in ans.context.passages}
    cited = [by_n[c.n] for c in ans.citations if c.n in by_n]
    check = ans.check or {}
    check_usage = check.get("usage") or {}
    f1 = em = None
    if row["answerable"]:
        f1, em = (0.0, 0.0) if ans.abstained else best(ans.text, row["gold"])
    return {
        **row,
        "mode": ans.mode,
        "answer": ans.text[:2000],
        "abstained": ans.abstained,
        "abstain_reason": ans.abstain_reason,
        "kb_abstained": ans.by_kb,
        "f1": f1,
        "em": em,
        "cited": cited,
        "citation_precision": citation_precision(
            cited, [e["path"] for e in q.get("evidence") or []]
        ),
        "context_tokens": ans.context.tokens,
        "passages": len(ans.context.passages),
        "prompt_tokens": ans.usage.prompt_tokens + check_usage.get("prompt_tokens", 0),
        "completion_tokens": ans.usage.completion_tokens + check_usage.get("completion_tokens", 0),
        "check_tokens": check_usage.get("prompt_tokens", 0)
        + check_usage.get("completion_tokens", 0),
        "check_s": check.get("seconds"),
        "usage_source": ans.usage.source,
        "ttft_s": ans.timings.get("ttft_s"),
        "total_s": ans.timings.get("total_s"),
        "error": None,
    }


def _failed(row: dict[str, Any], why: str, context_tokens: int, t0: float) -> dict[str, Any]:
    return {
        **row,
        "error": why,
        "abstained": False,
        "f1": 0.0 if row["answerable"] else None,
        "em": 0.0 if row["answerable"] else None,
        "context_tokens": context_tokens,
        "prompt_tokens": 0,
        "total_s": round(time.perf_counter() - t0, 4),
    }


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def summarise(
    rows: dict[tuple[str, str], dict[str, Any]],
    questions: list[dict[str, Any]],
    strategies: list[str],
) -> dict[str, dict[str, Any]]:
    """``rows``: this run's answer to every (question id, strategy). Per strategy: F1 / EM on
    answerable questions, abstention on unanswerable ones (and false abstention on answerable ones),
    overall F1 (SQuAD 2.0 style: an unanswerable question scores 1 when the answer abstains),
    citation precision, tokens and times."""
    out: dict[str, dict[str, Any]] = {}
    overall_by: dict[str, list[float]] = {}
    f1_by: dict[str, list[float]] = {}
    for s in strategies:
        got = [rows[(q["id"], s)] for q in questions]
        ans = [r for r in got if r["answerable"]]
        una = [r for r in got if not r["answerable"]]
        overall = overall_by[s] = [
            r["f1"] if r["answerable"] else float(r["abstained"]) for r in got
        ]
        f1_by[s] = [r["f1"] for r in ans]
        hits = [
            0.0 if r["abstained"] or r.get("error") else contains(r.get("answer") or "", r["gold"])
            for r in ans
        ]
        ttft = [r["ttft_s"] for r in got if r.get("ttft_s") is not None]
        total = [r["total_s"] for r in got if r.get("total_s") is not None]
        precisions = [
            r["citation_precision"] for r in ans if r.get("citation_precision") is not None
        ]
        out[s] = {
            "questions": len(got),
            "answerable": len(ans),
            "unanswerable": len(una),
            "f1": _mean([r["f1"] for r in ans]),
            "em": _mean([r["em"] for r in ans]),
            "contains": _mean(hits),
            "abstain_unanswerable": _mean([float(r["abstained"]) for r in una]),
            "false_abstain": _mean([float(r["abstained"]) for r in ans]),
            "f1_overall": _mean(overall),
            "kb_abstained": _mean([float(r.get("kb_abstained", False)) for r in got]),
            "citation_precision": _mean(precisions),
            "cited_share": _mean([float(bool(r.get("cited"))) for r in ans]),
            "prompt_tokens_mean": _mean([r.get("prompt_tokens", 0) for r in got]),
            "context_tokens_mean": _mean([r.get("context_tokens", 0) for r in got]),
            "check_tokens_mean": _mean([r.get("check_tokens", 0) for r in got]),
            "ttft_s_p50": round(percentile(ttft, 0.5), 3) if ttft else None,
            "total_s_p50": round(percentile(total, 0.5), 3) if total else None,
            "total_s_mean": _mean(total),
            "errors": sum(1 for r in got if r.get("error")),
            "first_error": next((r["error"] for r in got if r.get("error")), None),
            "usage_sources": sorted({r.get("usage_source") for r in got if r.get("usage_source")}),
        }
    # per question: does the first strategy beat this one, beyond chance (overall F1)? And does
    # each strategy beat `max`, "everything in" — on answerable F1 and on overall F1?
    base = strategies[0]
    for s in strategies[1:]:
        out[s]["paired"] = {"against": base, **paired(overall_by[base], overall_by[s])}
    if MAX in strategies:
        for s in strategies:
            if s != MAX:
                out[s]["vs_max"] = {
                    "f1": paired(f1_by[s], f1_by[MAX]),
                    "f1_overall": paired(overall_by[s], overall_by[MAX]),
                }
    return out
