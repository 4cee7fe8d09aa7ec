"""The daemon's endpoint side: requests from readers and clients (search and context answered on the
caller's thread; ingest, forget and verify queued as jobs for the one writer), the status snapshot,
and the checks a request passes first (a token holder is still validated like a CLI user). Mixed
into `Daemon`."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import KbError, PathNotFoundError
from kb.focus.retrieve import Filters
from kb.focus.search import search
from kb.index.core import folder_arg


@dataclass
class _Job:
    kind: str  # ingest | forget | verify | reconcile
    args: dict[str, Any] = field(default_factory=dict)
    emit: Callable[[dict[str, Any]], None] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    queued: float = field(default_factory=time.monotonic)


class Requests:
    """Mixin for `Daemon` (uses its settings, reader, focus, jobs, changes, stop_event, busy,
    observers...)."""

    def dispatch(
        self, op: str, args: dict[str, Any], emit: Callable[[dict[str, Any]], None]
    ) -> Any:
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "status":
            return self.snapshot()
        if op == "search":
            with self._read_lock:
                self.reader.check_readable()
                k = args.get("k") or self.settings.retrieval.k
                hits = search(self.focus, args["query"], k, _filters(args.get("filters")))
            return [h.as_dict() for h in hits]
        if op == "context":
            with self._read_lock:
                self.reader.check_readable()
                ctx = self.focus.build(
                    args["question"], args.get("mode", "auto"), _filters(args.get("filters"))
                )
            return ctx.as_dict()
        if op in ("ingest", "forget", "verify"):
            job = _Job(op, _validated(op, args), emit)
            self.jobs.put(job)
            self.changes.wake()
            while not job.done.wait(0.5):
                if self.stop_event.is_set() and not job.done.is_set() and self.busy is None:
                    raise KbError("kb watch is stopping", "run the command again")
            if job.error is not None:
                raise job.error
            return job.result
        raise KbError(
            f"unknown request {op!r}", "use the same kb version for the CLI and `kb watch`"
        )

    def snapshot(self) -> dict[str, Any]:
        """What `kb status` shows about the daemon."""
        return {
            "running": True,
            "pid": os.getpid(),
            "started": self.started,
            "uptime_s": round(time.time() - self.started, 1),
            "endpoint": f"127.0.0.1:{self._endpoint.port}" if self._endpoint else None,
            "roots": {
                str(r): type(self.observers[str(r)]).__name__
                if str(r) in self.observers
                else "not watched (folder missing)"
                for r in self.roots
            },
            "queue": len(self.changes) + self.jobs.qsize(),
            "busy": self.busy,
            "events": self.changes.events,
            "last_event": self.changes.last_event,
            "last_sync": self.last_sync,
            "last_error": self.last_error,
            "warnings": self.warnings,
            "log": str(self.home / "logs" / "watch.log"),
        }


def _validated(op: str, args: dict[str, Any]) -> dict[str, Any]:
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


def _filters(d: dict[str, Any] | None) -> Filters | None:
    return Filters(**d) if d else None
