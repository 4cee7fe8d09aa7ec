"""The daemon's requests: reads (search, context) answered on the caller's thread by a
`KnowledgeBase` beside the writer; writes (ingest, forget, verify) queued as jobs for the one
writer; status from the daemon's snapshot. A token holder is still validated like a CLI user."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.errors import KbError, PathNotFoundError
from kb.index.core import folder_arg
from kb.knowledge import Filters

if TYPE_CHECKING:
    from kb.knowledge import KnowledgeBase

Emit = Callable[[dict[str, Any]], None]


@dataclass
class Job:
    """Work for the writer thread, and how its caller learns the outcome."""

    kind: str  # ingest | forget | verify | reconcile
    args: dict[str, Any] = field(default_factory=dict)
    emit: Emit | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    queued: float = field(default_factory=time.monotonic)


class Requests:
    """Turns one request into a call on the reader or a job for the writer.

    ``reader`` gives the current reader (it is replaced after a model switch), ``lock`` serialises
    reads with that replacement, ``submit`` queues a job, ``snapshot`` is the daemon's status and
    ``stopping`` says that the daemon is shutting down with nothing in progress."""

    def __init__(
        self,
        reader: Callable[[], KnowledgeBase],
        lock: threading.Lock,
        submit: Callable[[Job], None],
        snapshot: Callable[[], dict[str, Any]],
        stopping: Callable[[], bool],
    ) -> None:
        self.reader = reader
        self.lock = lock
        self.submit = submit
        self.snapshot = snapshot
        self.stopping = stopping

    def dispatch(self, op: str, args: dict[str, Any], emit: Emit) -> Any:
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "status":
            return self.snapshot()
        if op == "search":
            with self.lock:
                hits = self.reader().search(
                    args["query"], args.get("k"), Filters.from_dict(args.get("filters")), _day(args)
                )
            return [h.as_dict() for h in hits]
        if op == "context":
            with self.lock:
                ctx = self.reader().context(
                    args["question"],
                    args.get("mode", "auto"),
                    Filters.from_dict(args.get("filters")),
                )
            return ctx.as_dict()
        if op in ("ingest", "forget", "verify"):
            job = Job(op, validated(op, args), emit)
            self.submit(job)
            while not job.done.wait(0.5):
                if self.stopping() and not job.done.is_set():
                    raise KbError("kb watch is stopping", "run the command again")
            if job.error is not None:
                raise job.error
            return job.result
        raise KbError(
            f"unknown request {op!r}", "use the same kb version for the CLI and `kb watch`"
        )


def _day(args: dict[str, Any]) -> dt.date | None:
    """The client's "now" for a question's dates (its KB_NOW or --now), if it sent one."""
    value = args.get("now")
    try:
        return dt.date.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        raise KbError(f"not a date: {value!r}", "send now as YYYY-MM-DD") from None


def validated(op: str, args: dict[str, Any]) -> dict[str, Any]:
    """A token holder is still checked like a CLI user: absolute, existing folders only."""
    if op == "ingest":
        paths = args.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise KbError("ingest needs a list of folder paths", 'send {"paths": ["/abs/folder"]}')
        return {"paths": [str(folder_arg(p, absolute=True)) for p in paths]}
    if op == "forget":
        path = args.get("path")
        if not isinstance(path, str) or not Path(path).is_absolute():
            raise PathNotFoundError(
                f"{path!r} is not an absolute path", "give the absolute path to forget"
            )
        return {"path": path}
    return args
