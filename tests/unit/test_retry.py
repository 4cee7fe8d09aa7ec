"""The one retry loop: what it repeats, how long it waits, what it does when no tries are left."""

from __future__ import annotations

import pytest

from kb.retry import Again, retry


def test_repeats_with_backoff_until_it_works() -> None:
    waits: list[float] = []
    calls = iter([Again(), Again(), "ok"])

    def attempt() -> str:
        got = next(calls)
        if isinstance(got, Again):
            raise got
        return got

    assert retry(attempt, 3, delay=0.5, sleep=waits.append) == "ok"
    assert waits == [0.5, 1.0]


def test_a_server_asked_wait_replaces_the_backoff() -> None:
    waits: list[float] = []
    calls = iter([Again(wait=7.0), "ok"])

    def attempt() -> str:
        got = next(calls)
        if isinstance(got, Again):
            raise got
        return got

    assert retry(attempt, 2, sleep=waits.append) == "ok" and waits == [7.0]


def test_out_of_tries_raises_the_cause_or_runs_final() -> None:
    def refused() -> None:
        raise Again(ConnectionRefusedError("nobody there"))

    with pytest.raises(ConnectionRefusedError):
        retry(refused, 2, sleep=lambda s: None)

    def busy() -> str:
        raise Again(final=lambda: "the last answer, read as it is")

    assert retry(busy, 1, sleep=lambda s: None) == "the last answer, read as it is"


def test_other_errors_are_not_repeated() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("the server sent garbage")

    with pytest.raises(ValueError):
        retry(broken, 5, sleep=lambda s: None)
    assert calls == [1]
