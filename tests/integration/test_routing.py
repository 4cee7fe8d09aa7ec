"""The `auto` router against questions a person labelled (en + ru): ≥ 0.85 where it was not
tuned."""

from __future__ import annotations

from pathlib import Path

import kb
from kb.eval.routing import measure
from kb.focus.route import EXAMPLES

HELDOUT = Path(__file__).resolve().parents[1] / "data" / "routing_heldout.jsonl"


def test_router_accuracy_on_questions_it_was_not_tuned_on() -> None:
    held = measure(HELDOUT)
    loo = measure(EXAMPLES, leave_one_out=True)
    assert held["questions"] >= 40 and loo["questions"] >= 150
    assert held["accuracy"] >= 0.85, held["misses"]
    assert loo["accuracy"] >= 0.85, loo["misses"]


def test_route_is_public_and_says_why() -> None:
    assert kb.route("compare restic and borg for my backups")[0] == "think"
    assert kb.route("Какой командой посмотреть логи systemd-сервиса?")[0] == "code"
    mode, why = kb.route("When does my passport expire?")
    assert mode == "dialog" and why
    assert (
        kb.route("Should I water the orchids every week?")[0] == "dialog"
    )  # simple advice is not analysis


def test_lookups_in_real_vaults_rarely_pay_for_think() -> None:
    """A `think` context costs several times the tokens: single-note lookups in kb's real-notes dev
    sets (mode labels written with the questions, never voted with) must not be sent there (16 of
    110 Dendron lookups were)."""
    root = Path(__file__).resolve().parents[2] / "eval" / "questions"
    for name in ("dendron.jsonl", "doka-ru.jsonl"):
        m = measure(root / name)["matrix"]
        lookups = sum(m[want][got] for want in ("code", "dialog") for got in m[want])
        wrongly_think = m["code"]["think"] + m["dialog"]["think"]
        assert wrongly_think <= 0.05 * lookups, (name, m)
