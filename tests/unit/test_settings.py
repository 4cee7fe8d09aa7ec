from __future__ import annotations

from pathlib import Path

import pytest

from kb.errors import ConfigError
from kb.settings import explain, load_settings


def test_defaults(kb_home: Path) -> None:
    s = load_settings()
    assert s.embed_model == "BAAI/bge-large-en-v1.5"
    assert s.llm_base_url == "http://127.0.0.1:8000/v1"
    assert s.llm_model == "Qwen/Qwen3-30B-A3B"
    assert s.data_dir() == kb_home
    assert s.ingest.max_file_mb == 20


def test_precedence_argument_env_file_default(
    kb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (kb_home / "config.toml").write_text(
        'embed_model = "from-file"\nllm_model = "file-llm"\nllm_base_url = "http://file/v1"\n'
        "[ingest]\nmax_file_mb = 5\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("KB_LLM_MODEL", "env-llm")
    monkeypatch.setenv("KB_LLM_BASE_URL", "http://env/v1")
    s = load_settings(llm_base_url="http://arg/v1")
    assert s.llm_base_url == "http://arg/v1"  # argument beats env
    assert s.llm_model == "env-llm"  # env beats file
    assert s.embed_model == "from-file"  # file beats default
    assert s.ingest.max_file_mb == 5
    sources = {k: src for k, _, src in explain(s, {"llm_base_url": "http://arg/v1"})}
    assert sources["llm_base_url"] == "argument"
    assert sources["llm_model"] == "env KB_LLM_MODEL"
    assert sources["embed_model"].startswith("file ")
    assert sources["ingest.max_file_mb"].startswith("file ")
    assert sources["embed_device"] == "default"


def test_env_names_exact(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KB_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("KB_EMBED_MODEL", "/models/x")
    monkeypatch.setenv("KB_INGEST__MAX_FILE_MB", "1.5")
    s = load_settings()
    assert s.embed_model == "/models/x"
    assert s.data_dir() == tmp_path / "h"
    assert s.ingest.max_file_mb == 1.5


def test_user_config_dir_used_when_home_has_none(kb_home: Path) -> None:
    cfg = kb_home / "xdg-config" / "kb" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('llm_model = "user-dir"\n', encoding="utf-8")
    assert load_settings().llm_model == "user-dir"


def test_invalid_value_names_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_INGEST__MAX_FILE_MB", "-3")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert "ingest.max_file_mb" in e.value.message
    assert e.value.remedy


def test_unknown_key_in_file_is_an_error(kb_home: Path) -> None:
    (kb_home / "config.toml").write_text('embed_modle = "typo"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="embed_modle"):
        load_settings()


def test_malformed_toml(kb_home: Path) -> None:
    (kb_home / "config.toml").write_text("this is = = not toml", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.toml"):
        load_settings()


# ------------------------------------------------------------- every example the docs give must
# work
DOC_FILES = [
    "README.md",
    *sorted(str(p) for p in Path(__file__).resolve().parents[2].glob("docs/*.md")),
]
NOT_SETTINGS = {"KB_EXTRAS", "KB_TINY_LLM"}  # scripts/setup.sh's switches, not kb settings


def _doc_examples() -> list[tuple[str, str, str]]:
    import re

    root = Path(__file__).resolve().parents[2]
    found = []
    for name in DOC_FILES:
        text = (root / name).read_text(encoding="utf-8")
        for m in re.finditer(r"\b(KB_[A-Z0-9_]+)=([A-Za-z0-9_./:-]+)", text):
            if m.group(1) not in NOT_SETTINGS and m.group(2) not in ("url", "TINY_ALIAS"):
                found.append((Path(name).name, m.group(1), m.group(2)))
    return sorted(set(found))


def test_docs_give_settings_examples() -> None:
    assert len(_doc_examples()) >= 4  # the check below cannot pass vacuously


@pytest.mark.parametrize(("doc", "var", "value"), _doc_examples())
def test_every_env_example_in_the_docs_works(
    doc: str, var: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kb.settings import explain, load_settings

    monkeypatch.setenv(var, value)
    s = load_settings()
    rows = {key: (v, src) for key, v, src in explain(s)}
    hits = [key for key, (_, src) in rows.items() if src == f"env {var}"]
    assert hits, f"{doc}: {var} does not set any setting"
    got = rows[hits[0]][0]
    if isinstance(got, bool):
        assert got == (value.lower() in ("1", "true", "yes", "on"))
    else:
        assert str(got) == value


def test_one_nested_field_keeps_the_rest_env_and_toml(
    monkeypatch: pytest.MonkeyPatch, kb_home: Path
) -> None:
    from kb.settings import load_settings

    default = load_settings().modes.dialog
    monkeypatch.setenv("KB_MODES__DIALOG__BUDGET", "1500")
    s = load_settings()
    assert s.modes.dialog.budget == 1500 and s.modes.dialog.max_passages == default.max_passages
    assert s.modes.think.thinking is True and s.modes.think.order == "edges"
    (kb_home / "config.toml").write_text(
        "[modes.think]\nbudget = 9000\n[ingest]\nchunk_overlap = 16\n"
    )
    s = load_settings()
    assert (
        s.modes.think.budget == 9000 and s.modes.think.thinking and s.modes.think.max_passages == 24
    )
    assert (
        s.modes.dialog.budget == 1500
        and s.ingest.chunk_tokens == 384
        and s.ingest.chunk_overlap == 16
    )


def test_a_bad_value_names_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.errors import ConfigError
    from kb.settings import load_settings

    monkeypatch.setenv("KB_INGEST__MAX_FILE_MB", "abc")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "KB_INGEST__MAX_FILE_MB='abc'" in info.value.message
