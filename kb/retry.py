"""One retry loop for every network call: an attempt that is worth repeating raises `Again`; the
loop waits (doubling the delay, or as long as the server asked) and tries again, at most
``retries`` more times. What is worth repeating is the caller's to say: nobody answering the
connect yet, or a server saying it is busy (429/503) — never a request the server accepted and then
stalled on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Again(Exception):
    """Try once more. ``wait``: seconds the server asked for (Retry-After) instead of the backoff;
    ``final``: what to do when no tries are left (return a value or raise); by default ``cause`` is
    raised."""

    def __init__(
        self,
        cause: BaseException | None = None,
        *,
        wait: float | None = None,
        final: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(str(cause) if cause else "again")
        self.cause = cause
        self.wait = wait
        self.final = final


def retry(
    attempt: Callable[[], T],
    retries: int,
    *,
    delay: float = 0.5,
    factor: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``attempt()``, repeated while it raises `Again` (``retries`` more times at most)."""
    for n in range(retries + 1):
        try:
            return attempt()
        except Again as again:
            if n == retries:
                if again.final is not None:
                    return again.final()
                raise (again.cause or again) from None
            sleep(again.wait if again.wait is not None else delay)
            delay *= factor
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
