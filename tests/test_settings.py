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


def test_precedence_argument_env_file_default(kb_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
